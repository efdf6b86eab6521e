//! `qor-worker exec` as a separate process: the same job gives the same outcome in every process, and
//! an input whose hash does not match is refused before anything runs.

use std::path::PathBuf;
use std::process::Command;

use alloy_primitives::keccak256;

fn wasm(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/target/wasm32-wasip1/release/{name}.wasm"))
}

fn write_job(dir: &std::path::Path, input: &[u8], declared: &[u8]) -> PathBuf {
    let module = std::fs::read(wasm("sha256sum")).unwrap();
    std::fs::create_dir_all(dir.join("inputs/data")).unwrap();
    std::fs::write(dir.join("inputs/data/a.txt"), input).unwrap();
    let spec = serde_json::json!({
        "version": 1,
        "module": keccak256(&module).to_string(),
        "args": ["/in/data/a.txt"],
        "inputs": [{"path": "data/a.txt", "hash": keccak256(declared).to_string()}],
        "limits": {"fuel": 10_000_000, "memoryBytes": 16_777_216, "outputBytes": 65_536, "wallClockMs": 10_000},
        "redundancy": 3
    });
    let path = dir.join("spec.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

fn exec(dir: &std::path::Path, spec: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qor-worker"))
        .args(["exec", spec.to_str().unwrap(), "--module", wasm("sha256sum").to_str().unwrap(), "--inputs"])
        .arg(dir.join("inputs"))
        .args(["--job-id", "7"])
        .output()
        .unwrap()
}

#[test]
fn separate_processes_agree() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_job(dir.path(), b"some input", b"some input");
    let outputs: Vec<String> = (0..3)
        .map(|_| {
            let out = exec(dir.path(), &spec);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    assert!(outputs[0].contains("\"status\": \"completed\""), "{}", outputs[0]);
    assert!(outputs[0].contains("\"resultDigest\""));
    assert!(outputs.iter().all(|o| o == &outputs[0]), "{outputs:?}");
}

#[test]
fn wrong_input_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_job(dir.path(), b"tampered", b"some input");
    let out = exec(dir.path(), &spec);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("input `data/a.txt` hash mismatch"), "{stderr}");
}
