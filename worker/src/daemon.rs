//! `qor-worker run`: the provider daemon.
//!
//! It checks in with the coordinator, heartbeats, and long-polls for work. Each assignment runs in the
//! sandbox (at most `max-jobs` at once) after its module and inputs are fetched and their hashes
//! checked; the worker commits a seal, uploads the outputs and reveals the signed receipt once every
//! replica has sealed. Storage deals offered to it are fetched, their root recomputed (a mismatch is
//! refused), kept under the data folder within the quota and accepted on chain; challenges are answered
//! from the stored tree.
//!
//! Restarts lose nothing: the coordinator remembers the assignments, and a run is deterministic, so a
//! job in flight is simply run again (its seal still matches); hosted files are re-verified. When the
//! coordinator or the chain is down it retries with backoff. On SIGTERM or Ctrl-C it stops taking
//! work, lets running jobs finish for a grace period, and releases the leases of those that do not.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy_primitives::{B256, U256, keccak256};
use alloy_sol_types::Eip712Domain;
use anyhow::Context;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{Signer, escrow_domain, seal};
use qor_protocol::spec::JobSpec;
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, error, info, info_span, warn};

use crate::chain::Chain;
use crate::client::{ChainInfo, ClientError, Coordinator};
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
    /// How long running jobs may finish after a shutdown signal before their leases are released.
    pub grace: Duration,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Draw progress bars for long downloads.
    pub progress: bool,
    /// Test fault: seal and reveal a corrupted digest (a byzantine provider).
    pub corrupt_digest: bool,
}

/// The daemon's state.
pub struct Daemon {
    cfg: DaemonConfig,
    coordinator: Arc<Coordinator>,
    chain: Option<Chain>,
    domain: Eip712Domain,
    signer: Signer,
    sandbox: Arc<Sandbox>,
    hosting: Hosting,
    slots: Arc<Semaphore>,
    running: Mutex<HashMap<i64, tokio::task::AbortHandle>>,
    storage_busy: Mutex<HashSet<String>>,
    accept_tried: Mutex<HashMap<String, std::time::Instant>>,
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
    /// A daemon for the provider `signer`, talking to `coordinator` (whose chain info is `info`) and,
    /// when given, to the chain (storage deals are accepted there; without it, compute only).
    pub fn new(
        cfg: DaemonConfig,
        coordinator: Coordinator,
        chain: Option<Chain>,
        info: ChainInfo,
        signer: Signer,
    ) -> anyhow::Result<Arc<Self>> {
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
        let sandbox = Sandbox::new()?.with_module_cache(&cfg.data_dir.join("modules"))?;
        let hosting = Hosting::open(&cfg.data_dir)?;
        Ok(Arc::new(Self {
            domain: escrow_domain(info.chain_id, info.job_escrow),
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
            changed: Notify::new(),
            shutdown: CancellationToken::new(),
        }))
    }

