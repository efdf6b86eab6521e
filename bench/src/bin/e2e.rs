//! The market end to end on the devnet (`qor devnet`, release binaries: anvil at one block a second,
//! the contracts, a coordinator acting on events 2 blocks deep, one verifier, three workers; challenge
//! window 0, so a settled batch is released at once). The buyer funds jobs of the trivial module,
//! three replicas each, back to back; the benchmark watches the escrow's events. Two runs:
//!
//! - a burst of 300 jobs: latency per job from its funding sent to its batch settled on chain, p50
//!   and p99, and the burst's jobs per second (a burst this short is mostly the fixed part of a job's
//!   latency: its funding's block, 2 confirmations, and the settlement's block);
//! - 1,200 jobs: jobs per second from the first funding sent to the last job settled (the sustained
//!   rate), and gas per job: every transaction in the blocks from the first funding to the last
//!   release, divided by the jobs (funding, settlement and release; nothing else runs on the devnet).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, U256, keccak256};
use alloy_sol_types::SolEvent;
use qor_protocol::bindings::IJobEscrow;
use qor_testkit::{BUYER_KEY, devnet_ports, funding_tx, hello_module, hello_spec};

/// Jobs of the latency burst.
const BURST: usize = 300;
/// Jobs of the throughput run.
const SUSTAINED: usize = 1_200;

struct Devnet(Child);

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-INT", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Settled and released job ids as the escrow's events show them, with when they were seen.
#[derive(Default)]
struct Events {
    cursor: u64,
    settled: BTreeMap<U256, Instant>,
    batch_jobs: BTreeMap<U256, Vec<U256>>,
    released: BTreeMap<U256, Instant>,
    released_batches: usize,
    /// The block of the last release seen.
    last_block: u64,
}

