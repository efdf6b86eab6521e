//! The sandbox: golden digests and fuel for the example jobs, determinism across runs, and every failure
//! class a hostile module can reach, each classified and leaving the sandbox healthy.

use std::path::{Path, PathBuf};

use alloy_primitives::{B256, keccak256};
use qor_protocol::spec::{JobSpec, Limits};
use qor_worker::cache::CacheStatus;
use qor_worker::sandbox::{Failure, Outcome, Sandbox};

/// The example jobs, built by test.sh (`cargo build --release --target wasm32-wasip1` in examples/jobs).
fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/target/wasm32-wasip1/release").join(format!("{name}.wasm"));
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
    sandbox.run(spec, module, dir.path()).unwrap()
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
fn clock_random_and_nans_are_pinned_by_what_runs() {
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
    // Limits and redundancy do not seed the sandbox: a quote run with a looser fuel limit, or the
    // same program for more replicas, sees the same clock and the same random bytes, and the same fuel.
    let mut looser = spec.clone();
    looser.limits.fuel *= 4;
    looser.limits.memory_bytes *= 2;
    looser.redundancy = 5;
    assert_ne!(looser.spec_hash(), spec.spec_hash());
    assert_eq!(completed(&run(&sandbox, &looser, &wasm, &[])), first);
    // Another program (one more variable in its environment): another frozen clock and another
    // random stream.
    let other = completed(&run(&sandbox, &spec_for(&wasm, &[], &[("SALT", "1")]), &wasm, &[]));
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
    // Grows until refused, then aborts as an allocator does: a MemoryLimit failure.
    let m = wat(
        r#"(module (memory 1) (func (export "_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable))"#,
    );
    let spec = spec_for(&m, &[], &[]);
    assert_eq!(failure(&run(&sandbox, &spec, &m, &[])).0, Failure::MemoryLimit);
    // A module that handles the refusal (grow returns -1, as WebAssembly says) goes on: its result
    // is as deterministic as any, since the limit is the spec's.
    let m = wat(r#"(module (memory 1) (func (export "_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))))"#);
    let spec = spec_for(&m, &[], &[]);
    let first = run(&sandbox, &spec, &m, &[]);
    assert!(matches!(first, Outcome::Completed { exit_code: 0, .. }), "{first:?}");
    assert_eq!(run(&sandbox, &spec, &m, &[]), first);
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

/// A module that calls `fd_write(fd, iov, 1, nwritten)` with one 64 KiB iovec forever (10 GB and more).
fn flood(open_out_file: bool) -> Vec<u8> {
    let (open, fd) = if open_out_file {
        // path_open(4 = the /out preopen; 3 is /in, 0, "big", 3, CREAT|TRUNC, rights, rights, 0, &fd at 12)
        (
            r#"(drop (call $open (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 3) (i32.const 9)
                 (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)))"#,
            "(i32.load (i32.const 12))",
        )
    } else {
        ("", "(i32.const 1)")
    };
    wat(&format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_open"
          (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (memory (export "memory") 2)
        (data (i32.const 32) "big")
        (func (export "_start")
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 65536))
          {open}
          (loop (drop (call $w {fd} (i32.const 0) (i32.const 1) (i32.const 8))) (br 0))))"#
    ))
}

