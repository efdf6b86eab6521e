//! A depth-2 reorg on the devnet's anvil while a job is being funded. The buyer funds job A; the block
//! that holds it gets one more on top, and then both are replaced by a chain in which the buyer's
//! same nonce funds job B instead. The devnet's coordinator acts on an event only 2 blocks deep, so
//! job A, whose block was orphaned, is never matched, run or settled by anyone; job B, funded in the
//! block that replaced it, runs and settles under the same job id. The same devnet then runs a Python
//! job at its quote ([`crate::python`]).

use std::time::{Duration, Instant};

use alloy::network::EthereumWallet;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{U256, keccak256};
use alloy_sol_types::SolEvent;
use qor_protocol::bindings::IJobEscrow;
use qor_protocol::spec::JobSpec;
use serde_json::Value;

use qor_testkit::{BUYER_KEY, funding_tx, hello_module, hello_spec};

use crate::{Devnet, call};

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_funded_in_an_orphaned_block_is_never_acted_on_and_a_python_job_settles_at_its_quote() {
    let net = Devnet::start(&["--workers", "3", "--challenge-window", "2"]);
    assert!(net.summary.contains("2 blocks deep"), "{}", net.summary);
    let escrow = net.address("jobEscrow");
    let http = reqwest::Client::new();
    let base = net.coordinator.clone();

    // Two specs, uploaded: A will be funded in the orphaned block, B in the one that replaces it.
    let module = hello_module();
    let module_hash = keccak256(&module);
    qor_testkit::upload(&base, BUYER_KEY, &module).await;
    let (a, b) = (hello_spec(module_hash, "orphaned"), hello_spec(module_hash, "canonical"));
    for s in [&a, &b] {
        http.post(format!("{base}/v1/specs")).body(s.canonical_json()).send().await.unwrap().error_for_status().unwrap();
    }

    let signer: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let buyer = signer.address();
    let node = ProviderBuilder::new().wallet(EthereumWallet::from(signer)).connect_http(net.rpc.parse().unwrap());
    let budget = U256::from(10u64.pow(16));
    let head = node.get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
    let fund = |s: &JobSpec, nonce: u64, tip: u128| funding_tx(escrow, buyer, s, budget, head.header.timestamp + 3_600, nonce, tip);

    // Blocks stop coming on their own; the test mines them.
    let _: () = node.raw_request("evm_setIntervalMining".into(), (0,)).await.unwrap();
    let snapshot: U256 = node.raw_request("evm_snapshot".into(), ()).await.unwrap();
    let nonce = node.get_transaction_count(buyer).await.unwrap();
    let pending = node.send_transaction(fund(&a, nonce, 1_000_000_000)).await.unwrap();
    let _: Value = node.raw_request("evm_mine".into(), ()).await.unwrap();
    let receipt = node.get_transaction_receipt(*pending.tx_hash()).await.unwrap().expect("job A is mined");
    let orphaned_block = receipt.block_number.unwrap();
    let job = receipt.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data.jobId;
    let _: Value = node.raw_request("evm_mine".into(), ()).await.unwrap();
    // Job A is one block deep: funded on chain, and the coordinator waits.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, seen) = get(&http, format!("{base}/v1/jobs/{job}")).await;
    assert_eq!(status, 404, "the coordinator acted on a block 1 deep: {seen}");

    // The reorg: both blocks are replaced; in the new chain the buyer's nonce funds job B.
    let reverted: bool = node.raw_request("evm_revert".into(), (snapshot,)).await.unwrap();
    assert!(reverted);
    let replacement = node.send_transaction(fund(&b, nonce, 2_000_000_000)).await.unwrap();
    for _ in 0..3 {
        let _: Value = node.raw_request("evm_mine".into(), ()).await.unwrap();
    }
    let _: () = node.raw_request("evm_setIntervalMining".into(), (1,)).await.unwrap();
    let r = node.get_transaction_receipt(*replacement.tx_hash()).await.unwrap().expect("job B is mined");
    assert!(r.status());
    let new_block = node.get_block_by_number(orphaned_block.into()).await.unwrap().unwrap();
    assert_ne!(new_block.header.hash, receipt.block_hash.unwrap(), "block {orphaned_block} was replaced");
    assert!(node.get_transaction_receipt(*pending.tx_hash()).await.unwrap().is_none(), "job A's funding is gone");
    let created = r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap();
    assert_eq!((created.data.jobId, created.data.specHash), (job, b.spec_hash()), "the id now names job B");
    let status = call(&net.rpc, escrow, IJobEscrow::computeJobStatusCall { jobId: job }).await;
    assert_eq!(status as u8, 1, "job B is open in the escrow");

    // Job B runs and settles; job A was never matched or run, and its spec still waits for funding.
    let deadline = Instant::now() + Duration::from_secs(120);
    let settled = loop {
        let (_, j) = get(&http, format!("{base}/v1/jobs/{job}")).await;
        if matches!(j["status"].as_str(), Some("settled")) {
            break j;
        }
        assert!(Instant::now() < deadline, "job B did not settle: {j}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(settled["specHash"], format!("{:#x}", b.spec_hash()), "{settled}");
    let kinds: Vec<&str> = settled["timeline"].as_array().unwrap().iter().filter_map(|t| t["kind"].as_str()).collect();
    assert!(!kinds.contains(&"reorged_out"), "nothing was applied from the orphaned blocks: {kinds:?}");
    assert_eq!(settled["receipts"].as_array().unwrap().len(), 3, "{settled}");
    let (_, spec_a) = get(&http, format!("{base}/v1/specs/{:#x}", a.spec_hash())).await;
    assert_eq!(spec_a["status"], "awaiting_funding", "{spec_a}");
    let (_, jobs) = get(&http, format!("{base}/v1/jobs")).await;
    let a_hash = format!("{:#x}", a.spec_hash());
    assert!(jobs["jobs"].as_array().unwrap().iter().all(|j| j["specHash"] != a_hash.as_str()), "no job runs spec A: {jobs}");

    crate::python::a_python_job_settles_at_the_fuel_it_was_quoted(&net).await;
}
