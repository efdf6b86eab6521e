//! The deterministic sandbox: the same module and inputs give the same `resultDigest` and the same
//! `fuelUsed` on every worker, every run. Redundant execution only proves something if honest replicas
//! always agree, so everything a module could observe is pinned:
//!
//! - fuel metering is the billing unit and the only deterministic stopping point; NaNs are
//!   canonicalized; threads are off; relaxed SIMD is deterministic; memory is capped by a store
//!   limiter, and failing to grow traps;
//! - WASI preview 1 with no ambient authority: the clock is frozen at a time derived from
//!   [`JobSpec::sandbox_seed`] (the spec without its limits and redundancy), random bytes come from a
//!   stream seeded by it (so result and fuel are a function of what runs and what it reads, and a run
//!   before funding quotes them exactly), the environment is given in sorted
//!   order, and the only files are the job folder's `in` (read-only, as `/in`) and `out` (as `/out`);
//! - an epoch deadline is a wall-clock backstop only: a timeout is "no result", never a digest;
//! - [`guard`] caps output at the write that crosses it and hides host listing order and file times;
//! - compiled modules can be kept on disk ([`ModuleCache`]).

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::cache::{CacheStatus, ModuleCache};
use crate::compile::{CompileLimitExceeded, Compiler, CompilerFailed};
use crate::guard::{self, Budget, OutputLimitExceeded};
use alloy_primitives::{B256, keccak256};
use qor_protocol::digest::{ResultHasher, stdout_hash};
use qor_protocol::spec::JobSpec;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Serialize;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolConcurrencyLimitError, PoolingAllocationConfig, ResourceLimiter, Store,
    StoreLimits, StoreLimitsBuilder, Trap,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, I32Exit, WasiCtxBuilder};

/// How often the wall-clock backstop ticks.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Most instances the pooling allocator keeps ready (one per concurrently running job).
const POOL_SLOTS: u32 = 16;
/// Tables one module may declare, and elements one table may hold (CPython with numpy declares
/// more than 20,000 functions in its table, the pool's default).
const MAX_TABLES: u32 = 4;
const MAX_TABLE_ELEMENTS: usize = 1 << 18;
/// Host descriptors one job may need: the sandbox's own cap on open ones, as many again that
/// path resolution holds for a moment on a kernel without `openat2`, and a few for the worker.
const DESCRIPTORS_PER_JOB: u64 = guard::MAX_OPEN_DESCRIPTORS as u64 + guard::MAX_PATH_BYTES as u64 / 2 + 16;
/// How long a run waits for the pool to hand back a finished run's instance.
const POOL_WAIT: Duration = Duration::from_secs(10);
/// Compiled modules a sandbox keeps in memory.
const LOADED_MODULES: usize = 32;
/// How much of stderr is kept for the buyer to read; the rest is dropped. Not part of the result.
pub const STDERR_BYTES: usize = 64 * 1024;
/// Stack a module may use before it traps (deep recursion ends here, deterministically).
const MAX_WASM_STACK: usize = 1 << 20;
/// Context marking errors that mean the module cannot run here (an import or entry point we lack).
const UNRUNNABLE: &str = "the module cannot run in the QOR sandbox";
/// The frozen clock starts here (2024-01-01T00:00:00Z) plus an offset derived from the sandbox seed.
const CLOCK_EPOCH_SECS: u64 = 1_704_067_200;

/// Errors that stop a job before it runs (the sandbox's own faults or bad inputs, never the module's).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The module's bytes do not hash to the spec's `module`.
    #[error("module hash mismatch: got {got}, expected {expected}")]
    ModuleHashMismatch {
        /// keccak256 of the bytes given.
        got: B256,
        /// The spec's `module`.
        expected: B256,
    },
    /// The spec breaks a protocol rule.
    #[error("invalid spec: {0}")]
    Spec(#[from] qor_protocol::spec::SpecError),
    /// The engine could not be set up or the job folder not prepared.
    #[error("sandbox setup failed: {0}")]
    Setup(String),
}

