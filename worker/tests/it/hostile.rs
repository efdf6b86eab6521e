//! Hostile and unusual modules, written here in WAT: each one once broke a bound or made the result
//! depend on the host. Output through a reopened fd 2, sleeping past the wall clock, thousands of
//! nested folders, stderr floods, big function tables, a log file reopened with O_CREAT, identical
//! inode numbers, the fuel a failed run reports, and imports nobody provides.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy_primitives::keccak256;
use qor_protocol::spec::{JobSpec, Limits};
use qor_worker::sandbox::{Failure, Outcome, Sandbox};

fn wat(src: &str) -> Vec<u8> {
    wat::parse_str(src).unwrap()
}

fn spec(module: &[u8], fuel: u64, wall_clock_ms: u64) -> JobSpec {
    JobSpec {
        version: 1,
        module: keccak256(module),
        entry: "_start".into(),
        args: vec![],
        env: Default::default(),
        inputs: vec![],
        limits: Limits { fuel, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms },
        redundancy: 1,
    }
}

fn job_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::create_dir(dir.path().join("out")).unwrap();
    dir
}

fn run_in(sandbox: &Sandbox, spec: &JobSpec, module: &[u8], dir: &Path) -> Outcome {
    sandbox.run(spec, module, dir).unwrap()
}

/// The imports the modules below use.
const IMPORTS: &str = r#"
    (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_close" (func $close (param i32) (result i32)))
    (import "wasi_snapshot_preview1" "fd_filestat_set_size" (func $truncate (param i32 i64) (result i32)))
    (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat (param i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
"#;

/// `path_open(/out, name at 32 of length len, oflags)` → the new fd (or -1).
const OPEN: &str = r#"
    (func $open_out (param $len i32) (param $oflags i32) (result i32)
      (if (result i32)
        (i32.eqz (call $open (i32.const 4) (i32.const 0) (i32.const 32) (local.get $len) (local.get $oflags)
                   (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)))
        (then (i32.load (i32.const 12)))
        (else (i32.const -1))))
"#;

/// Every byte a module writes counts, whatever descriptor it goes through: with fd 2 closed, a file
/// opened under /out takes its number, and writes to it are output (before, they were taken for
/// stderr: 3 GB reached the disk against a 1 MiB cap, and truncating the file afterwards even gave a
/// digest).
#[test]
fn a_file_reopened_as_fd_2_is_output_and_capped() {
    let sandbox = Sandbox::new().unwrap();
    for truncate_after in [false, true] {
        let truncate = if truncate_after { "(drop (call $truncate (i32.const 2) (i64.const 0)))" } else { "" };
        let m = wat(&format!(
            r#"(module {IMPORTS}
            (memory (export "memory") 2)
            (data (i32.const 32) "two")
            {OPEN}
            (func (export "_start") (local $i i32)
              (drop (call $close (i32.const 2)))
              (drop (call $open_out (i32.const 3) (i32.const 9)))
              (i32.store (i32.const 0) (i32.const 64))
              (i32.store (i32.const 4) (i32.const 65536))
              ;; 64 KiB at a time to fd 2, 64 times: 4 MiB against a 1 MiB cap.
              (loop
                (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if 0 (i32.lt_u (local.get $i) (i32.const 64))))
              {truncate}))"#
        ));
        let dir = job_dir();
        let spec = spec(&m, 10_000_000, 10_000);
        match run_in(&sandbox, &spec, &m, dir.path()) {
            Outcome::Failed { failure: Failure::OutputTooLarge { limit }, .. } => assert_eq!(limit, spec.limits.output_bytes),
            other => panic!("truncate {truncate_after}: {other:?}"),
        }
        let on_disk = std::fs::metadata(dir.path().join("out/two")).map(|m| m.len()).unwrap_or(0);
        assert!(on_disk <= spec.limits.output_bytes, "{on_disk} bytes reached the disk");
    }
}

/// A sleep cannot outlive the wall clock: under the frozen clock it returns at once (the same on every
/// worker). Before, `poll_oneoff` slept on the host's clock, 20 s against a 2 s limit.
#[test]
fn sleeping_returns_at_once_under_the_frozen_clock() {
    let sandbox = Sandbox::new().unwrap();
    // One relative monotonic clock subscription of 20 s (userdata 0x51EE9), its event written at 64.
    let m = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (func (export "_start")
          (i64.store (i32.const 0) (i64.const 0x51EE9))
          (i32.store8 (i32.const 8) (i32.const 0))
          (i32.store (i32.const 16) (i32.const 1))
          (i64.store (i32.const 24) (i64.const 20000000000))
          (i64.store (i32.const 32) (i64.const 0))
          (i32.store16 (i32.const 40) (i32.const 0))
          ;; errno of the call, events written, the event's userdata and error: all as expected, or exit 1.
          (if (i32.ne (call $poll (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 128)) (i32.const 0))
            (then (call $exit (i32.const 1))))
          (if (i32.ne (i32.load (i32.const 128)) (i32.const 1)) (then (call $exit (i32.const 2))))
          (if (i64.ne (i64.load (i32.const 64)) (i64.const 0x51EE9)) (then (call $exit (i32.const 3))))
          (if (i32.ne (i32.load16_u (i32.const 72)) (i32.const 0)) (then (call $exit (i32.const 4))))))"#
    ));
    let dir = job_dir();
    let started = Instant::now();
    let outcome = run_in(&sandbox, &spec(&m, 10_000_000, 2_000), &m, dir.path());
    assert!(started.elapsed() < Duration::from_secs(2), "slept {:?}", started.elapsed());
    assert!(matches!(outcome, Outcome::Completed { exit_code: 0, .. }), "{outcome:?}");
}

