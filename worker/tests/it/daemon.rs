//! The provider's whole life against a real anvil with the contracts, a coordinator over real sockets,
//! and the `qor-worker` binary as its own process: init, register and stake, run a job whose receipt
//! the coordinator accepts, get it settled and finalized and withdraw the earnings, host a storage deal
//! and answer a challenge with a proof that verifies in Rust and on chain, refuse an input whose bytes
//! do not match its hash, and pick up a job leased while the daemon was down; and survive hostile
//! modules funded beside an honest job.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use qor_protocol::bindings::IJobEscrow::{self, ComputeJob, Settlement, SettlementBatch};
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::bindings::IStorageMarket;
use qor_protocol::eip712::{Signer, escrow_domain, settlement_batch_digest};
use qor_protocol::spec::{InputFile, JobSpec, Limits};
use qor_testkit::{Anvil, BUYER_KEY, CoordinatorProcess, DEPLOYER_KEY, ETHER, PROVIDER_KEY, PROVIDER2_KEY, wait_for};
use qor_worker::client::Coordinator as Client;
use serde_json::{Value, json};

fn example(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../examples/jobs/target/wasm32-wasip1/release/{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (./test.sh builds the examples)", path.display()))
}

struct Worker {
    config: PathBuf,
    log: PathBuf,
    daemon: Option<Child>,
}

impl Worker {
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_qor-worker"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("QOR_WORKER_KEY", PROVIDER_KEY)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "qor-worker {args:?} failed: {text}");
        text
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_qor-worker"))
            .arg("--config")
            .arg(&self.config)
            .args(["run", "--grace-secs", "5"])
            .env("QOR_WORKER_KEY", PROVIDER_KEY)
            .env("RUST_LOG", "qor_worker=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and the exit status once it has wound down.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.daemon.take().unwrap();
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        for _ in 0..200 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the daemon did not stop within 10 s of SIGTERM");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn send(anvil: &Anvil, key: &str, to: Address, input: Vec<u8>, value: U256) -> alloy::rpc::types::TransactionReceipt {
    let wallet = anvil.wallet(key);
    let tx = TransactionRequest::default().with_to(to).with_input(input).with_value(value);
    let receipt = wallet.send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "transaction reverted");
    receipt
}

async fn job_status(http: &Client, job: u64) -> Value {
    http.get(&format!("/v1/jobs/{job}")).await.unwrap_or(Value::Null)
}

struct Market {
    anvil: Anvil,
    coordinator: CoordinatorProcess,
    http: Client,
}

impl Market {
    /// anvil with the contracts, and a coordinator (its data under `dir`), seen by the provider.
    async fn start(dir: &Path) -> (Self, Signer) {
        let anvil = Anvil::start();
        let coordinator = CoordinatorProcess::start(&dir.join("coordinator"), &anvil).await;
        let provider = Signer::from_bytes(&PROVIDER_KEY.parse().unwrap()).unwrap();
        let http = Client::new(&coordinator.base, provider.clone());
        (Self { anvil, coordinator, http }, provider)
    }

    async fn fund_job(&self, job: &JobSpec, budget: U256) -> (U256, ComputeJob) {
        self.post_spec(job).await;
        self.fund(job, budget).await
    }

    async fn post_spec(&self, job: &JobSpec) {
        let http = reqwest_client();
        let put = http.post(format!("{}/v1/specs", self.coordinator.base)).body(job.canonical_json()).send().await.unwrap();
        assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    }

    async fn fund(&self, job: &JobSpec, budget: U256) -> (U256, ComputeJob) {
        // From the chain's clock, which the test moves forward past challenge windows.
        let latest = self.anvil.wallet(BUYER_KEY).get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
        let deadline = latest.header.inner.timestamp + 3600;
        let call = IJobEscrow::createComputeJobCall {
            specHash: job.spec_hash(),
            redundancy: job.redundancy,
            token: Address::ZERO,
            budget,
            deadline,
            preferredProvider: Address::ZERO,
        };
        let receipt = send(&self.anvil, BUYER_KEY, self.anvil.address("jobEscrow"), call.abi_encode(), budget).await;
        let log = receipt.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap();
        (log.data.jobId, log.data.job)
    }

    async fn put_blob(&self, bytes: &[u8]) -> B256 {
        let hash = keccak256(bytes);
        assert_eq!(qor_testkit::upload(&self.coordinator.base, BUYER_KEY, bytes).await, hash);
        hash
    }
}

/// The job's record once the coordinator says it completed.
async fn completed(m: &Market, job_id: U256, secs: u64) -> Value {
    wait_for("the job to complete", secs, async || {
        let j = job_status(&m.http, job_id.to::<u64>()).await;
        (j["status"] == "completed").then_some(j)
    })
    .await
}

/// The result digest and fuel of `job` (no inputs) run here in the sandbox.
async fn run_here(job: &JobSpec, module: &[u8]) -> (B256, u64) {
    let (job, module) = (job.clone(), module.to_vec());
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("in")).unwrap();
        std::fs::create_dir_all(dir.path().join("out")).unwrap();
        match qor_worker::sandbox::Sandbox::new().unwrap().run(&job, &module, dir.path()).unwrap() {
            qor_worker::sandbox::Outcome::Completed { result_digest, fuel_used, .. } => (result_digest, fuel_used),
            other => panic!("{other:?}"),
        }
    })
    .await
    .unwrap()
}