/// Result alias for this module.
pub type SandboxResult<T> = Result<T, SandboxError>;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Outcome {
    /// The module exited (with any code): this is a result, and replicas compare its digest.
    #[serde(rename_all = "camelCase")]
    Completed {
        /// WASI exit code (0 when the entry point returned).
        exit_code: u32,
        /// keccak over exit code, stdout and every file under /out ([`ResultHasher`]).
        result_digest: B256,
        /// Fuel consumed, the billing unit.
        fuel_used: u64,
        /// keccak256 of stdout.
        stdout_hash: B256,
        /// What the module printed.
        #[serde(serialize_with = "hex_bytes")]
        stdout: Vec<u8>,
    },
    /// The run produced no result.
    #[serde(rename_all = "camelCase")]
    Failed {
        /// Why.
        failure: Failure,
        /// Fuel consumed before it stopped (deterministic for every class but `Timeout`).
        fuel_used: u64,
    },
}

/// Why a run produced no result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Failure {
    /// The fuel limit ran out (at the same instruction on every worker).
    OutOfFuel,
    /// The module tried to grow memory past `limits.memoryBytes`.
    MemoryLimit,
    /// The module tried to grow a table past the sandbox's element cap.
    TableLimit,
    /// The module trapped.
    Trap {
        /// wasmtime's trap code, e.g. "UnreachableCodeReached", "StackOverflow", "MemoryOutOfBounds".
        trap: String,
    },
    /// The module does not compile, or does not export the entry point as `() -> ()`.
    InvalidModule {
        /// What the engine said.
        reason: String,
    },
    /// stdout plus the files under /out exceed `limits.outputBytes`.
    OutputTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The wall-clock backstop fired. Never a result: a slow host must not produce a digest.
    Timeout,
    /// Compiling the module went past the worker's time or memory bound ([`crate::compile::CompileBounds`]).
    CompileLimit {
        /// Which bound.
        reason: String,
    },
}

fn hex_bytes<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("0x{}", hex_of(bytes)))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The one place the engine's configuration is decided: every worker must use exactly this.
pub fn engine_config() -> Config {
    let mut config = Config::new();
    config.consume_fuel(true);
    config.cranelift_nan_canonicalization(true);
    config.wasm_threads(false);
    config.relaxed_simd_deterministic(true);
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_core_instances(POOL_SLOTS);
    pool.total_memories(POOL_SLOTS);
    pool.total_tables(POOL_SLOTS * MAX_TABLES);
    pool.max_tables_per_module(MAX_TABLES);
    pool.table_elements(MAX_TABLE_ELEMENTS);
    pool.max_memory_size(qor_protocol::spec::MAX_MEMORY_BYTES as usize);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

/// [`engine_config`] for a process that only compiles (`qor-worker compile-module`): the same code
/// generation, without the instance pool's reservations, which would count against the compiler's
/// memory cap. Its artifacts load in an engine of [`engine_config`].
pub fn compile_config() -> Config {
    let mut config = engine_config();
    config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
    config
}

/// At most [`POOL_SLOTS`] runs at once: the pooling allocator has that many instances, and a run past
/// them would fail as if its module were at fault. A run waits here for a free one instead, before
/// its store (and so its wall-clock backstop) exists.
struct Gate {
    slots: u32,
    running: Mutex<u32>,
    freed: Condvar,
}

struct GateSlot<'a>(&'a Gate);

impl Gate {
    fn new(slots: u32) -> Self {
        Self { slots, running: Mutex::new(0), freed: Condvar::new() }
    }

    fn enter(&self) -> GateSlot<'_> {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= self.slots {
            running = self.freed.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running += 1;
        GateSlot(self)
    }
}

impl Drop for GateSlot<'_> {
    fn drop(&mut self) {
        *self.0.running.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        self.0.freed.notify_one();
    }
}