/// Writes to stderr always succeed: its first part is kept for the buyer, the rest dropped. Before,
/// writes failed past 64 KiB, and a program that logs a lot exited differently (CPython with 120).
#[test]
fn a_stderr_flood_changes_nothing() {
    let sandbox = Sandbox::new().unwrap();
    // 1 MiB to stderr, 1 KiB a write; exit 1 the first time a write fails or is short.
    let m = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (func (export "_start") (local $i i32)
          (i32.store (i32.const 0) (i32.const 64))
          (i32.store (i32.const 4) (i32.const 1024))
          (loop
            (if (i32.ne (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)) (i32.const 0))
              (then (call $exit (i32.const 1))))
            (if (i32.ne (i32.load (i32.const 8)) (i32.const 1024)) (then (call $exit (i32.const 2))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get $i) (i32.const 1024))))))"#
    ));
    let dir = job_dir();
    let outcome = run_in(&sandbox, &spec(&m, 50_000_000, 10_000), &m, dir.path());
    let quiet = wat(r#"(module (memory (export "memory") 1) (func (export "_start")))"#);
    let Outcome::Completed { exit_code: 0, result_digest, .. } = outcome else { panic!("{outcome:?}") };
    let Outcome::Completed { result_digest: quiet_digest, .. } = run_in(&sandbox, &spec(&quiet, 1_000, 10_000), &quiet, job_dir().path())
    else {
        panic!()
    };
    assert_eq!(result_digest, quiet_digest, "stderr is not part of the result");
}

/// Descriptors are the sandbox's own to count: opening past its limit fails the same way on every
/// host (EMFILE at the same call), whatever the worker's own open-file limit.
#[test]
fn open_descriptors_are_capped_by_the_sandbox_not_the_host() {
    let sandbox = Sandbox::new().unwrap();
    // Open /out/log (created once) until an open fails; exit with the number opened.
    let m = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (data (i32.const 32) "log")
        {OPEN}
        (func (export "_start") (local $n i32)
          (loop
            (if (i32.ge_s (call $open_out (i32.const 3) (i32.const 1)) (i32.const 0))
              (then
                (local.set $n (i32.add (local.get $n) (i32.const 1)))
                (br_if 1 (i32.lt_u (local.get $n) (i32.const 5000))))))
          (i32.store (i32.const 200) (local.get $n))
          (i32.store (i32.const 0) (i32.const 200))
          (i32.store (i32.const 4) (i32.const 4))
          (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ));
    let dir = job_dir();
    let outcome = run_in(&sandbox, &spec(&m, 50_000_000, 10_000), &m, dir.path());
    let Outcome::Completed { exit_code: 0, stdout, .. } = outcome else { panic!("{outcome:?}") };
    let opened = u32::from_le_bytes(stdout[..4].try_into().unwrap()) as usize;
    assert_eq!(opened, qor_worker::guard::MAX_OPEN_DESCRIPTORS - 5, "the five already open: stdio, /in, /out");
}

