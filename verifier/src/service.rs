//! The verifier service. One loop, every 100 ms:
//!
//! 1. judges each job whose receipts are all in (`completed` at the coordinator), 16 at a time,
//!    records the verdict there, and queues settlements and refunds; jobs another verifier already
//!    judged (`verified`) are re-judged and queued too (every poll interval), so a restart or a second
//!    verifier picks up where the first left off;
//! 2. sends the queue as `settleComputeJobs` batches once a batch is full or its oldest verdict has
//!    waited long enough, after dropping every job the escrow no longer has open. Each batch is sent
//!    by a task of its own, so up to four are in flight while their blocks come.
//!
//! Another, every poll interval (its transactions wait for their blocks):
//!
//! 3. follows the escrow's events: finalizes batches whose challenge window has closed, and re-runs
//!    challenged jobs to sign the committee's resolution;
//! 4. challenges every active storage deal each period (the index the escrow derives from the period's
//!    seed block), checks the provider's answer against the deal's root, attests passed periods in one
//!    transaction, and settles ended periods, which slashes the missed ones.
//!
//! The service keeps no state of its own that matters: the chain says what is settled, finalized,
//! proven or attested, and the coordinator what was judged. A crash loses at most a queue that the next
//! start rebuilds, and a settlement sent twice is refused by the escrow and dropped from the queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy_primitives::{Address, B256, Signature, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolEvent, SolValue};
use anyhow::{Context, anyhow};
use futures_util::StreamExt;
use qor_protocol::bindings::IJobEscrow::{self, BatchOutcome, ComputeJob, Receipt, Settlement, SettlementBatch};
use qor_protocol::bindings::IStorageMarket::{self, StorageAttestation, StorageDeal};
use qor_protocol::bindings::{IProviderRegistry, IVerifierCommittee};
use qor_protocol::deployment::Deployment;
use qor_protocol::eip712::{
    Signer, challenge_resolution_digest, escrow_domain, market_domain, settlement_batch_digest, storage_attestations_digest,
};
use qor_protocol::merkle::{ChunkProof, chunk_count, verify};
use qor_protocol::spec::JobSpec;
use qor_worker::client::Coordinator;
use qor_worker::sandbox::{Outcome, Sandbox};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::chain::{Chain, SendError};
use crate::config::VerifierConfig;
use crate::judge::{Decision, Job, Replica, SignedReceipt, judge_with};

/// How often the completed jobs are listed for judging.
const JUDGE_POLL: Duration = Duration::from_millis(100);
/// Jobs judged at once (each is a few reads of the coordinator and the chain).
const JUDGING_AT_ONCE: usize = 16;
/// Settlement batches sent and not yet landed, at most.
const BATCHES_IN_FLIGHT: usize = 4;
/// How long a registry read or the head is used before it is read again.
const FRESH: Duration = Duration::from_secs(1);

/// Counters served at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Jobs judged.
    pub jobs_verified: AtomicU64,
    /// Receipts that lost (another digest, rejected or missing).
    pub mismatches: AtomicU64,
    /// Receipts rejected by a check (forged, foreign, replayed, unsealed...).
    pub rejected_receipts: AtomicU64,
    /// Jobs escalated to more replicas.
    pub escalations: AtomicU64,
    /// Jobs re-run by the verifier itself.
    pub reexecutions: AtomicU64,
    /// Jobs settled (including refunds) by this verifier's transactions.
    pub settlements_sent: AtomicU64,
    /// Settlement transactions that landed.
    pub batches_sent: AtomicU64,
    /// Settlements the escrow refused because the job was no longer open (another verifier, a restart).
    pub settlements_already_done: AtomicU64,
    /// Gas used by every transaction this verifier sent.
    pub gas_used: AtomicU64,
    /// Wei paid for that gas.
    pub gas_spent_wei: AtomicU64,
    /// Batches finalized.
    pub finalized: AtomicU64,
    /// Challenges resolved.
    pub challenges_resolved: AtomicU64,
    /// Storage periods passed (answer checked).
    pub storage_passed: AtomicU64,
    /// Storage periods missed or answered wrong.
    pub storage_missed: AtomicU64,
    /// Storage periods attested on chain.
    pub storage_attested: AtomicU64,
}

impl Metrics {
    /// Prometheus text format.
    pub fn render(&self, queued: usize) -> String {
        let mut out = String::new();
        let rows: [(&str, &str, &AtomicU64); 15] = [
            ("qor_verifier_jobs_verified_total", "Jobs judged", &self.jobs_verified),
            ("qor_verifier_mismatches_total", "Replicas that lost a verdict", &self.mismatches),
            ("qor_verifier_rejected_receipts_total", "Receipts rejected by a check", &self.rejected_receipts),
            ("qor_verifier_escalations_total", "Jobs escalated to more replicas", &self.escalations),
            ("qor_verifier_reexecutions_total", "Jobs re-run by the verifier", &self.reexecutions),
            ("qor_verifier_settlements_sent_total", "Jobs settled by this verifier", &self.settlements_sent),
            ("qor_verifier_batches_sent_total", "Settlement transactions landed", &self.batches_sent),
            ("qor_verifier_settlements_already_done_total", "Jobs found settled by someone else", &self.settlements_already_done),
            ("qor_verifier_gas_used_total", "Gas used by this verifier's transactions", &self.gas_used),
            ("qor_verifier_gas_spent_wei_total", "Wei paid for gas", &self.gas_spent_wei),
            ("qor_verifier_batches_finalized_total", "Batches finalized", &self.finalized),
            ("qor_verifier_challenges_resolved_total", "Challenges resolved", &self.challenges_resolved),
            ("qor_verifier_storage_periods_passed_total", "Storage periods whose answer checked out", &self.storage_passed),
            ("qor_verifier_storage_periods_missed_total", "Storage periods missed or answered wrong", &self.storage_missed),
            ("qor_verifier_storage_periods_attested_total", "Storage periods attested on chain", &self.storage_attested),
        ];
        for (name, help, v) in rows {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Ordering::Relaxed)));
        }
        out.push_str(&format!(
            "# HELP qor_verifier_queued Settlements waiting for a batch\n# TYPE qor_verifier_queued gauge\nqor_verifier_queued {queued}\n"
        ));
        out
    }
}

/// A settlement waiting for its batch.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The settlement, its winner and loser bits over `providers`.
    pub settlement: Settlement,
    /// The job as funded on chain.
    pub job: ComputeJob,
    /// The job's replicas' providers, ascending.
    pub providers: Vec<Address>,
    /// When the verdict was reached.
    pub since: Instant,
    /// Send it alone: it was in a batch the escrow refused for a reason other than a settled job.
    pub solo: bool,
}

/// What the verifier knows of a storage period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    /// Challenged; waiting for the answer until the period ends.
    Relayed,
    /// The answer checked out; to attest.
    Passed,
    /// Attested on chain, proven by the provider, or settled.
    Done,
    /// No valid answer in time: left pending, so settling the period slashes the provider.
    Missed,
}

/// What [`Service::assess`] concludes.
#[derive(Debug)]
enum Assessment {
    /// Nobody can settle it now: already settled, past its deadline, or not the job funded (why, for
    /// the log; empty when there is nothing to say).
    Closed(String),
    /// The verdict, the re-run's digest if any, the settlement it leads to, and the verdict as the
    /// coordinator records it.
    Judged { verdict: crate::judge::Verdict, reference: Option<B256>, queued: Option<Box<Queued>>, body: Value },
}

/// A settled batch as its event told it.
#[derive(Debug, Clone)]
struct Batch {
    window_end: u64,
    outcome: BatchOutcome,
    digests: Vec<B256>,
    finalized: bool,
}

/// Process-level faults the crash tests inject (`QOR_VERIFIER_CRASH`): exit right after signing a
/// settlement batch, or right after sending it, before its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// Exit after signing, before sending.
    AfterSign,
    /// Exit after sending, before the receipt.
    AfterSend,
}

impl Crash {
    /// From `QOR_VERIFIER_CRASH` (`after-sign`, `after-send`).
    pub fn from_env() -> Option<Self> {
        match std::env::var("QOR_VERIFIER_CRASH").ok()?.as_str() {
            "after-sign" => Some(Self::AfterSign),
            "after-send" => Some(Self::AfterSend),
            _ => None,
        }
    }
}

