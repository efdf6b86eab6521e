//! Against a real anvil with the contracts deployed by anvil/deploy.sh: a provider registers and a
//! buyer funds a job on chain; the coordinator sees both, matches, leases, takes the sealed and
//! revealed receipt; then a reorg replaces a job it had applied, and a restarted watcher resumes
//! without applying any event twice.

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolCall;
use qor_coordinator::db;
use qor_protocol::auth::sign_request;
use qor_protocol::bindings::IJobEscrow::{self, Receipt};
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::bindings::IStorageMarket;
use qor_protocol::eip712::{Signer, escrow_domain};
use qor_protocol::spec::{JobSpec, Limits};
use qor_protocol::worker_requests::{acceptance_body, receipt_body, seal_body};
use qor_testkit::{Anvil, BUYER_KEY, Coordinator, DEPLOYER_KEY, ETHER, PROVIDER_KEY};
use serde_json::{Value, json};

async fn wait_for<F: AsyncFn() -> Option<T>, T>(what: &str, f: F) -> T {
    qor_testkit::wait_for(what, 30, f).await
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    http.get(url).send().await.unwrap().json().await.unwrap()
}

async fn worker_call(http: &reqwest::Client, base: &str, worker: &Signer, method: &str, path: &str, body: Value) -> Value {
    let bytes = if method == "GET" { vec![] } else { serde_json::to_vec(&body).unwrap() };
    let nonce = format!("{}", rand_nonce());
    let mut request = http.request(method.parse().unwrap(), format!("{base}{path}")).body(bytes.clone());
    for (k, v) in sign_request(worker, method, path, db::now_ms() as u64, &nonce, &bytes).unwrap() {
        request = request.header(k, v);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let value: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {value}");
    value
}

fn rand_nonce() -> u64 {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funding_matching_receipts_reorgs_and_restarts_against_anvil() {
    let _ = tracing_subscriber::fmt().with_env_filter("qor_coordinator=debug").with_test_writer().try_init();
    let anvil = Anvil::start();
    let (escrow, registry) = (anvil.address("jobEscrow"), anvil.address("providerRegistry"));
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let base = coordinator.base.clone();
    let http = reqwest::Client::new();

    let provider_key: PrivateKeySigner = PROVIDER_KEY.parse().unwrap();
    let buyer_key: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let worker = Signer::from_bytes(&PROVIDER_KEY.parse::<B256>().unwrap()).unwrap();
    let url = anvil.url.parse().unwrap();
    let as_provider = ProviderBuilder::new().wallet(EthereumWallet::from(provider_key)).connect_http(url);
    let as_buyer = ProviderBuilder::new().wallet(EthereumWallet::from(buyer_key.clone())).connect_http(anvil.url.parse().unwrap());

    // The provider registers on chain; the coordinator learns of it from the event.
    let register = IProviderRegistry::registerCall { metadata: ProviderMetadata { pricePerFuel: 1, capacity: 2, region: "local".into() } };
    let tx = TransactionRequest::default().with_to(registry).with_input(register.abi_encode()).with_value(U256::from(ETHER));
    assert!(as_provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status());
    let me = format!("{:#x}", worker.address());
    wait_for("the provider to appear", async || {
        let providers = get(&http, format!("{base}/v1/providers")).await;
        providers["providers"].as_array().unwrap().iter().any(|p| p["address"] == me.as_str()).then_some(())
    })
    .await;
    worker_call(&http, &base, &worker, "POST", "/v1/worker/register", json!({})).await;

    // The buyer uploads a module and a spec, then funds a job for it.
    let module = b"\0asm\x01\0\0\0 pretend module".to_vec();
    let module_hash = keccak256(&module);
    qor_testkit::upload(&base, BUYER_KEY, &module).await;
    let spec = |arg: &str| JobSpec {
        version: 1,
        module: module_hash,
        entry: "_start".into(),
        args: vec![arg.into()],
        env: Default::default(),
        inputs: vec![],
        limits: Limits { fuel: 1_000_000, memory_bytes: 1 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        redundancy: 1,
    };
    let post_spec = async |s: &JobSpec| {
        http.post(format!("{base}/v1/specs")).body(s.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    };
    let fund = async |spec_hash: B256| {
        let deadline = (db::now_ms() / 1000 + 3600) as u64;
        let call = IJobEscrow::createComputeJobCall {
            specHash: spec_hash,
            redundancy: 1,
            token: Address::ZERO,
            budget: U256::from(ETHER / 100),
            deadline,
            preferredProvider: Address::ZERO,
        };
        // The nonce is read from the chain each time: the reorg below rewinds it.
        let nonce = as_buyer.get_transaction_count(buyer_key.address()).await.unwrap();
        let tx = TransactionRequest::default()
            .with_to(escrow)
            .with_input(call.abi_encode())
            .with_value(U256::from(ETHER / 100))
            .with_nonce(nonce);
        // Receipts are polled by hash: alloy's block watcher would not see a block height again after
        // the reorg below rewinds the chain.
        let hash = *as_buyer.send_transaction(tx).await.unwrap().tx_hash();
        let receipt = wait_for("the funding receipt", async || as_buyer.get_transaction_receipt(hash).await.unwrap()).await;
        assert!(receipt.status());
    };
    let first = spec("one");
    post_spec(&first).await;
    fund(first.spec_hash()).await;

    let job = wait_for("job 1 to be leased", async || {
        let job = get(&http, format!("{base}/v1/jobs/1")).await;
        (job["status"] == "running").then_some(job)
    })
    .await;
    assert_eq!(job["specHash"], format!("{:#x}", first.spec_hash()));
    assert_eq!(job["buyer"], format!("{:#x}", buyer_key.address()));
    assert_eq!(job["timeline"][0]["kind"], "funded");
    assert!(job["timeline"][0]["block"].as_i64().unwrap() > 0);

    // The worker takes it: the coordinator's record of the job hashes to the escrow's own commitment
    // (what a worker checks before signing anything), then it accepts, seals and reveals.
    let polled = worker_call(&http, &base, &worker, "GET", "/v1/worker/assignments?wait_ms=5000", json!(null)).await;
    let a = &polled["assignments"][0];
    let assignment = a["assignment"].as_i64().unwrap();
    let j = &a["job"];
    let record = IJobEscrow::ComputeJob {
        specHash: j["specHash"].as_str().unwrap().parse().unwrap(),
        buyer: j["buyer"].as_str().unwrap().parse().unwrap(),
        token: j["token"].as_str().unwrap().parse().unwrap(),
        budget: j["budget"].as_str().unwrap().parse().unwrap(),
        deadline: j["deadline"].as_u64().unwrap(),
        redundancy: j["redundancy"].as_u64().unwrap() as u8,
        preferredProvider: j["preferredProvider"].as_str().unwrap().parse().unwrap(),
    };
    let call = IJobEscrow::computeJobCommitmentCall { jobId: U256::from(1) };
    let out = as_buyer.call(TransactionRequest::default().with_to(escrow).with_input(call.abi_encode())).await.unwrap();
    let committed = IJobEscrow::computeJobCommitmentCall::abi_decode_returns(&out).unwrap();
    assert_eq!(keccak256(alloy_sol_types::SolValue::abi_encode(&record)), committed, "{a}");
    let digest = keccak256(b"result");
    let domain = escrow_domain(31337, escrow);
    let spec_hash = first.spec_hash();
    let accept = acceptance_body(&worker, &domain, U256::from(1), spec_hash).unwrap();
    worker_call(&http, &base, &worker, "POST", &format!("/v1/worker/assignments/{assignment}/accept"), accept).await;
    let sealed = seal_body(&worker, &domain, U256::from(1), spec_hash, digest).unwrap();
    worker_call(&http, &base, &worker, "POST", &format!("/v1/worker/assignments/{assignment}/seal"), sealed).await;
    let receipt = Receipt {
        jobId: U256::from(1),
        specHash: spec_hash,
        worker: worker.address(),
        resultDigest: digest,
        stdoutHash: keccak256(b""),
        exitCode: 0,
        fuelUsed: 99,
    };
    let body = receipt_body(&worker, &domain, &receipt, &[]).unwrap();
    worker_call(&http, &base, &worker, "POST", &format!("/v1/worker/assignments/{assignment}/receipt"), body).await;
    let job = get(&http, format!("{base}/v1/jobs/1")).await;
    assert_eq!(job["status"], "completed", "{job}");

    // Storage: the buyer uploads and registers a file and funds a deal for the root the coordinator
    // computed; the coordinator offers it to the provider, which checks the root and accepts on chain;
    // the committee member (known from the committee's events) relays the period's challenge, and the
    // answer the coordinator checked is one the escrow accepts too.
    let data: Vec<u8> = (0..3_000u32).map(|i| (i % 253) as u8).collect();
    let (root, _) = anvil.fund_storage_deal(&base, BUYER_KEY, &data, 2).await;
    let polled = wait_for("the deal to be offered", async || {
        let polled = worker_call(&http, &base, &worker, "GET", "/v1/worker/assignments?wait_ms=1000", json!(null)).await;
        (polled["storage"]["deals"].as_array().is_some_and(|d| !d.is_empty())).then_some(polled)
    })
    .await;
    let offered = &polled["storage"]["deals"][0];
    assert_eq!((offered["status"].as_str(), offered["root"].clone()), (Some("offered"), json!(root)), "{polled}");
    let deal_id = offered["dealId"].as_str().unwrap().to_string();
    let fetched =
        http.get(format!("{base}/v1/blobs/{}", offered["blobHash"].as_str().unwrap())).send().await.unwrap().bytes().await.unwrap();
    let tree = qor_protocol::merkle::StorageTree::from_bytes(&fetched).unwrap();
    let reported =
        worker_call(&http, &base, &worker, "POST", &format!("/v1/worker/storage/{deal_id}/root"), json!({ "root": tree.root() })).await;
    assert_eq!(reported["status"], "hosting");
    let deal_u = U256::from(deal_id.parse::<u64>().unwrap());
    let market = anvil.address("storageMarket");
    let accept = IStorageMarket::acceptStorageDealCall { dealId: deal_u };
    let tx = TransactionRequest::default().with_to(market).with_input(accept.abi_encode());
    assert!(as_provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status());
    wait_for("the deal to be active", async || {
        (get(&http, format!("{base}/v1/storage/deals/{deal_id}")).await["status"] == "active").then_some(())
    })
    .await;
    let indexes = anvil.challenge_indexes(deal_u, 0).await;
    let verifier = Signer::from_bytes(&DEPLOYER_KEY.parse::<B256>().unwrap()).unwrap();
    let relay = format!("/v1/verifier/storage/{deal_id}/challenges");
    worker_call(&http, &base, &verifier, "POST", &relay, json!({ "period": 0, "chunkIndexes": indexes })).await;
    let work = worker_call(&http, &base, &worker, "GET", "/v1/worker/storage", json!(null)).await;
    assert_eq!(work["challenges"][0]["chunkIndexes"], json!(indexes), "{work}");
    let proofs: Vec<_> = indexes.iter().map(|i| tree.prove(&fetched, *i).unwrap()).collect();
    let chunks: Vec<Vec<u8>> = proofs.iter().map(|p| p.chunk.clone()).collect();
    let paths: Vec<Vec<B256>> = proofs.iter().map(|p| p.path.clone()).collect();
    let hex: Vec<String> = chunks.iter().map(alloy_primitives::hex::encode_prefixed).collect();
    let answer = json!({ "chunks": hex, "paths": paths });
    worker_call(&http, &base, &worker, "POST", &format!("/v1/worker/storage/{deal_id}/challenges/0"), answer).await;
    let prove = IStorageMarket::proveStorageCall {
        dealId: deal_u,
        period: U256::ZERO,
        chunks: chunks.into_iter().map(Into::into).collect(),
        paths,
    };
    let tx = TransactionRequest::default().with_to(market).with_input(prove.abi_encode());
    assert!(as_provider.send_transaction(tx).await.unwrap().get_receipt().await.unwrap().status(), "the market accepts the answer");
    let deal = wait_for("the proof on chain", async || {
        let deal = get(&http, format!("{base}/v1/storage/deals/{deal_id}")).await;
        deal["timeline"].as_array().unwrap().iter().any(|t| t["kind"] == "StoragePeriodProven").then_some(deal)
    })
    .await;
    assert_eq!(deal["challenges"][0]["status"], "answered", "{deal}");

    // A reorg: job 2 is funded for spec "two", seen, then the chain drops that block and job 2 is
    // funded again for spec "three" in a block at the same height.
    let snapshot: U256 = as_buyer.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let (two, three) = (spec("two"), spec("three"));
    post_spec(&two).await;
    post_spec(&three).await;
    fund(two.spec_hash()).await;
    wait_for("job 2 (spec two)", async || {
        let job = get(&http, format!("{base}/v1/jobs/2")).await;
        (job["specHash"] == format!("{:#x}", two.spec_hash()).as_str()).then_some(())
    })
    .await;
    let reverted: bool = as_buyer.raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    fund(three.spec_hash()).await;
    let job = wait_for("job 2 to become spec three", async || {
        let job = get(&http, format!("{base}/v1/jobs/2")).await;
        (job["specHash"] == format!("{:#x}", three.spec_hash()).as_str()).then_some(job)
    })
    .await;
    let kinds: Vec<&str> = job["timeline"].as_array().unwrap().iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"reorged_out"), "{kinds:?}");
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!metrics.contains("qor_chain_reorgs_total 0"), "{metrics}");
    let (_, spec_two) = (0, get(&http, format!("{base}/v1/specs/{:#x}", two.spec_hash())).await);
    assert_eq!(spec_two["status"], "awaiting_funding", "its funding is gone with the reorg");

    // Restart: the watcher resumes from its cursor; nothing is applied twice.
    let state = coordinator.stop();
    let events: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chain_events").fetch_one(&state.db).await.unwrap();
    state.db.close().await;
    let coordinator = Coordinator::start(tmp.path(), &anvil).await;
    let base = coordinator.base.clone();
    let four = spec("four");
    http.post(format!("{base}/v1/specs")).body(four.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    fund(four.spec_hash()).await;
    wait_for("job 3 after the restart", async || {
        let job = get(&http, format!("{base}/v1/jobs/3")).await;
        (job["specHash"] == format!("{:#x}", four.spec_hash()).as_str()).then_some(())
    })
    .await;
    let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM chain_events").fetch_one(&coordinator.state.db).await.unwrap();
    assert_eq!(after, events + 1, "exactly the one new event");
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(&coordinator.state.db).await.unwrap();
    assert_eq!(jobs, 3);
    coordinator.stop();
}