/// A sandbox: one engine (and its backstop ticker) shared by every job a worker runs.
pub struct Sandbox {
    engine: Engine,
    /// What modules link against: WASI with the [`guard`] functions in place of some.
    linker: Linker<Host>,
    cache: Option<ModuleCache>,
    /// Modules compiled or loaded in this process, by keccak of their bytes (most recent last): a
    /// worker runs the same few modules over and over, and reading and checksumming an artifact per
    /// run cost more than the run.
    loaded: Mutex<Vec<(B256, Module)>>,
    metered: bool,
    stop: Arc<AtomicBool>,
    gate: Gate,
    compiler: Option<Compiler>,
    /// Every import a module may have: WASI preview 1's functions, as (module, name).
    provided: HashSet<(String, String)>,
    /// Modules whose compile went past a bound, with the reason (most recent last): offered again,
    /// they fail at once instead of taking the compiler's time and memory again.
    over_bounds: Mutex<Vec<(B256, String)>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox").finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Per-store state: the WASI context, the limiter and the guards' accounting.
pub struct Host {
    pub(crate) wasi: WasiP1Ctx,
    limits: Limiter,
    pub(crate) budget: Budget,
}

/// The store limiter, remembering whether it refused a memory or table growth (to classify the
/// fault the same way wherever it happens).
struct Limiter {
    inner: StoreLimits,
    refused: Option<Failure>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.refused.get_or_insert(Failure::MemoryLimit);
        }
        allowed
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let allowed = self.inner.table_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.refused.get_or_insert(Failure::TableLimit);
        }
        allowed
    }
}

/// stderr: its first [`STDERR_BYTES`] are kept for the buyer to read, the rest dropped, and every
/// write succeeds in full, so how much a program logs never changes how it ends.
#[derive(Clone, Default)]
pub struct StderrHead(Arc<Mutex<Vec<u8>>>);

impl StderrHead {
    fn keep(&self, bytes: &[u8]) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = STDERR_BYTES.saturating_sub(kept.len());
        kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// What was kept.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl IsTerminal for StderrHead {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for StderrHead {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for StderrHead {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        self.keep(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(STDERR_BYTES)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for StderrHead {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for StderrHead {
    fn poll_write(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>, buf: &[u8]) -> std::task::Poll<std::io::Result<usize>> {
        self.keep(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// The frozen wall clock: always the same instant for a job.
struct FrozenWallClock(Duration);

impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// The frozen monotonic clock.
struct FrozenMonotonicClock(u64);

impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0
    }
}

impl Sandbox {
    /// Builds the engine with [`engine_config`] and starts the wall-clock backstop ticker.
    pub fn new() -> SandboxResult<Self> {
        Self::with_config(&engine_config(), true)
    }

    /// A sandbox on another engine configuration. Only for measuring (the benchmarks compare fuel
    /// metering on and off); a worker must use [`Sandbox::new`], or replicas disagree. With
    /// `metered == false` the config must not consume fuel, and `fuelUsed` reads 0.
    pub fn with_config(config: &Config, metered: bool) -> SandboxResult<Self> {
        let setup = |e: wasmtime::Error| SandboxError::Setup(format!("{e:#}"));
        let engine = Engine::new(config).map_err(setup)?;
        let mut linker: Linker<Host> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut Host| &mut h.wasi).map_err(setup)?;
        guard::add_to_linker(&mut linker).map_err(setup)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ticker_engine, ticker_stop) = (engine.clone(), Arc::clone(&stop));
        thread::Builder::new()
            .name("qor-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| SandboxError::Setup(e.to_string()))?;
        let provided = provided_imports(&engine, &linker);
        let gate = Gate::new(job_slots()?);
        Ok(Self {
            engine,
            linker,
            cache: None,
            loaded: Mutex::default(),
            metered,
            stop,
            gate,
            compiler: None,
            provided,
            over_bounds: Mutex::default(),
        })
    }