fn reqwest_client() -> alloy::transports::http::reqwest::Client {
    alloy::transports::http::reqwest::Client::new()
}

fn spec(module: B256, inputs: Vec<InputFile>, args: &[&str]) -> JobSpec {
    JobSpec {
        version: 1,
        module,
        entry: "_start".into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: Default::default(),
        inputs,
        limits: Limits { fuel: 50_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        redundancy: 1,
    }
}

fn init_worker(dir: &Path, m: &Market) -> Worker {
    std::fs::create_dir_all(dir).unwrap();
    let w = Worker { config: dir.join("qor-worker.toml"), log: dir.join("daemon.log"), daemon: None };
    let data = dir.join("data");
    w.ok(&[
        "init",
        "--coordinator",
        &m.coordinator.base,
        "--rpc-url",
        &m.anvil.url,
        "--deployment",
        m.anvil.deployment_file.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--key-from-env",
        "--max-jobs",
        "2",
        "--storage-quota",
        "1MiB",
        "--price-per-fuel",
        "1",
    ]);
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_registers_runs_jobs_hosts_files_and_withdraws_earnings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (mut m, provider) = Market::start(&dir).await;
    let (escrow, me) = (m.anvil.address("jobEscrow"), provider.address());

    // init, then a stake below the minimum is refused before anything is sent, then register.
    let mut w = init_worker(&dir.join("worker"), &m);
    let low = w.cli(&["register", "--stake", "0.5ether"]);
    assert!(!low.status.success() && String::from_utf8_lossy(&low.stderr).contains("below the registry's minimum"), "{low:?}");
    let out = w.ok(&["register", "--stake", "1ether"]);
    assert!(out.contains("coordinator: registered"), "{out}");
    let status: Value = serde_json::from_str(&w.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["registration"]["active"], true, "{status}");
    assert_eq!(status["registration"]["stake"], json!(ETHER.to_string()), "{status}");

    // A job: the daemon runs it, seals, reveals; the digest is the one a local run gives.
    w.start();
    let hello = example("hello");
    let module = m.put_blob(&hello).await;
    let job = spec(module, vec![], &["qor"]);
    let (job_id, onchain) = m.fund_job(&job, U256::from(ETHER / 10)).await;
    let done = completed(&m, job_id, 60).await;
    let (result_digest, fuel_used) = run_here(&job, &hello).await;
    let receipt = &done["receipts"][0];
    assert_eq!(receipt["resultDigest"], json!(result_digest), "{done}");
    assert_eq!(receipt["fuelUsed"], json!(fuel_used));
    assert!(w.log().contains(&format!("job_id={job_id}")), "every line of a job names it:\n{}", w.log());
    // Its output file was uploaded, and is what the job wrote.
    let output = &receipt["outputs"][0];
    assert_eq!(output["path"], "greeting.txt", "{done}");
    let url = format!("{}/v1/jobs/{job_id}/outputs/{:#x}/greeting.txt", m.coordinator.base, me);
    let bytes = reqwest_client().get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(json!(keccak256(&bytes)), output["hash"]);
    assert_eq!(&bytes[..], b"hello, world\n");

    // The committee settles it; after the challenge window it is finalized; the provider withdraws.
    let price = U256::from(fuel_used);
    let batch = SettlementBatch {
        token: Address::ZERO,
        providers: vec![me],
        settlements: vec![Settlement { jobId: job_id, resultDigest: result_digest, price, winners: U256::from(1), losers: U256::ZERO }],
        validUntil: u64::MAX,
    };
    let committee = Signer::from_bytes(&DEPLOYER_KEY.parse().unwrap()).unwrap();
    let sig = committee.sign_hash(&settlement_batch_digest(&batch, &escrow_domain(31337, escrow))).unwrap();
    let settle = IJobEscrow::settleComputeJobsCall { batch, jobs: vec![onchain], signatures: vec![sig.as_bytes().to_vec().into()] };
    let receipt = send(&m.anvil, DEPLOYER_KEY, escrow, settle.abi_encode(), U256::ZERO).await;
    let settled = receipt.inner.logs().iter().find_map(|l| IJobEscrow::ComputeBatchSettled::decode_log(&l.inner).ok()).unwrap().data;
    let status: Value = serde_json::from_str(&w.ok(&["status", "--json"])).unwrap();
    assert_ne!(status["earnings"]["queued"], json!("0"), "queued revenue while the window is open: {status}");
    m.anvil.advance(3_601).await;
    let finalize = IJobEscrow::finalizeCall { batchId: settled.batchId, outcome: settled.outcome };
    send(&m.anvil, DEPLOYER_KEY, escrow, finalize.abi_encode(), U256::ZERO).await;
    let status: Value = serde_json::from_str(&w.ok(&["status", "--json"])).unwrap();
    let payout: U256 = status["withdrawable"]["ETH"].as_str().unwrap().parse().unwrap();
    assert_eq!(payout, price * U256::from(9_000) / U256::from(10_000), "90% to the provider (rounded down): {status}");
    assert_eq!(status["earnings"]["byDay"].as_object().unwrap().len(), 1, "{status}");
    let chain = m.anvil.wallet(PROVIDER_KEY);
    let before = chain.get_balance(me).await.unwrap();
    let out = w.ok(&["withdraw"]);
    let tx: B256 = out.trim().rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("a tx hash in {out}"));
    let r = chain.get_transaction_receipt(tx).await.unwrap().unwrap();
    let gas = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
    let after = chain.get_balance(me).await.unwrap();
    assert_eq!(after, before - gas + payout, "the payout reached the wallet");
    let again = w.cli(&["withdraw"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("nothing to withdraw"));

    // Storage: the daemon fetches the file, checks the root, accepts on chain; a relayed challenge is
    // answered with a proof that verifies here. No committee attests anything in this market, and only
    // period 0's challenge is ever relayed: the daemon proves each period on chain itself as its proof
    // window nears its end, so withheld challenges cost it nothing.
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let (root, deal_id) = m.anvil.fund_storage_deal(&m.coordinator.base, BUYER_KEY, &data, 2).await;
    wait_for("the deal to be active", 60, async || {
        (m.http.get(&format!("/v1/storage/deals/{deal_id}")).await.ok()?["status"] == "active").then_some(())
    })
    .await;
    let indexes = m.anvil.challenge_indexes(deal_id, 0).await;
    let verifier = Client::new(&m.coordinator.base, committee.clone());
    verifier
        .signed("POST", &format!("/v1/verifier/storage/{deal_id}/challenges"), Some(&json!({ "period": 0, "chunkIndexes": indexes })))
        .await
        .unwrap();
    let answered = wait_for("the challenge to be answered", 60, async || {
        let d = m.http.get(&format!("/v1/storage/deals/{deal_id}")).await.ok()?;
        (d["challenges"][0]["status"] == "answered").then_some(d)
    })
    .await;
    let c = &answered["challenges"][0];
    let chunks: Vec<alloy_primitives::Bytes> = serde_json::from_value(c["chunks"].clone()).unwrap();
    let paths: Vec<Vec<B256>> = serde_json::from_value(c["paths"].clone()).unwrap();
    assert_eq!((chunks.len(), paths.len()), (indexes.len(), indexes.len()), "every challenged chunk answered: {c}");
    for ((index, chunk), path) in indexes.iter().zip(chunks).zip(paths) {
        let proof = qor_protocol::merkle::ChunkProof { index: *index, chunk: chunk.to_vec(), path };
        assert!(qor_protocol::merkle::verify(&root, qor_protocol::merkle::chunk_count(data.len() as u64), &proof));
    }
    let node = m.anvil.wallet(BUYER_KEY);
    let market = m.anvil.address("storageMarket");
    let deal_now = async || {
        let call = IStorageMarket::getStorageDealCall { dealId: deal_id };
        let out = node.call(TransactionRequest::default().with_to(market).with_input(call.abi_encode())).await.unwrap();
        IStorageMarket::getStorageDealCall::abi_decode_returns(&out).unwrap()
    };
    let start = deal_now().await.startBlock.to::<u64>();
    for period in 0..2u64 {
        // The chain stands still (anvil mines on transactions here) at the block before the last of
        // the period's proof window, until the daemon's own proof lands.
        let due = start + period * 4 + 2;
        let head = node.get_block_number().await.unwrap();
        if head < due {
            m.anvil.mine(due - head).await;
        }
        wait_for("the provider to prove the period itself", 30, async || {
            (!deal_now().await.pendingPeriods.bit(period as usize)).then_some(())
        })
        .await;
    }
    let head = node.get_block_number().await.unwrap();
    m.anvil.mine((start + 8).saturating_sub(head)).await;
    let settle = IStorageMarket::settleStorageDealCall { dealId: deal_id };
    let receipt = send(&m.anvil, BUYER_KEY, market, settle.abi_encode(), U256::ZERO).await;
    let settled = receipt.inner.logs().iter().find_map(|l| IStorageMarket::StoragePeriodsSettled::decode_log(&l.inner).ok()).unwrap().data;
    assert_eq!((settled.passed, settled.missed), (U256::from(2), U256::ZERO), "both periods passed on the provider's own proofs");
    assert!(w.log().contains("proved it on chain"), "{}", w.log());

    // A file over the quota (1 MiB) is declined, not half-stored.
    let big: Vec<u8> = vec![7u8; 2 << 20];
    let (_, big_deal) = m.anvil.fund_storage_deal(&m.coordinator.base, BUYER_KEY, &big, 1).await;
    let declined = wait_for("the big deal to be declined", 60, async || {
        let d = m.http.get(&format!("/v1/storage/deals/{big_deal}")).await.ok()?;
        d["timeline"].as_array()?.iter().find(|t| t["kind"] == "declined").cloned()
    })
    .await;
    assert!(declined["detail"]["reason"].as_str().unwrap().contains("quota"), "{declined}");

    // A buyer that declares a larger file on chain than the one it uploaded would make every proof
    // fail against the deal's chunk count, and collect the provider's collateral every period: the
    // deal's terms are read from the chain, and the file must be exactly as long.
    let liar: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (_, lying_deal) = m.anvil.fund_storage_deal_sized(&m.coordinator.base, BUYER_KEY, &liar, 2, Address::ZERO, 20_000).await;
    let declined = wait_for("the deal declaring the wrong size to be declined", 60, async || {
        let d = m.http.get(&format!("/v1/storage/deals/{lying_deal}")).await.ok()?;
        d["timeline"].as_array()?.iter().find(|t| t["kind"] == "declined").cloned()
    })
    .await;
    assert!(declined["detail"]["reason"].as_str().unwrap().contains("the deal on chain says 20000"), "{declined}");
    let d = m.http.get(&format!("/v1/storage/deals/{lying_deal}")).await.unwrap();
    assert_ne!(d["chainStatus"], "active", "never accepted: {d}");

    // An input whose stored bytes no longer match its hash is refused, never run.
    let input = b"the input".to_vec();
    let input_hash = m.put_blob(&input).await;
    let sha = m.put_blob(&example("sha256sum")).await;
    let bad = spec(sha, vec![InputFile { path: "data.bin".into(), hash: input_hash }], &["/in/data.bin"]);
    std::fs::write(m.coordinator.blob_path(input_hash), b"tampered!").unwrap();
    let (bad_id, _) = m.fund_job(&bad, U256::from(ETHER / 10)).await;
    let released = wait_for("the tampered job to be released", 60, async || {
        let j = job_status(&m.http, bad_id.to::<u64>()).await;
        j["timeline"].as_array()?.iter().find(|t| t["kind"] == "released").cloned()
    })
    .await;
    let reason = released["detail"]["reason"].as_str().unwrap();
    assert!(reason.contains("hash mismatch") && reason.contains("refusing"), "{released}");
    assert!(job_status(&m.http, bad_id.to::<u64>()).await["receipts"].as_array().unwrap().is_empty());

    // Down while a job is leased to it: after a restart it runs that job.
    w.kill();
    let (late_id, _) = m.fund_job(&spec(module, vec![], &["late"]), U256::from(ETHER / 10)).await;
    wait_for("the job to be leased to the stopped worker", 60, async || {
        (job_status(&m.http, late_id.to::<u64>()).await["status"] == "running").then_some(())
    })
    .await;
    w.start();
    wait_for("the leased job to complete after the restart", 60, async || {
        (job_status(&m.http, late_id.to::<u64>()).await["status"] == "completed").then_some(())
    })
    .await;
    assert!(w.log().contains("re-verified"), "hosted files are re-verified on start:\n{}", w.log());

    // The coordinator crashes and comes back: the daemon keeps retrying, reconnects, and takes the
    // job funded while it was down.
    let job = spec(module, vec![], &["while-down"]);
    m.post_spec(&job).await;
    m.coordinator.kill();
    // Funded on chain while the coordinator is down: its watcher catches up from its cursor.
    let (down_id, _) = m.fund(&job, U256::from(ETHER / 10)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    m.coordinator.restart().await;
    wait_for("the job funded across the outage to complete", 60, async || {
        (job_status(&m.http, down_id.to::<u64>()).await["status"] == "completed").then_some(())
    })
    .await;
    assert!(w.log().contains("polling failed") && w.log().contains("coordinator reachable again"), "{}", w.log());

    // Stake: add, unbond, and withdraw only once the unbonding delay has passed.
    w.ok(&["stake", "add", "0.5ether"]);
    w.ok(&["stake", "unbond", "0.25ether"]);
    let status: Value = serde_json::from_str(&w.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["registration"]["stake"], json!((ETHER + ETHER / 4).to_string()), "{status}");
    assert_eq!(status["registration"]["unbonding"], json!((ETHER / 4).to_string()), "{status}");
    let early = w.cli(&["stake", "withdraw"]);
    assert!(!early.status.success(), "withdrawing before the delay is refused: {early:?}");
    // The deployment's unbonding delay: 7 days, longer than a challenge window plus the resolution
    // period (the settled job's hold on the stake ends before it).
    m.anvil.advance(7 * 86_400 + 1).await;
    w.ok(&["stake", "withdraw"]);
    let status: Value = serde_json::from_str(&w.ok(&["status", "--json"])).unwrap();
    assert_eq!(status["registration"]["unbonding"], json!("0"), "{status}");

    // SIGTERM while a job waits for another replica's seal (a provider that never seals): the daemon
    // waits out its grace period, releases the lease with the reason, and exits cleanly.
    let other = Signer::from_bytes(&PROVIDER2_KEY.parse().unwrap()).unwrap();
    // Two slots: a job funded earlier may be leased to it too as soon as it is live.
    let register = IProviderRegistry::registerCall { metadata: ProviderMetadata { pricePerFuel: 1, capacity: 2, region: "x".into() } };
    send(&m.anvil, PROVIDER2_KEY, m.anvil.address("providerRegistry"), register.abi_encode(), U256::from(ETHER)).await;
    let other_client = Client::new(&m.coordinator.base, other);
    wait_for("the second provider to be live", 30, async || {
        other_client.signed("POST", "/v1/worker/heartbeat", Some(&json!({}))).await.ok().map(|_| ())
    })
    .await;
    let mut pair = spec(module, vec![], &["pair"]);
    pair.redundancy = 2;
    let (pair_id, _) = m.fund_job(&pair, U256::from(ETHER / 10)).await;
    // Both replicas are leased together: the other provider stays live (it heartbeats) but never runs.
    wait_for("our replica to seal", 60, async || {
        other_client.signed("POST", "/v1/worker/heartbeat", Some(&json!({}))).await.ok()?;
        let j = job_status(&m.http, pair_id.to::<u64>()).await;
        j["replicas"].as_array()?.iter().any(|r| r["provider"] == json!(format!("{me:#x}")) && r["status"] == "sealed").then_some(())
    })
    .await;
    assert!(w.terminate().success(), "{}", w.log());
    let j = job_status(&m.http, pair_id.to::<u64>()).await;
    let released = j["timeline"].as_array().unwrap().iter().find(|t| t["kind"] == "released").cloned().unwrap_or_else(|| panic!("{j}"));
    assert_eq!(released["detail"]["reason"], "the provider is shutting down", "{j}");
    assert!(j["receipts"].as_array().unwrap().is_empty(), "nothing revealed before both sealed: {j}");
}

/// What a fake coordinator was asked: (method, path, body).
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String, Value)>>>;

/// A coordinator that lies to a worker, through every door it has: it names another registry (so a
/// stake would go to it), serves a spec other than the one funded on chain, and offers storage deals
/// and challenges whose ids climb out of the data folder. The worker stakes nothing, signs nothing,
/// runs nothing and writes nothing outside its folder; and a pinned escrow with no code behind it is
/// refused before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_coordinator_gets_no_stake_no_signature_and_no_file_outside_the_data_folder() {
    use qor_testkit::axum::{
        self,
        routing::{get, post},
    };
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("worker");
    std::fs::create_dir_all(&dir).unwrap();
    let me = Signer::from_bytes(&PROVIDER_KEY.parse().unwrap()).unwrap().address();
    let (registry, escrow) = (anvil.address("providerRegistry"), anvil.address("jobEscrow"));
    let init = |base: &str, deployment: &Path| {
        let w = Worker { config: dir.join("qor-worker.toml"), log: dir.join("daemon.log"), daemon: None };
        w.ok(&[
            "init",
            "--force",
            "--key-from-env",
            "--coordinator",
            base,
            "--rpc-url",
            &anvil.url,
            "--deployment",
            deployment.to_str().unwrap(),
        ]);
        w
    };
    let registered = async || {
        let call = IProviderRegistry::isRegisteredCall { provider: me };
        let out = anvil.wallet(BUYER_KEY).call(TransactionRequest::default().with_to(registry).with_input(call.abi_encode())).await;
        IProviderRegistry::isRegisteredCall::abi_decode_returns(&out.unwrap()).unwrap()
    };

    // 1. A coordinator naming its own registry: `register` refuses, naming it, and stakes nothing.
    let mut theirs = anvil.pinned();
    theirs.provider_registry = Address::repeat_byte(0x66);
    let liar = qor_testkit::FakeCoordinator::start(theirs).await;
    let w = init(&liar.base, &anvil.deployment_file);
    let out = w.cli(&["register", "--stake", "1ether"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("providerRegistry 0x6666"), "{err}");
    assert!(!registered().await, "no stake moved");

    // 2. A pinned escrow with no contract behind it: refused before anything is sent.
    let mut bogus = anvil.pinned();
    bogus.job_escrow = Address::repeat_byte(0x77);
    let bogus_file = tmp.path().join("bogus.json");
    std::fs::write(&bogus_file, serde_json::to_vec(&bogus).unwrap()).unwrap();
    let w = init(&liar.base, &bogus_file);
    let out = w.cli(&["register", "--stake", "1ether"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no contract at the pinned jobEscrow"), "{err}");
    assert!(!registered().await);

    // 3. A job funded on chain with one spec; the coordinator (naming the right contracts this time)
    //    serves another, and offers deals and challenges named `../../../escape`.
    let module = example("hello");
    let funded = spec(keccak256(&module), vec![], &["funded"]);
    let served = spec(keccak256(&module), vec![], &["served instead"]);
    let latest = anvil.wallet(BUYER_KEY).get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    let create = IJobEscrow::createComputeJobCall {
        specHash: funded.spec_hash(),
        redundancy: 1,
        token: Address::ZERO,
        budget: U256::from(ETHER / 10),
        deadline: latest.header.inner.timestamp + 3600,
        preferredProvider: Address::ZERO,
    };
    let r = send(&anvil, BUYER_KEY, escrow, create.abi_encode(), U256::from(ETHER / 10)).await;
    let created = r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data;
    let record = &created.job;
    let job = json!({
        "specHash": record.specHash, "buyer": record.buyer, "token": record.token, "budget": record.budget.to_string(),
        "deadline": record.deadline, "redundancy": record.redundancy, "preferredProvider": record.preferredProvider,
    });
    let file = b"stored bytes".to_vec();
    let blob = keccak256(&file);
    let requests: Requests = Default::default();
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let record_request = |requests: Requests| {
        move |method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Bytes| {
            let requests = requests.clone();
            async move {
                let v = serde_json::from_slice(&body).unwrap_or(Value::Null);
                requests.lock().unwrap().push((method.to_string(), uri.path().to_string(), v));
                axum::Json(json!({ "status": "ok", "stake": "1000000000000000000", "capacity": 2 }))
            }
        }
    };
    let polls = {
        let (job_id, spec, released) =
            (created.jobId.to_string(), serde_json::from_slice::<Value>(&served.canonical_json()).unwrap(), released.clone());
        let (spec_hash, job) = (served.spec_hash(), job.clone());
        move || {
            let (job_id, spec, job, released) = (job_id.clone(), spec.clone(), job.clone(), released.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let assignments = if released.load(std::sync::atomic::Ordering::Relaxed) {
                    json!([])
                } else {
                    json!([{ "assignment": 1, "jobId": job_id, "status": "leased", "specHash": spec_hash, "spec": spec, "job": job, "redundancy": 1 }])
                };
                axum::Json(json!({
                    "assignments": assignments,
                    "storage": {
                        "deals": [{ "dealId": "../../../escape", "status": "offered", "root": keccak256(b"root"), "size": 12, "blobHash": blob }],
                        "challenges": [{ "dealId": "../../../escape", "period": 0, "chunkIndexes": [0] }],
                        "probes": [{ "probeId": 1, "dealId": "1/../../../escape", "chunkIndex": 0 }],
                    },
                }))
            }
        }
    };
    let on_release = {
        let (requests, released) = (requests.clone(), released.clone());
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let (requests, released) = (requests.clone(), released.clone());
            async move {
                requests.lock().unwrap().push((
                    "POST".into(),
                    uri.path().to_string(),
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                released.store(true, std::sync::atomic::Ordering::Relaxed);
                axum::Json(json!({ "status": "released" }))
            }
        }
    };
    let routes = axum::Router::new()
        .route("/v1/worker/assignments", get(polls))
        .route("/v1/worker/assignments/{id}/release", post(on_release))
        .route("/v1/blobs/{hash}", get(move || async move { file.clone() }))
        .fallback(record_request(requests.clone()));
    let fake = qor_testkit::FakeCoordinator::start_with(anvil.pinned(), routes).await;
    let mut w = init(&fake.base, &anvil.deployment_file);
    w.ok(&["register", "--stake", "1ether"]);
    assert!(registered().await, "staked in the pinned registry");
    w.start();
    wait_for("the served spec to be refused", 60, async || released.load(std::sync::atomic::Ordering::Relaxed).then_some(())).await;
    // A few more polls with the escaping deals in them.
    tokio::time::sleep(Duration::from_secs(2)).await;
    w.kill();

    let asked = requests.lock().unwrap().clone();
    let release = asked.iter().find(|(_, path, _)| path.ends_with("/release")).unwrap();
    let reason = release.2["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("the job was funded with {}", funded.spec_hash())), "{reason}");
    for step in ["/accept", "/seal", "/receipt"] {
        assert!(!asked.iter().any(|(_, path, _)| path.ends_with(step)), "nothing signed for a spec not funded: {asked:?}");
    }
    // Nothing named by the coordinator's deal ids was written, inside the data folder or out of it.
    let mut written = Vec::new();
    let mut stack = vec![tmp.path().to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p.clone());
            }
            written.push(p);
        }
    }
    assert!(!written.iter().any(|p| p.to_string_lossy().contains("escape")), "{written:?}");
    assert!(w.log().contains("whose id is not a number"), "{}", w.log());
}

/// Hostile modules, each funded as a job beside an honest one on the same daemon: a compile bomb (past
/// the provider's compile bounds), a loop that holds a slot until the wall clock, a memory grab and
/// unbounded recursion. Each fails alone with its class; the honest job completes with the digest a
/// local run gives, and the daemon is still running and taking jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_jobs_fail_alone_while_an_honest_job_on_the_daemon_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let (m, _) = Market::start(&dir).await;
    let mut w = init_worker(&dir.join("worker"), &m);
    // Bounds a test can reach quickly: 256 MiB and 20 s to compile one module.
    let config = std::fs::read_to_string(&w.config).unwrap();
    let config = config.replace("compile-memory-mib = 4096", "compile-memory-mib = 256").replace("compile-secs = 300", "compile-secs = 20");
    assert!(config.contains("compile-memory-mib = 256") && config.contains("compile-secs = 20"), "{config}");
    std::fs::write(&w.config, config).unwrap();
    w.ok(&["register", "--stake", "1ether"]);
    w.start();

    let wat = |src: &str| wat::parse_str(src).unwrap();
    let hostile: Vec<(&str, Vec<u8>, Limits)> = vec![
        (
            "compileLimit",
            crate::hostile::compile_bomb(),
            Limits { fuel: 1_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        ),
        (
            "timeout",
            wat(r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#),
            Limits { fuel: 1 << 52, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 3_000 },
        ),
        (
            "memoryLimit",
            wat(
                r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br_if 0 (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) unreachable))"#,
            ),
            Limits { fuel: 100_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        ),
        (
            "trap",
            wat(r#"(module (memory (export "memory") 1) (func $f (call $f)) (func (export "_start") (call $f)))"#),
            Limits { fuel: 1 << 40, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        ),
    ];
    for (_, module, limits) in &hostile {
        let hash = m.put_blob(module).await;
        let job = JobSpec { limits: *limits, ..spec(hash, vec![], &[]) };
        m.fund_job(&job, U256::from(ETHER / 10)).await;
    }
    let hello = example("hello");
    let job = spec(m.put_blob(&hello).await, vec![], &["beside hostile jobs"]);
    let (job_id, _) = m.fund_job(&job, U256::from(ETHER / 10)).await;
    let done = completed(&m, job_id, 120).await;
    let (result_digest, _) = run_here(&job, &hello).await;
    assert_eq!(done["receipts"][0]["resultDigest"], json!(result_digest), "{done}");

    // Every hostile job was run and failed with its own class; the daemon lives on.
    for (class, _, _) in &hostile {
        let needle = format!("{{\"kind\":\"{class}\"");
        wait_for(&format!("the {class} job to fail"), 60, async || w.log().contains(&needle).then_some(())).await;
    }
    assert!(w.daemon.as_mut().unwrap().try_wait().unwrap().is_none(), "the daemon is still running:\n{}", w.log());
    // ...and still takes jobs.
    let after = spec(keccak256(&hello), vec![], &["after them"]);
    let (after_id, _) = m.fund_job(&after, U256::from(ETHER / 10)).await;
    wait_for("a job after the hostile ones to complete", 60, async || {
        (job_status(&m.http, after_id.to::<u64>()).await["status"] == "completed").then_some(())
    })
    .await;
}
