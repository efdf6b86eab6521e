//! Chaos on the devnet: 200 jobs (three replicas each) funded at once, and while they are in flight
//! the coordinator, one worker and the verifier are each killed with SIGKILL; the devnet starts each
//! again. Every job must end released or refunded on chain, no job may be settled twice, and no wei
//! may go missing: what the escrow holds equals the sum of what it owes.

use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, U256, keccak256};
use alloy_sol_types::SolEvent;
use qor_protocol::bindings::IJobEscrow;
use qor_protocol::spec::JobSpec;

use qor_testkit::{BUYER_KEY, funding_tx, hello_module, hello_spec};

use crate::{Devnet, call};

const JOBS: usize = 200;

/// The process whose command line contains `needle`, if one runs (read from /proc: no procps needed
/// on a fresh machine).
fn pid_of(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        (pid != std::process::id() && cmdline.contains(needle)).then_some(pid)
    })
}

/// SIGKILLs the process running with `needle` in its command line and waits for the devnet to start
/// it again (a new pid).
async fn kill_and_wait_for_restart(what: &str, needle: &str) {
    let old = pid_of(needle).unwrap_or_else(|| panic!("{what} is not running"));
    assert!(std::process::Command::new("kill").args(["-KILL", &old.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(new) = pid_of(needle).filter(|p| *p != old) {
            eprintln!("chaos: {what} killed (pid {old}), running again as pid {new}");
            return;
        }
        assert!(Instant::now() < deadline, "{what} was not started again after SIGKILL");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_survive_sigkills_of_the_coordinator_a_worker_and_the_verifier() {
    let net = Devnet::start(&["--workers", "3", "--challenge-window", "3"]);
    let data = std::fs::canonicalize(net.tmp.path().join("devnet")).unwrap();
    let escrow = net.address("jobEscrow");
    let http = reqwest::Client::new();
    let base = net.coordinator.clone();

    // 200 specs of the trivial module, then 200 fundings sent back to back (nonces set here).
    let module = hello_module();
    let module_hash = keccak256(&module);
    qor_testkit::upload(&base, BUYER_KEY, &module).await;
    let specs: Vec<JobSpec> = (0..JOBS).map(|i| hello_spec(module_hash, &format!("chaos-{i}"))).collect();
    for s in &specs {
        http.post(format!("{base}/v1/specs")).body(s.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    }
    let signer: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let buyer = signer.address();
    let node = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(net.rpc.parse().unwrap());
    let now = node.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap().header.timestamp;
    let nonce = node.get_transaction_count(buyer).await.unwrap();
    let budget = U256::from(10u64.pow(16));
    let mut pending = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let tx = funding_tx(escrow, buyer, s, budget, now + 3_600, nonce + i as u64, 1_000_000_000);
        pending.push(node.send_transaction(tx).await.unwrap());
    }
    let mut jobs = Vec::new();
    for p in pending {
        let r = p.get_receipt().await.unwrap();
        assert!(r.status(), "funding reverted");
        jobs.push(r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data.jobId);
    }
    let funded_at = node.get_block_number().await.unwrap();

    // While they run: the coordinator, then a worker, then the verifier, each SIGKILLed.
    // The first kill once some jobs have all their receipts (and so the rest are mid-flight).
    let done = async || {
        let v: serde_json::Value = match http.get(format!("{base}/v1/jobs?limit=1000")).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
        let done = jobs.iter().filter(|j| matches!(j["status"].as_str(), Some("completed" | "verified" | "settled"))).count();
        (done, jobs.iter().map(|j| j["status"].as_str().unwrap_or("?").to_string()).collect::<std::collections::BTreeSet<_>>())
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (n, statuses) = done().await;
        if n >= 10 {
            break;
        }
        assert!(Instant::now() < deadline, "only {n} jobs have every receipt after 120 s; statuses: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    kill_and_wait_for_restart("the coordinator", &format!("{}/coordinator.db", data.display())).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    kill_and_wait_for_restart("worker-1", &format!("{}/worker-1/", data.display())).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    kill_and_wait_for_restart("the verifier", &format!("{}/verifier-0/", data.display())).await;

    // Every job ends released (finalized) or refunded, and every settled batch is released.
    let deadline = Instant::now() + Duration::from_secs(420);
    let mut open: Vec<U256> = jobs.clone();
    let mut ended = std::collections::BTreeMap::new();
    let (settled, batches, finalized) = loop {
        let mut still = Vec::new();
        for id in open {
            let status = call(&net.rpc, escrow, IJobEscrow::computeJobStatusCall { jobId: id }).await as u8;
            if matches!(status, 4 | 5) {
                ended.insert(id, status);
            } else {
                still.push(id);
            }
        }
        open = still;
        let logs = node.get_logs(&Filter::new().address(escrow).from_block(funded_at.saturating_sub(5))).await.unwrap();
        let mut settled = std::collections::BTreeMap::<U256, u32>::new();
        let (mut batches, mut finalized) = (std::collections::BTreeSet::new(), Vec::new());
        for log in &logs {
            if let Ok(e) = IJobEscrow::ComputeBatchSettled::decode_log(&log.inner) {
                batches.insert(e.data.batchId);
                for id in &e.data.outcome.jobIds {
                    *settled.entry(*id).or_default() += 1;
                }
            } else if let Ok(e) = IJobEscrow::ComputeBatchFinalized::decode_log(&log.inner) {
                finalized.push(e.data.batchId);
            }
        }
        if open.is_empty() && finalized.len() >= batches.len() {
            break (settled, batches, finalized);
        }
        assert!(
            Instant::now() < deadline,
            "{} of {JOBS} jobs did not end (e.g. job {:?}); batches released: {finalized:?} of {batches:?}",
            open.len(),
            open.first()
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // None settled twice: every job id is in exactly one settled batch, and each batch was paid once.
    for id in &jobs {
        assert_eq!(settled.get(id), Some(&1), "job {id} is in {:?} settled batches", settled.get(id));
    }
    assert_eq!(finalized.len(), batches.len(), "each batch released once: {finalized:?} vs {batches:?}");
    assert_eq!(finalized.iter().collect::<std::collections::BTreeSet<_>>(), batches.iter().collect(), "{finalized:?}");

    // No wei lost: the escrow holds exactly what it owes, summed over anvil's accounts (every
    // account the devnet uses: buyer, providers, verifiers, treasury).
    let held = node.get_balance(escrow).await.unwrap();
    let mut owed = U256::ZERO;
    for account in node.get_accounts().await.unwrap() {
        owed += call(&net.rpc, escrow, IJobEscrow::balanceOfCall { account, token: Address::ZERO }).await;
    }
    assert_eq!(held, owed, "the escrow holds {held} wei but owes {owed}");
    let refunded = ended.values().filter(|s| **s == 5).count();
    eprintln!("chaos: {JOBS} jobs ended, {refunded} refunded, in {} batches", batches.len());
}
