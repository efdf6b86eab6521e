//! What the end-to-end tests share: anvil on a free port with the contracts deployed by
//! `anvil/deploy.sh` (the devnet's own script), a coordinator on it (in process, over real sockets and
//! a real SQLite file), anvil's well-known accounts, and polling helpers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use qor_coordinator::chain::WatchConfig;
use qor_coordinator::{AppState, Config, chain, db, matcher, router};
use qor_protocol::bindings::{IJobEscrow, IStorageMarket};
use serde_json::{Value, json};

/// axum, for the tests' fake coordinators ([`FakeCoordinator::start_with`]'s routes).
pub use axum;

/// anvil's account 1: the deployer of `anvil/deploy.sh`, and the committee's one member.
pub const DEPLOYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's account 2: a provider.
pub const PROVIDER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";
/// anvil's account 3: a buyer.
pub const BUYER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
/// anvil's account 4: a second provider.
pub const PROVIDER2_KEY: &str = "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a";
/// One ether in wei.
pub const ETHER: u64 = 1_000_000_000_000_000_000;

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("an address").port()
}

/// A chain port and a coordinator port for `qor devnet`, free now along with the ports the devnet
/// derives from them (its verifiers listen at the coordinator's + 100 + n). They are below Linux's
/// ephemeral range (32768 and up): a port from that range can be taken by any outgoing connection
/// (the deployment's, say) between being picked and being listened on, and a devnet whose coordinator
/// or verifier then cannot listen does not come up.
pub fn devnet_ports() -> (u16, u16) {
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    for attempt in 0..1_000u32 {
        // 10,000..=32,000, in steps that leave room for the +100..+103 above a coordinator port.
        let base = 10_000 + ((seed / 7 + std::process::id() + attempt * 7_919) % 4_400) as u16 * 5;
        let (chain, coordinator) = (base, base + 1);
        if free(chain) && free(coordinator) && (100..104).all(|n| free(coordinator + n)) {
            return (chain, coordinator);
        }
    }
    panic!("no free ports for a devnet between 10000 and 32200");
}

/// A running anvil with the contracts deployed; killed (and its deployment file removed) on drop.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    /// JSON-RPC URL.
    pub url: String,
    /// The deployment file anvil/deploy.sh wrote.
    pub deployment_file: PathBuf,
    /// Its contents.
    pub deployment: Value,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.deployment_file);
    }
}