/// Reopening an existing file with O_CREAT creates nothing: a program appending to one log file is
/// not stopped by the cap on created files (before, every such open counted).
#[test]
fn reopening_a_file_with_o_creat_is_not_creating_one() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (data (i32.const 32) "log")
        {OPEN}
        (func (export "_start") (local $i i32) (local $fd i32)
          (loop
            (local.set $fd (call $open_out (i32.const 3) (i32.const 1)))
            (if (i32.lt_s (local.get $fd) (i32.const 0)) (then (call $exit (i32.const 1))))
            (drop (call $close (local.get $fd)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get $i) (i32.const 6000))))))"#
    ));
    let outcome = run_in(&sandbox, &spec(&m, 100_000_000, 20_000), &m, job_dir().path());
    assert!(matches!(outcome, Outcome::Completed { exit_code: 0, .. }), "{outcome:?}");
}

/// Two files have two inode numbers (and one file one), numbered by the sandbox in the order the
/// module first sees them: `os.path.samefile` works and no host number leaks. Before, every file
/// reported inode 0.
#[test]
fn inode_numbers_tell_files_apart_and_are_the_sandboxs_own() {
    let sandbox = Sandbox::new().unwrap();
    // Create /out/a and /out/b; stat a (at 256), b (at 320), a again through its fd (at 384).
    let m = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (data (i32.const 32) "a")
        (data (i32.const 40) "b")
        {OPEN}
        (func (export "_start") (local $fd i32)
          (local.set $fd (call $open_out (i32.const 1) (i32.const 1)))
          (drop (call $open (i32.const 4) (i32.const 0) (i32.const 40) (i32.const 1) (i32.const 1)
                  (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)))
          (drop (call $stat (i32.const 4) (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 256)))
          (drop (call $stat (i32.const 4) (i32.const 0) (i32.const 40) (i32.const 1) (i32.const 320)))
          (drop (call $fstat (local.get $fd) (i32.const 384)))
          (if (i64.eq (i64.load (i32.const 264)) (i64.const 0)) (then (call $exit (i32.const 1))))
          (if (i64.eq (i64.load (i32.const 264)) (i64.load (i32.const 328))) (then (call $exit (i32.const 2))))
          (if (i64.ne (i64.load (i32.const 264)) (i64.load (i32.const 392))) (then (call $exit (i32.const 3))))
          ;; The numbers themselves are the sandbox's: small, in order of first sight.
          (call $exit (i32.wrap_i64 (i64.add (i64.mul (i64.load (i32.const 264)) (i64.const 10)) (i64.load (i32.const 328)))))))"#
    ));
    let first = run_in(&sandbox, &spec(&m, 1_000_000, 10_000), &m, job_dir().path());
    let Outcome::Completed { exit_code, .. } = first else { panic!("{first:?}") };
    assert!(exit_code > 3, "{first:?}");
    assert_eq!(run_in(&sandbox, &spec(&m, 1_000_000, 10_000), &m, job_dir().path()), first, "the same numbers every run");
}

