//! `qor-worker run`: the provider daemon.
//!
//! It checks in with the coordinator, heartbeats, and long-polls for work. Each assignment runs in the
//! sandbox (at most `max-jobs` at once) after its module and inputs are fetched and their hashes
//! checked; the worker commits a seal, uploads the outputs and reveals the signed receipt once every
//! replica has sealed. Storage deals offered to it are fetched, their root recomputed (a mismatch is
//! refused), kept under the data folder within the quota and accepted on chain; challenges are answered
//! from the stored tree.
//!
//! The coordinator is trusted for liveness only. Before the worker signs anything for a job, the
//! coordinator's record of the job must hash to the commitment the escrow keeps, and the spec must
//! hash to the record's `specHash`: no coordinator can make it run (and sign for) another program.
//! Ids from the coordinator are parsed as numbers before they name anything on disk. And a hosted
//! deal's periods are proven on chain by the worker itself when no attestation has covered them as
//! the proof window nears its end, so withheld challenges cannot get an honest provider slashed.
//!
//! Restarts lose nothing: the coordinator remembers the assignments, and a run is deterministic, so a
//! job in flight is simply run again (its seal still matches); hosted files are re-verified. When the
//! coordinator or the chain is down it retries with backoff. On SIGTERM or Ctrl-C it stops taking
//! work, lets running jobs finish for a grace period, and releases the leases of those that do not.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolValue};
use anyhow::{Context, anyhow};
use qor_protocol::bindings::IJobEscrow::{ComputeJob, Receipt};
use qor_protocol::bindings::IStorageMarket::StorageDealStatus;
use qor_protocol::eip712::{Signer, escrow_domain};
use qor_protocol::spec::JobSpec;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::chain::Chain;
use crate::client::{ClientError, Coordinator, acceptance_body, receipt_body, seal_body};
use crate::hosting::{Hosting, HostingError};
use crate::sandbox::{Outcome, Sandbox, SandboxError};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Data folder.
    pub data_dir: PathBuf,
    /// Jobs at once.
    pub max_jobs: usize,
    /// Disk the hosted files may take.
    pub storage_quota_bytes: u64,
    /// Longest storage deal taken, in blocks (see `WorkerConfig::max_deal_blocks`).
    pub max_deal_blocks: u64,
    /// How long running jobs may finish after a shutdown signal before their leases are released.
    pub grace: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Draw progress bars for long downloads.
    pub progress: bool,
    /// Test fault: seal and reveal a corrupted digest (a byzantine provider).
    pub corrupt_digest: bool,
    /// Where the pinned runtimes are kept, to compile them when the daemon starts (`None`: not
    /// ahead of a job).
    pub preload_runtimes: Option<PathBuf>,
    /// Compiles buyers' modules in bounded child processes (`None`: in this process, unbounded; only
    /// for benchmarks of known modules).
    pub compiler: Option<crate::compile::Compiler>,
}

/// The daemon's state.
pub struct Daemon {
    cfg: DaemonConfig,
    coordinator: Arc<Coordinator>,
    chain: Chain,
    domain: Eip712Domain,
    signer: Signer,
    sandbox: Arc<Sandbox>,
    hosting: Hosting,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<i64, tokio::task::AbortHandle>>,
    storage_busy: Mutex<HashSet<String>>,
    accept_tried: Mutex<HashMap<U256, std::time::Instant>>,
    /// Jobs whose record was checked against the escrow's commitment, with their spec hash.
    funded: Mutex<HashMap<U256, B256>>,
    /// Storage periods this worker sent a proof of (deal, period), so it is sent once.
    proven: Mutex<HashSet<(U256, u64)>>,
    changed: Notify,
    /// Cancelled to stop.
    pub shutdown: CancellationToken,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon").field("provider", &self.signer.address()).finish_non_exhaustive()
    }
}

enum Done {
    Revealed,
    Released(String),
    Lost(String),
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250u64 << attempt.min(7)).min(30_000))
}

