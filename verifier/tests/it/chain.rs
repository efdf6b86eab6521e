//! The verifier's sender against a real anvil: a transaction stuck in the mempool is replaced at the
//! same nonce with higher fees, the next one takes the next nonce, and a refusal names the contract's
//! error before anything is sent.

use std::time::Duration;

use alloy::providers::Provider;
use alloy_primitives::U256;
use qor_protocol::bindings::IVerifierCommittee;
use qor_testkit::Anvil;
use qor_verifier::chain::{Chain, SendError, SendPolicy};
use serde_json::Value;

use crate::service::ACCOUNT0_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_replaced_with_higher_fees() {
    let anvil = Anvil::start();
    let committee = anvil.address("verifierCommittee");
    let policy = SendPolicy { receipt_timeout: Duration::from_millis(800), bump_percent: 25, max_sends: 4 };
    let chain = std::sync::Arc::new(Chain::connect(&anvil.url, ACCOUNT0_KEY.parse().unwrap(), 31337, policy).await.unwrap());
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
