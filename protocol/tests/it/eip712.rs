//! EIP-712 digests and signatures. The type strings come from the Solidity interface; the vectors in
//! `contracts/test/data/protocol.json` are checked by the Foundry tests against the escrow itself.

use alloy_primitives::{Address, B256, U256, address, b256, keccak256};
use alloy_sol_types::SolStruct;
use qor_protocol::bindings::IJobEscrow::{Receipt, Settlement, SettlementBatch};
use qor_protocol::eip712::{Signer, challenge_resolution_digest, escrow_domain, receipt_digest, recover, seal, settlement_batch_digest};

pub(crate) const CHAIN_ID: u64 = 31337;
pub(crate) const ESCROW: Address = address!("0x00000000000000000000000000000000000e5c40");
pub(crate) const MARKET: Address = address!("0x000000000000000000000000000000000057a4e7");
/// anvil's account 2 of the devnet mnemonic.
pub(crate) const WORKER_KEY: B256 = b256!("0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a");

pub(crate) fn receipt(worker: Address) -> Receipt {
    Receipt {
        jobId: U256::from(7),
        specHash: keccak256("spec"),
        worker,
        resultDigest: keccak256("result"),
        stdoutHash: keccak256("stdout"),
        exitCode: 0,
        fuelUsed: 123_456,
    }
}

pub(crate) fn batch() -> SettlementBatch {
    SettlementBatch {
        token: Address::ZERO,
        providers: vec![address!("0x1000000000000000000000000000000000000001"), address!("0x2000000000000000000000000000000000000002")],
        settlements: vec![
            Settlement {
                jobId: U256::from(1),
                resultDigest: keccak256("a"),
                price: U256::from(5),
                winners: U256::from(3),
                losers: U256::ZERO,
            },
            Settlement { jobId: U256::from(2), resultDigest: B256::ZERO, price: U256::ZERO, winners: U256::ZERO, losers: U256::ZERO },
        ],
        validUntil: 1_800_000_000,
    }
}

#[test]
fn type_strings_are_the_contracts() {
    assert_eq!(
        Receipt::eip712_encode_type(),
        "Receipt(uint256 jobId,bytes32 specHash,address worker,bytes32 resultDigest,bytes32 stdoutHash,uint32 exitCode,uint64 fuelUsed)"
    );
    assert_eq!(
        SettlementBatch::eip712_encode_type(),
        "SettlementBatch(address token,address[] providers,Settlement[] settlements,uint64 validUntil)Settlement(uint256 jobId,bytes32 resultDigest,uint256 price,uint256 winners,uint256 losers)"
    );
    assert_eq!(
        qor_protocol::eip712::StorageAttestationBatch::eip712_encode_type(),
        "StorageAttestationBatch(StorageAttestation[] attestations,uint64 validUntil)StorageAttestation(uint256 dealId,address provider,uint256 periods)"
    );
}

#[test]
fn signatures_recover_to_the_signer_and_bind_the_domain() {
    let signer = Signer::from_bytes(&WORKER_KEY).unwrap();
    assert_eq!(signer.address(), address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"));
    let domain = escrow_domain(CHAIN_ID, ESCROW);
    let r = receipt(signer.address());
    let sig = signer.sign_receipt(&r, &domain).unwrap();
    assert_eq!(recover(&receipt_digest(&r, &domain), &sig).unwrap(), signer.address());
    // Another chain, another escrow, another job: the digest changes, so the signature recovers to a stranger.
    for other in [
        receipt_digest(&r, &escrow_domain(CHAIN_ID + 1, ESCROW)),
        receipt_digest(&r, &escrow_domain(CHAIN_ID, Address::repeat_byte(1))),
        receipt_digest(&Receipt { jobId: U256::from(8), ..r.clone() }, &domain),
    ] {
        assert_ne!(recover(&other, &sig).unwrap(), signer.address());
    }
    // Low-s, 65 bytes r ‖ s ‖ v with v in {27, 28}, as the contracts take them.
    let bytes = sig.as_bytes();
    assert!(bytes[64] == 27 || bytes[64] == 28);
}

#[test]
fn seal_binds_the_worker() {
    let digest = keccak256("result");
    let a = seal(Address::repeat_byte(1), U256::from(7), digest);
    assert_ne!(a, seal(Address::repeat_byte(2), U256::from(7), digest));
    assert_ne!(a, seal(Address::repeat_byte(1), U256::from(8), digest));
}

#[test]
fn digests_differ_by_verdict() {
    let domain = escrow_domain(CHAIN_ID, ESCROW);
    assert_ne!(challenge_resolution_digest(U256::from(1), true, &domain), challenge_resolution_digest(U256::from(1), false, &domain));
    assert_ne!(settlement_batch_digest(&batch(), &domain), settlement_batch_digest(&batch(), &escrow_domain(1, ESCROW)));
}

#[test]
fn a_workers_acceptance_and_seal_commitment_are_typed_signatures_only_it_can_make() {
    use qor_protocol::eip712::{LeaseAcceptance, SealCommitment, signed_by};
    assert_eq!(LeaseAcceptance::eip712_encode_type(), "LeaseAcceptance(uint256 jobId,bytes32 specHash,address worker)");
    assert_eq!(SealCommitment::eip712_encode_type(), "SealCommitment(uint256 jobId,bytes32 specHash,address worker,bytes32 seal)");
    let signer = Signer::from_bytes(&WORKER_KEY).unwrap();
    let domain = escrow_domain(CHAIN_ID, ESCROW);
    let accept = LeaseAcceptance { jobId: U256::from(7), specHash: keccak256("spec"), worker: signer.address() };
    let sig = signer.sign_typed(&accept, &domain).unwrap();
    assert!(signed_by(&accept, &domain, &sig, signer.address()));
    // Not for another job, another spec, another chain, nor as anyone else's.
    assert!(!signed_by(&LeaseAcceptance { jobId: U256::from(8), ..accept.clone() }, &domain, &sig, signer.address()));
    assert!(!signed_by(&LeaseAcceptance { specHash: keccak256("other"), ..accept.clone() }, &domain, &sig, signer.address()));
    assert!(!signed_by(&accept, &escrow_domain(CHAIN_ID + 1, ESCROW), &sig, signer.address()));
    assert!(!signed_by(&accept, &domain, &sig, Address::repeat_byte(9)));
    let committed = SealCommitment {
        jobId: U256::from(7),
        specHash: keccak256("spec"),
        worker: signer.address(),
        seal: seal(signer.address(), U256::from(7), keccak256("result")),
    };
    let sig = signer.sign_typed(&committed, &domain).unwrap();
    assert!(signed_by(&committed, &domain, &sig, signer.address()));
    assert!(!signed_by(&SealCommitment { seal: keccak256("another result"), ..committed.clone() }, &domain, &sig, signer.address()));
}