impl Daemon {
    /// A daemon for the provider `signer`, talking to `coordinator` and to the chain of its pinned
    /// deployment (`chain`, already checked against it).
    pub fn new(cfg: DaemonConfig, coordinator: Coordinator, chain: Chain, signer: Signer) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
        for sub in ["blobs", "jobs", "modules"] {
            std::fs::create_dir_all(cfg.data_dir.join(sub))?;
        }
        // Downloads a crash cut short.
        for entry in std::fs::read_dir(cfg.data_dir.join("blobs"))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e.to_string_lossy().starts_with("part")) {
                let _ = std::fs::remove_file(path);
            }
        }
        let mut sandbox = Sandbox::new()?.with_module_cache(&cfg.data_dir.join("modules"))?;
        if let Some(compiler) = &cfg.compiler {
            sandbox = sandbox.with_compiler(compiler.clone());
        }
        let hosting = Hosting::open(&cfg.data_dir)?;
        Ok(Arc::new(Self {
            domain: escrow_domain(chain.info.chain_id, chain.info.job_escrow),
            slots: Arc::new(Semaphore::new(cfg.max_jobs.max(1))),
            cfg,
            coordinator: Arc::new(coordinator),
            chain,
            signer,
            sandbox: Arc::new(sandbox),
            hosting,
            running: Mutex::default(),
            storage_busy: Mutex::default(),
            accept_tried: Mutex::default(),
            funded: Mutex::default(),
            proven: Mutex::default(),
            changed: Notify::new(),
            shutdown: CancellationToken::new(),
        }))
    }

    /// Gets and compiles every pinned runtime (in the background: jobs are taken meanwhile, and one
    /// that names a runtime not ready yet compiles it as any module).
    pub async fn preload_runtimes(self: Arc<Self>, dir: PathBuf) {
        for rt in qor_protocol::runtime::RUNTIMES {
            let started = std::time::Instant::now();
            let bytes = match crate::runtime::fetch(rt, &dir).await {
                Ok(bytes) => bytes,
                Err(e) => {
                    warn!(runtime = rt.name, error = format!("{e:#}"), "cannot get the runtime; its jobs will download and compile it");
                    continue;
                }
            };
            let sandbox = self.sandbox.clone();
            match tokio::task::spawn_blocking(move || sandbox.warm(&bytes)).await {
                Ok(Ok(status)) => {
                    info!(runtime = rt.name, version = rt.version, ?status, secs = started.elapsed().as_secs_f64(), "runtime ready")
                }
                Ok(Err(e)) => warn!(runtime = rt.name, error = %e, "cannot compile the runtime"),
                Err(e) => warn!(runtime = rt.name, error = %e, "compiling the runtime stopped"),
            }
        }
    }

    /// Runs until [`Self::shutdown`] is cancelled, then winds down.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let me = self.signer.address();
        info!(provider = %me, coordinator = ?self.coordinator, "starting");
        if let Some(dir) = self.cfg.preload_runtimes.clone() {
            tokio::spawn(self.clone().preload_runtimes(dir));
        }
        // Check in (retrying while the coordinator is down or has not seen the registration yet).
        let mut attempt = 0;
        loop {
            match self.coordinator.signed("POST", "/v1/worker/register", Some(&json!({}))).await {
                Ok(v) => {
                    info!(stake = %v["stake"], capacity = %v["capacity"], "checked in with the coordinator");
                    break;
                }
                Err(e) if e.code() == Some("provider_not_registered") => {
                    warn!("the coordinator has not seen this provider's registration; run `qor-worker register` (retrying)");
                }
                Err(e) => warn!(error = %e, "cannot check in (retrying)"),
            }
            attempt += 1;
            tokio::select! {
                () = tokio::time::sleep(backoff(attempt)) => {}
                () = self.shutdown.cancelled() => return Ok(()),
            }
        }
        self.reverify_hosted().await;
        let heartbeat = tokio::spawn(self.clone().heartbeats());
        let prover = tokio::spawn(self.clone().prove_storage_periods());
        let result = self.clone().work_loop().await;
        heartbeat.abort();
        prover.abort();
        self.wind_down().await;
        info!("stopped");
        result
    }

    async fn heartbeats(self: Arc<Self>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.cfg.heartbeat) => {}
                () = self.shutdown.cancelled() => return,
            }
            if let Err(e) = self.coordinator.signed("POST", "/v1/worker/heartbeat", Some(&json!({}))).await {
                warn!(error = %e, "heartbeat failed");
            }
        }
    }

    async fn reverify_hosted(&self) {
        let hosting = self.hosting.clone();
        let metas = match hosting.list() {
            Ok(m) => m,
            Err(e) => return error!(error = %e, "cannot list hosted files"),
        };
        for meta in metas {
            let (h, deal) = (self.hosting.clone(), meta.deal_id);
            match tokio::task::spawn_blocking(move || h.reverify(deal)).await {
                Ok(Ok(_)) => info!(deal = %meta.deal_id, size = meta.size, "hosted file re-verified"),
                Ok(Err(e)) => error!(deal = %meta.deal_id, error = %e, "a hosted file no longer matches its root"),
                Err(e) => error!(error = %e, "re-verification panicked"),
            }
        }
    }

    async fn work_loop(self: Arc<Self>) -> anyhow::Result<()> {
        let mut failures = 0u32;
        // The newest assignment the coordinator listed, when every one listed then was started: a busy
        // worker then waits for a lease past it, rather than asking again each time a job ends.
        let mut known: Option<i64> = None;
        while !self.shutdown.is_cancelled() {
            let idle = self.running.lock().expect("not poisoned").is_empty() && self.storage_busy.lock().expect("not poisoned").is_empty();
            let path = match known {
                Some(after) => format!("/v1/worker/assignments?wait_ms=20000&after={after}"),
                None => format!("/v1/worker/assignments?wait_ms={}", if idle { 20_000 } else { 0 }),
            };
            let polled = tokio::select! {
                r = self.coordinator.signed("GET", &path, None) => r,
                () = self.shutdown.cancelled() => break,
            };
            let polled = match polled {
                Ok(v) => {
                    if failures > 0 {
                        info!("coordinator reachable again");
                    }
                    failures = 0;
                    v
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, retry_in = ?backoff(failures), "polling failed");
                    tokio::select! {
                        () = tokio::time::sleep(backoff(failures)) => {}
                        () = self.shutdown.cancelled() => break,
                    }
                    continue;
                }
            };
            let mut started = false;
            let listed = polled["assignments"].as_array().cloned().unwrap_or_default();
            for a in &listed {
                started |= self.clone().start_assignment(a);
            }
            let ids = || listed.iter().filter_map(|a| a["assignment"].as_i64());
            // One left for want of a slot: ask again when a job ends, not when the next lease comes.
            let all_started = {
                let running = self.running.lock().expect("not poisoned");
                ids().all(|id| running.contains_key(&id))
            };
            known = if all_started { ids().max().or(known) } else { None };
            for d in polled["storage"]["deals"].as_array().into_iter().flatten() {
                let Ok(deal) = deal_id(d) else {
                    warn!(deal = %d["dealId"], "the coordinator offered a deal whose id is not a number; ignoring it");
                    continue;
                };
                // Offered: fetch and check it. Verified but not accepted on chain (the chain was down,
                // say): accept again, at most every 10 s.
                let due = d["status"] == "offered"
                    || d["status"] == "awaiting_acceptance" && {
                        let mut tried = self.accept_tried.lock().expect("not poisoned");
                        let due = tried.get(&deal).is_none_or(|t| t.elapsed() > Duration::from_secs(10));
                        if due {
                            tried.insert(deal, std::time::Instant::now());
                        }
                        due
                    };
                if due {
                    started |= self.clone().start_storage(format!("deal:{deal}"), deal, d.clone());
                }
            }
            for c in polled["storage"]["challenges"].as_array().into_iter().flatten() {
                let (Ok(deal), Some(period)) = (deal_id(c), c["period"].as_u64()) else { continue };
                started |= self.clone().start_storage(format!("challenge:{deal}:{period}"), deal, c.clone());
            }
            for p in polled["storage"]["probes"].as_array().into_iter().flatten() {
                let (Ok(deal), Some(probe)) = (deal_id(p), p["probeId"].as_i64()) else { continue };
                started |= self.clone().start_storage(format!("probe:{probe}"), deal, p.clone());
            }
            if !started && !idle {
                // Everything listed is already being worked on: wait for a change, not in a loop.
                tokio::select! {
                    () = self.changed.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    () = self.shutdown.cancelled() => break,
                }
            }
        }
        Ok(())
    }

    /// Starts an assignment unless it runs already or no slot is free. Returns whether it started.
    fn start_assignment(self: Arc<Self>, a: &Value) -> bool {
        let Some(id) = a["assignment"].as_i64() else { return false };
        if self.running.lock().expect("not poisoned").contains_key(&id) {
            return false;
        }
        let Ok(permit) = self.slots.clone().try_acquire_owned() else { return false };
        let job_id = a["jobId"].as_str().unwrap_or_default().to_string();
        let span = info_span!("job", job_id = %job_id, assignment = id);
        let this = self.clone();
        let a = a.clone();
        let mut running = self.running.lock().expect("not poisoned");
        let task = tokio::spawn(
            async move {
                let outcome = this.run_assignment(id, &a).await;
                match outcome {
                    Ok(Done::Revealed) => info!("receipt accepted"),
                    Ok(Done::Released(why)) => warn!(reason = %why, "released the lease"),
                    Ok(Done::Lost(why)) => warn!(reason = %why, "lease lost"),
                    Err(e) => {
                        error!(error = %format!("{e:#}"), "job failed; releasing the lease");
                        this.release(id, &format!("worker error: {e:#}")).await;
                    }
                }
                let _ = std::fs::remove_dir_all(this.cfg.data_dir.join("jobs").join(id.to_string()));
                this.running.lock().expect("not poisoned").remove(&id);
                drop(permit);
                this.changed.notify_one();
            }
            .instrument(span),
        );
        running.insert(id, task.abort_handle());
        true
    }

    async fn release(&self, id: i64, reason: &str) {
        let body = json!({ "reason": reason });
        if let Err(e) = self.coordinator.signed("POST", &format!("/v1/worker/assignments/{id}/release"), Some(&body)).await {
            warn!(error = %e, assignment = id, "could not release the lease (it will lapse)");
        }
    }

    /// A blob in the local cache, downloaded (and its hash checked) if missing.
    async fn blob(&self, hash: B256) -> Result<PathBuf, ClientError> {
        let path = self.cfg.data_dir.join("blobs").join(format!("{hash:x}"));
        if !path.exists() {
            self.coordinator.download(hash, &path, self.cfg.progress).await?;
        }
        Ok(path)
    }

    /// Checks the coordinator's record of job `job_id` against the commitment the escrow keeps of it
    /// (once per job); returns the spec hash it was funded with.
    async fn funded_spec(&self, job_id: U256, a: &Value) -> anyhow::Result<Result<B256, String>> {
        if let Some(spec_hash) = self.funded.lock().expect("not poisoned").get(&job_id) {
            return Ok(Ok(*spec_hash));
        }
        let record = match job_record(&a["job"]) {
            Ok(r) => r,
            Err(e) => return Ok(Err(format!("the coordinator's record of the job is unreadable: {e:#}"))),
        };
        let committed = self.chain.job_commitment(job_id).await.context("reading the job's commitment in the escrow")?;
        if committed.is_zero() {
            return Ok(Err(format!("job {job_id} is not funded in the escrow at {}", self.chain.info.job_escrow)));
        }
        if keccak256(record.abi_encode()) != committed {
            return Ok(Err(format!("the coordinator's record of job {job_id} is not the one funded in the escrow")));
        }
        self.funded.lock().expect("not poisoned").insert(job_id, record.specHash);
        Ok(Ok(record.specHash))
    }

    async fn run_assignment(&self, id: i64, a: &Value) -> anyhow::Result<Done> {
        let job_id: U256 = a["jobId"].as_str().unwrap_or_default().parse().context("the assignment's jobId")?;
        let spec_json = serde_json::to_vec(&a["spec"])?;
        let spec = match JobSpec::from_json(&spec_json) {
            Ok(s) => s,
            Err(e) => {
                self.release(id, &format!("invalid spec: {e}")).await;
                return Ok(Done::Released(format!("invalid spec: {e}")));
            }
        };
        // The job as funded on chain: nothing is signed or run for another program.
        let spec_hash = match self.funded_spec(job_id, a).await? {
            Ok(h) if h == spec.spec_hash() => h,
            Ok(h) => {
                let why = format!("the spec hashes to {}, the job was funded with {h}; refusing to run it", spec.spec_hash());
                error!(reason = %why, "the coordinator's spec is not the job's");
                self.release(id, &why).await;
                return Ok(Done::Released(why));
            }
            Err(why) => {
                error!(reason = %why, "the coordinator's job is not the escrow's");
                self.release(id, &why).await;
                return Ok(Done::Released(why));
            }
        };
        // Take the lease: signed, so this worker can be held to it (and to nothing it did not sign).
        if a["status"] == "leased" {
            let body = acceptance_body(&self.signer, &self.domain, job_id, spec_hash)?;
            match self.coordinator.signed("POST", &format!("/v1/worker/assignments/{id}/accept"), Some(&body)).await {
                Ok(_) => {}
                Err(e) if e.code() == Some("lease_lapsed") => return Ok(Done::Lost(e.to_string())),
                Err(e) => return Err(anyhow!("accepting the lease: {e}")),
            }
        }
        info!(module = %spec.module, inputs = spec.inputs.len(), status = %a["status"], "running");

        // Module and inputs, each checked against the spec's hash before anything runs.
        let job_dir = self.cfg.data_dir.join("jobs").join(id.to_string());
        let _ = std::fs::remove_dir_all(&job_dir);
        std::fs::create_dir_all(job_dir.join("in"))?;
        std::fs::create_dir_all(job_dir.join("out"))?;
        // A module this worker ran before is held compiled, already checked against its hash.
        let loaded = self.sandbox.loaded(spec.module);
        // A pinned runtime this worker keeps on disk is read from there, not downloaded per job.
        let kept_runtime = match (&loaded, qor_protocol::runtime::by_module(spec.module), &self.cfg.preload_runtimes) {
            (None, Some(rt), Some(dir)) => {
                let (rt, dir) = (*rt, dir.clone());
                tokio::task::spawn_blocking(move || crate::runtime::cached(&rt, &dir).map(|_| dir.join(rt.file_name()))).await?
            }
            _ => None,
        };
        let mut fetch = Vec::new();
        if loaded.is_none() && kept_runtime.is_none() {
            fetch.push(("module".to_string(), spec.module));
        }
        fetch.extend(spec.inputs.iter().map(|i| (format!("input `{}`", i.path), i.hash)));
        let mut fetched = Vec::new();
        for (what, hash) in &fetch {
            match self.blob(*hash).await {
                Ok(path) => fetched.push(path),
                Err(e @ ClientError::HashMismatch { .. }) => {
                    let why = format!("{what}: {e}; refusing to run it");
                    error!(reason = %why, "bad data");
                    self.release(id, &why).await;
                    return Ok(Done::Released(why));
                }
                Err(e) => return Err(anyhow::anyhow!("fetching {what}: {e}")),
            }
        }
        let module_path = match (&loaded, kept_runtime) {
            (Some(_), _) => None,
            (None, Some(path)) => Some(path),
            (None, None) => Some(fetched.remove(0)),
        };
        for (input, path) in spec.inputs.iter().zip(&fetched) {
            let dest = job_dir.join("in").join(&input.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(path, &dest)?;
        }
        let module = module_path.map(std::fs::read).transpose()?;

        let (sandbox, spec2, dir2) = (self.sandbox.clone(), spec.clone(), job_dir.clone());
        let outcome = tokio::task::spawn_blocking(move || match loaded {
            Some(loaded) => sandbox.run_module(&spec2, &loaded, &dir2),
            // Read above whenever nothing was loaded.
            None => sandbox.run(&spec2, &module.unwrap_or_default(), &dir2),
        })
        .await?;
        let (result_digest, stdout_hash, exit_code, fuel_used, stdout) = match outcome {
            Ok(Outcome::Completed { exit_code, result_digest, fuel_used, stdout_hash, stdout }) => {
                (result_digest, stdout_hash, exit_code, fuel_used, stdout)
            }
            Ok(Outcome::Failed { failure, fuel_used }) => {
                let why = format!("no result: {} after {fuel_used} fuel", serde_json::to_string(&failure)?);
                self.release(id, &why).await;
                return Ok(Done::Released(why));
            }
            Err(e @ SandboxError::ModuleHashMismatch { .. }) => {
                let why = format!("{e}; refusing to run it");
                self.release(id, &why).await;
                return Ok(Done::Released(why));
            }
            Err(e) => return Err(e.into()),
        };
        let result_digest = if self.cfg.corrupt_digest {
            warn!("test fault: reporting a corrupted digest");
            alloy_primitives::keccak256([result_digest.as_slice(), b"corrupt"].concat())
        } else {
            result_digest
        };
        info!(%result_digest, exit_code, fuel_used, "ran");

        // Commit, then upload the outputs while the other replicas commit.
        let me = self.signer.address();
        let body = seal_body(&self.signer, &self.domain, job_id, spec_hash, result_digest)?;
        match self.coordinator.signed("POST", &format!("/v1/worker/assignments/{id}/seal"), Some(&body)).await {
            Ok(_) => {}
            Err(e) if e.code() == Some("lease_lapsed") => return Ok(Done::Lost(e.to_string())),
            Err(e) => return Err(anyhow::anyhow!("sealing: {e}")),
        }
        let outputs = self.upload_outputs(&job_dir.join("out")).await?;
        // Stdout too (a blob named by the receipt's stdoutHash): with the outputs, anyone can
        // recompute the resultDigest the job settles on.
        let stdout_path = job_dir.join("stdout");
        std::fs::write(&stdout_path, &stdout)?;
        self.coordinator.upload(stdout_hash, &stdout_path).await.map_err(|e| anyhow::anyhow!("uploading stdout: {e}"))?;
        let receipt = Receipt {
            jobId: job_id,
            specHash: spec_hash,
            worker: me,
            resultDigest: result_digest,
            stdoutHash: stdout_hash,
            exitCode: exit_code,
            fuelUsed: fuel_used,
        };
        let body = receipt_body(&self.signer, &self.domain, &receipt, &outputs)?;
        let mut attempt = 0;
        loop {
            let wait = match self.coordinator.signed("POST", &format!("/v1/worker/assignments/{id}/receipt"), Some(&body)).await {
                Ok(_) => return Ok(Done::Revealed),
                // The other replicas are usually a moment behind: look again soon, then less often.
                Err(e) if e.code() == Some("awaiting_seals") => Duration::from_millis(25 << attempt.min(6)),
                Err(e) if e.is_transient() => backoff(attempt).min(Duration::from_secs(2)),
                Err(e) if e.code() == Some("lease_lapsed") => return Ok(Done::Lost(e.to_string())),
                Err(e) => return Err(anyhow::anyhow!("revealing: {e}")),
            };
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }

    /// Uploads every file under `out` (sorted by path) as a blob; returns `[{path, hash}]`.
    async fn upload_outputs(&self, out: &Path) -> anyhow::Result<Vec<Value>> {
        let mut files = Vec::new();
        let mut stack = vec![out.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push(entry.path());
                }
            }
        }
        files.sort();
        let mut listed = Vec::new();
        for path in files {
            let relative = path.strip_prefix(out)?.to_string_lossy().replace('\\', "/");
            let hash = keccak256(std::fs::read(&path)?);
            self.coordinator.upload(hash, &path).await.map_err(|e| anyhow::anyhow!("uploading output `{relative}`: {e}"))?;
            listed.push(json!({ "path": relative, "hash": hash }));
        }
        Ok(listed)
    }

    fn start_storage(self: Arc<Self>, key: String, deal: U256, item: Value) -> bool {
        if !self.storage_busy.lock().expect("not poisoned").insert(key.clone()) {
            return false;
        }
        let span = info_span!("deal", deal_id = %deal);
        let this = self.clone();
        tokio::spawn(
            async move {
                let result = if key.starts_with("deal:") { this.host(deal, &item).await } else { this.answer(deal, &item).await };
                if let Err(e) = result {
                    error!(error = %format!("{e:#}"), "storage work failed");
                }
                this.storage_busy.lock().expect("not poisoned").remove(&key);
                this.changed.notify_one();
            }
            .instrument(span),
        );
        true
    }

    async fn decline(&self, deal: U256, reason: &str) -> anyhow::Result<()> {
        warn!(reason, "declining the deal");
        self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/decline"), Some(&json!({ "reason": reason }))).await?;
        Ok(())
    }

    async fn host(&self, deal: U256, d: &Value) -> anyhow::Result<()> {
        let blob: B256 = d["blobHash"].as_str().context("blobHash")?.parse()?;
        // The deal's terms come from the chain, never from the coordinator: the root and size the
        // market will check proofs against, and how long the deal would hold the stake.
        let onchain = self.chain.storage_deal(deal).await?;
        if onchain.status != StorageDealStatus::Open {
            return Ok(());
        }
        let (root, size) = (onchain.merkleRoot, onchain.size);
        let blocks = u64::from(onchain.periods - onchain.settledPeriods) * u64::from(onchain.periodLength);
        if blocks > self.cfg.max_deal_blocks {
            let why = format!("the deal runs {blocks} blocks; this provider takes deals of at most {} blocks", self.cfg.max_deal_blocks);
            return self.decline(deal, &why).await;
        }
        if !self.hosting.has(deal) {
            // The file and its tree (two hashes per 1 KiB chunk, at most) must fit in the quota.
            let need = size + size / 16 + 4096;
            let used = self.hosting.used_bytes()?;
            if used + need > self.cfg.storage_quota_bytes {
                let why = format!("storage quota: {used} of {} bytes used, this file needs {need}", self.cfg.storage_quota_bytes);
                return self.decline(deal, &why).await;
            }
            info!(size, %root, "fetching the file");
            let part = match self.hosting.create_part(deal) {
                Ok(f) => tokio::fs::File::from_std(f),
                Err(e) => return self.decline(deal, &format!("cannot store the file: {e}")).await,
            };
            // No more than the deal's size is read, whatever the coordinator sends.
            let mut coordinator = Coordinator::new(self.coordinator.base(), self.signer.clone());
            coordinator.max_download_bytes = size;
            match coordinator.download_into(blob, part, self.cfg.progress).await {
                // A file shorter than the deal says would make every proof fail against the deal's
                // chunk count, and every period a slash: refused before anything is accepted.
                Ok(got) if got != size => {
                    return self.decline(deal, &format!("the file is {got} bytes; the deal on chain says {size}")).await;
                }
                Ok(_) => {}
                Err(ClientError::Io(e)) => return self.decline(deal, &format!("cannot store the file: {e}")).await,
                Err(e) => return Err(anyhow!("fetching the file: {e}")),
            }
            let hosting = self.hosting.clone();
            match tokio::task::spawn_blocking(move || hosting.adopt(deal, root)).await? {
                Ok(meta) => info!(root = %meta.root, "file verified and stored"),
                Err(HostingError::RootMismatch { computed, expected }) => {
                    warn!(%computed, %expected, "the file does not hash to the deal's root; refusing it");
                    self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/root"), Some(&json!({ "root": computed }))).await?;
                    return Ok(());
                }
                Err(HostingError::Io(e)) => return self.decline(deal, &format!("cannot store the file: {e}")).await,
                Err(e) => return Err(e.into()),
            }
        }
        let answer = self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/root"), Some(&json!({ "root": root }))).await?;
        if answer["status"] != "hosting" {
            return Ok(());
        }
        let tx = self.chain.accept_storage_deal(deal).await?;
        info!(%tx, "accepted the deal on chain");
        Ok(())
    }

    /// Answers a period's challenge (every chunk it names), or a buyer's probe (`probeId`, one chunk),
    /// with the chunks and their paths read from the hosted file.
    async fn answer(&self, deal: U256, c: &Value) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        if let Some(probe) = c["probeId"].as_i64() {
            let index = c["chunkIndex"].as_u64().context("chunkIndex")?;
            let hosting = self.hosting.clone();
            let proof = tokio::task::spawn_blocking(move || hosting.prove(deal, index)).await??;
            let body = json!({ "chunk": alloy_primitives::hex::encode_prefixed(&proof.chunk), "path": proof.path });
            self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/probes/{probe}"), Some(&body)).await?;
            info!(probe, chunk = index, took = ?started.elapsed(), "buyer's probe answered");
            return Ok(());
        }
        let period = c["period"].as_u64().context("period")?;
        let indexes: Vec<u64> = serde_json::from_value(c["chunkIndexes"].clone()).context("chunkIndexes")?;
        let (chunks, paths) = self.prove_chunks(deal, indexes.clone()).await?;
        let chunks: Vec<String> = chunks.iter().map(alloy_primitives::hex::encode_prefixed).collect();
        let body = json!({ "chunks": chunks, "paths": paths });
        self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/challenges/{period}"), Some(&body)).await?;
        info!(period, chunks = ?indexes, took = ?started.elapsed(), "challenge answered");
        Ok(())
    }

    /// The chunks at `indexes` of deal `deal`'s hosted file and their Merkle paths, in that order.
    async fn prove_chunks(&self, deal: U256, indexes: Vec<u64>) -> anyhow::Result<(Vec<Vec<u8>>, Vec<Vec<alloy_primitives::B256>>)> {
        let hosting = self.hosting.clone();
        tokio::task::spawn_blocking(move || {
            let mut chunks = Vec::with_capacity(indexes.len());
            let mut paths = Vec::with_capacity(indexes.len());
            for index in indexes {
                let proof = hosting.prove(deal, index)?;
                chunks.push(proof.chunk);
                paths.push(proof.path);
            }
            anyhow::Ok((chunks, paths))
        })
        .await?
    }

    /// Follows the deals hosted here on chain and proves a period itself when no attestation (nor an
    /// earlier proof) has covered it as its proof window nears its end: whatever the coordinator relays
    /// or withholds, an honest provider's periods pass.
    async fn prove_storage_periods(self: Arc<Self>) {
        let mut last_head = 0;
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = self.shutdown.cancelled() => return,
            }
            let head = match self.chain.head().await {
                Ok(h) => h,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "reading the chain's head failed; retrying");
                    continue;
                }
            };
            if head == last_head {
                continue;
            }
            last_head = head;
            let Ok(hosted) = self.hosting.list() else { continue };
            for meta in hosted {
                if let Err(e) = self.prove_due_periods(meta.deal_id, head).await {
                    warn!(deal = %meta.deal_id, error = %format!("{e:#}"), "proving a storage period failed");
                }
            }
        }
    }

    async fn prove_due_periods(&self, deal_id: U256, head: u64) -> anyhow::Result<()> {
        let deal = self.chain.storage_deal(deal_id).await?;
        if deal.status != StorageDealStatus::Active || deal.provider != self.chain.me {
            return Ok(());
        }
        let (start, len) = (deal.startBlock.to::<u64>(), u64::from(deal.periodLength));
        for period in u64::from(deal.settledPeriods)..u64::from(deal.periods) {
            let seed = start + period * len;
            if seed > head {
                break;
            }
            if !deal.pendingPeriods.bit(period as usize) || !proof_due(seed, len, head) {
                continue;
            }
            if !self.proven.lock().expect("not poisoned").insert((deal_id, period)) {
                continue;
            }
            let Some(seed_hash) = self.chain.block_hash(seed).await? else {
                self.proven.lock().expect("not poisoned").remove(&(deal_id, period));
                continue;
            };
            let indexes = qor_protocol::merkle::challenge_indexes(
                seed_hash,
                deal_id,
                period,
                deal.challengesPerPeriod,
                qor_protocol::merkle::chunk_count(deal.size),
            );
            let (chunks, paths) = self.prove_chunks(deal_id, indexes.clone()).await?;
            match self.chain.prove_storage(deal_id, period, chunks, paths).await {
                Ok(tx) => {
                    info!(deal = %deal_id, period, chunks = ?indexes, %tx, "no attestation covered the period in time: proved it on chain")
                }
                Err(e) => {
                    // Attested meanwhile (the proof is refused as not pending), or a transient failure:
                    // the next block looks again.
                    self.proven.lock().expect("not poisoned").remove(&(deal_id, period));
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn wind_down(&self) {
        let deadline = tokio::time::Instant::now() + self.cfg.grace;
        while !self.running.lock().expect("not poisoned").is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let left: Vec<(i64, tokio::task::AbortHandle)> = self.running.lock().expect("not poisoned").drain().collect();
        for (id, handle) in left {
            handle.abort();
            info!(assignment = id, "releasing an unfinished lease");
            self.release(id, "the provider is shutting down").await;
        }
    }
}

/// Whether a period whose seed block is `seed` (periods of `len` blocks) is due for the provider's own
/// proof at `head`. The escrow takes a proof in blocks `seed + 1 ..= seed + min(len - 1, 256)`; the
/// provider leaves the first three quarters of that window to the committee's attestation and proves in
/// the rest, sending no later than the block before the last, so its transaction can land in time.
pub fn proof_due(seed: u64, len: u64, head: u64) -> bool {
    let last = seed + (len.saturating_sub(1)).min(256);
    let margin = ((last - seed) / 4).max(1);
    head + margin >= last && head < last && head >= seed
}

/// A deal id the coordinator sent: a decimal number, or nothing at all (it names files on disk).
fn deal_id(item: &Value) -> anyhow::Result<U256> {
    let text = item["dealId"].as_str().context("no dealId")?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("`{text}` is not a deal id");
    }
    Ok(text.parse()?)
}

/// The coordinator's record of a funded job (`job` of an assignment), as the escrow commits to it.
fn job_record(v: &Value) -> anyhow::Result<ComputeJob> {
    let text = |k: &str| v[k].as_str().with_context(|| format!("`{k}` is missing"));
    Ok(ComputeJob {
        specHash: text("specHash")?.parse()?,
        buyer: text("buyer")?.parse()?,
        token: text("token")?.parse()?,
        budget: text("budget")?.parse()?,
        deadline: v["deadline"].as_u64().context("`deadline` is missing")?,
        redundancy: u8::try_from(v["redundancy"].as_u64().context("`redundancy` is missing")?)?,
        preferredProvider: text("preferredProvider")?.parse::<Address>()?,
    })
}