    /// Refuses a module that imports anything the sandbox does not provide, from its import section
    /// alone: nothing is compiled for a module that could never link (a full compile of a large
    /// runtime takes a minute).
    pub fn check_imports(&self, bytes: &[u8]) -> Result<(), String> {
        if !bytes.starts_with(b"\0asm") {
            return Ok(()); // the text format, which wasmtime reads itself (tests write modules in it)
        }
        let mut missing = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(bytes) {
            match payload {
                Ok(wasmparser::Payload::ImportSection(section)) => {
                    for import in section.into_imports() {
                        let import = import.map_err(|e| format!("malformed import section: {e}"))?;
                        let key = (import.module.to_owned(), import.name.to_owned());
                        let is_func = matches!(import.ty, wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_));
                        if !is_func || !self.provided.contains(&key) {
                            missing.push(format!("{}::{}", key.0, key.1));
                        }
                    }
                }
                // Everything after the import section is code and data: not read here.
                Ok(wasmparser::Payload::FunctionSection(_) | wasmparser::Payload::CodeSectionStart { .. }) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("not a WebAssembly module: {e}")),
            }
        }
        match missing.len() {
            0 => Ok(()),
            n => Err(format!(
                "the module imports {} that the QOR sandbox does not provide (refused before compiling): {}{}",
                if n == 1 { "a function" } else { "functions" },
                missing.iter().take(8).cloned().collect::<Vec<_>>().join(", "),
                if n > 8 { format!(" and {} more", n - 8) } else { String::new() }
            )),
        }
    }

    /// The engine, for compiling modules ahead of a run.
    pub const fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs `module` (whose keccak256 must be `spec.module`) for `spec` in the job folder
    /// `job_dir`, which holds `in/` with the inputs already verified and an empty `out/`.
    ///
    /// `job_dir` is a path because wasmtime-wasi preopens directories by path; it opens them with
    /// cap-std, and the module sees nothing else.
    pub fn run(&self, spec: &JobSpec, module: &[u8], job_dir: &Path) -> SandboxResult<Outcome> {
        self.run_with_stderr(spec, module, job_dir, &StderrHead::default())
    }

    /// [`Sandbox::run`], keeping the head of the module's stderr in `stderr`.
    pub fn run_with_stderr(&self, spec: &JobSpec, module: &[u8], job_dir: &Path, stderr: &StderrHead) -> SandboxResult<Outcome> {
        match self.prepare(spec, module)? {
            Ok((module, _)) => self.run_module_with_stderr(spec, &module, job_dir, stderr),
            Err(refused) => Ok(refused),
        }
    }

    /// The compiled module for a run of `spec`: its bytes checked against `spec.module`, its imports
    /// checked, then held in memory, loaded from the cache or compiled (within the bounds, with a
    /// compiler). `Ok(Err(outcome))` is a module that cannot run: the run's failed outcome.
    pub fn prepare(&self, spec: &JobSpec, module: &[u8]) -> SandboxResult<Result<(Module, CacheStatus), Outcome>> {
        spec.validate()?;
        let got = keccak256(module);
        if got != spec.module {
            return Err(SandboxError::ModuleHashMismatch { got, expected: spec.module });
        }
        if let Some(module) = self.loaded(got) {
            return Ok(Ok((module, CacheStatus::Hit)));
        }
        if let Err(reason) = self.check_imports(module) {
            return Ok(Err(invalid_module(reason)));
        }
        let over = |reason: String| Outcome::Failed { failure: Failure::CompileLimit { reason }, fuel_used: 0 };
        if let Some((_, reason)) = self.over_bounds.lock().unwrap_or_else(PoisonError::into_inner).iter().find(|(h, _)| *h == got) {
            return Ok(Err(over(reason.clone())));
        }
        Ok(match self.module(got, module) {
            Ok(ready) => Ok(ready),
            Err(e) if e.is::<CompileLimitExceeded>() => {
                let mut remembered = self.over_bounds.lock().unwrap_or_else(PoisonError::into_inner);
                if remembered.len() == LOADED_MODULES {
                    remembered.remove(0);
                }
                remembered.push((got, e.to_string()));
                Err(over(e.to_string()))
            }
            Err(e) if e.is::<CompilerFailed>() => return Err(SandboxError::Setup(format!("{e:#}"))),
            Err(e) => Err(invalid_module(format!("{e:#}"))),
        })
    }

    /// Compiles `bytes` ahead of any job (or loads them from the module cache) and holds the module,
    /// so the first job naming it neither downloads nor compiles it: how a worker keeps the pinned
    /// runtimes ready. Refused like a job's module would be (imports, compile bounds).
    pub fn warm(&self, bytes: &[u8]) -> Result<CacheStatus, String> {
        let hash = keccak256(bytes);
        if self.loaded(hash).is_some() {
            return Ok(CacheStatus::Hit);
        }
        self.check_imports(bytes)?;
        self.module(hash, bytes).map(|(_, status)| status).map_err(|e| format!("{e:#}"))
    }

    /// Keeps compiled modules in `dir` (see [`ModuleCache`]): the worker daemon's setting.
    pub fn with_module_cache(mut self, dir: &Path) -> SandboxResult<Self> {
        let cache =
            ModuleCache::open(dir, &self.engine).map_err(|e| SandboxError::Setup(format!("module cache {}: {e}", dir.display())))?;
        self.cache = Some(cache);
        Ok(self)
    }

    /// Compiles modules in child processes within `bounds` ([`crate::compile`]), `exe` being a
    /// `qor-worker` binary: the worker daemon's and `qor-worker exec`'s setting. Without it a
    /// sandbox compiles in its own process, unbounded (for tests and benchmarks of trusted modules).
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = Some(compiler);
        self
    }

    /// Compiles `bytes` (whose keccak256 is `module_hash`), or loads it from the module cache.
    /// Errors are the module's: it does not compile, or its compile went past a bound
    /// ([`CompileLimitExceeded`]).
    pub fn compile(&self, module_hash: B256, bytes: &[u8]) -> wasmtime::Result<(Module, CacheStatus)> {
        match (&self.cache, &self.compiler) {
            (Some(cache), None) => cache.load(&self.engine, module_hash, bytes),
            (Some(cache), Some(compiler)) => {
                let path = cache.path(module_hash);
                if let Some(module) = crate::cache::read_artifact(&self.engine, &path) {
                    return Ok((module, CacheStatus::Hit));
                }
                Ok((compiler.compile(&self.engine, bytes, &path)?, CacheStatus::Compiled))
            }
            (None, Some(compiler)) => {
                let dir = tempfile::tempdir()?;
                Ok((compiler.compile(&self.engine, bytes, &dir.path().join("module.cwasm"))?, CacheStatus::Compiled))
            }
            (None, None) => Ok((Module::new(&self.engine, bytes)?, CacheStatus::Compiled)),
        }
    }

    /// The module held in memory, or [`Self::compile`]d and then held.
    fn module(&self, module_hash: B256, bytes: &[u8]) -> wasmtime::Result<(Module, CacheStatus)> {
        if let Some(module) = self.loaded(module_hash) {
            return Ok((module, CacheStatus::Hit));
        }
        let (module, status) = self.compile(module_hash, bytes)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        if !loaded.iter().any(|(h, _)| *h == module_hash) {
            if loaded.len() == LOADED_MODULES {
                loaded.remove(0);
            }
            loaded.push((module_hash, module.clone()));
        }
        Ok((module, status))
    }

    /// The module whose bytes hash to `module_hash`, if this sandbox ran it before and still holds it
    /// (the last 32 modules it ran). Its hash was checked then, so [`Self::run_module`]
    /// can run it without reading or hashing the bytes again.
    pub fn loaded(&self, module_hash: B256) -> Option<Module> {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        let at = loaded.iter().position(|(h, _)| *h == module_hash)?;
        let entry = loaded.remove(at);
        let module = entry.1.clone();
        loaded.push(entry);
        Some(module)
    }

    /// Runs an already compiled module (see [`Sandbox::run`]).
    pub fn run_module(&self, spec: &JobSpec, module: &Module, job_dir: &Path) -> SandboxResult<Outcome> {
        self.run_module_with_stderr(spec, module, job_dir, &StderrHead::default())
    }

    /// [`Sandbox::run_module`], keeping the first [`STDERR_BYTES`] the module wrote to stderr in
    /// `stderr` (for the buyer or a provider to read: stderr is not part of the result).
    pub fn run_module_with_stderr(&self, spec: &JobSpec, module: &Module, job_dir: &Path, stderr: &StderrHead) -> SandboxResult<Outcome> {
        spec.validate()?;
        let _slot = self.gate.enter();
        let limits = spec.limits;
        let stdout = MemoryOutputPipe::new(limits.output_bytes as usize + 1);
        let stderr = stderr.clone();
        let seed = spec.sandbox_seed();

        let mut wasi = WasiCtxBuilder::new();
        wasi.arg("job").args(&spec.args);
        let env: Vec<(&String, &String)> = spec.env.iter().collect(); // BTreeMap: sorted
        wasi.envs(&env);
        wasi.stdout(stdout.clone()).stderr(stderr);
        let offset = u64::from_be_bytes(seed[..8].try_into().expect("8 bytes")) % (365 * 86_400);
        let frozen = Duration::from_secs(CLOCK_EPOCH_SECS + offset);
        wasi.wall_clock(FrozenWallClock(frozen));
        wasi.monotonic_clock(FrozenMonotonicClock(0));
        wasi.secure_random(StdRng::from_seed(seed.0));
        wasi.insecure_random(StdRng::from_seed(keccak256(seed).0));
        wasi.insecure_random_seed(u128::from_be_bytes(seed[..16].try_into().expect("16 bytes")));
        wasi.preopened_dir(job_dir.join("in"), "/in", FsPerms::ReadOnly).map_err(|e| SandboxError::Setup(format!("preopen /in: {e:#}")))?;
        wasi.preopened_dir(job_dir.join("out"), "/out", FsPerms::ReadWrite)
            .map_err(|e| SandboxError::Setup(format!("preopen /out: {e:#}")))?;

        let store_limits = StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes as usize)
            .instances(1)
            .memories(1)
            .tables(MAX_TABLES as usize)
            .table_elements(MAX_TABLE_ELEMENTS)
            // A refused grow returns -1, as WebAssembly specifies: the module may handle it (the
            // limit is the spec's, so that is deterministic), and one that then aborts is classed
            // MemoryLimit/TableLimit with its fuel counted to the abort (a trap inside the grow
            // itself would lose the fuel since the last call).
            .trap_on_grow_failure(false)
            .build();
        let mut store = Store::new(
            &self.engine,
            Host {
                wasi: wasi.build_p1(),
                limits: Limiter { inner: store_limits, refused: None },
                budget: Budget::new(limits.output_bytes, frozen.as_nanos() as u64),
            },
        );
        store.limiter(|h| &mut h.limits);
        if self.metered {
            store.set_fuel(limits.fuel).map_err(|e| SandboxError::Setup(e.to_string()))?;
        }
        let ticks = limits.wall_clock_ms.div_ceil(EPOCH_TICK.as_millis() as u64).max(1);
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        // Linking and the entry point's type decide whether the module can run here at all (a start
        // function that traps is the module's doing, and classified like any other trap).
        // The gate keeps runs within the pool, but the pool returns a finished run's memory lazily:
        // a moment with no free slot is waited out, never reported as the module's fault.
        let waited_from = std::time::Instant::now();
        let instance = loop {
            match self.linker.instantiate(&mut store, module) {
                Err(e) if e.is::<PoolConcurrencyLimitError>() => {
                    if waited_from.elapsed() > POOL_WAIT {
                        return Err(SandboxError::Setup(format!("no free instance in the pool after {POOL_WAIT:?}: {e:#}")));
                    }
                    thread::sleep(Duration::from_millis(2));
                }
                other => break other,
            }
        };
        let run = instance
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, &spec.entry))
            .map_err(|e| if e.is::<Trap>() || store.data().limits.refused.is_some() { e } else { e.context(UNRUNNABLE) })
            .and_then(|entry| entry.call(&mut store, ()));
        let fuel_used = if self.metered { limits.fuel - store.get_fuel().unwrap_or(0) } else { 0 };
        let refused = store.data().limits.refused.clone();
        drop(store);

        // The guards trap the write that would cross the output budget, so stdout never exceeds it.
        let stdout = stdout.contents().to_vec();
        let exit_code = match run {
            Ok(()) => 0,
            Err(err) => {
                if let Some(exit) = err.downcast_ref::<I32Exit>() {
                    exit.0 as u32
                } else {
                    return Ok(Outcome::Failed { failure: classify(&err, refused), fuel_used });
                }
            }
        };
        let too_large = Outcome::Failed { failure: Failure::OutputTooLarge { limit: limits.output_bytes }, fuel_used };
        let out = cap_std::fs::Dir::open_ambient_dir(job_dir.join("out"), cap_std::ambient_authority())
            .map_err(|e| SandboxError::Setup(format!("open out/: {e}")))?;
        // Sizes first, from metadata: a sparse file grown past the budget is never read into memory.
        let mut total = stdout.len() as u64;
        walk(&out, &mut |_, _, _, len| {
            total = total.saturating_add(len);
            Ok(total <= limits.output_bytes)
        })
        .map_err(|e| SandboxError::Setup(format!("list out/: {e}")))?;
        if total > limits.output_bytes {
            return Ok(too_large);
        }
        let mut hasher = ResultHasher::new(exit_code, &stdout);
        let mut failed = None;
        walk(&out, &mut |dir, name, path, _| {
            let data = dir.read(name)?;
            if let Err(e) = hasher.add_file(path, &data) {
                failed = Some(e.to_string());
                return Ok(false);
            }
            Ok(true)
        })
        .map_err(|e| SandboxError::Setup(format!("read out/: {e}")))?;
        if let Some(e) = failed {
            return Err(SandboxError::Setup(e));
        }
        Ok(Outcome::Completed { exit_code, result_digest: hasher.finish(), fuel_used, stdout_hash: stdout_hash(&stdout), stdout })
    }
}

