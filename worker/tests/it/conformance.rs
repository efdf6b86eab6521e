//! The WASI conformance tests (WebAssembly/wasi-testsuite, Apache-2.0; the prebuilt C and
//! AssemblyScript wasm32-wasip1 tests in `../shared/wasi-testsuite`) through the sandbox. Each test's
//! JSON gives its arguments, environment, the folder it expects as its root, and the exit code and
//! stdout it expects. The sandbox deliberately differs from a stock WASI host in a few ways; every test
//! that fails must be listed in [`DIFFERENCES`] with the sandbox rule it meets, and every listed test
//! must still fail (so the list cannot go stale). No other failure is allowed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use alloy_primitives::keccak256;
use qor_protocol::spec::{InputFile, JobSpec, Limits};
use qor_worker::sandbox::{Outcome, Sandbox, StderrHead};
use serde_json::Value;

/// Tests that fail in the sandbox on purpose, and the rule each one meets.
const DIFFERENCES: &[(&str, &str)] = &[
    ("c/fdopendir-with-access", NO_ROOT),
    ("c/fopen-with-access", NO_ROOT),
    ("c/lseek", NO_ROOT),
    ("c/pread-with-access", NO_ROOT),
    ("c/pwrite-with-access", NO_ROOT),
    ("c/pwrite-with-append", NO_ROOT),
    ("c/stat-dev-ino", NO_ROOT),
    (
        "c/sock_shutdown-invalid_fd",
        "descriptors 3 and 4 are always the /in and /out folders: the descriptor the test takes for unused is open",
    ),
];
/// The rule the tests that expect a preopened root folder meet.
const NO_ROOT: &str =
    "files are only under /in (read-only) and /out: there is no root or working folder, so a path relative to one names nothing";

fn suite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/wasi-testsuite/tests")
}

/// Every file under `dir`, as (path relative to it, bytes).
fn files(dir: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        if entry.file_type().unwrap().is_dir() {
            files(&entry.path(), &path, out);
        } else {
            out.push((path, std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// Runs one test; `Err` says how it differed from its expectations.
fn run(sandbox: &Sandbox, wasm: &Path) -> Result<(), String> {
    let module = std::fs::read(wasm).unwrap();
    let expect: Value = std::fs::read(wasm.with_extension("json")).map(|b| serde_json::from_slice(&b).unwrap()).unwrap_or(Value::Null);
    let args: Vec<String> =
        expect["args"].as_array().map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect()).unwrap_or_default();
    let env: BTreeMap<String, String> =
        expect["env"].as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()).unwrap_or_default();
    let mut inputs = Vec::new();
    if let Some(root) = expect["root"].as_str() {
        files(&wasm.parent().unwrap().join(root), "", &mut inputs);
    }
    let spec = JobSpec {
        version: 1,
        module: keccak256(&module),
        entry: "_start".into(),
        args,
        env,
        inputs: inputs.iter().map(|(path, bytes)| InputFile { path: path.clone(), hash: keccak256(bytes) }).collect(),
        limits: Limits { fuel: 1_000_000_000, memory_bytes: 64 << 20, output_bytes: 1 << 20, wall_clock_ms: 30_000 },
        redundancy: 1,
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    for (path, bytes) in &inputs {
        let at = dir.path().join("in").join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, bytes).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("in")).unwrap();
    let stderr = StderrHead::default();
    let outcome = sandbox.run_with_stderr(&spec, &module, dir.path(), &stderr).map_err(|e| e.to_string())?;
    let said = String::from_utf8_lossy(&stderr.contents()).trim().to_owned();
    let Outcome::Completed { exit_code, stdout, .. } = outcome else { return Err(format!("{outcome:?}; stderr: {said}")) };
    let want_code = expect["exit_code"].as_u64().unwrap_or(0);
    if u64::from(exit_code) != want_code {
        return Err(format!("exit code {exit_code}, expected {want_code}; stdout {:?}", String::from_utf8_lossy(&stdout)));
    }
    if let Some(want) = expect["stdout"].as_str()
        && stdout != want.as_bytes()
    {
        return Err(format!("stdout {:?}, expected {want:?}", String::from_utf8_lossy(&stdout)));
    }
    Ok(())
}

#[test]
fn the_wasi_testsuite_passes_but_for_the_sandboxs_named_rules() {
    let suite = suite();
    let mut wasms = Vec::new();
    for lang in ["c", "assemblyscript"] {
        let dir = suite.join(lang).join("testsuite/wasm32-wasip1");
        let listing = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("the suite at {}: {e}", dir.display()));
        for entry in listing {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wasm") {
                wasms.push((format!("{lang}/{}", path.file_stem().unwrap().to_string_lossy()), path));
            }
        }
    }
    wasms.sort();
    assert_eq!(wasms.len(), 26, "every prebuilt test is run");
    let sandbox = Sandbox::new().unwrap();
    let mut unexpected = Vec::new();
    for (name, wasm) in &wasms {
        let rule = DIFFERENCES.iter().find(|(n, _)| n == name).map(|(_, r)| *r);
        match (run(&sandbox, wasm), rule) {
            (Ok(()), None) | (Err(_), Some(_)) => {}
            (Err(why), None) => unexpected.push(format!("{name} failed: {why}")),
            (Ok(()), Some(rule)) => unexpected.push(format!("{name} passed, but is listed as meeting the rule: {rule}")),
        }
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}
