//! The sandbox: golden digests and fuel for the example jobs, determinism across runs, and every failure
//! class a hostile module can reach, each classified and leaving the sandbox healthy.

use std::path::{Path, PathBuf};

use alloy_primitives::{B256, U256, keccak256};
use qor_protocol::spec::{JobSpec, Limits};
use qor_worker::sandbox::{Failure, Outcome, Sandbox};

/// The example jobs, built by test.sh (`cargo build --release --target wasm32-wasip1` in examples/jobs).
fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/jobs/target/wasm32-wasip1/release")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the examples with `cargo build --release --target wasm32-wasip1 \
             --manifest-path examples/jobs/Cargo.toml --target-dir examples/jobs/target`",
            path.display()
        )
    })
}

fn spec_for(module: &[u8], args: &[&str], env: &[(&str, &str)]) -> JobSpec {
    JobSpec {
        version: 1,
        module: keccak256(module),
        entry: "_start".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        inputs: vec![],
        limits: Limits { fuel: 50_000_000, memory_bytes: 64 << 20, output_bytes: 1 << 20, wall_clock_ms: 20_000 },
        redundancy: 1,
    }
}

struct JobDir(tempfile::TempDir);

impl JobDir {
    fn new(inputs: &[(&str, &[u8])]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("in")).unwrap();
        std::fs::create_dir(dir.path().join("out")).unwrap();
        for (name, data) in inputs {
            std::fs::write(dir.path().join("in").join(name), data).unwrap();
        }
        Self(dir)
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
}

fn run(sandbox: &Sandbox, spec: &JobSpec, module: &[u8], inputs: &[(&str, &[u8])]) -> Outcome {
    let dir = JobDir::new(inputs);
    sandbox.run(spec, U256::from(42), module, dir.path()).unwrap()
}

fn completed(outcome: &Outcome) -> (u32, B256, u64, String) {
    match outcome {
        Outcome::Completed { exit_code, result_digest, fuel_used, stdout, .. } => {
            (*exit_code, *result_digest, *fuel_used, String::from_utf8_lossy(stdout).into_owned())
        }
        other => panic!("expected a result, got {other:?}"),
    }
}

fn failure(outcome: &Outcome) -> (Failure, u64) {
    match outcome {
        Outcome::Failed { failure, fuel_used } => (failure.clone(), *fuel_used),
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn hello_sees_args_and_sorted_env_and_writes_out() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("hello");
    let spec = spec_for(&wasm, &["a b", "c"], &[("NAME", "qor"), ("A_FIRST", "1")]);
    let (exit, digest, fuel, stdout) = completed(&run(&sandbox, &spec, &wasm, &[]));
    assert_eq!(exit, 0);
    assert_eq!(stdout, "arg a b\narg c\nenv A_FIRST=1\nenv NAME=qor\n");
    assert!(fuel > 0);
    let again = completed(&run(&sandbox, &spec, &wasm, &[]));
    assert_eq!((again.1, again.2), (digest, fuel), "same digest and fuel twice");
}

#[test]
fn clock_random_and_nans_are_pinned_by_the_job_id() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("floaty");
    let spec = spec_for(&wasm, &[], &[]);
    let first = completed(&run(&sandbox, &spec, &wasm, &[]));
    for _ in 0..19 {
        assert_eq!(completed(&run(&sandbox, &spec, &wasm, &[])), first, "20 runs, one result");
    }
    // NaNs are canonical (0x7ff8000000000000), whichever operation made them.
    for line in ["nan 7ff8000000000000", "inf-inf 7ff8000000000000", "sqrt(-1) 7ff8000000000000", "f32 nan 7fc00000"] {
        assert!(first.3.contains(line), "{line} missing in:\n{}", first.3);
    }
    // Another job id: another frozen clock and another random stream.
    let dir = JobDir::new(&[]);
    let other = completed(&sandbox.run(&spec, U256::from(43), &wasm, dir.path()).unwrap());
    assert_ne!(other.3, first.3);
}

#[test]
fn sha256sum_and_wordcount_read_inputs() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("sha256sum");
    let spec = spec_for(&wasm, &["/in/a.txt"], &[]);
    let (exit, _, _, stdout) = completed(&run(&sandbox, &spec, &wasm, &[("a.txt", b"abc")]));
    assert_eq!(exit, 0);
    assert_eq!(stdout, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  /in/a.txt\n");

    let wasm = example("wordcount");
    let spec = spec_for(&wasm, &["/in/t.txt"], &[]);
    let (exit, _, _, stdout) = completed(&run(&sandbox, &spec, &wasm, &[("t.txt", b"the cat the hat")]));
    assert_eq!((exit, stdout.as_str()), (0, "4 words, 3 distinct\n"));
}

fn wat(src: &str) -> Vec<u8> {
    src.as_bytes().to_vec()
}