/// The running service.
pub struct Service {
    cfg: VerifierConfig,
    coordinator: Coordinator,
    chain: Chain,
    /// The pinned deployment (from the config; the coordinator must agree with it).
    info: Deployment,
    /// How deep the coordinator lets a block get before acting on its events (liveness only).
    confirmations: u64,
    signer: Signer,
    domain: Eip712Domain,
    /// The storage market's, for attestations.
    market_domain: Eip712Domain,
    /// Counters.
    pub metrics: Metrics,
    queue: Mutex<BTreeMap<U256, Queued>>,
    /// Queued jobs in a batch being sent now, and how many batches that is.
    sending: Mutex<(HashSet<U256>, usize)>,
    /// Jobs the escrow no longer has open, or that cannot be settled: never looked at again.
    closed: Mutex<HashSet<U256>>,
    jobs: Mutex<HashMap<U256, ComputeJob>>,
    /// The first block whose `ComputeJobCreated` events are not read into `jobs` yet.
    created_cursor: AtomicU64,
    /// Registry reads and the head, kept for [`FRESH`] (see [`Service::provider`]).
    providers: Mutex<HashMap<Address, (Instant, bool, U256)>>,
    head: Mutex<Option<(Instant, u64, u64)>>,
    /// Held while co-signing, which the rounds and the batches' senders both do.
    cosigning: Mutex<()>,
    batches: Mutex<BTreeMap<U256, Batch>>,
    challenges: Mutex<BTreeMap<U256, U256>>,
    /// By deal, provider (a re-opened deal's next provider starts afresh) and period.
    periods: Mutex<HashMap<(U256, Address, u64), Period>>,
    /// Failed re-runs of challenged jobs, per job (for the log).
    rerun_failures: Mutex<HashMap<U256, u32>>,
    /// Proposals this member signed (or refused to): never looked at again.
    cosigned: Mutex<HashSet<B256>>,
    cursor: AtomicU64,
    crash: Option<Crash>,
    sandbox: Option<Arc<Sandbox>>,
    last_tick: Mutex<Option<Instant>>,
    last_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").field("verifier", &self.chain.me).field("escrow", &self.info.job_escrow).finish_non_exhaustive()
    }
}

fn parse<T: std::str::FromStr>(v: &Value, what: &str) -> anyhow::Result<T> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(anyhow!("{what}: expected a string or number, got {other}")),
    };
    text.parse().map_err(|_| anyhow!("{what}: cannot parse `{text}`"))
}

fn load(c: &AtomicU64, by: u64) {
    c.fetch_add(by, Ordering::Relaxed);
}

impl Service {
    /// Connects to the coordinator and the chain and checks that the key is a committee member.
    pub async fn connect(cfg: VerifierConfig, key: alloy::signers::local::PrivateKeySigner) -> anyhow::Result<Arc<Self>> {
        let signer = Signer::from_bytes(&key.to_bytes()).map_err(|e| anyhow!("the key: {e}"))?;
        let coordinator = Coordinator::new(cfg.coordinator_base(), signer.clone());
        let info = cfg.deployment;
        let policy = crate::chain::SendPolicy {
            receipt_timeout: Duration::from_secs(cfg.receipt_timeout_secs),
            bump_percent: cfg.fee_bump_percent,
            max_sends: cfg.max_sends,
        };
        let chain = Chain::connect(&cfg.rpc_url, key, &info, policy).await?;
        let theirs = coordinator.chain().await.map_err(|e| anyhow!("reaching the coordinator at {}: {e}", cfg.coordinator))?;
        qor_chain::pinned::check_coordinator(&cfg.coordinator, &info, &theirs.deployment())?;
        let member =
            chain.call(info.verifier_committee, IVerifierCommittee::isMemberCall { account: chain.me }).await.context("isMember")?;
        if !member {
            anyhow::bail!("{:#x} is not a member of the VerifierCommittee at {:#x}", chain.me, info.verifier_committee);
        }
        // Re-runs: spot checks and challenged jobs.
        let sandbox = Some(Arc::new(Sandbox::new().map_err(|e| anyhow!("the sandbox: {e}"))?));
        std::fs::create_dir_all(&cfg.work_dir).with_context(|| format!("creating {}", cfg.work_dir.display()))?;
        let domain = escrow_domain(info.chain_id, info.job_escrow);
        let market_domain = market_domain(info.chain_id, info.storage_market);
        let cursor = AtomicU64::new(info.deploy_block);
        let created_cursor = AtomicU64::new(chain.head().await.context("reading the head")?.0);
        Ok(Arc::new(Self {
            coordinator,
            chain,
            info,
            confirmations: theirs.confirmations,
            signer,
            domain,
            market_domain,
            metrics: Metrics::default(),
            queue: Mutex::default(),
            sending: Mutex::default(),
            closed: Mutex::default(),
            jobs: Mutex::default(),
            created_cursor,
            providers: Mutex::default(),
            head: Mutex::default(),
            cosigning: Mutex::default(),
            batches: Mutex::default(),
            challenges: Mutex::default(),
            periods: Mutex::default(),
            cosigned: Mutex::default(),
            rerun_failures: Mutex::default(),
            cursor,
            crash: Crash::from_env(),
            sandbox,
            last_tick: Mutex::default(),
            last_error: Mutex::default(),
            cfg,
        }))
    }