#[test]
fn a_flood_of_stdout_traps_at_the_output_cap() {
    let sandbox = Sandbox::new().unwrap();
    let m = flood(false);
    let spec = spec_for(&m, &[], &[]);
    let (f, fuel) = failure(&run(&sandbox, &spec, &m, &[]));
    assert_eq!(f, Failure::OutputTooLarge { limit: spec.limits.output_bytes });
    assert!(fuel < spec.limits.fuel / 100, "stopped at the write that crossed the cap, not by fuel: {fuel}");
    assert_eq!(failure(&run(&sandbox, &spec, &m, &[])), (f, fuel), "at the same point every time");
    // The sandbox is still healthy.
    let ok = wat(r#"(module (func (export "_start")))"#);
    assert_eq!(completed(&run(&sandbox, &spec_for(&ok, &[], &[]), &ok, &[])).0, 0);
}

#[test]
fn a_flood_into_out_never_reaches_the_disk_past_the_cap() {
    let sandbox = Sandbox::new().unwrap();
    let m = flood(true);
    let spec = spec_for(&m, &[], &[]);
    let dir = JobDir::new(&[]);
    let (f, fuel) = failure(&sandbox.run(&spec, &m, dir.path()).unwrap());
    assert_eq!(f, Failure::OutputTooLarge { limit: spec.limits.output_bytes });
    assert!(fuel < spec.limits.fuel / 100, "{fuel}");
    let written = std::fs::metadata(dir.path().join("out/big")).unwrap().len();
    assert!(written > 0 && written <= spec.limits.output_bytes, "{written} bytes on disk");
}

#[test]
fn growing_a_file_past_the_cap_or_creating_too_many_files_is_output_too_large() {
    let sandbox = Sandbox::new().unwrap();
    // path_open /out/sparse, then fd_filestat_set_size(fd, 10 GB): no bytes written, but a huge file.
    let m = wat(r#"(module
        (import "wasi_snapshot_preview1" "path_open"
          (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $size (param i32 i64) (result i32)))
        (memory (export "memory") 1)
        (data (i32.const 32) "sparse")
        (func (export "_start")
          (drop (call $open (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 6) (i32.const 9)
                 (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)))
          (drop (call $size (i32.load (i32.const 12)) (i64.const 10000000000)))))"#);
    let dir = JobDir::new(&[]);
    let spec = spec_for(&m, &[], &[]);
    let (f, _) = failure(&sandbox.run(&spec, &m, dir.path()).unwrap());
    assert_eq!(f, Failure::OutputTooLarge { limit: spec.limits.output_bytes });
    assert_eq!(std::fs::metadata(dir.path().join("out/sparse")).unwrap().len(), 0);

    // path_create_directory(/out, "d", 1) in a loop: one entry past the limit traps.
    let m = wat(r#"(module
        (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "_start") (local $i i32)
          (loop
            (i32.store (i32.const 0) (local.get $i))
            (drop (call $mkdir (i32.const 4) (i32.const 0) (i32.const 4)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br 0))))"#);
    let dir = JobDir::new(&[]);
    let (f, _) = failure(&sandbox.run(&spec_for(&m, &[], &[]), &m, dir.path()).unwrap());
    assert!(matches!(f, Failure::OutputTooLarge { .. }), "{f:?}");
    let made = std::fs::read_dir(dir.path().join("out")).unwrap().count();
    assert!(made as u32 <= qor_worker::guard::MAX_CREATED_ENTRIES, "{made} entries");
}

#[test]
fn listings_are_sorted_and_file_times_are_the_frozen_clock() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("lsdir");
    let spec = spec_for(&wasm, &[], &[]);
    // Two job folders holding the same files, created in opposite orders, a second apart, with
    // different host times: the host lists them differently; the module must not see a difference.
    let names: Vec<String> = (0..40).map(|i| format!("f{:02}-{}", (i * 17) % 40, "x".repeat(i % 7))).collect();
    let make = |order: &[String]| {
        let dir = JobDir::new(&[]);
        std::fs::create_dir(dir.path().join("in/sub")).unwrap();
        for (i, name) in order.iter().enumerate() {
            std::fs::write(dir.path().join("in").join(name), vec![b'x'; i % 3]).unwrap();
            std::fs::write(dir.path().join("in/sub").join(name), b"").unwrap();
        }
        dir
    };
    let forward = make(&names);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut reversed = names.clone();
    reversed.reverse();
    let backward = make(&reversed);
    let a = completed(&sandbox.run(&spec, &wasm, forward.path()).unwrap());
    let b = completed(&sandbox.run(&spec, &wasm, backward.path()).unwrap());
    let listed: Vec<&str> = a.3.lines().skip(1).filter(|l| !l.starts_with(' ')).map(|l| l.split(' ').nth(1).unwrap()).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(
        listed, sorted,
        "listing order:
{}",
        a.3
    );
    assert_eq!(listed.len(), 41);
    let mtimes: std::collections::BTreeSet<&str> = a.3.split_whitespace().filter(|w| w.starts_with("mtime=")).collect();
    assert_eq!(mtimes.len(), 1, "one frozen time for every file: {mtimes:?}");
    // Sizes are real; the order of creation and the host's clock left no trace.
    assert!(a.3.contains(" size=1 ") && a.3.contains(" size=2 "), "{}", a.3);
    assert_eq!(a.3.replace(|c: char| c.is_ascii_digit(), ""), b.3.replace(|c: char| c.is_ascii_digit(), ""));
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
    let err = sandbox.run(&spec, &m, dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("module hash mismatch"), "{err}");
}