#[test]
fn infinite_loop_runs_out_of_fuel_at_the_same_point() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (func (export "_start") (loop br 0)))"#);
    let spec = spec_for(&m, &[], &[]);
    let (f, fuel) = failure(&run(&sandbox, &spec, &m, &[]));
    assert_eq!(f, Failure::OutOfFuel);
    assert_eq!(fuel, spec.limits.fuel);
    assert_eq!(failure(&run(&sandbox, &spec, &m, &[])), (Failure::OutOfFuel, fuel));
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (memory 1) (func (export "_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))"#);
    let spec = spec_for(&m, &[], &[]);
    assert_eq!(failure(&run(&sandbox, &spec, &m, &[])).0, Failure::MemoryLimit);
}

#[test]
fn traps_are_classified() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (func (export "_start") unreachable))"#);
    let (f, _) = failure(&run(&sandbox, &spec_for(&m, &[], &[]), &m, &[]));
    assert_eq!(f, Failure::Trap { trap: "UnreachableCodeReached".into() });

    let m = wat(r#"(module (func $f (export "_start") (call $f)))"#);
    let (f, _) = failure(&run(&sandbox, &spec_for(&m, &[], &[]), &m, &[]));
    assert_eq!(f, Failure::Trap { trap: "StackOverflow".into() });
}

#[test]
fn invalid_modules_are_classified() {
    let sandbox = Sandbox::new().unwrap();
    let garbage = b"\0asm garbage".to_vec();
    let (f, fuel) = failure(&run(&sandbox, &spec_for(&garbage, &[], &[]), &garbage, &[]));
    assert!(matches!(f, Failure::InvalidModule { .. }), "{f:?}");
    assert_eq!(fuel, 0);
    let no_entry = wat(r#"(module (func (export "main")))"#);
    let (f, _) = failure(&run(&sandbox, &spec_for(&no_entry, &[], &[]), &no_entry, &[]));
    assert!(matches!(f, Failure::InvalidModule { .. }), "{f:?}");
}

#[test]
fn a_flood_of_stdout_is_output_too_large() {
    let sandbox = Sandbox::new().unwrap();
    // Writes the same 64 KiB to stdout forever (would be 10 GB and more): fd_write(1, iov, 1, nwritten).
    let m = wat(r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 2)
        (func (export "_start")
          (i32.store (i32.const 0) (i32.const 16))
          (i32.store (i32.const 4) (i32.const 65536))
          (loop (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br 0))))"#);
    let mut spec = spec_for(&m, &[], &[]);
    spec.limits.fuel = 1_000_000;
    let (f, fuel) = failure(&run(&sandbox, &spec, &m, &[]));
    assert_eq!(f, Failure::OutputTooLarge { limit: spec.limits.output_bytes });
    assert_eq!(fuel, spec.limits.fuel, "it ran until its fuel was gone");
    // The sandbox is still healthy.
    let ok = wat(r#"(module (func (export "_start")))"#);
    assert_eq!(completed(&run(&sandbox, &spec_for(&ok, &[], &[]), &ok, &[])).0, 0);
}

#[test]
fn wall_clock_backstop_is_a_timeout_never_a_digest() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (func (export "_start") (loop br 0)))"#);
    let mut spec = spec_for(&m, &[], &[]);
    spec.limits.fuel = qor_protocol::spec::MAX_SAFE_INTEGER;
    spec.limits.wall_clock_ms = 200;
    assert_eq!(failure(&run(&sandbox, &spec, &m, &[])).0, Failure::Timeout);
}

#[test]
fn module_hash_must_match() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (func (export "_start")))"#);
    let mut spec = spec_for(&m, &[], &[]);
    spec.module = B256::ZERO;
    let dir = JobDir::new(&[]);
    let err = sandbox.run(&spec, U256::from(1), &m, dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("module hash mismatch"), "{err}");
}

#[test]
fn a_module_cannot_leave_the_job_folder() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("escape");
    let spec = spec_for(&wasm, &[], &[]);
    let dir = JobDir::new(&[("x", b"")]);
    let outcome = sandbox.run(&spec, U256::from(1), &wasm, dir.path()).unwrap();
    let (exit, _, _, stdout) = completed(&outcome);
    assert_eq!(exit, 0);
    assert!(!stdout.contains("LEAK"), "{stdout}");
    assert_eq!(stdout.matches("refused").count(), 6, "{stdout}");
    assert!(!dir.path().join("in/planted").exists());
}

/// Golden values: the exact module hash, fuel and digest of every example job. A change here means
/// honest workers on the old and new build would disagree: rebuild the goldens only on purpose (a new
/// toolchain or example), and say so.
#[test]
fn golden_fuel_and_digests() {
    let sandbox = Sandbox::new().unwrap();
    let cases: [(&str, &[&str], &[(&str, &[u8])]); 4] = [
        ("hello", &["golden"], &[]),
        ("sha256sum", &["/in/a.txt", "/in/b.txt"], &[("a.txt", b"abc"), ("b.txt", b"")]),
        ("wordcount", &["/in/t.txt"], &[("t.txt", b"The cat sat on the mat. The end.")]),
        ("floaty", &[], &[]),
    ];
    let mut lines = Vec::new();
    for (name, args, inputs) in cases {
        let wasm = example(name);
        let spec = spec_for(&wasm, args, &[("NAME", "golden")]);
        let (exit, digest, fuel, _) = completed(&run(&sandbox, &spec, &wasm, inputs));
        lines.push(format!("{name} module={} exit={exit} fuel={fuel} digest={digest}", keccak256(&wasm)));
    }
    let got = lines.join("\n") + "\n";
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden.txt");
    if std::env::var_os("QOR_WRITE_GOLDEN").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert!(got == expected, "goldens changed (QOR_WRITE_GOLDEN=1 to accept on purpose):\n{got}\nexpected:\n{expected}");
}
