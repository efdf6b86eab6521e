//! `contracts/test/data/protocol.json`: spec hashes, result digests, EIP-712 digests, a signed receipt
//! and a seal, exactly as this crate computes them. `contracts/test/unit/ProtocolVectors.t.sol` checks
//! them against the escrow's own hashing. Regenerate with `QOR_WRITE_VECTORS=1 cargo test -p qor-protocol`.

use alloy_primitives::U256;
use alloy_sol_types::SolStruct;
use qor_protocol::digest::{ResultHasher, stdout_hash};
use qor_protocol::eip712::{
    LeaseAcceptance, SealCommitment, Signer, challenge_resolution_digest, escrow_domain, market_domain, receipt_digest, seal,
    settlement_batch_digest, storage_attestations_digest,
};
use qor_protocol::spec::JobSpec;
use serde_json::{Value, json};

use crate::eip712::{CHAIN_ID, ESCROW, MARKET, WORKER_KEY, batch, receipt};
use crate::spec::EXAMPLE;

fn vectors() -> Value {
    let spec = JobSpec::from_json(EXAMPLE.as_bytes()).unwrap();
    let stdout = b"hello, world\n";
    let mut h = ResultHasher::new(0, stdout);
    h.add_file("hash.txt", b"abc").unwrap();
    h.add_file("sub/empty", b"").unwrap();
    let result = h.finish();

    let domain = escrow_domain(CHAIN_ID, ESCROW);
    let signer = Signer::from_bytes(&WORKER_KEY).unwrap();
    let r = receipt(signer.address());
    let sig = signer.sign_receipt(&r, &domain).unwrap();
    let b = batch();
    let providers = [b.providers[0], b.providers[1]];
    let attestations = [(U256::from(1), providers[0], U256::from(3)), (U256::from(2), providers[1], U256::from(5))];
    json!({
        "description": "QOR protocol vectors, written by qor-protocol (tests/it/vectors.rs), checked by contracts/test/unit/ProtocolVectors.t.sol",
        "chainId": CHAIN_ID,
        "escrow": ESCROW.to_string(),
        "storageMarket": MARKET.to_string(),
        "spec": {
            "canonical": String::from_utf8(spec.canonical_json()).unwrap(),
            "specHash": spec.spec_hash().to_string(),
        },
        "runtimes": qor_protocol::runtime::RUNTIMES.iter().map(|r| json!({
            "name": r.name, "version": r.version, "extension": r.extension, "module": r.module.to_string(),
            "size": r.size, "file": r.file_name(), "args": r.args("analysis.py", &["--n".into(), "3".into()]),
        })).collect::<Vec<_>>(),
        "result": {
            "exitCode": 0,
            "stdout": format!("0x{}", hex::encode(stdout)),
            "stdoutHash": stdout_hash(stdout).to_string(),
            "files": [["hash.txt", "0x616263"], ["sub/empty", "0x"]],
            "digest": result.to_string(),
        },
        "receipt": {
            "jobId": 7,
            "specHash": r.specHash.to_string(),
            "worker": r.worker.to_string(),
            "resultDigest": r.resultDigest.to_string(),
            "stdoutHash": r.stdoutHash.to_string(),
            "exitCode": r.exitCode,
            "fuelUsed": r.fuelUsed,
            "digest": receipt_digest(&r, &domain).to_string(),
            "signature": format!("0x{}", hex::encode(sig.as_bytes())),
        },
        "seal": seal(r.worker, r.jobId, r.resultDigest).to_string(),
        "leaseAcceptance": {
            "digest": LeaseAcceptance { jobId: r.jobId, specHash: r.specHash, worker: r.worker }.eip712_signing_hash(&domain).to_string(),
        },
        "sealCommitment": {
            "digest": SealCommitment { jobId: r.jobId, specHash: r.specHash, worker: r.worker, seal: seal(r.worker, r.jobId, r.resultDigest) }
                .eip712_signing_hash(&domain)
                .to_string(),
        },
        "settlementBatch": {
            "token": b.token.to_string(),
            "validUntil": b.validUntil,
            "providers": b.providers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "jobIds": b.settlements.iter().map(|s| s.jobId.to::<u64>()).collect::<Vec<_>>(),
            "resultDigests": b.settlements.iter().map(|s| s.resultDigest.to_string()).collect::<Vec<_>>(),
            "prices": b.settlements.iter().map(|s| s.price.to::<u64>()).collect::<Vec<_>>(),
            "winners": b.settlements.iter().map(|s| s.winners.to::<u64>()).collect::<Vec<_>>(),
            "losers": b.settlements.iter().map(|s| s.losers.to::<u64>()).collect::<Vec<_>>(),
            "settlementHashes": b.settlements.iter().map(|s| s.eip712_hash_struct().to_string()).collect::<Vec<_>>(),
            "digest": settlement_batch_digest(&b, &domain).to_string(),
        },
        "challengeResolution": {
            "jobId": 7,
            "upheld": true,
            "digest": challenge_resolution_digest(U256::from(7), true, &domain).to_string(),
        },
        "storageChallenge": {
            "seed": alloy_primitives::keccak256("seed block").to_string(),
            "dealId": 9,
            "period": 3,
            "chunks": 1_000_003u64,
            "indexes": qor_protocol::merkle::challenge_indexes(alloy_primitives::keccak256("seed block"), U256::from(9), 3, 4, 1_000_003),
        },
        "storageAttestations": {
            "dealIds": [1, 2],
            "providers": providers.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            "periods": [3, 5],
            "validUntil": 1_800_000_000u64,
            "digest": storage_attestations_digest(&attestations, 1_800_000_000, &market_domain(CHAIN_ID, MARKET)).to_string(),
        },
    })
}

#[test]
fn vectors_file_is_current() {
    crate::check_vectors_file("protocol.json", &vectors());
}