    /// Runs until [`Self::shutdown`] is cancelled, then winds down.
    pub async fn run(self: Arc<Self>) -> anyhow::Result<()> {
        let me = self.signer.address();
        info!(provider = %me, coordinator = ?self.coordinator, "starting");
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
        let result = self.clone().work_loop().await;
        heartbeat.abort();
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
            let (h, deal) = (self.hosting.clone(), meta.deal_id.clone());
            match tokio::task::spawn_blocking(move || h.reverify(&deal)).await {
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
                let deal = d["dealId"].as_str().unwrap_or_default().to_string();
                // Offered: fetch and check it. Verified but not accepted on chain (the chain was down,
                // say): accept again, at most every 10 s.
                let due = d["status"] == "offered"
                    || d["status"] == "awaiting_acceptance" && {
                        let mut tried = self.accept_tried.lock().expect("not poisoned");
                        let due = tried.get(&deal).is_none_or(|t| t.elapsed() > Duration::from_secs(10));
                        if due {
                            tried.insert(deal.clone(), std::time::Instant::now());
                        }
                        due
                    };
                if due {
                    started |= self.clone().start_storage(format!("deal:{deal}"), d.clone());
                }
            }
            for c in polled["storage"]["challenges"].as_array().into_iter().flatten() {
                let key = format!("challenge:{}:{}", c["dealId"].as_str().unwrap_or_default(), c["period"]);
                started |= self.clone().start_storage(key, c.clone());
            }
            for p in polled["storage"]["probes"].as_array().into_iter().flatten() {
                started |= self.clone().start_storage(format!("probe:{}", p["probeId"]), p.clone());
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
        let expected: B256 = a["specHash"].as_str().unwrap_or_default().parse().context("the assignment's specHash")?;
        if spec.spec_hash() != expected {
            let why = format!("the spec hashes to {}, not {expected}", spec.spec_hash());
            self.release(id, &why).await;
            return Ok(Done::Released(why));
        }
        info!(module = %spec.module, inputs = spec.inputs.len(), status = %a["status"], "running");

        // Module and inputs, each checked against the spec's hash before anything runs.
        let job_dir = self.cfg.data_dir.join("jobs").join(id.to_string());
        let _ = std::fs::remove_dir_all(&job_dir);
        std::fs::create_dir_all(job_dir.join("in"))?;
        std::fs::create_dir_all(job_dir.join("out"))?;
        // A module this worker ran before is held compiled, already checked against its hash.
        let loaded = self.sandbox.loaded(spec.module);
        let mut fetch = Vec::new();
        if loaded.is_none() {
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
        let module_path = if loaded.is_none() { Some(fetched.remove(0)) } else { None };
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
            Some(loaded) => sandbox.run_module(&spec2, job_id, &loaded, &dir2),
            // Read above whenever nothing was loaded.
            None => sandbox.run(&spec2, job_id, &module.unwrap_or_default(), &dir2),
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
        let body = json!({ "seal": seal(me, job_id, result_digest) });
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
            worker: me,
            resultDigest: result_digest,
            stdoutHash: stdout_hash,
            exitCode: exit_code,
            fuelUsed: fuel_used,
        };
        let signature = self.signer.sign_receipt(&receipt, &self.domain)?;
        let body = json!({
            "receipt": { "jobId": job_id.to_string(), "worker": me, "resultDigest": result_digest, "stdoutHash": stdout_hash,
                         "exitCode": exit_code, "fuelUsed": fuel_used },
            "signature": alloy_primitives::hex::encode_prefixed(signature.as_bytes()),
            "outputs": outputs,
        });
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

    fn start_storage(self: Arc<Self>, key: String, item: Value) -> bool {
        if !self.storage_busy.lock().expect("not poisoned").insert(key.clone()) {
            return false;
        }
        let deal = item["dealId"].as_str().unwrap_or_default().to_string();
        let span = info_span!("deal", deal_id = %deal);
        let this = self.clone();
        tokio::spawn(
            async move {
                let result = if key.starts_with("deal:") { this.host(&item).await } else { this.answer(&item).await };
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

    async fn decline(&self, deal: &str, reason: &str) -> anyhow::Result<()> {
        warn!(reason, "declining the deal");
        self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/decline"), Some(&json!({ "reason": reason }))).await?;
        Ok(())
    }

    async fn host(&self, d: &Value) -> anyhow::Result<()> {
        let deal = d["dealId"].as_str().context("dealId")?.to_string();
        let root: B256 = d["root"].as_str().context("root")?.parse()?;
        let size = d["size"].as_u64().context("size")?;
        let blob: B256 = d["blobHash"].as_str().context("blobHash")?.parse()?;
        if !self.hosting.has(&deal) {
            // The file and its tree (two hashes per 1 KiB chunk, at most) must fit in the quota.
            let need = size + size / 16 + 4096;
            let used = self.hosting.used_bytes()?;
            if used + need > self.cfg.storage_quota_bytes {
                let why = format!("storage quota: {used} of {} bytes used, this file needs {need}", self.cfg.storage_quota_bytes);
                return self.decline(&deal, &why).await;
            }
            info!(size, %root, "fetching the file");
            match self.coordinator.download(blob, &self.hosting.part_path(&deal), self.cfg.progress).await {
                Ok(_) => {}
                Err(ClientError::Io(e)) => return self.decline(&deal, &format!("cannot store the file: {e}")).await,
                Err(e) => return Err(anyhow::anyhow!("fetching the file: {e}")),
            }
            let (hosting, deal2) = (self.hosting.clone(), deal.clone());
            match tokio::task::spawn_blocking(move || hosting.adopt(&deal2, root)).await? {
                Ok(meta) => info!(root = %meta.root, "file verified and stored"),
                Err(HostingError::RootMismatch { computed, expected }) => {
                    warn!(%computed, %expected, "the file does not hash to the deal's root; refusing it");
                    self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/root"), Some(&json!({ "root": computed }))).await?;
                    return Ok(());
                }
                Err(HostingError::Io(e)) => return self.decline(&deal, &format!("cannot store the file: {e}")).await,
                Err(e) => return Err(e.into()),
            }
        }
        let answer = self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/root"), Some(&json!({ "root": root }))).await?;
        if answer["status"] != "hosting" {
            return Ok(());
        }
        match &self.chain {
            Some(chain) => {
                let tx = chain.accept_storage_deal(deal.parse()?).await?;
                info!(%tx, "accepted the deal on chain");
            }
            None => warn!("no chain connection: accept the deal with acceptStorageDeal({deal}) yourself"),
        }
        Ok(())
    }

    /// Answers a period's challenge, or a buyer's probe (`probeId`), with the chunk and its path read
    /// from the hosted file.
    async fn answer(&self, c: &Value) -> anyhow::Result<()> {
        let deal = c["dealId"].as_str().context("dealId")?.to_string();
        let index = c["chunkIndex"].as_u64().context("chunkIndex")?;
        let (hosting, deal2) = (self.hosting.clone(), deal.clone());
        let started = std::time::Instant::now();
        let proof = tokio::task::spawn_blocking(move || hosting.prove(&deal2, index)).await??;
        let body = json!({ "chunk": alloy_primitives::hex::encode_prefixed(&proof.chunk), "path": proof.path });
        if let Some(probe) = c["probeId"].as_i64() {
            self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/probes/{probe}"), Some(&body)).await?;
            info!(probe, chunk = index, took = ?started.elapsed(), "buyer's probe answered");
        } else {
            let period = c["period"].as_u64().context("period")?;
            self.coordinator.signed("POST", &format!("/v1/worker/storage/{deal}/challenges/{period}"), Some(&body)).await?;
            info!(period, chunk = index, took = ?started.elapsed(), "challenge answered");
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