/// Four thousand folders one inside the other under /out, each made from a descriptor of the one
/// above (as `os.makedirs` does on a long path, one component at a time): a result like any other,
/// whatever the host's open-file limit. Before, listing them held a descriptor per level, and the
/// run failed with "Too many open files" where the limit was 1,024 and gave a digest where it was
/// 20,000, so replicas on different hosts disagreed. A path longer than 4,095 bytes is refused with
/// ENAMETOOLONG at the same depth on every host, whether or not its kernel has `openat2`.
#[test]
fn thousands_of_nested_folders_give_one_result() {
    let sandbox = Sandbox::new().unwrap();
    // At 32 "d", at 40 "f"; descend 4,000 levels (closing each level's descriptor but /out's), write
    // "deep" into f at the bottom, exit 0.
    let descend = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (data (i32.const 32) "d")
        (data (i32.const 40) "f")
        (data (i32.const 48) "deep")
        (func (export "_start") (local $fd i32) (local $next i32) (local $i i32)
          (local.set $fd (i32.const 4))
          (loop
            (if (i32.ne (call $mkdir (local.get $fd) (i32.const 32) (i32.const 1)) (i32.const 0)) (then (call $exit (i32.const 1))))
            (if (i32.ne (call $open (local.get $fd) (i32.const 0) (i32.const 32) (i32.const 1) (i32.const 2)
                          (i64.const 0) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)) (i32.const 0))
              (then (call $exit (i32.const 2))))
            (local.set $next (i32.load (i32.const 12)))
            (if (i32.ne (local.get $fd) (i32.const 4)) (then (drop (call $close (local.get $fd)))))
            (local.set $fd (local.get $next))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if 0 (i32.lt_u (local.get $i) (i32.const 4000))))
          (if (i32.ne (call $open (local.get $fd) (i32.const 0) (i32.const 40) (i32.const 1) (i32.const 1)
                        (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 12)) (i32.const 0))
            (then (call $exit (i32.const 3))))
          (i32.store (i32.const 0) (i32.const 48))
          (i32.store (i32.const 4) (i32.const 4))
          (drop (call $write (i32.load (i32.const 12)) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ));
    let deep = spec(&descend, 500_000_000, 60_000);
    let first = run_in(&sandbox, &deep, &descend, job_dir().path());
    let Outcome::Completed { exit_code: 0, result_digest, .. } = first else { panic!("{first:?}") };
    // The digest is over the file 4,000 folders down (an 8,001-byte path), the same every run.
    let mut hasher = qor_protocol::digest::ResultHasher::new(0, b"");
    hasher.add_file(&format!("{}f", "d/".repeat(4000)), b"deep").unwrap();
    assert_eq!(result_digest, hasher.finish());
    assert_eq!(run_in(&sandbox, &deep, &descend, job_dir().path()), first);

    // mkdir "d", "d/d", … naming the whole path each time: the sandbox refuses the first path past
    // 4,095 bytes (depth 2,048), and the module exits with the depth it reached, over 20.
    let by_path = wat(&format!(
        r#"(module {IMPORTS}
        (memory (export "memory") 1)
        (func (export "_start") (local $len i32) (local $i i32)
          (i32.store8 (i32.const 1024) (i32.const 100))
          (local.set $len (i32.const 1))
          (loop
            (if (i32.ne (call $mkdir (i32.const 4) (i32.const 1024) (local.get $len)) (i32.const 0))
              (then (call $exit (i32.div_u (local.get $i) (i32.const 20)))))
            (i32.store8 (i32.add (i32.const 1024) (local.get $len)) (i32.const 47))
            (i32.store8 (i32.add (i32.const 1025) (local.get $len)) (i32.const 100))
            (local.set $len (i32.add (local.get $len) (i32.const 2)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br 0))))"#
    ));
    let outcome = run_in(&sandbox, &spec(&by_path, 500_000_000, 60_000), &by_path, job_dir().path());
    assert!(matches!(outcome, Outcome::Completed { exit_code: 102, .. }), "{outcome:?}");
}

/// Function tables as big as real programs have (CPython with numpy declares more than 20,000
/// entries, the instance pool's default): they run.
#[test]
fn a_big_function_table_runs() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (table 100000 funcref) (memory (export "memory") 1) (func (export "_start")))"#);
    let outcome = run_in(&sandbox, &spec(&m, 1_000, 10_000), &m, job_dir().path());
    assert!(matches!(outcome, Outcome::Completed { exit_code: 0, .. }), "{outcome:?}");
}

