//! The verifier's sender against a real anvil: a transaction stuck in the mempool is replaced at the
//! same nonce with higher fees, the next one takes the next nonce, and a refusal names the contract's
//! error before anything is sent. Sends do not wait for each other's receipts: several land in one
//! block, at consecutive nonces.

use std::time::Duration;

use alloy::providers::Provider;
use alloy_primitives::U256;
use qor_protocol::bindings::IVerifierCommittee;
use qor_testkit::Anvil;
use qor_verifier::chain::{Chain, SendError, SendPolicy};
use serde_json::Value;

use crate::service::ACCOUNT0_KEY;

/// The sender of anvil's first account, replacing a transaction after `receipt_timeout` up to
/// `max_sends` times, 25% dearer each time.
async fn sender(anvil: &Anvil, receipt_timeout: Duration, max_sends: u32) -> std::sync::Arc<Chain> {
    let policy = SendPolicy { receipt_timeout, bump_percent: 25, max_sends };
    std::sync::Arc::new(Chain::connect(&anvil.url, ACCOUNT0_KEY.parse().unwrap(), &anvil.pinned(), policy).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_replaced_with_higher_fees() {
    let anvil = Anvil::start();
    let committee = anvil.address("verifierCommittee");
    let chain = sender(&anvil, Duration::from_millis(800), 4).await;
    let node = anvil.wallet(ACCOUNT0_KEY);
    let fees = node.estimate_eip1559_fees().await.unwrap();

    // Blocks stop coming: the first send sits in the mempool past its timeout and is replaced.
    let _: Value = node.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let c = chain.clone();
    let sending =
        tokio::spawn(
            async move { c.send(committee, &IVerifierCommittee::setThresholdCall { threshold: U256::from(1) }, "setThreshold").await },
        );
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let _: Value = node.raw_request("evm_mine".into(), ()).await.unwrap();
    let receipt = sending.await.unwrap().expect("landed");
    let tx = node.get_transaction_by_hash(receipt.transaction_hash).await.unwrap().unwrap();
    let max_fee = alloy::consensus::Transaction::max_fee_per_gas(&tx);
    assert!(
        max_fee > fees.max_fee_per_gas,
        "the mined transaction is a replacement with higher fees: {max_fee} vs {}",
        fees.max_fee_per_gas
    );
    let mined_nonce = alloy::consensus::Transaction::nonce(&tx);
    let _: Value = node.raw_request("evm_setAutomine".into(), (true,)).await.unwrap();

    // The next send takes the next nonce.
    let next = chain.send(committee, &IVerifierCommittee::setThresholdCall { threshold: U256::from(1) }, "setThreshold").await.unwrap();
    let next_tx = node.get_transaction_by_hash(next.transaction_hash).await.unwrap().unwrap();
    assert_eq!(alloy::consensus::Transaction::nonce(&next_tx), mined_nonce + 1);

    // A refusal is caught by the estimate and names the contract's error.
    let refused = chain.send(committee, &IVerifierCommittee::setThresholdCall { threshold: U256::ZERO }, "setThreshold").await.unwrap_err();
    match refused {
        SendError::Refused { reason, .. } => assert!(reason.contains("VerifierCommittee_"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_in_flight_together_land_in_one_block_at_consecutive_nonces() {
    let anvil = Anvil::start();
    let committee = anvil.address("verifierCommittee");
    let chain = sender(&anvil, Duration::from_secs(30), 2).await;
    let node = anvil.wallet(ACCOUNT0_KEY);

    // No blocks until all three are in the mempool: had a send waited for the one before it, the
    // others could not be there.
    let _: Value = node.raw_request("evm_setAutomine".into(), (false,)).await.unwrap();
    let sends: Vec<_> = (0..3)
        .map(|_| {
            let c = chain.clone();
            tokio::spawn(async move {
                c.send(committee, &IVerifierCommittee::setThresholdCall { threshold: U256::from(1) }, "setThreshold").await
            })
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let status: Value = node.raw_request("txpool_status".into(), ()).await.unwrap();
        let pending = status["pending"]
            .as_u64()
            .or_else(|| status["pending"].as_str().and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok()))
            .unwrap();
        if pending == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{pending} of 3 sends reached the mempool");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _: Value = node.raw_request("evm_mine".into(), ()).await.unwrap();
    let mut blocks = Vec::new();
    let mut nonces = Vec::new();
    for s in sends {
        let receipt = s.await.unwrap().expect("landed");
        blocks.push(receipt.block_number.unwrap());
        let tx = node.get_transaction_by_hash(receipt.transaction_hash).await.unwrap().unwrap();
        nonces.push(alloy::consensus::Transaction::nonce(&tx));
    }
    assert!(blocks.iter().all(|b| *b == blocks[0]), "one block: {blocks:?}");
    nonces.sort_unstable();
    assert_eq!(nonces, vec![nonces[0], nonces[0] + 1, nonces[0] + 2]);
}
