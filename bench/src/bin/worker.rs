//! Provider daemon benchmarks:
//! - how many trivial `hello` jobs one worker completes per second through a real coordinator over
//!   loopback, on jobs funded on a real anvil (the per-job overhead outside the sandbox: poll, the
//!   job's record checked against the escrow's commitment, accept, fetch, seal, upload, receipt);
//! - how long answering a storage challenge takes on a 1 GiB hosted file (proof read from the on-disk
//!   tree), and how long hosting it takes (tree built, root checked).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{U256, keccak256};
use alloy_sol_types::SolCall;
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::merkle::{chunk_count, verify};
use qor_protocol::spec::{JobSpec, Limits};
use qor_testkit::{Anvil, BUYER_KEY, ETHER, PROVIDER_KEY, funding_tx, wait_for};
use qor_worker::chain::Chain;
use qor_worker::client::Coordinator;
use qor_worker::daemon::{Daemon, DaemonConfig};
use qor_worker::hosting::Hosting;

const JOBS: usize = 300;
const SLOTS: usize = 2;

fn hello() -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/jobs/target/wasm32-wasip1/release/hello.wasm");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (./test.sh builds the examples)", path.display()))
}

async fn jobs_per_second() {
    // A real chain: the worker checks every job against the escrow's commitment before running it.
    let anvil = Anvil::start();
    let tmp = tempfile::tempdir().unwrap();
    let coordinator = qor_testkit::Coordinator::start(tmp.path(), &anvil).await;
    let base = coordinator.base.clone();
    let register =
        IProviderRegistry::registerCall { metadata: ProviderMetadata { pricePerFuel: 1, capacity: SLOTS as u32, region: "bench".into() } };
    let tx = TransactionRequest::default().with_to(anvil.address("providerRegistry")).with_input(register.abi_encode());
    let r = anvil.wallet(PROVIDER_KEY).send_transaction(tx.with_value(U256::from(ETHER))).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "register reverted");

    let module = hello();
    let module_hash = keccak256(&module);
    let http = reqwest::Client::new();
    qor_testkit::upload(&base, BUYER_KEY, &module).await;
    let specs: Vec<JobSpec> = (0..JOBS)
        .map(|i| JobSpec {
            version: 1,
            module: module_hash,
            entry: "_start".into(),
            args: vec![format!("job-{i}")],
            env: Default::default(),
            inputs: vec![],
            limits: Limits { fuel: 10_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
            redundancy: 1,
        })
        .collect();
    for spec in &specs {
        http.post(format!("{base}/v1/specs")).body(spec.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    }
    let buyer: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let wallet = anvil.wallet(BUYER_KEY);
    let nonce = wallet.get_transaction_count(buyer.address()).await.unwrap();
    let latest = wallet.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    let mut pending = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let budget = U256::from(ETHER / 1_000);
        let tx =
            funding_tx(anvil.address("jobEscrow"), buyer.address(), spec, budget, latest.header.timestamp + 86_400, nonce + i as u64, 1);
        pending.push(wallet.send_transaction(tx).await.unwrap());
    }
    for p in pending {
        assert!(p.get_receipt().await.unwrap().status(), "funding reverted");
    }
    let state = coordinator.state.clone();
    wait_for("the coordinator to see every job", 120, async || {
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs").fetch_one(&state.db).await.unwrap();
        (seen as usize == JOBS).then_some(())
    })
    .await;

    let key: PrivateKeySigner = PROVIDER_KEY.parse().unwrap();
    let worker = qor_worker::keys::protocol_signer(&key);
    let chain = Chain::connect(&anvil.url, key, anvil.pinned()).await.unwrap();
    let cfg = DaemonConfig {
        data_dir: tmp.path().join("worker"),
        max_jobs: SLOTS,
        storage_quota_bytes: 0,
        max_deal_blocks: 0,
        grace: Duration::from_secs(5),
        heartbeat: Duration::from_secs(5),
        progress: false,
        corrupt_digest: false,
        compiler: None,
        preload_runtimes: None,
    };
    let daemon = Daemon::new(cfg, Coordinator::new(&base, worker.clone()), chain, worker).unwrap();
    let stop = daemon.shutdown.clone();
    let start = Instant::now();
    let task = tokio::spawn(daemon.run());
    loop {
        let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'completed'").fetch_one(&state.db).await.unwrap();
        if done as usize == JOBS {
            break;
        }
        if start.elapsed() > Duration::from_secs(300) {
            let stuck: Vec<(String, String, Option<String>)> =
                sqlx::query_as("SELECT job_id, status, reason FROM jobs WHERE status != 'completed' LIMIT 5")
                    .fetch_all(&state.db)
                    .await
                    .unwrap();
            let mut report = String::new();
            for (job, status, reason) in &stuck {
                let timeline: Vec<(String, String, String)> =
                    sqlx::query_as("SELECT actor, kind, detail FROM timeline WHERE subject = ? ORDER BY id")
                        .bind(format!("job:{job}"))
                        .fetch_all(&state.db)
                        .await
                        .unwrap();
                report.push_str(&format!("\njob {job} ({status}, {reason:?}): {timeline:?}"));
            }
            panic!("only {done} of {JOBS} jobs completed in 300 s; the others:{report}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    stop.cancel();
    task.await.unwrap().unwrap();
    println!("worker_hello_jobs {:.1} per_s", JOBS as f64 / secs);
    println!("worker_hello_job_wall {:.2} ms", secs * 1e3 * SLOTS as f64 / JOBS as f64);
}

fn storage_challenge_latency() {
    const SIZE: u64 = 1 << 30;
    let tmp = tempfile::tempdir_in(std::env::var_os("QOR_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from)).unwrap();
    let hosting = Hosting::open(tmp.path()).unwrap();
    let deal = U256::from(1);
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(hosting.create_part(deal).unwrap());
        let mut block = vec![0u8; 1 << 20];
        for i in 0..(SIZE >> 20) {
            for (j, b) in block.iter_mut().enumerate() {
                *b = (i as usize * 131 + j * 7) as u8;
            }
            f.write_all(&block).unwrap();
        }
        f.flush().unwrap();
    }
    let root = qor_protocol::merkle::root_from_reader(std::io::BufReader::new(
        std::fs::File::open(tmp.path().join("storage").join(format!("{deal}.bin.part"))).unwrap(),
    ))
    .unwrap()
    .0;
    let start = Instant::now();
    let meta = hosting.adopt(deal, root).unwrap();
    println!("storage_host_1gib {:.2} s", start.elapsed().as_secs_f64());
    let chunks = chunk_count(meta.size);
    let mut latencies = Vec::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % chunks;
        let t = Instant::now();
        let proof = hosting.prove(deal, index).unwrap();
        latencies.push(t.elapsed());
        assert!(verify(&root, chunks, &proof));
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e6;
    println!("storage_challenge_proof_1gib_p50 {:.1} us", pct(0.50));
    println!("storage_challenge_proof_1gib_p99 {:.1} us", pct(0.99));
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    jobs_per_second().await;
    tokio::task::spawn_blocking(storage_challenge_latency).await.unwrap();
}
