//! An exact price before paying. Execution is deterministic and the sandbox's seed is what runs (never
//! the job id or the limits), so running the job here, in the workers' own sandbox, meters exactly the
//! fuel its replicas will: the fuel limit is set from that run, and the price from the live providers'
//! on-chain asking prices.

use std::path::{Path, PathBuf};

use alloy_primitives::{Address, B256, U256, keccak256};
use anyhow::{Context, anyhow, bail};
use qor_protocol::bindings::IProviderRegistry;
use qor_protocol::runtime::{self, Runtime};
use qor_protocol::spec::{InputFile, JobSpec, Limits, MAX_SAFE_INTEGER};
use qor_worker::compile::{CompileBounds, Compiler};
use qor_worker::sandbox::{Outcome, Sandbox};
use serde_json::{Value, json};

use crate::market::{Market, ether};

/// Memory a module gets unless told otherwise, MiB.
const MODULE_MEMORY_MIB: u64 = 64;
/// Memory a script's interpreter gets unless told otherwise, MiB.
const SCRIPT_MEMORY_MIB: u64 = 256;

/// A job ready to quote and to fund: its spec (fuel limit still the caller's cap) and the bytes of
/// every blob it names.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) spec: JobSpec,
    /// The module's bytes (a pinned runtime's, for a script).
    pub(crate) module: Vec<u8>,
    /// Each input with its bytes, in the spec's order.
    pub(crate) inputs: Vec<(InputFile, Vec<u8>)>,
    /// The runtime a script runs on.
    pub(crate) runtime: Option<&'static Runtime>,
}

/// What the buyer asks for, before anything is hashed.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) program: &'a Path,
    pub(crate) inputs: &'a [PathBuf],
    pub(crate) args: Vec<String>,
    pub(crate) redundancy: u8,
    /// The fuel limit, or the most a quote run may use.
    pub(crate) fuel: u64,
    pub(crate) memory_mib: Option<u64>,
}

