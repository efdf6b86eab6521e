//! Settlement gas as the verifier sends it: on a fresh anvil with the contracts, jobs of three
//! replicas each are settled in batches of 1, 10 and 100 by the service's own batch builder
//! (`qor_verifier::service::build_batch`) and sender (`qor_verifier::chain::Chain`), then finalized
//! after the challenge window. Prints whole-transaction gas per job from the receipts; compare with
//! the contracts' own figures (`bench/gas.sh`, the README's gas table).

use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::{SolCall, SolEvent};
use qor_protocol::bindings::IJobEscrow::{self, Settlement};
use qor_protocol::bindings::IProviderRegistry::{self, ProviderMetadata};
use qor_protocol::eip712::{Signer, escrow_domain, settlement_batch_digest};
use qor_testkit::{Anvil, BUYER_KEY, DEPLOYER_KEY, ETHER, PROVIDER_KEY, PROVIDER2_KEY};
use qor_verifier::chain::{Chain, SendPolicy};
use qor_verifier::service::{Queued, build_batch};

/// anvil's account 5: a third provider.
const ACCOUNT5_KEY: &str = "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba";

async fn send(anvil: &Anvil, key: &str, to: Address, input: Vec<u8>, value: U256) -> alloy::rpc::types::TransactionReceipt {
    let tx = TransactionRequest::default().with_to(to).with_input(input).with_value(value);
    let receipt = anvil.wallet(key).send_transaction(tx).await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status(), "reverted");
    receipt
}

#[tokio::main]
async fn main() {
    let anvil = Anvil::start();
    let (escrow, registry) = (anvil.address("jobEscrow"), anvil.address("providerRegistry"));
    let mut providers = Vec::new();
    for key in [PROVIDER_KEY, PROVIDER2_KEY, ACCOUNT5_KEY] {
        let register =
            IProviderRegistry::registerCall { metadata: ProviderMetadata { pricePerFuel: 1, capacity: 8, region: "bench".into() } };
        send(&anvil, key, registry, register.abi_encode(), U256::from(ETHER)).await;
        providers.push(Signer::from_bytes(&key.parse().unwrap()).unwrap().address());
    }
    providers.sort();
    let committee = Signer::from_bytes(&DEPLOYER_KEY.parse().unwrap()).unwrap();
    let policy = SendPolicy { receipt_timeout: Duration::from_secs(30), bump_percent: 20, max_sends: 3 };
    let chain = Chain::connect(&anvil.url, DEPLOYER_KEY.parse().unwrap(), &anvil.pinned(), policy).await.unwrap();
    let domain = escrow_domain(31337, escrow);

    for size in [1usize, 10, 100] {
        // Jobs funded by one buyer, as a verifier would find them.
        let latest = anvil.wallet(BUYER_KEY).get_block_by_number(alloy::eips::BlockNumberOrTag::Latest).await.unwrap().unwrap();
        let budget = U256::from(ETHER / 1_000);
        let mut items = Vec::with_capacity(size);
        for i in 0..size {
            let create = IJobEscrow::createComputeJobCall {
                specHash: keccak256(format!("bench {size} {i}")),
                redundancy: 3,
                token: Address::ZERO,
                budget,
                deadline: latest.header.timestamp + 86_400,
                preferredProvider: Address::ZERO,
            };
            let r = send(&anvil, BUYER_KEY, escrow, create.abi_encode(), budget).await;
            let created = r.inner.logs().iter().find_map(|l| IJobEscrow::ComputeJobCreated::decode_log(&l.inner).ok()).unwrap().data;
            let settlement = Settlement {
                jobId: created.jobId,
                resultDigest: B256::from(U256::from(i + 1)),
                price: budget / U256::from(2),
                winners: U256::from(0b111),
                losers: U256::ZERO,
            };
            items.push(Queued { settlement, job: created.job, providers: providers.clone(), since: Instant::now(), solo: false });
        }
        let (batch, jobs) = build_batch(&items, u64::MAX);
        let signature = committee.sign_hash(&settlement_batch_digest(&batch, &domain)).unwrap();
        let call = IJobEscrow::settleComputeJobsCall { batch, jobs, signatures: vec![signature.as_bytes().to_vec().into()] };
        let settled = chain.send(escrow, &call, "settleComputeJobs").await.unwrap();
        let event = settled.inner.logs().iter().find_map(|l| IJobEscrow::ComputeBatchSettled::decode_log(&l.inner).ok()).unwrap().data;
        anvil.advance(3_601).await;
        let finalize = IJobEscrow::finalizeCall { batchId: event.batchId, outcome: event.outcome };
        let finalized = chain.send(escrow, &finalize, "finalize").await.unwrap();
        let n = size as u64;
        println!("verifier_settle_batch_{size}_gas_per_job {} gas", settled.gas_used / n);
        println!("verifier_finalize_batch_{size}_gas_per_job {} gas", finalized.gas_used / n);
        println!("verifier_settle_and_finalize_batch_{size}_gas_per_job {} gas", (settled.gas_used + finalized.gas_used) / n);
    }
}
