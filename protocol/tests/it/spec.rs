//! Job specs: canonical JSON, spec hashes, and refusals that name the field.

use qor_protocol::spec::{JobSpec, SpecError};

pub(crate) const EXAMPLE: &str = r#"{
  "version": 1,
  "module": "0x1111111111111111111111111111111111111111111111111111111111111111",
  "args": ["--name", "wörld \"quoted\"\n"],
  "env": {"ZED": "last", "ALPHA": "first"},
  "inputs": [
    {"path": "data/b.txt", "hash": "0x2222222222222222222222222222222222222222222222222222222222222222"},
    {"path": "a.txt", "hash": "0x3333333333333333333333333333333333333333333333333333333333333333"}
  ],
  "limits": {"fuel": 1000000, "memoryBytes": 16777216, "outputBytes": 1048576, "wallClockMs": 10000},
  "redundancy": 3
}"#;

fn spec_with(patch: impl FnOnce(&mut serde_json::Value)) -> Result<JobSpec, SpecError> {
    let mut v: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
    patch(&mut v);
    JobSpec::from_json(v.to_string().as_bytes())
}

fn field_of(err: SpecError) -> String {
    match err {
        SpecError::Malformed { field, .. } | SpecError::Invalid { field, .. } => field,
    }
}

#[test]
fn canonical_json_sorts_keys_and_drops_whitespace() {
    let spec = JobSpec::from_json(EXAMPLE.as_bytes()).unwrap();
    let canonical = String::from_utf8(spec.canonical_json()).unwrap();
    assert_eq!(
        canonical,
        concat!(
            r#"{"args":["--name","wörld \"quoted\"\n"],"entry":"_start","env":{"ALPHA":"first","ZED":"last"},"#,
            r#""inputs":[{"hash":"0x3333333333333333333333333333333333333333333333333333333333333333","path":"a.txt"},"#,
            r#"{"hash":"0x2222222222222222222222222222222222222222222222222222222222222222","path":"data/b.txt"}],"#,
            r#""limits":{"fuel":1000000,"memoryBytes":16777216,"outputBytes":1048576,"wallClockMs":10000},"#,
            r#""module":"0x1111111111111111111111111111111111111111111111111111111111111111","redundancy":3,"version":1}"#
        )
    );
    // Same spec, other key order and whitespace and input order: same hash.
    let reordered = r#"{"redundancy":3,"version":1,"limits":{"wallClockMs":10000,"outputBytes":1048576,"memoryBytes":16777216,"fuel":1000000},
        "inputs":[{"hash":"0x3333333333333333333333333333333333333333333333333333333333333333","path":"a.txt"},{"path":"data/b.txt","hash":"0x2222222222222222222222222222222222222222222222222222222222222222"}],
        "env":{"ALPHA":"first","ZED":"last"},"args":["--name","wörld \"quoted\"\n"],"entry":"_start","module":"0x1111111111111111111111111111111111111111111111111111111111111111"}"#;
    assert_eq!(JobSpec::from_json(reordered.as_bytes()).unwrap().spec_hash(), spec.spec_hash());
    // Canonical JSON parses back to a spec with the same hash.
    assert_eq!(JobSpec::from_json(&spec.canonical_json()).unwrap().spec_hash(), spec.spec_hash());
}

#[test]
fn any_change_changes_the_hash() {
    let base = JobSpec::from_json(EXAMPLE.as_bytes()).unwrap().spec_hash();
    let changed = spec_with(|v| v["limits"]["fuel"] = 1_000_001.into()).unwrap();
    assert_ne!(changed.spec_hash(), base);
    let changed = spec_with(|v| v["args"][0] = "--nam".into()).unwrap();
    assert_ne!(changed.spec_hash(), base);
}