#[test]
fn a_module_cannot_leave_the_job_folder() {
    let sandbox = Sandbox::new().unwrap();
    let wasm = example("escape");
    let spec = spec_for(&wasm, &[], &[]);
    let dir = JobDir::new(&[("x", b"")]);
    let outcome = sandbox.run(&spec, &wasm, dir.path()).unwrap();
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
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a [u8])]);
    let cases: [Case<'_>; 5] = [
        ("hello", &["golden"], &[]),
        ("sha256sum", &["/in/a.txt", "/in/b.txt"], &[("a.txt", b"abc"), ("b.txt", b"")]),
        ("wordcount", &["/in/t.txt"], &[("t.txt", b"The cat sat on the mat. The end.")]),
        ("floaty", &[], &[]),
        ("lsdir", &[], &[("z", b"last"), ("a", b""), ("m", b"middle")]),
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

#[test]
fn compiled_modules_are_cached_on_disk_and_a_damaged_file_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = example("sha256sum");
    let hash = keccak256(&wasm);
    let spec = spec_for(&wasm, &["/in/a.txt"], &[]);
    let inputs: &[(&str, &[u8])] = &[("a.txt", b"abc")];

    let first = Sandbox::new().unwrap().with_module_cache(cache.path()).unwrap();
    assert_eq!(first.compile(hash, &wasm).unwrap().1, CacheStatus::Compiled);
    let expected = run(&first, &spec, &wasm, inputs);
    drop(first);

    // A new sandbox (a restarted worker) loads it and gets the same result.
    let second = Sandbox::new().unwrap().with_module_cache(cache.path()).unwrap();
    assert_eq!(second.compile(hash, &wasm).unwrap().1, CacheStatus::Hit);
    assert_eq!(run(&second, &spec, &wasm, inputs), expected);

    // Flip a byte in the artifact: the checksum catches it, the module is recompiled, same result.
    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&files[0], &bytes).unwrap();
    assert_eq!(second.compile(hash, &wasm).unwrap().1, CacheStatus::Compiled);
    assert_eq!(second.compile(hash, &wasm).unwrap().1, CacheStatus::Hit);
    // Truncated: the same.
    std::fs::write(&files[0], &bytes[..10]).unwrap();
    assert_eq!(second.compile(hash, &wasm).unwrap().1, CacheStatus::Compiled);
    assert_eq!(run(&second, &spec, &wasm, inputs), expected);

    // A module that does not compile is never cached.
    let garbage = b"\0asm garbage".to_vec();
    assert!(second.compile(keccak256(&garbage), &garbage).is_err());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
}

#[test]
fn more_runs_at_once_than_the_instance_pool_holds_wait_for_an_instance() {
    // A worker may take more jobs than the pooling allocator has instances (its slots also cover
    // jobs waiting for the other replicas' seals). A run past the pool waits; it must not come out as
    // an invalid module, which a worker would report and release.
    let sandbox = Sandbox::new().unwrap();
    // Each run has a memory and spins until its fuel is gone, so the 48 overlap and each takes a
    // memory slot, which the pool hands back lazily.
    let module = wat(r#"(module (memory 1) (func (export "_start") (loop br 0)))"#);
    let spec = spec_for(&module, &[], &[]);
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..48).map(|_| s.spawn(|| run(&sandbox, &spec, &module, &[]))).collect();
        runs.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for outcome in &outcomes {
        assert_eq!(failure(outcome), (Failure::OutOfFuel, spec.limits.fuel));
    }
}

#[test]
fn a_sandbox_holds_the_modules_it_ran_and_runs_them_without_their_bytes() {
    let cache = tempfile::tempdir().unwrap();
    let wasm = example("sha256sum");
    let hash = keccak256(&wasm);
    let spec = spec_for(&wasm, &["/in/a.txt"], &[]);
    let inputs: &[(&str, &[u8])] = &[("a.txt", b"abc")];
    let sandbox = Sandbox::new().unwrap().with_module_cache(cache.path()).unwrap();
    assert!(sandbox.loaded(hash).is_none(), "nothing has run yet");
    let expected = run(&sandbox, &spec, &wasm, inputs);
    let held = sandbox.loaded(hash).expect("held after a run");

    // Held in memory: the cache folder can go and the module still runs, with the same result.
    std::fs::remove_dir_all(cache.path()).unwrap();
    let dir = JobDir::new(inputs);
    assert_eq!(sandbox.run_module(&spec, &held, dir.path()).unwrap(), expected);

    // Wrong bytes for a held module are still refused by `run`.
    let other = example("hello");
    assert!(matches!(
        sandbox.run(&spec, &other, JobDir::new(inputs).path()),
        Err(qor_worker::sandbox::SandboxError::ModuleHashMismatch { .. })
    ));

    // It holds the 32 modules it ran last: a 33rd pushes out the one run longest ago.
    for i in 0..32 {
        let wat = format!("(module (func (export \"_start\")) (func (export \"f{i}\")))").into_bytes();
        let spec = spec_for(&wat, &[], &[]);
        run(&sandbox, &spec, &wat, &[]);
        assert!(sandbox.loaded(keccak256(&wat)).is_some());
    }
    assert!(sandbox.loaded(hash).is_none(), "the first module is pushed out");
}