impl Anvil {
    /// anvil on a free port with the contracts deployed (as the devnet does).
    pub fn start() -> Self {
        let port = free_port();
        let bin = root().join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil");
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--silent"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e} (run `npm ci` first; ./test.sh does)", bin.display()));
        let url = format!("http://127.0.0.1:{port}");
        let prefix = format!("it-{port}-");
        let deployment_file = root().join(format!("anvil/deployments/{prefix}31337.json"));
        let mut anvil = Self { child, url: url.clone(), deployment_file, deployment: Value::Null };
        let out = Command::new(root().join("anvil/deploy.sh"))
            .args(["--rpc-url", &url, "--name-prefix", &prefix])
            .output()
            .expect("deploy.sh runs");
        assert!(out.status.success(), "deploy failed: {}", String::from_utf8_lossy(&out.stderr));
        anvil.deployment = serde_json::from_slice(&std::fs::read(&anvil.deployment_file).expect("a deployment file")).expect("JSON");
        anvil
    }

    /// The deployment as a client pins it.
    pub fn pinned(&self) -> qor_protocol::deployment::Deployment {
        qor_protocol::deployment::Deployment::from_json(&serde_json::to_vec(&self.deployment).expect("JSON")).expect("a deployment")
    }

    /// A contract's address from the deployment (`jobEscrow`, `providerRegistry`, `verifierCommittee`,
    /// `storageMarket`).
    pub fn address(&self, key: &str) -> Address {
        self.deployment[key].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("deployment has no `{key}`"))
    }

    /// A provider signing with `key`.
    pub fn wallet(&self, key: &str) -> DynProvider {
        let signer: PrivateKeySigner = key.parse().expect("a private key");
        ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(self.url.parse().expect("a URL")).erased()
    }

    /// Moves the chain's clock forward and mines a block.
    pub async fn advance(&self, seconds: u64) {
        let p = self.wallet(DEPLOYER_KEY);
        let _: Value = p.raw_request("evm_increaseTime".into(), (seconds,)).await.expect("evm_increaseTime");
        let _: Value = p.raw_request("evm_mine".into(), ()).await.expect("evm_mine");
    }

    /// A buyer's storage deal: uploads `data` to the coordinator at `base`, registers it (the
    /// coordinator computes the Merkle root), and funds a deal for that root from `buyer_key`: `periods`
    /// periods of 4 blocks at 1,000 wei each, [`CHALLENGES_PER_PERIOD`] chunks challenged a period.
    /// Returns the root and the deal id.
    pub async fn fund_storage_deal(&self, base: &str, buyer_key: &str, data: &[u8], periods: u16) -> (B256, U256) {
        self.fund_storage_deal_for(base, buyer_key, data, periods, Address::ZERO).await
    }

    /// [`Self::fund_storage_deal`] preferring `provider`.
    pub async fn fund_storage_deal_for(&self, base: &str, buyer_key: &str, data: &[u8], periods: u16, provider: Address) -> (B256, U256) {
        self.fund_storage_deal_sized(base, buyer_key, data, periods, provider, data.len() as u64).await
    }

    /// [`Self::fund_storage_deal_for`] declaring `size` bytes on chain (a lying buyer's deal when it is
    /// not the file's length).
    pub async fn fund_storage_deal_sized(
        &self,
        base: &str,
        buyer_key: &str,
        data: &[u8],
        periods: u16,
        provider: Address,
        size: u64,
    ) -> (B256, U256) {
        let http = alloy::transports::http::reqwest::Client::new();
        let blob = upload(base, buyer_key, data).await;
        let file: Value = http
            .post(format!("{base}/v1/storage/files"))
            .json(&json!({ "blobHash": blob }))
            .send()
            .await
            .expect("register")
            .json()
            .await
            .expect("JSON");
        let root: B256 = file["root"].as_str().and_then(|r| r.parse().ok()).unwrap_or_else(|| panic!("no root in {file}"));
        let price = 1_000u64;
        let create = IStorageMarket::createStorageDealCall {
            merkleRoot: root,
            size,
            periods,
            periodLength: 4,
            pricePerPeriod: alloy_primitives::Uint::from(price),
            challengesPerPeriod: CHALLENGES_PER_PERIOD,
            preferredProvider: provider,
        };
        let tx = TransactionRequest::default()
            .with_to(self.address("storageMarket"))
            .with_input(create.abi_encode())
            .with_value(U256::from(price * u64::from(periods)));
        let receipt = self.wallet(buyer_key).send_transaction(tx).await.expect("sent").get_receipt().await.expect("mined");
        assert!(receipt.status(), "createStorageDeal reverted");
        let deal =
            receipt.inner.logs().iter().find_map(|l| IStorageMarket::StorageDealCreated::decode_log(&l.inner).ok()).expect("the event");
        (root, deal.data.dealId)
    }

    /// The chunks the market challenges in `period` of `deal` (mines two blocks so its seed exists).
    pub async fn challenge_indexes(&self, deal: U256, period: u64) -> Vec<u64> {
        self.mine(2).await;
        let call = IStorageMarket::storageChallengeIndexesCall { dealId: deal, period: U256::from(period) };
        let tx = TransactionRequest::default().with_to(self.address("storageMarket")).with_input(call.abi_encode());
        let out = self.wallet(BUYER_KEY).call(tx).await.expect("storageChallengeIndexes");
        IStorageMarket::storageChallengeIndexesCall::abi_decode_returns(&out).expect("uints").iter().map(|i| i.to::<u64>()).collect()
    }

    /// Mines `n` empty blocks.
    pub async fn mine(&self, n: u64) {
        let _: Value = self.wallet(DEPLOYER_KEY).raw_request("anvil_mine".into(), (n,)).await.expect("anvil_mine");
    }
}

/// Chunks a test's storage deal challenges each period.
pub const CHALLENGES_PER_PERIOD: u8 = 4;