    /// The committee key's address.
    pub fn address(&self) -> Address {
        self.chain.me
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        info!(verifier = %self.chain.me, escrow = %self.info.job_escrow, "verifying");
        tokio::pin!(shutdown);
        let judging = tokio::spawn(self.clone().judge_loop());
        loop {
            let started = Instant::now();
            let result = self.tick().await;
            match &result {
                Ok(()) => *self.last_error.lock().await = None,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "this round failed; retrying");
                    *self.last_error.lock().await = Some(format!("{e:#}"));
                }
            }
            *self.last_tick.lock().await = Some(Instant::now());
            let wait = self.cfg.poll().saturating_sub(started.elapsed());
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        judging.abort();
        info!("stopped");
    }

    /// Judges completed jobs as they come and sends the batches they fill, apart from the rounds
    /// (whose transactions wait for blocks): every [`JUDGE_POLL`] the completed ones, every poll
    /// interval the verified ones too.
    async fn judge_loop(self: Arc<Self>) {
        let mut verified_at = Instant::now();
        loop {
            let started = Instant::now();
            let verified = verified_at.elapsed() >= self.cfg.poll();
            if verified {
                verified_at = Instant::now();
            }
            if let Err(e) = self.judge_jobs(verified).await {
                warn!(error = %format!("{e:#}"), "judging failed; retrying");
                *self.last_error.lock().await = Some(format!("{e:#}"));
            }
            self.flush().await;
            tokio::time::sleep(JUDGE_POLL.min(self.cfg.poll()).saturating_sub(started.elapsed())).await;
        }
    }

    async fn tick(self: &Arc<Self>) -> anyhow::Result<()> {
        // Other members' proposals first: they may be waiting on this member's signature.
        let threshold = self.chain.call(self.info.verifier_committee, IVerifierCommittee::thresholdCall {}).await?;
        if threshold > U256::from(1) {
            self.cosign_proposals().await?;
        }
        self.follow_events().await?;
        if self.cfg.finalize {
            self.finalize_due().await?;
        }
        self.resolve_challenges().await?;
        if self.cfg.storage {
            self.check_storage().await?;
        }
        Ok(())
    }

    /// `/health`.
    pub async fn health(&self) -> Value {
        let last = self.last_tick.lock().await.map(|t| t.elapsed().as_millis() as u64);
        let healthy = last.is_some_and(|ms| ms < 10 * self.cfg.poll_ms + 30_000) && self.last_error.lock().await.is_none();
        json!({
            "ok": healthy,
            "verifier": self.chain.me,
            "lastRoundMsAgo": last,
            "lastError": *self.last_error.lock().await,
            "queued": self.queue.lock().await.len(),
            "chainId": self.info.chain_id,
            "escrow": self.info.job_escrow,
        })
    }

    /// `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.metrics.render(self.queue.lock().await.len())
    }

    // ------------------------------------------------------------------ compute

    /// The job as funded on chain (its `ComputeJobCreated` event), cached.
    async fn onchain_job(&self, job_id: U256) -> anyhow::Result<ComputeJob> {
        if let Some(j) = self.jobs.lock().await.get(&job_id) {
            return Ok(j.clone());
        }
        let filter = Filter::new()
            .address(self.info.job_escrow)
            .event_signature(IJobEscrow::ComputeJobCreated::SIGNATURE_HASH)
            .topic1(B256::from(job_id))
            .from_block(self.info.deploy_block);
        let logs = self.chain.provider().get_logs(&filter).await.context("reading ComputeJobCreated")?;
        let log = logs.first().ok_or_else(|| anyhow!("job {job_id} has no ComputeJobCreated event on chain"))?;
        let job = IJobEscrow::ComputeJobCreated::decode_log(&log.inner)?.data.job;
        self.jobs.lock().await.insert(job_id, job.clone());
        Ok(job)
    }

    /// Reads the `ComputeJobCreated` events since the last read into the cache [`Self::onchain_job`]
    /// looks in first: one query for a round's jobs rather than one per job. It reads only blocks as
    /// deep as the coordinator's confirmations (a job in a newer block cannot have run yet, and the
    /// block may still be replaced). The reading starts at the head the service started at (older
    /// jobs are read one by one), and jobs past their deadline leave the cache: nobody can settle them.
    async fn read_created(&self) -> anyhow::Result<()> {
        let (head, now) = self.head().await?;
        let Some(deep) = head.checked_sub(self.confirmations) else { return Ok(()) };
        let mut from = self.created_cursor.load(Ordering::Relaxed);
        while from <= deep {
            let to = (from + 9_999).min(deep);
            let filter = Filter::new()
                .address(self.info.job_escrow)
                .event_signature(IJobEscrow::ComputeJobCreated::SIGNATURE_HASH)
                .from_block(from)
                .to_block(to);
            let logs = self.chain.provider().get_logs(&filter).await.context("reading ComputeJobCreated")?;
            let closed = self.closed.lock().await;
            let mut jobs = self.jobs.lock().await;
            for log in logs {
                let created = IJobEscrow::ComputeJobCreated::decode_log(&log.inner)?.data;
                if !closed.contains(&created.jobId) {
                    jobs.insert(created.jobId, created.job);
                }
            }
            jobs.retain(|_, job| job.deadline > now);
            from = to + 1;
            self.created_cursor.store(from, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The latest block's number and timestamp, read at most [`FRESH`] ago.
    async fn head(&self) -> anyhow::Result<(u64, u64)> {
        let mut head = self.head.lock().await;
        if let Some((at, number, timestamp)) = *head
            && at.elapsed() < FRESH
        {
            return Ok((number, timestamp));
        }
        let (number, timestamp) = self.chain.head().await?;
        *head = Some((Instant::now(), number, timestamp));
        Ok((number, timestamp))
    }

    /// Whether `provider` is registered, and its price per fuel, read at most [`FRESH`] ago. The
    /// escrow checks registration again when the batch settles.
    async fn provider(&self, provider: Address) -> anyhow::Result<(bool, U256)> {
        if let Some((at, registered, price)) = self.providers.lock().await.get(&provider).copied()
            && at.elapsed() < FRESH
        {
            return Ok((registered, price));
        }
        let registered = self.chain.call(self.info.provider_registry, IProviderRegistry::isRegisteredCall { provider }).await?;
        let price = U256::from(
            self.chain.call(self.info.provider_registry, IProviderRegistry::getProviderCall { provider }).await?.metadata.pricePerFuel,
        );
        self.providers.lock().await.insert(provider, (Instant::now(), registered, price));
        Ok((registered, price))
    }

    async fn job_status(&self, job_id: U256) -> anyhow::Result<u8> {
        Ok(self.chain.call(self.info.job_escrow, IJobEscrow::computeJobStatusCall { jobId: job_id }).await? as u8)
    }

    /// Judges the jobs whose receipts are all in, and with `verified` those another verifier (or
    /// this one before a restart) judged, [`JUDGING_AT_ONCE`] at a time.
    async fn judge_jobs(&self, verified: bool) -> anyhow::Result<()> {
        let statuses: &[&str] = if verified { &["completed", "verified"] } else { &["completed"] };
        for status in statuses {
            let list =
                self.coordinator.get(&format!("/v1/jobs?status={status}&limit=1000")).await.map_err(|e| anyhow!("listing jobs: {e}"))?;
            let mut ids = Vec::new();
            for j in list["jobs"].as_array().cloned().unwrap_or_default() {
                let job_id: U256 = parse(&j["jobId"], "jobId")?;
                if self.closed.lock().await.contains(&job_id) || self.queue.lock().await.contains_key(&job_id) {
                    continue;
                }
                ids.push(job_id);
            }
            if ids.is_empty() {
                continue;
            }
            self.read_created().await?;
            let record = *status == "completed";
            futures_util::stream::iter(ids)
                .for_each_concurrent(JUDGING_AT_ONCE, |job_id| async move {
                    if let Err(e) = self.judge_job(job_id, record).await {
                        warn!(job_id = %job_id, error = %format!("{e:#}"), "could not judge the job");
                    }
                })
                .await;
        }
        Ok(())
    }

    /// Everything this verifier concludes about a job, without acting on it: whether it can be
    /// settled at all, the verdict, and the settlement it leads to. Co-signers run it too, to check a
    /// proposed settlement against their own.
    async fn assess(&self, job_id: U256) -> anyhow::Result<Assessment> {
        let detail = self.coordinator.get(&format!("/v1/jobs/{job_id}")).await.map_err(|e| anyhow!("reading job {job_id}: {e}"))?;
        let mut onchain = self.onchain_job(job_id).await?;
        let spec_hash: B256 = parse(&detail["specHash"], "specHash")?;
        if spec_hash != onchain.specHash {
            // Read again, not from the cache, before concluding anything.
            self.jobs.lock().await.remove(&job_id);
            onchain = self.onchain_job(job_id).await?;
        }
        if spec_hash != onchain.specHash {
            return Ok(Assessment::Closed(format!(
                "the coordinator's spec {spec_hash} is not the one funded on chain ({}); not judging",
                onchain.specHash
            )));
        }
        let status = self.job_status(job_id).await?;
        if status != 1 {
            // Settled, refunded or reclaimed already (by us before a restart, or by another verifier).
            return Ok(Assessment::Closed(String::new()));
        }
        let (_, now) = self.head().await?;
        if onchain.deadline <= now + 30 {
            return Ok(Assessment::Closed(format!(
                "the job's deadline ({}) has passed or is about to; the buyer can reclaim it",
                onchain.deadline
            )));
        }

        // Every replica the coordinator lists, with what its provider signed: the judge counts a
        // replica for or against its provider only on that (an invented one did not run).
        let receipts = detail["receipts"].as_array().cloned().unwrap_or_default();
        let signature = |v: &Value| v.as_str().and_then(|s| s.parse::<Signature>().ok());
        let mut replicas = Vec::new();
        for r in detail["replicas"].as_array().cloned().unwrap_or_default() {
            let provider: Address = parse(&r["provider"], "provider")?;
            if replicas.iter().any(|x: &Replica| x.provider == provider) {
                continue;
            }
            let seal = r["seal"].as_str().and_then(|s| s.parse::<B256>().ok()).zip(signature(&r["sealSignature"]));
            let receipt = match receipts.iter().find(|x| x["worker"].as_str().and_then(|w| w.parse::<Address>().ok()) == Some(provider)) {
                Some(x) => Some(SignedReceipt {
                    receipt: Receipt {
                        jobId: job_id,
                        specHash: x["specHash"].as_str().and_then(|h| h.parse().ok()).unwrap_or_default(),
                        worker: provider,
                        resultDigest: parse(&x["resultDigest"], "resultDigest")?,
                        stdoutHash: parse(&x["stdoutHash"], "stdoutHash")?,
                        exitCode: parse(&x["exitCode"], "exitCode")?,
                        fuelUsed: parse(&x["fuelUsed"], "fuelUsed")?,
                    },
                    signature: signature(&x["signature"])
                        .ok_or_else(|| anyhow!("job {job_id}: the receipt of {provider} has no readable signature"))?,
                }),
                None => None,
            };
            let (registered, _) = self.provider(provider).await?;
            replicas.push(Replica { provider, acceptance: signature(&r["acceptance"]), seal, receipt, registered });
        }
        let job = Job { id: job_id, spec_hash: onchain.specHash, redundancy: onchain.redundancy };
        let wanted = detail["redundancy"].as_u64().unwrap_or_default().min(u64::from(u8::MAX)) as u8;

        let reference = if self.should_reexecute(job_id) { self.reexecute(job_id, spec_hash).await.ok() } else { None };
        let verdict = judge_with(&job, &self.domain, &replicas, wanted, self.cfg.max_replicas, reference);
        let zero = Settlement { jobId: job_id, resultDigest: B256::ZERO, price: U256::ZERO, winners: U256::ZERO, losers: U256::ZERO };
        let (settlement, body) = match &verdict.decision {
            Decision::Settle { result_digest, winners, losers } => {
                let price = self.price(winners, &replicas, onchain.budget).await?;
                (
                    Some((Settlement { resultDigest: *result_digest, price, ..zero }, winners.clone(), losers.clone())),
                    json!({ "outcome": "settle", "resultDigest": result_digest, "winners": winners, "losers": losers }),
                )
            }
            Decision::Escalate { replicas: wanted } => (None, json!({ "outcome": "escalate", "replicas": wanted })),
            Decision::Refund => (Some((zero, vec![], vec![])), json!({ "outcome": "refund" })),
        };
        let queued = settlement.map(|(mut s, winners, losers)| {
            let mut providers: Vec<Address> = winners.iter().chain(&losers).copied().collect();
            providers.sort();
            for w in &winners {
                s.winners |= U256::from(1) << providers.iter().position(|p| p == w).expect("listed");
            }
            for l in &losers {
                s.losers |= U256::from(1) << providers.iter().position(|p| p == l).expect("listed");
            }
            Box::new(Queued { settlement: s, job: onchain, providers, since: Instant::now(), solo: false })
        });
        Ok(Assessment::Judged { verdict, reference, queued, body })
    }

    async fn judge_job(&self, job_id: U256, record: bool) -> anyhow::Result<()> {
        let (verdict, reference, queued, body) = match self.assess(job_id).await? {
            Assessment::Closed(why) => {
                if !why.is_empty() {
                    warn!(job_id = %job_id, "{why}");
                }
                self.closed.lock().await.insert(job_id);
                return Ok(());
            }
            Assessment::Judged { verdict, reference, queued, body } => (verdict, reference, queued, body),
        };
        load(&self.metrics.jobs_verified, 1);
        for c in &verdict.checks {
            if let Err(reason) = &c.result {
                if *reason != crate::judge::Rejection::NotRevealed {
                    load(&self.metrics.rejected_receipts, 1);
                }
                let counts = match &c.standing {
                    crate::judge::Standing::DidNotRun(_) => "did not run: no pay, no slash, no vote",
                    crate::judge::Standing::Fault(_) => "signed evidence: a loss",
                    _ => "no vote",
                };
                warn!(job_id = %job_id, provider = %c.provider, reason = %reason, counts, "receipt rejected");
            }
        }
        match &verdict.decision {
            Decision::Settle { result_digest, winners, losers } => {
                load(&self.metrics.mismatches, losers.len() as u64);
                if let Some(r) = reference.filter(|r| r != result_digest) {
                    warn!(job_id = %job_id, settled = %result_digest, rerun = %r, "the verifier's own run disagrees with the majority");
                }
                let price = queued.as_ref().map(|q| q.settlement.price).unwrap_or_default();
                info!(job_id = %job_id, digest = %result_digest, winners = winners.len(), losers = losers.len(), %price, "settle");
            }
            Decision::Escalate { replicas } => {
                info!(job_id = %job_id, replicas, "no majority; asking for more replicas");
                load(&self.metrics.escalations, 1);
            }
            Decision::Refund => info!(job_id = %job_id, "no majority at the replica cap; refunding the buyer"),
        }
        if record {
            match self.coordinator.signed("POST", &format!("/v1/verifier/jobs/{job_id}/verdict"), Some(&body)).await {
                Ok(_) => {}
                // Another verifier recorded first; the chain decides what is settled.
                Err(e) if e.code() == Some("not_completed") => {}
                Err(e) => return Err(anyhow!("recording the verdict on job {job_id}: {e}")),
            }
        }
        if let Some(q) = queued {
            self.queue.lock().await.insert(job_id, *q);
        }
        Ok(())
    }

    /// What the buyer pays: each winner's asking price (wei per fuel, from the registry) times the
    /// fuel the job used, for every winner at the highest of their prices, never above the budget.
    async fn price(&self, winners: &[Address], replicas: &[Replica], budget: U256) -> anyhow::Result<U256> {
        let mut per_fuel = U256::ZERO;
        let mut fuel = 0u64;
        for w in winners {
            per_fuel = per_fuel.max(self.provider(*w).await?.1);
            if let Some(r) = replicas.iter().find(|r| r.provider == *w).and_then(|r| r.receipt.as_ref()) {
                fuel = fuel.max(r.receipt.fuelUsed);
            }
        }
        Ok((per_fuel * U256::from(fuel) * U256::from(winners.len())).min(budget))
    }

    fn should_reexecute(&self, job_id: U256) -> bool {
        if self.cfg.reexec_fraction <= 0.0 {
            return false;
        }
        // A deterministic draw per (verifier, job): restarts re-run the same jobs.
        let h = keccak256((self.chain.me, job_id).abi_encode());
        let draw = u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) as f64 / u64::MAX as f64;
        draw < self.cfg.reexec_fraction
    }

    /// Runs the job in the same sandbox the workers use; returns its result digest.
    async fn reexecute(&self, job_id: U256, spec_hash: B256) -> anyhow::Result<B256> {
        let sandbox = self.sandbox.clone().ok_or_else(|| anyhow!("no sandbox"))?;
        let spec_json = self.coordinator.get(&format!("/v1/specs/{spec_hash}")).await.map_err(|e| anyhow!("reading the spec: {e}"))?;
        let spec = JobSpec::from_json(&serde_json::to_vec(&spec_json["spec"])?).map_err(|e| anyhow!("the spec: {e}"))?;
        // The spec funded on chain, or nothing is run: the coordinator could serve another program.
        if spec.spec_hash() != spec_hash {
            anyhow::bail!(
                "the coordinator's spec hashes to {}, job {job_id} was funded with {spec_hash}; not running it",
                spec.spec_hash()
            );
        }
        let dir = self.cfg.work_dir.join(format!("job-{job_id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("in"))?;
        std::fs::create_dir_all(dir.join("out"))?;
        let module = self.blob(spec.module).await?;
        for input in &spec.inputs {
            let src = self.blob(input.hash).await?;
            let dest = dir.join("in").join(&input.path);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(src, dest)?;
        }
        let module = std::fs::read(module)?;
        let dir2 = dir.clone();
        let outcome = tokio::task::spawn_blocking(move || sandbox.run(&spec, &module, &dir2)).await??;
        let _ = std::fs::remove_dir_all(&dir);
        load(&self.metrics.reexecutions, 1);
        match outcome {
            Outcome::Completed { result_digest, .. } => {
                info!(job_id = %job_id, digest = %result_digest, "re-executed");
                Ok(result_digest)
            }
            Outcome::Failed { failure, .. } => Err(anyhow!("the re-run failed: {failure:?}")),
        }
    }

    async fn blob(&self, hash: B256) -> anyhow::Result<PathBuf> {
        let dir = self.cfg.work_dir.join("blobs");
        let path = dir.join(format!("{hash:x}"));
        if !path.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            self.coordinator.download(hash, &path, false).await.map_err(|e| anyhow!("downloading {hash}: {e}"))?;
        }
        Ok(path)
    }

    /// Sends queued settlements: a full batch at once, a partial one once its oldest verdict has waited
    /// `batch-max-wait-ms`. Each batch is sent by a task of its own, so a batch that fills while the
    /// one before it waits for its block goes out at once (up to [`BATCHES_IN_FLIGHT`]).
    async fn flush(self: &Arc<Self>) {
        loop {
            let picked = {
                let queue = self.queue.lock().await;
                let mut sending = self.sending.lock().await;
                if sending.1 >= BATCHES_IN_FLIGHT {
                    return;
                }
                let waiting: Vec<&Queued> = queue.values().filter(|q| !sending.0.contains(&q.settlement.jobId)).collect();
                let Some(oldest) = waiting.iter().map(|q| q.since).min() else { return };
                let due = waiting.len() >= self.cfg.batch_size || oldest.elapsed() >= Duration::from_millis(self.cfg.batch_max_wait_ms);
                if !due {
                    return;
                }
                let picked = pick_batch(waiting, self.cfg.batch_size);
                if picked.is_empty() {
                    return;
                }
                sending.0.extend(picked.iter().map(|q| q.settlement.jobId));
                sending.1 += 1;
                picked
            };
            let full = picked.len() >= self.cfg.batch_size;
            let ids: Vec<U256> = picked.iter().map(|q| q.settlement.jobId).collect();
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.send_batch(picked).await {
                    warn!(error = %format!("{e:#}"), "sending a batch failed; its jobs stay queued");
                    *this.last_error.lock().await = Some(format!("{e:#}"));
                }
                let mut sending = this.sending.lock().await;
                for id in &ids {
                    sending.0.remove(id);
                }
                sending.1 -= 1;
            });
            if !full {
                return;
            }
        }
    }

    async fn send_batch(&self, picked: Vec<Queued>) -> anyhow::Result<()> {
        // Only jobs the escrow still has open: the rest were settled by us before a crash, or by
        // another verifier.
        let ids: Vec<U256> = picked.iter().map(|q| q.settlement.jobId).collect();
        let statuses: Vec<anyhow::Result<u8>> =
            futures_util::stream::iter(ids).map(|id| self.job_status(id)).buffered(JUDGING_AT_ONCE).collect().await;
        let mut open = Vec::with_capacity(picked.len());
        for (q, status) in picked.into_iter().zip(statuses) {
            if status? == 1 {
                open.push(q);
            } else {
                info!(job_id = %q.settlement.jobId, "already settled on chain; dropping it from the queue");
                load(&self.metrics.settlements_already_done, 1);
                self.forget(q.settlement.jobId).await;
            }
        }
        if open.is_empty() {
            return Ok(());
        }
        // Signed for the next hour of chain time: a batch that lands later is refused, not replayed.
        let (_, now) = self.chain.head().await?;
        let (batch, jobs) = build_batch(&open, now + SIGNATURES_VALID_SECS);
        let digest = settlement_batch_digest(&batch, &self.domain);
        let payload = json!({ "calldata": alloy_primitives::hex::encode_prefixed((batch.clone(), jobs.clone()).abi_encode_params()) });
        let signatures = self.signatures(Kind::Settlement, digest, payload).await?;
        if self.crash == Some(Crash::AfterSign) {
            error!("QOR_VERIFIER_CRASH=after-sign: exiting after signing the batch");
            std::process::exit(86);
        }
        let ids: Vec<String> = open.iter().map(|q| q.settlement.jobId.to_string()).collect();
        let call = IJobEscrow::settleComputeJobsCall { batch, jobs, signatures };
        if self.crash == Some(Crash::AfterSend) {
            // Send, and exit before the receipt.
            let sent = self.chain.send_no_wait(self.info.job_escrow, &call).await;
            error!(?sent, "sent");
            error!("QOR_VERIFIER_CRASH=after-send: exiting before the receipt");
            std::process::exit(86);
        }
        match self.chain.send(self.info.job_escrow, &call, "settleComputeJobs").await {
            Ok(receipt) => {
                let n = open.len() as u64;
                load(&self.metrics.settlements_sent, n);
                load(&self.metrics.batches_sent, 1);
                load(&self.metrics.gas_used, receipt.gas_used);
                load(&self.metrics.gas_spent_wei, Chain::fee_paid(&receipt).saturating_to::<u64>());
                info!(tx = %receipt.transaction_hash, jobs = %ids.join(","), gas = receipt.gas_used, gas_per_job = receipt.gas_used / n, "settled");
                for skipped in receipt.inner.logs().iter().filter_map(|l| IJobEscrow::ComputeJobSkipped::decode_log(&l.inner).ok()) {
                    warn!(job_id = %skipped.data.jobId, "not settled: its deadline passed while the batch was in flight");
                }
                for q in &open {
                    self.forget(q.settlement.jobId).await;
                }
                Ok(())
            }
            Err(SendError::Refused { reason, .. }) => {
                warn!(jobs = %ids.join(","), reason = %reason, "the escrow refused the batch; re-checking its jobs");
                let mut dropped = 0;
                for q in &open {
                    if self.job_status(q.settlement.jobId).await? != 1 {
                        load(&self.metrics.settlements_already_done, 1);
                        self.forget(q.settlement.jobId).await;
                        dropped += 1;
                    }
                }
                if dropped == 0 {
                    if open.len() == 1 {
                        error!(job_id = %open[0].settlement.jobId, reason = %reason, "the escrow refuses this settlement; giving up on it");
                        self.forget(open[0].settlement.jobId).await;
                    } else {
                        // Something in the batch is refused: send each alone to find it.
                        let mut queue = self.queue.lock().await;
                        for q in &open {
                            if let Some(x) = queue.get_mut(&q.settlement.jobId) {
                                x.solo = true;
                            }
                        }
                    }
                }
                Ok(())
            }
            Err(e @ SendError::Transport { .. }) => Err(e.into()),
        }
    }

    async fn forget(&self, job_id: U256) {
        self.queue.lock().await.remove(&job_id);
        self.closed.lock().await.insert(job_id);
        self.jobs.lock().await.remove(&job_id);
    }

    /// The committee's signatures of `digest`, ascending by signer as the committee contract wants.
    /// With a threshold of one, this member's alone. Above it, the digest is proposed through the
    /// coordinator with `payload` (what it is of) and this member's signature, and the others'
    /// signatures are awaited, co-signing their proposals meanwhile so that two members waiting on
    /// each other never deadlock.
    async fn signatures(&self, kind: Kind, digest: B256, payload: Value) -> anyhow::Result<Vec<alloy_primitives::Bytes>> {
        let threshold: usize = self.chain.call(self.info.verifier_committee, IVerifierCommittee::thresholdCall {}).await?.to();
        let own = self.signer.sign_hash(&digest).map_err(|e| anyhow!("signing: {e}"))?;
        if threshold <= 1 {
            return Ok(vec![own.as_bytes().to_vec().into()]);
        }
        let body = json!({ "kind": kind.as_str(), "digest": digest, "payload": payload,
                           "signature": alloy_primitives::hex::encode_prefixed(own.as_bytes()) });
        self.coordinator.signed("POST", "/v1/verifier/proposals", Some(&body)).await.map_err(|e| anyhow!("proposing {digest}: {e}"))?;
        self.cosigned.lock().await.insert(digest);
        info!(kind = kind.as_str(), %digest, threshold, "proposed; waiting for the committee's signatures");
        let deadline = Instant::now() + Duration::from_millis(self.cfg.cosign_timeout_ms);
        loop {
            let p =
                self.coordinator.get(&format!("/v1/verifier/proposals/{digest}")).await.map_err(|e| anyhow!("reading {digest}: {e}"))?;
            let mut sigs: Vec<(Address, alloy_primitives::Bytes)> = Vec::new();
            for s in p["signatures"].as_array().into_iter().flatten() {
                let bytes = s["signature"].as_str().and_then(|h| alloy_primitives::hex::decode(h).ok()).unwrap_or_default();
                let Ok(sig) = Signature::from_raw(&bytes) else { continue };
                // Only signatures of this digest by current members count.
                let Ok(signer) = qor_protocol::eip712::recover(&digest, &sig) else { continue };
                if self.chain.call(self.info.verifier_committee, IVerifierCommittee::isMemberCall { account: signer }).await? {
                    sigs.push((signer, bytes.into()));
                }
            }
            sigs.sort_by_key(|(a, _)| *a);
            sigs.dedup_by_key(|(a, _)| *a);
            if sigs.len() >= threshold {
                return Ok(sigs.into_iter().take(threshold).map(|(_, s)| s).collect());
            }
            if Instant::now() >= deadline {
                anyhow::bail!(
                    "{} of {threshold} signatures of {digest} after {} ms; retrying later",
                    sigs.len(),
                    self.cfg.cosign_timeout_ms
                );
            }
            self.cosign_proposals().await?;
            tokio::time::sleep(self.cfg.poll()).await;
        }
    }

    /// Co-signs the other members' proposals that this verifier reaches on its own: the same
    /// settlements (digest, price, winners and losers of every job, from its own verdicts), storage
    /// periods whose answers it checked, challenge resolutions its own re-run agrees with. What it does
    /// not agree with is logged and never signed.
    async fn cosign_proposals(&self) -> anyhow::Result<()> {
        let _one_at_a_time = self.cosigning.lock().await;
        let list = self.coordinator.get("/v1/verifier/proposals").await.map_err(|e| anyhow!("listing proposals: {e}"))?;
        let me = format!("{:#x}", self.chain.me);
        for p in list["proposals"].as_array().cloned().unwrap_or_default() {
            let digest: B256 = parse(&p["digest"], "digest")?;
            if self.cosigned.lock().await.contains(&digest) || p["signatures"].as_array().into_iter().flatten().any(|s| s["signer"] == me) {
                continue;
            }
            let verdict = match p["kind"].as_str() {
                Some("settlement") => self.check_settlement_proposal(digest, &p["payload"]).await,
                Some("attestation") => self.check_attestation_proposal(digest, &p["payload"]).await,
                Some("resolution") => self.check_resolution_proposal(digest, &p["payload"]).await,
                other => Err(anyhow!("unknown kind {other:?}")),
            };
            match verdict {
                Ok(true) => {
                    let sig = self.signer.sign_hash(&digest).map_err(|e| anyhow!("signing: {e}"))?;
                    let body = json!({ "signature": alloy_primitives::hex::encode_prefixed(sig.as_bytes()) });
                    self.coordinator
                        .signed("POST", &format!("/v1/verifier/proposals/{digest}/signatures"), Some(&body))
                        .await
                        .map_err(|e| anyhow!("co-signing {digest}: {e}"))?;
                    info!(%digest, kind = %p["kind"], proposer = %p["proposer"], "co-signed");
                    self.cosigned.lock().await.insert(digest);
                }
                // Not yet (an answer not checked yet, a job not judged yet): look again next round.
                Ok(false) => {}
                Err(e) => {
                    warn!(%digest, kind = %p["kind"], proposer = %p["proposer"], reason = %format!("{e:#}"), "not co-signing");
                    self.cosigned.lock().await.insert(digest);
                }
            }
        }
        Ok(())
    }

    async fn check_settlement_proposal(&self, digest: B256, payload: &Value) -> anyhow::Result<bool> {
        let calldata =
            payload["calldata"].as_str().and_then(|h| alloy_primitives::hex::decode(h).ok()).ok_or_else(|| anyhow!("no calldata"))?;
        let (batch, jobs) = <(SettlementBatch, Vec<ComputeJob>)>::abi_decode_params(&calldata)?;
        if settlement_batch_digest(&batch, &self.domain) != digest {
            anyhow::bail!("the payload is not what the digest signs");
        }
        let (_, now) = self.chain.head().await?;
        if batch.validUntil > now + 2 * SIGNATURES_VALID_SECS {
            anyhow::bail!("the batch asks for signatures valid until {}, over two hours from now ({now})", batch.validUntil);
        }
        if jobs.len() != batch.settlements.len() {
            anyhow::bail!("{} jobs for {} settlements", jobs.len(), batch.settlements.len());
        }
        let named = |mask: U256| -> Vec<Address> {
            let mut v: Vec<Address> = batch.providers.iter().enumerate().filter(|(i, _)| mask.bit(*i)).map(|(_, a)| *a).collect();
            v.sort();
            v
        };
        for (s, job) in batch.settlements.iter().zip(&jobs) {
            let id = s.jobId;
            if self.onchain_job(id).await?.abi_encode() != job.abi_encode() {
                anyhow::bail!("job {id}: the record is not the one funded on chain");
            }
            let q = match self.assess(id).await? {
                Assessment::Judged { queued: Some(q), .. } => q,
                Assessment::Judged { queued: None, .. } => anyhow::bail!("job {id}: this verifier would escalate, not settle"),
                Assessment::Closed(why) => anyhow::bail!("job {id}: not settleable ({why})"),
            };
            let own =
                |mask: U256| -> Vec<Address> { q.providers.iter().enumerate().filter(|(i, _)| mask.bit(*i)).map(|(_, a)| *a).collect() };
            let mine = (q.settlement.resultDigest, q.settlement.price, own(q.settlement.winners), own(q.settlement.losers));
            let theirs = (s.resultDigest, s.price, named(s.winners), named(s.losers));
            if mine != theirs {
                anyhow::bail!("job {id}: proposed {theirs:?}, this verifier concludes {mine:?}");
            }
        }
        Ok(true)
    }

    async fn check_attestation_proposal(&self, digest: B256, payload: &Value) -> anyhow::Result<bool> {
        let mut attest = Vec::new();
        for entry in payload["attestations"].as_array().into_iter().flatten() {
            attest.push((
                parse::<U256>(&entry[0], "dealId")?,
                parse::<Address>(&entry[1], "provider")?,
                parse::<U256>(&entry[2], "periods")?,
            ));
        }
        let valid_until = payload["validUntil"].as_u64().ok_or_else(|| anyhow!("no `validUntil`"))?;
        if storage_attestations_digest(&attest, valid_until, &self.market_domain) != digest {
            anyhow::bail!("the payload is not what the digest signs");
        }
        for (deal_id, provider, mask) in attest {
            let deal: StorageDeal =
                self.chain.call(self.info.storage_market, IStorageMarket::getStorageDealCall { dealId: deal_id }).await?;
            if deal.provider != provider {
                anyhow::bail!("deal {deal_id} is held by {:#x}, not {provider:#x}", deal.provider);
            }
            let listed = self.coordinator.get(&format!("/v1/storage/deals/{deal_id}")).await.map_err(|e| anyhow!("deal {deal_id}: {e}"))?;
            for period in (0..256u64).filter(|p| mask.bit(*p as usize)) {
                let seed = deal.startBlock.to::<u64>() + period * u64::from(deal.periodLength);
                let indexes = self.challenge_indexes(&deal, deal_id, period, seed).await?;
                if !answer_checks(&deal, &listed, period, &indexes) {
                    anyhow::bail!("deal {deal_id} period {period}: no answer that checks against the root");
                }
            }
        }
        Ok(true)
    }

    async fn check_resolution_proposal(&self, digest: B256, payload: &Value) -> anyhow::Result<bool> {
        let job_id: U256 = parse(&payload["jobId"], "jobId")?;
        let upheld = payload["upheld"].as_bool().ok_or_else(|| anyhow!("no `upheld`"))?;
        if challenge_resolution_digest(job_id, upheld, &self.domain) != digest {
            anyhow::bail!("the payload is not what the digest signs");
        }
        let Some(batch_id) = self.challenges.lock().await.get(&job_id).copied() else { return Ok(false) };
        let settled = self.settled_digest(job_id, batch_id).await?;
        let rerun = self.reexecute(job_id, self.onchain_job(job_id).await?.specHash).await?;
        if (rerun != settled) != upheld {
            anyhow::bail!("job {job_id}: this verifier's re-run says upheld = {}", rerun != settled);
        }
        Ok(true)
    }

    async fn settled_digest(&self, job_id: U256, batch_id: U256) -> anyhow::Result<B256> {
        let batches = self.batches.lock().await;
        let b = batches.get(&batch_id).ok_or_else(|| anyhow!("challenge of job {job_id}: batch {batch_id} unknown"))?;
        let i = b.outcome.jobIds.iter().position(|j| *j == job_id).ok_or_else(|| anyhow!("job {job_id} is not in batch {batch_id}"))?;
        Ok(b.digests[i])
    }

    // ------------------------------------------------------------------ events, finalize, challenges

    async fn follow_events(&self) -> anyhow::Result<()> {
        let (head, _) = self.chain.head().await?;
        let mut from = self.cursor.load(Ordering::Relaxed);
        while from <= head {
            let to = (from + 9_999).min(head);
            let filter = Filter::new().address(self.info.job_escrow).from_block(from).to_block(to).event_signature(vec![
                IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH,
                IJobEscrow::ComputeBatchFinalized::SIGNATURE_HASH,
                IJobEscrow::ComputeJobChallenged::SIGNATURE_HASH,
                IJobEscrow::ChallengeResolved::SIGNATURE_HASH,
            ]);
            for log in self.chain.provider().get_logs(&filter).await.context("reading the escrow's events")? {
                if let Ok(e) = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner) {
                    let b = Batch {
                        window_end: e.data.windowEnd,
                        outcome: e.data.outcome.clone(),
                        digests: e.data.resultDigests.clone(),
                        finalized: false,
                    };
                    self.batches.lock().await.insert(e.data.batchId, b);
                } else if let Ok(e) = IJobEscrow::ComputeBatchFinalized::decode_log(&log.inner) {
                    if let Some(b) = self.batches.lock().await.get_mut(&e.data.batchId) {
                        b.finalized = true;
                    }
                } else if let Ok(e) = IJobEscrow::ComputeJobChallenged::decode_log(&log.inner) {
                    info!(job_id = %e.data.jobId, batch = %e.data.batchId, challenger = %e.data.challenger, "challenged");
                    self.challenges.lock().await.insert(e.data.jobId, e.data.batchId);
                } else if let Ok(e) = IJobEscrow::ChallengeResolved::decode_log(&log.inner) {
                    self.challenges.lock().await.remove(&e.data.jobId);
                }
            }
            from = to + 1;
            self.cursor.store(from, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn finalize_due(&self) -> anyhow::Result<()> {
        let (_, now) = self.chain.head().await?;
        let due: Vec<(U256, BatchOutcome)> = self
            .batches
            .lock()
            .await
            .iter()
            .filter(|(_, b)| !b.finalized && b.window_end <= now)
            .map(|(id, b)| (*id, b.outcome.clone()))
            .collect();
        // Sent together: they land in one block rather than one block each.
        let sent = futures_util::future::join_all(due.into_iter().map(|(batch_id, outcome)| async move {
            // A pending challenge holds its job's part, not the batch; finalize goes ahead.
            let call = IJobEscrow::finalizeCall { batchId: batch_id, outcome };
            (batch_id, self.chain.send(self.info.job_escrow, &call, "finalize").await)
        }))
        .await;
        let mut failed = None;
        for (batch_id, result) in sent {
            match result {
                Ok(r) => {
                    load(&self.metrics.finalized, 1);
                    load(&self.metrics.gas_used, r.gas_used);
                    load(&self.metrics.gas_spent_wei, Chain::fee_paid(&r).saturating_to::<u64>());
                    info!(batch = %batch_id, tx = %r.transaction_hash, "finalized");
                }
                Err(SendError::Refused { reason, .. }) => info!(batch = %batch_id, reason = %reason, "not finalized (someone else did?)"),
                Err(e) => {
                    failed = Some(e);
                    continue;
                }
            }
            if let Some(b) = self.batches.lock().await.get_mut(&batch_id) {
                b.finalized = true;
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Re-runs each challenged job and signs the resolution: upheld when the re-run's digest is not
    /// the settled one.
    async fn resolve_challenges(&self) -> anyhow::Result<()> {
        let pending: Vec<(U256, U256)> = self.challenges.lock().await.iter().map(|(j, b)| (*j, *b)).collect();
        for (job_id, batch_id) in pending {
            let settled = self.settled_digest(job_id, batch_id).await?;
            let onchain = self.onchain_job(job_id).await?;
            let rerun = match self.reexecute(job_id, onchain.specHash).await {
                Ok(d) => d,
                Err(e) => {
                    // Retried every round (the coordinator may be back, the blob re-uploaded) until
                    // the challenge is resolved or expires.
                    let mut failures = self.rerun_failures.lock().await;
                    let n = failures.entry(job_id).or_default();
                    *n += 1;
                    if n.is_power_of_two() {
                        warn!(job_id = %job_id, attempts = *n, error = %format!("{e:#}"), "cannot re-run the challenged job yet");
                    }
                    continue;
                }
            };
            let upheld = rerun != settled;
            let digest = challenge_resolution_digest(job_id, upheld, &self.domain);
            let signatures = self.signatures(Kind::Resolution, digest, json!({ "jobId": job_id.to_string(), "upheld": upheld })).await?;
            let call = IJobEscrow::resolveChallengeCall { jobId: job_id, upheld, signatures };
            match self.chain.send(self.info.job_escrow, &call, "resolveChallenge").await {
                Ok(r) => {
                    load(&self.metrics.challenges_resolved, 1);
                    load(&self.metrics.gas_used, r.gas_used);
                    info!(job_id = %job_id, upheld, settled = %settled, rerun = %rerun, tx = %r.transaction_hash, "challenge resolved");
                }
                Err(SendError::Refused { reason, .. }) => info!(job_id = %job_id, reason = %reason, "challenge not resolved (already?)"),
                Err(e) => return Err(e.into()),
            }
            self.challenges.lock().await.remove(&job_id);
        }
        Ok(())
    }

    // ------------------------------------------------------------------ storage

    async fn check_storage(&self) -> anyhow::Result<()> {
        let list = self.coordinator.get("/v1/storage/deals").await.map_err(|e| anyhow!("listing deals: {e}"))?;
        let (head, _) = self.chain.head().await?;
        let mut attest: Vec<(U256, Address, U256)> = Vec::new();
        let mut to_settle = Vec::new();
        for d in list["deals"].as_array().cloned().unwrap_or_default() {
            if d["status"] != "active" {
                continue;
            }
            let deal_id: U256 = parse(&d["dealId"], "dealId")?;
            let deal: StorageDeal =
                self.chain.call(self.info.storage_market, IStorageMarket::getStorageDealCall { dealId: deal_id }).await?;
            if deal.status != IStorageMarket::StorageDealStatus::Active {
                continue;
            }
            let (start, len) = (deal.startBlock.to::<u64>(), u64::from(deal.periodLength));
            let mut mask = U256::ZERO;
            let mut resolved_until = u64::from(deal.settledPeriods);
            for period in u64::from(deal.settledPeriods)..u64::from(deal.periods) {
                let seed = start + period * len;
                if seed >= head {
                    break;
                }
                let state = self.period(&deal, deal_id, period, seed, head, &d).await?;
                match state {
                    Period::Passed => mask |= U256::from(1) << period,
                    Period::Relayed => {}
                    Period::Done | Period::Missed => {}
                }
                let ended = head >= seed + len;
                if ended && resolved_until == period && matches!(state, Period::Done | Period::Missed) {
                    resolved_until = period + 1;
                }
            }
            if !mask.is_zero() {
                attest.push((deal_id, deal.provider, mask));
            }
            if resolved_until > u64::from(deal.settledPeriods) && mask.is_zero() {
                to_settle.push(deal_id);
            }
        }
        if !attest.is_empty() {
            // Signed for the next hour of chain time: a batch that lands later is refused, not replayed.
            let (_, now) = self.chain.head().await?;
            let valid_until = now + SIGNATURES_VALID_SECS;
            let digest = storage_attestations_digest(&attest, valid_until, &self.market_domain);
            let payload: Vec<[String; 3]> = attest.iter().map(|(d, p, m)| [d.to_string(), format!("{p:#x}"), m.to_string()]).collect();
            let signatures =
                self.signatures(Kind::Attestation, digest, json!({ "attestations": payload, "validUntil": valid_until })).await?;
            let attestations: Vec<StorageAttestation> =
                attest.iter().map(|(d, provider, p)| StorageAttestation { dealId: *d, provider: *provider, periods: *p }).collect();
            let call = IStorageMarket::attestStorageCall { attestations, validUntil: valid_until, signatures };
            match self.chain.send(self.info.storage_market, &call, "attestStorage").await {
                Ok(r) => {
                    load(&self.metrics.gas_used, r.gas_used);
                    // An entry the market skipped (settled or re-opened meanwhile) is re-read next round.
                    let skipped: Vec<U256> = r
                        .inner
                        .logs()
                        .iter()
                        .filter_map(|l| IStorageMarket::StorageAttestationSkipped::decode_log(&l.inner).ok())
                        .map(|e| e.data.dealId)
                        .collect();
                    let mut periods = self.periods.lock().await;
                    for (deal, provider, mask) in &attest {
                        if skipped.contains(deal) {
                            warn!(deal = %deal, "attestation skipped by the market; re-reading the deal");
                            periods.retain(|(d, _, _), s| d != deal || *s != Period::Passed);
                            continue;
                        }
                        for p in 0..256u64 {
                            if mask.bit(p as usize) {
                                periods.insert((*deal, *provider, p), Period::Done);
                                load(&self.metrics.storage_attested, 1);
                            }
                        }
                    }
                    info!(deals = attest.len(), tx = %r.transaction_hash, "storage periods attested");
                }
                // Proven by the provider meanwhile, or settled: the next round re-reads the deal.
                Err(SendError::Refused { reason, .. }) => {
                    warn!(reason = %reason, "attestation refused; re-reading the deals");
                    let mut periods = self.periods.lock().await;
                    for (deal, _, _) in &attest {
                        periods.retain(|(d, _, _), s| d != deal || *s != Period::Passed);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        for deal_id in to_settle {
            let call = IStorageMarket::settleStorageDealCall { dealId: deal_id };
            match self.chain.send(self.info.storage_market, &call, "settleStorageDeal").await {
                Ok(r) => {
                    load(&self.metrics.gas_used, r.gas_used);
                    for log in r.inner.logs() {
                        if let Ok(e) = IStorageMarket::StoragePeriodsSettled::decode_log(&log.inner) {
                            info!(deal = %deal_id, from = %e.data.fromPeriod, to = %e.data.toPeriod, passed = %e.data.passed, missed = %e.data.missed, "storage periods settled");
                        }
                    }
                }
                Err(SendError::Refused { reason, .. }) => info!(deal = %deal_id, reason = %reason, "not settled"),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Moves one period along: challenge it, check the answer, or call it missed.
    async fn period(&self, deal: &StorageDeal, deal_id: U256, period: u64, seed: u64, head: u64, listed: &Value) -> anyhow::Result<Period> {
        let key = (deal_id, deal.provider, period);
        let known = self.periods.lock().await.get(&key).copied();
        let pending = deal.pendingPeriods.bit(period as usize);
        let state = match known {
            _ if !pending && known != Some(Period::Missed) => Period::Done,
            Some(s @ (Period::Done | Period::Missed | Period::Passed)) => s,
            None => {
                let indexes = self.challenge_indexes(deal, deal_id, period, seed).await?;
                let body = json!({ "period": period, "chunkIndexes": indexes });
                self.coordinator
                    .signed("POST", &format!("/v1/verifier/storage/{deal_id}/challenges"), Some(&body))
                    .await
                    .map_err(|e| anyhow!("challenging period {period} of deal {deal_id}: {e}"))?;
                info!(deal = %deal_id, period, chunks = ?indexes, provider = %deal.provider, "challenged");
                Period::Relayed
            }
            Some(Period::Relayed) => {
                let answered = listed["challenges"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["period"].as_u64() == Some(period) && c["status"] == "answered"));
                let indexes = self.challenge_indexes(deal, deal_id, period, seed).await?;
                let ok = answer_checks(deal, listed, period, &indexes);
                if ok {
                    load(&self.metrics.storage_passed, 1);
                    info!(deal = %deal_id, period, "storage proof checked");
                    Period::Passed
                } else if head >= seed + u64::from(deal.periodLength) {
                    load(&self.metrics.storage_missed, 1);
                    warn!(deal = %deal_id, period, provider = %deal.provider, answered, "storage period missed: no valid proof in time; settling it slashes the provider");
                    Period::Missed
                } else {
                    Period::Relayed
                }
            }
        };
        self.periods.lock().await.insert(key, state);
        Ok(state)
    }

    /// The chunks the market challenges in `period`: keccak(seed block hash, deal, period, j) mod chunks
    /// for each j below the deal's `challengesPerPeriod`, as `StorageMarket` derives them.
    async fn challenge_indexes(&self, deal: &StorageDeal, deal_id: U256, period: u64, seed: u64) -> anyhow::Result<Vec<u64>> {
        let block = self
            .chain
            .provider()
            .get_block_by_number(seed.into())
            .await?
            .ok_or_else(|| anyhow!("seed block {seed} of deal {deal_id} is missing"))?;
        Ok(qor_protocol::merkle::challenge_indexes(block.header.hash, deal_id, period, deal.challengesPerPeriod, chunk_count(deal.size)))
    }
}

/// Whether the provider's answer to `period`'s challenge (in the coordinator's deal document) is the
/// chunks at `indexes`, in that order, each with a path to the deal's root.
fn answer_checks(deal: &StorageDeal, listed: &Value, period: u64, indexes: &[u64]) -> bool {
    let Some(a) = listed["challenges"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["period"].as_u64() == Some(period) && c["status"] == "answered"))
    else {
        return false;
    };
    let chunks: Option<Vec<alloy_primitives::Bytes>> = serde_json::from_value(a["chunks"].clone()).ok();
    let paths: Option<Vec<Vec<B256>>> = serde_json::from_value(a["paths"].clone()).ok();
    let (Some(chunks), Some(paths)) = (chunks, paths) else { return false };
    chunks.len() == indexes.len()
        && paths.len() == indexes.len()
        && indexes.iter().zip(chunks).zip(paths).all(|((index, chunk), path)| {
            verify(&deal.merkleRoot, chunk_count(deal.size), &ChunkProof { index: *index, chunk: chunk.to_vec(), path })
        })
}

/// What a committee proposal is of.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Settlement,
    Attestation,
    Resolution,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Settlement => "settlement",
            Self::Attestation => "attestation",
            Self::Resolution => "resolution",
        }
    }
}

/// Up to `max` queued settlements of one token whose providers fit a batch (256), oldest first; a
/// `solo` settlement goes alone.
fn pick_batch(mut items: Vec<&Queued>, max: usize) -> Vec<Queued> {
    items.sort_by_key(|q| (q.since, q.settlement.jobId));
    if let Some(solo) = items.iter().find(|q| q.solo) {
        return vec![(*solo).clone()];
    }
    let Some(first) = items.first() else { return vec![] };
    let token = first.job.token;
    let mut providers: HashSet<Address> = HashSet::new();
    let mut picked = Vec::new();
    for q in items.into_iter().filter(|q| q.job.token == token) {
        let mut with = providers.clone();
        with.extend(q.providers.iter().copied());
        if with.len() > 256 {
            continue;
        }
        providers = with;
        picked.push(q.clone());
        if picked.len() == max {
            break;
        }
    }
    picked
}

/// How long the committee's signatures on a batch or an attestation stay valid, in seconds of chain time.
pub const SIGNATURES_VALID_SECS: u64 = 3_600;

/// The batch of `items` as the service sends it: the union of their providers in ascending order,
/// and each settlement's winner and loser bits re-indexed into it, its signatures valid until
/// `valid_until` (unix seconds, chain time).
pub fn build_batch(items: &[Queued], valid_until: u64) -> (SettlementBatch, Vec<ComputeJob>) {
    let mut providers: Vec<Address> = items.iter().flat_map(|q| q.providers.iter().copied()).collect();
    providers.sort();
    providers.dedup();
    let remap = |mask: U256, own: &[Address]| {
        let mut out = U256::ZERO;
        for (i, p) in own.iter().enumerate() {
            if mask.bit(i) {
                out |= U256::from(1) << providers.binary_search(p).expect("in the union");
            }
        }
        out
    };
    let settlements = items
        .iter()
        .map(|q| Settlement {
            winners: remap(q.settlement.winners, &q.providers),
            losers: remap(q.settlement.losers, &q.providers),
            ..q.settlement.clone()
        })
        .collect();
    let token = items.first().map_or(Address::ZERO, |q| q.job.token);
    (SettlementBatch { token, providers, settlements, validUntil: valid_until }, items.iter().map(|q| q.job.clone()).collect())
}