/// Every import the linker provides, as (module, name), read once from a throwaway store.
fn provided_imports(engine: &Engine, linker: &Linker<Host>) -> HashSet<(String, String)> {
    let mut store = Store::new(
        engine,
        Host {
            wasi: WasiCtxBuilder::new().build_p1(),
            limits: Limiter { inner: StoreLimitsBuilder::new().build(), refused: None },
            budget: Budget::new(0, 0),
        },
    );
    linker.iter(&mut store).map(|(module, name, _)| (module.to_owned(), name.to_owned())).collect()
}

/// How many jobs may run at once here: [`POOL_SLOTS`], or fewer when the process cannot hold
/// [`DESCRIPTORS_PER_JOB`] for each. The sandbox's descriptor limits shape results, so a job only
/// runs when the host can give it all of them; the soft open-file limit is first raised to the hard
/// one.
fn job_slots() -> SandboxResult<u32> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit); // best effort: the limit below is what counts
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    let slots = (have.saturating_sub(256) / DESCRIPTORS_PER_JOB).min(u64::from(POOL_SLOTS)) as u32;
    if slots == 0 {
        return Err(SandboxError::Setup(format!(
            "the open-file limit is {have}; a job needs {DESCRIPTORS_PER_JOB} descriptors (raise `ulimit -n`)"
        )));
    }
    Ok(slots)
}