#[test]
fn the_sandbox_seed_is_what_runs_not_how_much_it_may_use() {
    let base = JobSpec::from_json(EXAMPLE.as_bytes()).unwrap();
    let seed = base.sandbox_seed();
    assert_ne!(seed, base.spec_hash());
    // Limits, redundancy and the order inputs are listed in leave the seed alone...
    let same = [
        spec_with(|v| v["limits"]["fuel"] = 9_000_000.into()).unwrap(),
        spec_with(|v| v["limits"]["wallClockMs"] = 1.into()).unwrap(),
        spec_with(|v| v["redundancy"] = 1.into()).unwrap(),
        spec_with(|v| v["inputs"].as_array_mut().unwrap().reverse()).unwrap(),
    ];
    for spec in same {
        assert_eq!(spec.sandbox_seed(), seed, "{spec:?}");
    }
    // ...and everything the module sees changes it.
    let other = [
        spec_with(|v| v["args"][0] = "--nam".into()).unwrap(),
        spec_with(|v| v["env"]["ALPHA"] = "1st".into()).unwrap(),
        spec_with(|v| v["inputs"][0]["path"] = "data/c.txt".into()).unwrap(),
        spec_with(|v| v["inputs"][1]["hash"] = format!("0x{}", "44".repeat(32)).into()).unwrap(),
        spec_with(|v| v["module"] = format!("0x{}", "55".repeat(32)).into()).unwrap(),
        spec_with(|v| v["entry"] = "main".into()).unwrap(),
    ];
    for spec in other {
        assert_ne!(spec.sandbox_seed(), seed, "{spec:?}");
    }
}

#[test]
fn refusals_name_the_field() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|v| v["colour"] = "red".into()), "colour"),
        (Box::new(|v| v["limits"]["cpu"] = 1.into()), "limits.cpu"),
        (Box::new(|v| v["version"] = 2.into()), "version"),
        (Box::new(|v| v["limits"]["fuel"] = 0.into()), "limits.fuel"),
        (Box::new(|v| v["limits"]["fuel"] = (1u64 << 53).into()), "limits.fuel"),
        (Box::new(|v| v["limits"]["memoryBytes"] = ((1u64 << 32) + 1).into()), "limits.memoryBytes"),
        (Box::new(|v| v["limits"]["wallClockMs"] = 0.into()), "limits.wallClockMs"),
        (Box::new(|v| v["redundancy"] = 0.into()), "redundancy"),
        (Box::new(|v| v["redundancy"] = 33.into()), "redundancy"),
        (Box::new(|v| v["inputs"][0]["path"] = "../etc/passwd".into()), "inputs[0].path"),
        (Box::new(|v| v["inputs"][0]["path"] = "/etc/passwd".into()), "inputs[0].path"),
        (Box::new(|v| v["inputs"][0]["path"] = "a/./b".into()), "inputs[0].path"),
        (Box::new(|v| v["inputs"][1]["path"] = "data/b.txt".into()), "inputs[1].path"),
        (Box::new(|v| v["inputs"][0]["hash"] = "0x12".into()), "inputs[0].hash"),
        (Box::new(|v| v["env"]["1BAD"] = "x".into()), "env.1BAD"),
        (Box::new(|v| v["args"][1] = "nul\u{0}".into()), "args[1]"),
    ];
    for (patch, field) in cases {
        let err = spec_with(patch).unwrap_err();
        assert_eq!(field_of(err.clone()), field, "{err}");
    }
}

#[test]
fn duplicate_keys_are_refused() {
    let dup_field = EXAMPLE.replace(r#""redundancy": 3"#, r#""redundancy": 3, "redundancy": 2"#);
    let err = JobSpec::from_json(dup_field.as_bytes()).unwrap_err();
    assert!(err.to_string().contains("duplicate field `redundancy`"), "{err}");
    let dup_env = EXAMPLE.replace(r#""ALPHA": "first""#, r#""ALPHA": "first", "ALPHA": "again""#);
    let err = JobSpec::from_json(dup_env.as_bytes()).unwrap_err();
    assert_eq!(field_of(err.clone()), "env", "{err}");
    assert!(err.to_string().contains("duplicate variable `ALPHA`"), "{err}");
}