/// A coordinator in this process, on the anvil's contracts, over real sockets and a SQLite file.
#[derive(Debug)]
pub struct Coordinator {
    /// Its state (database, config).
    pub state: AppState,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Coordinator {
    /// Starts one over `dir` (a restart when its database exists), with `tweak` applied to the config.
    pub async fn start_with(dir: &Path, anvil: &Anvil, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut cfg = Config::new(31337, anvil.address("jobEscrow"), anvil.address("providerRegistry"));
        cfg.committee = anvil.address("verifierCommittee");
        cfg.market = anvil.address("storageMarket");
        cfg.deploy_block = anvil.deployment["deployBlock"].as_u64().expect("deployBlock");
        tweak(&mut cfg);
        let pool = db::open(dir.join("c.db").to_str().expect("a UTF-8 path")).await.expect("the database opens");
        let state = AppState::new(pool, &dir.join("data"), cfg.clone()).expect("the data folder opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let app = router(state.clone());
        let watch = WatchConfig {
            rpc_url: anvil.url.clone(),
            confirmations: 0,
            start_block: cfg.deploy_block,
            batch_blocks: 100,
            poll_interval: Duration::from_millis(50),
        };
        let limits = cfg.limits.clone();
        let tasks = vec![
            tokio::spawn(async move {
                qor_coordinator::server::serve(listener, app, &limits, u64::MAX, std::future::pending()).await.expect("serving")
            }),
            tokio::spawn(chain::run(state.clone(), watch)),
            tokio::spawn(matcher::run(state.clone())),
        ];
        Self { state, base, tasks }
    }

    /// Starts one with the default config.
    pub async fn start(dir: &Path, anvil: &Anvil) -> Self {
        Self::start_with(dir, anvil, |_| {}).await
    }

    /// Fault injection: lists a replica of job `job_id` that `provider` never took, lapsed after
    /// sealing `seal` (what a lying coordinator would report to get an innocent provider slashed).
    pub async fn invent_replica(&self, job_id: U256, provider: Address, seal: B256) {
        sqlx::query(
            "INSERT INTO assignments (job_id, provider, status, lease_expires_at, seal, created_at, updated_at)
             VALUES (?, ?, 'lapsed', 0, ?, 0, 0)",
        )
        .bind(job_id.to_string())
        .bind(format!("{provider:#x}"))
        .bind(format!("{seal:#x}"))
        .execute(&self.state.db)
        .await
        .expect("the invented replica is stored");
    }

    /// Stops its tasks; returns its state (to read the database).
    pub fn stop(self) -> AppState {
        for t in &self.tasks {
            t.abort();
        }
        self.state
    }
}

/// A lying coordinator, for the tests that attack a client with one: it names `deployment` at
/// `GET /v1/chain` (other contracts than the real ones, say) and answers whatever else the test's
/// `routes` answer (404 otherwise). Everything it says is a coordinator's word, which a client must
/// never act on beyond liveness.
#[derive(Debug)]
pub struct FakeCoordinator {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCoordinator {
    /// One that answers `/v1/chain` only.
    pub async fn start(deployment: qor_protocol::deployment::Deployment) -> Self {
        Self::start_with(deployment, axum::Router::new()).await
    }

    /// One that answers `/v1/chain` and `routes`.
    pub async fn start_with(deployment: qor_protocol::deployment::Deployment, routes: axum::Router) -> Self {
        let chain = json!({
            "chainId": deployment.chain_id, "jobEscrow": deployment.job_escrow, "providerRegistry": deployment.provider_registry,
            "verifierCommittee": deployment.verifier_committee, "storageMarket": deployment.storage_market,
            "deployBlock": deployment.deploy_block, "confirmations": 0,
        });
        let app = routes.route("/v1/chain", axum::routing::get(move || async move { axum::Json(chain) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        let task = tokio::spawn(async move { axum::serve(listener, app).await.expect("serving") });
        Self { base, task }
    }
}

impl Drop for FakeCoordinator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Uploads `data` as a blob to the coordinator at `base`, signed by `key` (as every upload must be);
/// returns its hash.
pub async fn upload(base: &str, key: &str, data: &[u8]) -> B256 {
    let signer = qor_protocol::eip712::Signer::from_bytes(&key.parse().expect("a private key")).expect("a key");
    let hash = keccak256(data);
    let path = format!("/v1/blobs/{hash}");
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nonce = format!("upload-{}-{}", std::process::id(), NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970").as_millis() as u64;
    let mut request = alloy::transports::http::reqwest::Client::new().put(format!("{base}{path}")).body(data.to_vec());
    for (k, v) in qor_protocol::auth::sign_request(&signer, "PUT", &path, now, &nonce, &[]).expect("signed") {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("upload");
    assert!(response.status().is_success(), "upload: {} {}", response.status(), response.text().await.unwrap_or_default());
    hash
}

/// Polls `f` every 50 ms until it returns `Some`, for at most `secs` seconds.
pub async fn wait_for<F: AsyncFn() -> Option<T>, T>(what: &str, secs: u64, f: F) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(secs), "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The path of the workspace's binary `name` (built next to the test executables; `cargo test
/// --workspace` builds every binary).
pub fn workspace_binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries one folder up.
    let exe = std::env::current_exe().expect("the test executable's path");
    let bin = exe.parent().and_then(Path::parent).expect("target/<profile>").join(name);
    assert!(bin.exists(), "{} is missing: build it with `cargo build --workspace` (cargo test --workspace does)", bin.display());
    bin
}

/// The `qor-coordinator` binary as its own process (built with the workspace's tests), so a test can
/// kill it and start it again on the same port and database: the coordinator going down, for real.
#[derive(Debug)]
pub struct CoordinatorProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    port: u16,
    /// Its folder (database, blobs, log).
    pub dir: PathBuf,
    rpc: String,
    deployment: PathBuf,
    extra: Vec<String>,
}

impl CoordinatorProcess {
    fn binary() -> PathBuf {
        workspace_binary("qor-coordinator")
    }

    /// Starts one over `dir` on a free port.
    pub async fn start(dir: &Path, anvil: &Anvil) -> Self {
        Self::start_with(dir, &anvil.url, &anvil.deployment_file, &[]).await
    }

    /// Starts one over `dir` on a free port, following the chain at `rpc` (which may not answer: the
    /// API serves regardless) with the contracts of `deployment`, and `extra` arguments.
    pub async fn start_with(dir: &Path, rpc: &str, deployment: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("the coordinator's folder");
        let mut p = Self {
            child: None,
            base: String::new(),
            port: free_port(),
            dir: dir.to_path_buf(),
            rpc: rpc.to_string(),
            deployment: deployment.to_path_buf(),
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        p.base = format!("http://127.0.0.1:{}", p.port);
        p.restart().await;
        p
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)starts it on the same port and database, and waits until it answers.
    pub async fn restart(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("coordinator.log")).expect("a log file");
        let child = Command::new(Self::binary())
            .args(["--database-url", self.dir.join("c.db").to_str().expect("UTF-8")])
            .args(["--data-dir", self.dir.join("data").to_str().expect("UTF-8")])
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--rpc-url", &self.rpc, "--poll-ms", "50"])
            .args(["--heartbeat-ttl-ms", "60000"])
            .arg("--deployment")
            .arg(&self.deployment)
            .args(&self.extra)
            .env("RUST_LOG", "qor_coordinator=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("qor-coordinator starts");
        self.child = Some(child);
        let (http, health) = (alloy::transports::http::reqwest::Client::new(), format!("{}/health", self.base));
        wait_for("the coordinator to answer", 30, async || {
            http.get(&health).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }

    /// Kills it (as a crash would).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where blob `hash` is stored on its disk (for fault injection).
    pub fn blob_path(&self, hash: B256) -> PathBuf {
        self.dir.join("data/blobs").join(format!("{hash:x}"))
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }
}

impl Drop for CoordinatorProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The trivial example module (`examples/jobs`, built by `./test.sh`).
pub fn hello_module() -> Vec<u8> {
    let path = root().join("examples/jobs/target/wasm32-wasip1/release/hello.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (./test.sh builds the examples)", path.display()))
}

/// A job of `module` with one argument and three replicas, within generous limits.
pub fn hello_spec(module: B256, arg: &str) -> qor_protocol::spec::JobSpec {
    qor_protocol::spec::JobSpec {
        version: 1,
        module,
        entry: "_start".into(),
        args: vec![arg.into()],
        env: Default::default(),
        inputs: vec![],
        limits: qor_protocol::spec::Limits { fuel: 50_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        redundancy: 3,
    }
}

/// `buyer`'s `createComputeJob` for `spec` with `budget` wei as a transaction whose nonce, gas and fees
/// are set here: tests and benchmarks send many back to back, or replace one at the same nonce.
pub fn funding_tx(
    escrow: Address,
    buyer: Address,
    spec: &qor_protocol::spec::JobSpec,
    budget: U256,
    deadline: u64,
    nonce: u64,
    tip: u128,
) -> TransactionRequest {
    let input = IJobEscrow::createComputeJobCall {
        specHash: spec.spec_hash(),
        redundancy: spec.redundancy,
        token: Address::ZERO,
        budget,
        deadline,
        preferredProvider: Address::ZERO,
    }
    .abi_encode();
    TransactionRequest::default()
        .with_from(buyer)
        .with_to(escrow)
        .with_value(budget)
        .with_input(input)
        .with_nonce(nonce)
        .with_gas_limit(1_000_000)
        .with_max_fee_per_gas(100_000_000_000)
        .with_max_priority_fee_per_gas(tip)
}