fn file_name(path: &Path) -> anyhow::Result<&str> {
    path.file_name().and_then(|n| n.to_str()).ok_or_else(|| anyhow!("{}: not a file name", path.display()))
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads the module (or the script and its pinned runtime) and the inputs, and builds the spec.
pub(crate) async fn program(req: Request<'_>) -> anyhow::Result<Program> {
    let name = file_name(req.program)?;
    let mut inputs = Vec::new();
    let (runtime, module, args) = if let Some(rt) = runtime::for_script(name) {
        let dir = qor_worker::runtime::default_dir().ok_or_else(|| anyhow!("no folder for runtimes: set QOR_RUNTIME_DIR or HOME"))?;
        let module =
            qor_worker::runtime::fetch(rt, &dir).await.with_context(|| format!("the {} {} runtime for {name}", rt.name, rt.version))?;
        let script = read(req.program)?;
        inputs.push((InputFile { path: name.to_owned(), hash: keccak256(&script) }, script));
        (Some(rt), module, rt.args(name, &req.args))
    } else {
        let module = read(req.program)?;
        if !module.starts_with(b"\0asm") {
            let known: Vec<String> = runtime::RUNTIMES.iter().map(|r| format!(".{} ({} {})", r.extension, r.name, r.version)).collect();
            bail!("{}: neither a WebAssembly module nor a script QOR has a runtime for ({})", req.program.display(), known.join(", "));
        }
        (None, module, req.args)
    };
    for path in req.inputs {
        let name = file_name(path)?;
        if inputs.iter().any(|(f, _): &(InputFile, _)| f.path == name) {
            bail!("{}: two files would be /in/{name}", path.display());
        }
        let bytes = read(path)?;
        inputs.push((InputFile { path: name.to_owned(), hash: keccak256(&bytes) }, bytes));
    }
    let memory_mib = req.memory_mib.unwrap_or(if runtime.is_some() { SCRIPT_MEMORY_MIB } else { MODULE_MEMORY_MIB });
    let spec = JobSpec {
        version: 1,
        module: keccak256(&module),
        entry: "_start".into(),
        args,
        env: Default::default(),
        inputs: inputs.iter().map(|(f, _)| f.clone()).collect(),
        limits: Limits { fuel: req.fuel, memory_bytes: memory_mib << 20, output_bytes: 64 << 20, wall_clock_ms: 60_000 },
        redundancy: req.redundancy,
    };
    spec.validate().map_err(|e| anyhow!("the job: {e}"))?;
    Ok(Program { spec, module, inputs, runtime })
}

/// What running the job here gave.
#[derive(Debug, Clone)]
pub(crate) struct Metered {
    pub(crate) fuel_used: u64,
    pub(crate) exit_code: u32,
    pub(crate) result_digest: B256,
}

/// Runs the program here, in the workers' sandbox (compiled modules kept in the user's module cache,
/// so a runtime compiles once), with its fuel limit as the cap. A run that gives no result is an
/// error: the replicas would give none either, and the buyer would pay for nothing.
pub(crate) async fn meter(program: &Program) -> anyhow::Result<Metered> {
    let dir = tempfile::Builder::new().prefix("qor-quote-").tempdir().context("a job folder")?;
    std::fs::create_dir(dir.path().join("in"))?;
    std::fs::create_dir(dir.path().join("out"))?;
    for (file, bytes) in &program.inputs {
        std::fs::write(dir.path().join("in").join(&file.path), bytes)?;
    }
    let (spec, module, path) = (program.spec.clone(), program.module.clone(), dir.path().to_owned());
    let started = std::time::Instant::now();
    let outcome = tokio::task::spawn_blocking(move || -> anyhow::Result<Outcome> {
        // Compiled in a child within the workers' default bounds: a module past them would be refused
        // by every provider that keeps the defaults, so it is refused here, before anything is funded.
        let exe = std::env::current_exe().context("the qor binary, to compile modules with")?;
        let mut sandbox =
            Sandbox::new().map_err(|e| anyhow!("the sandbox: {e}"))?.with_compiler(Compiler::new(exe, CompileBounds::default()));
        if let Some(cache) = qor_worker::exec::default_module_cache() {
            sandbox = sandbox.with_module_cache(&cache).map_err(|e| anyhow!("{e}"))?;
        }
        sandbox.run(&spec, &module, &path).map_err(|e| anyhow!("{e}"))
    })
    .await??;
    let took = started.elapsed();
    let wall = std::time::Duration::from_millis(program.spec.limits.wall_clock_ms);
    if took > wall / 2 {
        eprintln!(
            "warning: the run here took {:.1} s of the job's {:.0} s wall clock; a slower provider may time out (no result, no pay)",
            took.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
    match outcome {
        Outcome::Completed { exit_code, result_digest, fuel_used, .. } => Ok(Metered { fuel_used, exit_code, result_digest }),
        Outcome::Failed { failure, fuel_used } => {
            let failure = serde_json::to_string(&failure)?;
            if failure.contains("outOfFuel") {
                bail!("the job needs more than {fuel_used} fuel (its --fuel limit); raise --fuel to quote it");
            }
            bail!("the job gives no result here ({failure} after {fuel_used} fuel), and would give none on a provider; not quoting it")
        }
    }
}

/// One provider a quote counts on.
#[derive(Debug, Clone)]
pub(crate) struct Offer {
    pub(crate) provider: Address,
    /// Wei per unit of fuel, as the provider registry says (never the coordinator).
    pub(crate) price_per_fuel: U256,
}

/// The price of `fuel` fuel on `redundancy` replicas: the `redundancy` cheapest live providers the
/// coordinator knows, each one's asking price read from the provider registry on chain. Settlement pays
/// every winner the highest winner's price per fuel, so that is what the quote charges.
pub(crate) async fn price(m: &Market, fuel: u64, redundancy: u8) -> anyhow::Result<(Vec<Offer>, U256)> {
    let listed = m.get("/v1/providers").await?;
    let mut offers = Vec::new();
    for p in listed["providers"].as_array().into_iter().flatten() {
        if p["live"] != json!(true) {
            continue;
        }
        let Some(provider) = p["address"].as_str().and_then(|a| a.parse::<Address>().ok()) else { continue };
        let onchain = m.chain.call(m.info.provider_registry, IProviderRegistry::getProviderCall { provider }).await?;
        if !onchain.registered {
            continue;
        }
        offers.push(Offer { provider, price_per_fuel: U256::from(onchain.metadata.pricePerFuel) });
    }
    offers.sort_by_key(|o| o.price_per_fuel);
    if offers.len() < redundancy as usize {
        bail!("the job asks for {redundancy} replicas, and {} live providers are registered", offers.len());
    }
    offers.truncate(redundancy as usize);
    let per_fuel = offers.iter().map(|o| o.price_per_fuel).max().unwrap_or_default();
    Ok((offers, per_fuel * U256::from(fuel) * U256::from(redundancy)))
}

/// A job with its exact fuel (already its fuel limit) and its price.
#[derive(Debug)]
pub(crate) struct Quote {
    pub(crate) program: Program,
    pub(crate) metered: Metered,
    pub(crate) offers: Vec<Offer>,
    pub(crate) price: U256,
}

/// Builds the job, runs it here, sets its fuel limit from the fuel the run took and prices it.
///
/// The limit is one more than the fuel used: wasmtime checks fuel at loop heads and calls and stops a
/// run whose remaining fuel is 0 at a check, so a run that ends with a check right at its last unit
/// would stop under a limit of exactly its fuel. Receipts report the fuel used, and settlement charges
/// that; the budget covers the limit.
pub(crate) async fn quote(m: &Market, req: Request<'_>) -> anyhow::Result<Quote> {
    let mut program = program(req).await?;
    let metered = meter(&program).await?;
    program.spec.limits.fuel = metered.fuel_used + 1;
    let (offers, price) = price(m, program.spec.limits.fuel, program.spec.redundancy).await?;
    Ok(Quote { program, metered, offers, price })
}

impl Quote {
    /// The quote as JSON (for `--json`) and as lines for a person.
    pub(crate) fn describe(&self) -> (Value, String) {
        let (program, metered, offers, price) = (&self.program, &self.metered, &self.offers, self.price);
        let runtime = program.runtime.map(|r| format!("{} {}", r.name, r.version));
        let per_fuel = offers.iter().map(|o| o.price_per_fuel).max().unwrap_or_default();
        let value = json!({
            "specHash": program.spec.spec_hash(),
            "module": program.spec.module,
            "runtime": runtime,
            "fuel": metered.fuel_used,
            "exitCode": metered.exit_code,
            "resultDigest": metered.result_digest,
            "redundancy": program.spec.redundancy,
            "providers": offers.iter().map(|o| json!({ "address": o.provider, "pricePerFuel": o.price_per_fuel.to_string() })).collect::<Vec<_>>(),
            "pricePerFuel": per_fuel.to_string(),
            "price": price.to_string(),
        });
        let text = format!(
            "ran here{}: exit {}, {} fuel, result {}\nprice: {} ({} replicas × a fuel limit of {} at {} wei/fuel)",
            runtime.map(|r| format!(" on {r}")).unwrap_or_default(),
            metered.exit_code,
            metered.fuel_used,
            metered.result_digest,
            ether(price),
            offers.len(),
            program.spec.limits.fuel,
            per_fuel
        );
        (value, text)
    }
}

/// The fuel cap a quote runs under when the buyer gives none.
pub(crate) const QUOTE_FUEL_CAP: u64 = MAX_SAFE_INTEGER;