/// Every failure reports the fuel it actually spent, and a fault is the same class wherever it
/// happens (in a start function or in `_start`).
#[test]
fn failures_report_the_fuel_spent_and_one_class_per_fault() {
    let sandbox = Sandbox::new().unwrap();
    // Spin 10,000 times, then the fault.
    let spin =
        "(local $i i32) (loop (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if 0 (i32.lt_u (local.get $i) (i32.const 10000))))";
    // A failed grow returns -1 (the module may handle it); these abort, as an allocator does.
    let memory_fault = "(if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))";
    let table_fault = "(if (i32.eq (table.grow $t (ref.null func) (i32.const 300000)) (i32.const -1)) (then unreachable))";
    for (what, fault, class) in [("memory", memory_fault, "MemoryLimit"), ("table", table_fault, "TableLimit")] {
        let mut seen = Vec::new();
        for place in ["start", "_start"] {
            let m = wat(&format!(
                r#"(module (memory (export "memory") 1) (table $t 1 funcref)
                (func $f {spin} {fault})
                {}
                (func (export "_start") {}))"#,
                if place == "start" { "(start $f)" } else { "" },
                if place == "_start" { "(call $f)" } else { "" }
            ));
            let outcome = run_in(&sandbox, &spec(&m, 10_000_000, 10_000), &m, job_dir().path());
            let Outcome::Failed { failure, fuel_used } = outcome else { panic!("{what} in {place}: {outcome:?}") };
            assert!(fuel_used > 10_000, "{what} in {place}: {failure:?} after {fuel_used} fuel");
            assert!(format!("{failure:?}").contains(class), "{what} in {place}: {failure:?}");
            seen.push(failure);
        }
        assert_eq!(seen[0], seen[1], "{what}: one class wherever it happens");
    }
}

/// A run stopped by the wall clock reports the fuel it burnt up to its last call (it was 0). wasmtime
/// keeps a function's fuel in a register and writes it back at calls and returns, so a loop that calls
/// nothing reports what it had at its last call; every real program calls functions all the time.
/// A timeout is no result and is never billed, so the figure is for the provider's and buyer's eyes.
#[test]
fn a_timeout_reports_the_fuel_it_burnt() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (memory (export "memory") 1)
        (func $step (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
        (func (export "_start") (local $i i32)
          (loop (local.set $i (call $step (local.get $i))) (br 0))))"#);
    let started = Instant::now();
    let outcome = run_in(&sandbox, &spec(&m, 1 << 50, 300), &m, job_dir().path());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let Outcome::Failed { failure: Failure::Timeout, fuel_used } = outcome else { panic!("{outcome:?}") };
    assert!(fuel_used > 1_000_000, "300 ms of a calling loop burns millions of fuel, the run reports {fuel_used}");
}

/// An import the sandbox does not provide is refused before anything is compiled, and named.
#[test]
fn an_unknown_import_is_refused_before_compiling() {
    let sandbox = Sandbox::new().unwrap();
    let m = wat(r#"(module (import "env" "socket" (func)) (memory (export "memory") 1) (func (export "_start")))"#);
    let outcome = run_in(&sandbox, &spec(&m, 1_000, 10_000), &m, job_dir().path());
    let Outcome::Failed { failure: Failure::InvalidModule { reason }, fuel_used: 0 } = outcome else { panic!("{outcome:?}") };
    assert!(reason.contains("env::socket") && reason.contains("before compiling"), "{reason}");
    assert!(sandbox.loaded(keccak256(&m)).is_none(), "nothing compiled, nothing kept");
}

/// A module in binary form with one function `_start` of `body` (and one i32 local), exporting a
/// one-page memory: for modules too deep for the text parser's recursion.
pub(crate) fn binary_module(body: &[u8]) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            out.push(if n == 0 { byte } else { byte | 0x80 });
            if n == 0 {
                break;
            }
        }
    }
    fn section(id: u8, content: &[u8], out: &mut Vec<u8>) {
        out.push(id);
        leb(content.len(), out);
        out.extend_from_slice(content);
    }
    let mut m = b"\0asm\x01\0\0\0".to_vec();
    section(1, &[1, 0x60, 0, 0], &mut m); // one type: () -> ()
    section(3, &[1, 0], &mut m); // one function of type 0
    section(5, &[1, 0, 1], &mut m); // one memory, min 1 page
    let mut exports = vec![2];
    exports.extend_from_slice(&[6]);
    exports.extend_from_slice(b"memory");
    exports.extend_from_slice(&[2, 0, 6]);
    exports.extend_from_slice(b"_start");
    exports.extend_from_slice(&[0, 0]);
    section(7, &exports, &mut m);
    let mut func = vec![1, 1, 0x7f]; // one i32 local
    func.extend_from_slice(body);
    let mut code = vec![1];
    leb(func.len(), &mut code);
    code.extend_from_slice(&func);
    section(10, &code, &mut m);
    m
}

