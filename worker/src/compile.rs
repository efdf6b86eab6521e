//! Compiling a buyer's module in a child process, bounded in time and memory.
//!
//! Compiling is work a module's author controls: 50,000 nested `if` blocks in half a megabyte take
//! gigabytes of compiler memory, a million small functions take half a minute. Done in the worker's
//! own process, one such module could exhaust the machine and take every job in flight with it. So
//! the worker compiles in a child (`qor-worker compile-module`, the same binary and so the same
//! engine configuration) whose data segment is capped with `RLIMIT_DATA` and which is killed at a
//! deadline; the parent loads the artifact it wrote. A module past a bound fails with
//! [`Failure::CompileLimit`](crate::sandbox::Failure::CompileLimit), and only that job fails.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Module};

use crate::cache;

/// Bounds on compiling one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompileBounds {
    /// Most memory the compiler may allocate, in bytes.
    pub memory_bytes: u64,
    /// Longest a compile may take.
    pub time: Duration,
}

impl Default for CompileBounds {
    /// 4 GiB and five minutes: CPython with numpy compiles well within both on two cores.
    fn default() -> Self {
        Self { memory_bytes: 4 << 30, time: Duration::from_secs(300) }
    }
}

/// A module's compile went past a bound.
#[derive(Debug, thiserror::Error)]
#[error("compiling the module {0}")]
pub struct CompileLimitExceeded(pub String);

/// The compiler could not be run or failed for a reason of the worker's own (a file it could not
/// write, say): not the module's doing, so never a result or a failure class of the module's.
#[derive(Debug, thiserror::Error)]
#[error("the compiler: {0}")]
pub struct CompilerFailed(pub String);

/// Exit code of the child for a failure of the worker's own.
const WORKER_FAULT: i32 = 3;

/// Distinguishes the module files of compiles running at once in one process.
static NEXT_COMPILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The child process that compiles: the `qor-worker` binary at `exe`.
#[derive(Clone, Debug)]
pub struct Compiler {
    exe: PathBuf,
    bounds: CompileBounds,
}

/// What the child prints before the reason when the module itself does not compile.
const INVALID: &str = "invalid module: ";

impl Compiler {
    /// Compiles in children running `exe` (a `qor-worker` binary) within `bounds`.
    pub const fn new(exe: PathBuf, bounds: CompileBounds) -> Self {
        Self { exe, bounds }
    }

    /// The bounds.
    pub const fn bounds(&self) -> CompileBounds {
        self.bounds
    }

    /// Compiles `bytes` in a child that writes the checksummed artifact to `out` (atomically), and
    /// loads it with `engine`. Errors: [`CompileLimitExceeded`] past a bound, otherwise the module's
    /// own (it does not compile) or the worker's (the child could not be run).
    pub fn compile(&self, engine: &Engine, bytes: &[u8], out: &Path) -> wasmtime::Result<Module> {
        let n = NEXT_COMPILE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let wasm = out.with_extension(format!("wasm.{}.{n}", std::process::id()));
        std::fs::write(&wasm, bytes).map_err(|e| CompilerFailed(format!("writing {}: {e}", wasm.display())))?;
        let result = self.run_child(&wasm, out);
        let _ = std::fs::remove_file(&wasm);
        result?;
        cache::read_artifact(engine, out).ok_or_else(|| CompilerFailed(format!("no usable artifact at {}", out.display())).into())
    }

    fn run_child(&self, wasm: &Path, out: &Path) -> wasmtime::Result<()> {
        let mut child = Command::new(&self.exe)
            .arg("compile-module")
            .arg("--memory-bytes")
            .arg(self.bounds.memory_bytes.to_string())
            .arg(wasm)
            .arg(out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| CompilerFailed(format!("starting {}: {e}", self.exe.display())))?;
        let deadline = Instant::now() + self.bounds.time;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CompileLimitExceeded(format!("took longer than {:?}", self.bounds.time)).into());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut said = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.by_ref().take(16 * 1024).read_to_string(&mut said);
        }
        if status.success() {
            return Ok(());
        }
        if let Some(reason) = said.lines().find_map(|l| l.strip_prefix(INVALID)) {
            return Err(wasmtime::format_err!("{reason}"));
        }
        if status.code() == Some(WORKER_FAULT) {
            return Err(CompilerFailed(said.trim().to_owned()).into());
        }
        // Anything else is the compiler dying: out of its memory (an allocation failure aborts) or
        // killed. Not the module's fault in a way a result could show, but a bound all the same.
        Err(CompileLimitExceeded(format!(
            "needed more than {} MiB of memory ({status}{})",
            self.bounds.memory_bytes >> 20,
            said.lines().last().map(|l| format!(": {l}")).unwrap_or_default()
        ))
        .into())
    }
}

/// The arguments of the hidden `compile-module` command a [`Compiler`] starts (`qor-worker` and
/// `qor` both have it: a compile is a child of whichever binary asked for it).
#[derive(Debug, Clone, clap::Args)]
pub struct CompileModuleArgs {
    /// The cap on the compiler's data segment.
    #[arg(long)]
    pub memory_bytes: u64,
    /// The module.
    pub wasm: PathBuf,
    /// Where the checksummed artifact goes.
    pub out: PathBuf,
}

/// The `compile-module` command: builds the compile engine and runs [`child_main`]; returns the
/// process exit code.
pub fn compile_module(args: &CompileModuleArgs) -> i32 {
    match Engine::new(&crate::sandbox::compile_config()) {
        Ok(engine) => child_main(&engine, args.memory_bytes, &args.wasm, &args.out),
        Err(e) => {
            eprintln!("the engine: {e:#}");
            WORKER_FAULT
        }
    }
}

/// The child's side: caps its data segment at `memory_bytes`, compiles `wasm` with `engine`, and
/// writes the artifact to `out`. Returns the process exit code; a module that does not compile is
/// reported on stderr after [`INVALID`].
pub fn child_main(engine: &Engine, memory_bytes: u64, wasm: &Path, out: &Path) -> i32 {
    use rustix::process::{Resource, Rlimit, set_parent_process_death_signal, setrlimit};
    // A worker killed mid-compile takes its compiler with it.
    let _ = set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Err(e) = setrlimit(Resource::Data, Rlimit { current: Some(memory_bytes), maximum: Some(memory_bytes) }) {
        eprintln!("cannot cap the compiler's memory: {e}");
        return WORKER_FAULT;
    }
    let bytes = match std::fs::read(wasm) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("reading {}: {e}", wasm.display());
            return WORKER_FAULT;
        }
    };
    let artifact = match Module::new(engine, &bytes).and_then(|m| m.serialize()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{INVALID}{}", format!("{e:#}").replace('\n', " "));
            return 2;
        }
    };
    match cache::write_atomically(out, &artifact) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("writing {}: {e}", out.display());
            WORKER_FAULT
        }
    }
}