impl Events {
    async fn poll(&mut self, node: &impl Provider, escrow: Address) {
        let head = node.get_block_number().await.unwrap();
        if head <= self.cursor {
            return;
        }
        let logs = node.get_logs(&Filter::new().address(escrow).from_block(self.cursor + 1).to_block(head)).await.unwrap();
        let seen = Instant::now();
        for log in &logs {
            if let Ok(e) = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner) {
                for id in &e.data.outcome.jobIds {
                    self.settled.entry(*id).or_insert(seen);
                }
                self.batch_jobs.insert(e.data.batchId, e.data.outcome.jobIds.clone());
            } else if let Ok(e) = IJobEscrow::ComputeBatchFinalized::decode_log(&log.inner) {
                self.released_batches += 1;
                for id in self.batch_jobs.get(&e.data.batchId).into_iter().flatten() {
                    self.released.entry(*id).or_insert(seen);
                }
                self.last_block = log.block_number.unwrap_or(head);
            }
        }
        self.cursor = head;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One run's outcome.
struct Run {
    /// Jobs per second from the first funding sent to the last job settled.
    jobs_per_s: f64,
    /// Funding sent → settled, per job, ascending, in seconds.
    latencies: Vec<f64>,
    /// Gas of every transaction from the first funding to the last release, per job.
    gas_per_job: u128,
}

/// Funds `specs` back to back from nonce `nonce`, waits until every job is released, and measures.
async fn run(
    node: &impl Provider,
    escrow: Address,
    buyer: Address,
    specs: &[qor_protocol::spec::JobSpec],
    nonce: u64,
    deadline: u64,
    events: &mut Events,
) -> Run {
    let budget = U256::from(10u64.pow(16));
    let first_block = node.get_block_number().await.unwrap() + 1;
    let start = Instant::now();
    let mut sent_at = Vec::with_capacity(specs.len());
    let mut pending = Vec::with_capacity(specs.len());
    for (i, s) in specs.iter().enumerate() {
        let tx = funding_tx(escrow, buyer, s, budget, deadline, nonce + i as u64, 1_000_000_000);
        sent_at.push(Instant::now());
        pending.push(node.send_transaction(tx).await.unwrap());
    }
    let mut ids = Vec::with_capacity(specs.len());
    for p in pending {
        let r = p.get_receipt().await.unwrap();
        assert!(r.status(), "a funding reverted");
        ids.push(r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data.jobId);
    }
    let give_up = Instant::now() + Duration::from_secs(600);
    while !ids.iter().all(|id| events.released.contains_key(id)) {
        assert!(
            Instant::now() < give_up,
            "{} of {} jobs settled, {} released after 600 s",
            ids.iter().filter(|id| events.settled.contains_key(id)).count(),
            ids.len(),
            ids.iter().filter(|id| events.released.contains_key(id)).count()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        events.poll(node, escrow).await;
    }
    let last_settled = ids.iter().map(|id| events.settled[id]).max().unwrap();
    let mut latencies: Vec<f64> = ids.iter().zip(&sent_at).map(|(id, t)| events.settled[id].duration_since(*t).as_secs_f64()).collect();
    latencies.sort_by(f64::total_cmp);
    let mut gas = 0u128;
    for n in first_block..=events.last_block {
        let receipts = node.get_block_receipts(n.into()).await.unwrap().unwrap_or_default();
        gas += receipts.iter().map(|r| u128::from(r.gas_used)).sum::<u128>();
    }
    Run {
        jobs_per_s: specs.len() as f64 / last_settled.duration_since(start).as_secs_f64(),
        latencies,
        gas_per_job: gas / specs.len() as u128,
    }
}

#[tokio::main]
async fn main() {
    let exe = std::env::current_exe().unwrap();
    let qor = exe.parent().unwrap().join("qor");
    assert!(qor.exists(), "{} is missing: cargo build --release --workspace --bins first", qor.display());
    let tmp = tempfile::tempdir().unwrap();
    let (chain_port, coordinator_port) = devnet_ports();
    let mut child = Command::new(&qor)
        .args(["devnet", "--workers", "3", "--challenge-window", "0"])
        .args(["--chain-port", &chain_port.to_string(), "--coordinator-port", &coordinator_port.to_string()])
        .arg("--data-dir")
        .arg(tmp.path().join("devnet"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _devnet = Devnet(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("Ctrl-C stops everything") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    let deployment: serde_json::Value = serde_json::from_slice(&std::fs::read(tmp.path().join("devnet/deployment.json")).unwrap()).unwrap();
    let escrow: Address = deployment["jobEscrow"].as_str().unwrap().parse().unwrap();
    let (rpc, base) = (format!("http://127.0.0.1:{chain_port}"), format!("http://127.0.0.1:{coordinator_port}"));

    let http = reqwest::Client::new();
    let module = hello_module();
    let module_hash = keccak256(&module);
    qor_testkit::upload(&base, BUYER_KEY, &module).await;
    // One warm-up job (module compiled and cached by every worker), then the measured ones.
    let specs: Vec<_> = (0..1 + BURST + SUSTAINED).map(|i| hello_spec(module_hash, &format!("e2e-{i}"))).collect();
    for s in &specs {
        http.post(format!("{base}/v1/specs")).body(s.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    }
    let signer: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let buyer = signer.address();
    let node = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(rpc.parse().unwrap());
    let now = node.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap().header.timestamp;
    let nonce = node.get_transaction_count(buyer).await.unwrap();

    let mut events = Events { cursor: node.get_block_number().await.unwrap(), ..Events::default() };
    run(&node, escrow, buyer, &specs[..1], nonce, now + 3_600, &mut events).await;
    let burst = run(&node, escrow, buyer, &specs[1..=BURST], nonce + 1, now + 3_600, &mut events).await;
    let sustained = run(&node, escrow, buyer, &specs[1 + BURST..], nonce + 1 + BURST as u64, now + 3_600, &mut events).await;

    println!("e2e_latency_funding_to_settled_p50 {:.2} s", percentile(&burst.latencies, 0.50));
    println!("e2e_latency_funding_to_settled_p99 {:.2} s", percentile(&burst.latencies, 0.99));
    println!("e2e_burst_{BURST}_jobs_per_s {:.1} jobs_per_s", burst.jobs_per_s);
    println!("e2e_jobs_per_s {:.1} jobs_per_s", sustained.jobs_per_s);
    println!("e2e_gas_per_job {} gas", sustained.gas_per_job);
    println!("e2e_batches_released {} batches", events.released_batches);
}
