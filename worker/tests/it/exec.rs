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
        .arg("--no-cache")
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

/// `exec --out` copies the result's files out, stderr is shown (it is not part of the result), and
/// the second run loads the module from the module cache instead of compiling it again.
#[test]
fn exec_shows_stderr_copies_out_and_uses_the_module_cache() {
    let dir = tempfile::tempdir().unwrap();
    let module = wat::parse_str(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 32) "r.txt")
        (data (i32.const 64) "a warning\n")
        (data (i32.const 96) "the result")
        (func (export "_start")
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 10))
          (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
          (drop (call $open (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 5) (i32.const 1)
                  (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)))
          (i32.store (i32.const 0) (i32.const 96))
          (drop (call $write (i32.load (i32.const 12)) (i32.const 0) (i32.const 1) (i32.const 8)))))"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("m.wasm"), &module).unwrap();
    let spec = serde_json::json!({
        "version": 1,
        "module": keccak256(&module).to_string(),
        "limits": {"fuel": 1_000_000, "memoryBytes": 16_777_216, "outputBytes": 65_536, "wallClockMs": 10_000},
        "redundancy": 1
    });
    std::fs::write(dir.path().join("spec.json"), spec.to_string()).unwrap();
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_qor-worker"))
            .current_dir(dir.path())
            .args(["exec", "spec.json", "--module", "m.wasm", "--module-cache", "cache", "--out", out])
            .output()
            .unwrap()
    };
    let first = run("out1");
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("a warning") && stderr.contains("module: compiled"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("out1/r.txt")).unwrap(), b"the result");
    let second = run("out2");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("module: from the module cache"), "{stderr}");
    assert_eq!(second.stdout, first.stdout, "the same outcome");
    assert_eq!(std::fs::read(dir.path().join("out2/r.txt")).unwrap(), b"the result");
    // An existing file is never overwritten.
    let third = run("out1");
    assert!(!third.status.success() && String::from_utf8_lossy(&third.stderr).contains("r.txt"));
}