fn invalid_module(reason: String) -> Outcome {
    Outcome::Failed { failure: Failure::InvalidModule { reason }, fuel_used: 0 }
}

/// Classifies a run that ended in an error rather than an exit.
fn classify(err: &wasmtime::Error, refused: Option<Failure>) -> Failure {
    if err.chain().any(|e| e.to_string() == UNRUNNABLE) {
        return Failure::InvalidModule { reason: format!("{:#}", err.root_cause()) };
    }
    if let Some(OutputLimitExceeded { limit }) = err.downcast_ref::<OutputLimitExceeded>() {
        return Failure::OutputTooLarge { limit: *limit };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel,
        Some(Trap::Interrupt) => Failure::Timeout,
        Some(_) if refused.is_some() => refused.unwrap_or(Failure::MemoryLimit),
        // The variant name ("StackOverflow", "UnreachableCodeReached", …) is stable across versions.
        Some(trap) => Failure::Trap { trap: format!("{trap:?}") },
        None if refused.is_some() => refused.unwrap_or(Failure::MemoryLimit),
        // A WASI call the module made with arguments no implementation accepts (an out-of-range
        // rights mask, say): deterministic, and the module's fault.
        None => Failure::Trap { trap: "HostCall".into() },
    }
}

/// Calls `visit(dir, name, path, size)` for every regular file under `out`, in the byte order of its path
/// relative to `out` (with `/` separators), `dir` being the folder that holds it; stops when `visit`
/// returns false. Listed through cap-std, so a symlink the module made cannot point the worker outside
/// the job folder; symlinks and anything but regular files are not part of a result.
///
/// Holds two descriptors whatever the depth (it climbs back with `open_parent_dir`, which cannot leave
/// `out` because it never climbs above it), and opens one name at a time, never a long path: folders
/// nested thousands deep give a result like any other, on any host. Visiting each folder's entries
/// sorted by name, with `/` after a folder's name, is the same as sorting the whole paths.
fn walk(out: &cap_std::fs::Dir, visit: &mut dyn FnMut(&cap_std::fs::Dir, &str, &str, u64) -> std::io::Result<bool>) -> std::io::Result<()> {
    struct Level {
        prefix: String,
        /// (sort key, name, is a folder), reversed: the next one is last.
        rest: Vec<(Vec<u8>, String, bool)>,
    }
    let list = |dir: &cap_std::fs::Dir, prefix: String| -> std::io::Result<Level> {
        let mut rest = Vec::new();
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                rest.push((format!("{name}/").into_bytes(), name, true));
            } else if kind.is_file() {
                rest.push((name.clone().into_bytes(), name, false));
            }
        }
        rest.sort_by(|a, b| b.0.cmp(&a.0));
        Ok(Level { prefix, rest })
    };
    let mut dir = out.try_clone()?;
    let mut stack = vec![list(&dir, String::new())?];
    while let Some(level) = stack.last_mut() {
        let Some((_, name, is_dir)) = level.rest.pop() else {
            stack.pop();
            if !stack.is_empty() {
                dir = dir.open_parent_dir(cap_std::ambient_authority())?;
            }
            continue;
        };
        let path = if level.prefix.is_empty() { name.clone() } else { format!("{}/{name}", level.prefix) };
        if is_dir {
            dir = dir.open_dir(&name)?;
            stack.push(list(&dir, path)?);
        } else {
            let len = dir.symlink_metadata(&name)?.len();
            if !visit(&dir, &name, &path, len)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Every regular file under `out` as (path relative to `out`, size), in the order a result hashes
/// them (see [`walk`]).
pub fn output_files(out: &cap_std::fs::Dir) -> std::io::Result<Vec<(String, u64)>> {
    let mut files = Vec::new();
    walk(out, &mut |_, _, path, len| {
        files.push((path.to_owned(), len));
        Ok(true)
    })?;
    Ok(files)
}