/// Compiling is bounded: 50,000 nested `if` blocks (a compile that once took 8 GB in 3.5 s) fail
/// with a class of their own, in a child process, while a job beside them compiles and completes;
/// the sandbox runs jobs after it as before.
#[test]
fn a_compile_bomb_fails_alone_within_the_bounds() {
    use qor_worker::compile::{CompileBounds, Compiler};
    let bounds = CompileBounds { memory_bytes: 256 << 20, time: Duration::from_secs(30) };
    let sandbox =
        std::sync::Arc::new(Sandbox::new().unwrap().with_compiler(Compiler::new(env!("CARGO_BIN_EXE_qor-worker").into(), bounds)));
    let bomb = compile_bomb();

    let beside = std::thread::spawn({
        let sandbox = sandbox.clone();
        move || {
            let quiet = wat(r#"(module (memory (export "memory") 1) (data (i32.const 8) "ok") (func (export "_start")))"#);
            run_in(&sandbox, &spec(&quiet, 1_000, 10_000), &quiet, job_dir().path())
        }
    });
    let started = Instant::now();
    let outcome = run_in(&sandbox, &spec(&bomb, 1_000, 10_000), &bomb, job_dir().path());
    let Outcome::Failed { failure: Failure::CompileLimit { reason }, fuel_used: 0 } = &outcome else { panic!("{outcome:?}") };
    assert!(started.elapsed() < bounds.time + Duration::from_secs(10), "{reason} after {:?}", started.elapsed());
    let done = beside.join().unwrap();
    assert!(matches!(done, Outcome::Completed { exit_code: 0, .. }), "the job beside it: {done:?}");
    // The sandbox is unharmed: another module compiles (in a child) and runs.
    let after = wat(r#"(module (memory (export "memory") 1) (func (export "_start") nop))"#);
    let outcome = run_in(&sandbox, &spec(&after, 1_000, 10_000), &after, job_dir().path());
    assert!(matches!(outcome, Outcome::Completed { exit_code: 0, .. }), "{outcome:?}");
    // Offered again, the bomb fails at once: the sandbox remembers what went past a bound.
    let again = Instant::now();
    let outcome = run_in(&sandbox, &spec(&bomb, 1_000, 10_000), &bomb, job_dir().path());
    assert!(matches!(outcome, Outcome::Failed { failure: Failure::CompileLimit { .. }, .. }), "{outcome:?}");
    assert!(again.elapsed() < Duration::from_secs(1), "{:?}", again.elapsed());
}

/// 50,000 nested `if` blocks in one function: a 200 KB module whose compile once took 8 GB.
pub(crate) fn compile_bomb() -> Vec<u8> {
    let depth = 50_000;
    let mut body = Vec::new();
    for _ in 0..depth {
        body.extend_from_slice(&[0x20, 0x00, 0x04, 0x40]); // local.get 0; if (no result)
    }
    body.extend(std::iter::repeat_n(0x0b, depth + 1)); // end × depth, and the function's end
    binary_module(&body)
}

/// Jobs of one module starting together each compile it in a child of their own, into the same
/// module cache, and all of them run (the children once shared one temporary file, and all but one
/// failed as if the module were at fault).
#[test]
fn one_module_compiled_by_many_jobs_at_once_runs_in_all_of_them() {
    use qor_worker::compile::{CompileBounds, Compiler};
    let cache = tempfile::tempdir().unwrap();
    let sandbox = std::sync::Arc::new(
        Sandbox::new()
            .unwrap()
            .with_module_cache(cache.path())
            .unwrap()
            .with_compiler(Compiler::new(env!("CARGO_BIN_EXE_qor-worker").into(), CompileBounds::default())),
    );
    let m = wat(r#"(module (memory (export "memory") 1) (func (export "_start") nop))"#);
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let (sandbox, m) = (sandbox.clone(), m.clone());
            std::thread::spawn(move || run_in(&sandbox, &spec(&m, 1_000, 10_000), &m, job_dir().path()))
        })
        .collect();
    for run in runs {
        let outcome = run.join().unwrap();
        assert!(matches!(outcome, Outcome::Completed { exit_code: 0, .. }), "{outcome:?}");
    }
}
