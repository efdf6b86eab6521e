//! Signatures: workers sign their `LeaseAcceptance`, their `SealCommitment` and their `Receipt`; the
//! verifier committee signs `SettlementBatch`es and challenge resolutions; all as EIP-712 typed data
//! under the escrow's domain (`"QOR JobEscrow"`, version `"1"`, chain id, escrow address), so no
//! signature can be replayed on another chain or another escrow. The committee's storage attestations
//! are signed under the storage market's domain (`"QOR StorageMarket"`, [`market_domain`]). The struct types the
//! escrow hashes come from the Solidity interface ([`bindings`]), so their type strings are the
//! contract's by construction.
//!
//! What a worker signs is the only evidence a provider can lose stake on: a replica counts as a loser
//! only with its signed acceptance and signed seal (it took the job, committed to a result and never
//! revealed it) or its signed receipt with a losing digest. Whatever else a coordinator says about a
//! replica costs its provider nothing.
//!
//! [`bindings`]: crate::bindings

use alloy_primitives::{Address, B256, Signature, U256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, SolValue, eip712_domain, sol};
use secp256k1::ecdsa::{RecoverableSignature, RecoveryId};
use secp256k1::{Message, SECP256K1, SecretKey};

use crate::bindings::IJobEscrow::{Receipt, SettlementBatch};

sol! {
    /// The committee's verdict on a challenge (the escrow's `CHALLENGE_RESOLUTION_TYPEHASH`).
    #[derive(Debug, PartialEq, Eq)]
    struct ChallengeResolution {
        uint256 jobId;
        bool upheld;
    }

    /// The periods of one deal that its provider passed (the market's `STORAGE_ATTESTATION_TYPEHASH`).
    #[derive(Debug, PartialEq, Eq)]
    struct StorageAttestation {
        uint256 dealId;
        address provider;
        uint256 periods;
    }

    /// What the committee signs to attest storage periods; the market refuses it after `validUntil`.
    #[derive(Debug, PartialEq, Eq)]
    struct StorageAttestationBatch {
        StorageAttestation[] attestations;
        uint64 validUntil;
    }

    /// A worker takes a lease: it will run job `jobId`, whose spec hashes to `specHash`, and seal its
    /// result before the lease ends. Signed before anything runs.
    #[derive(Debug, PartialEq, Eq)]
    struct LeaseAcceptance {
        uint256 jobId;
        bytes32 specHash;
        address worker;
    }

    /// A worker commits to its result before any replica reveals: `seal` is [`seal`]`(worker, jobId,
    /// resultDigest)`. With its [`LeaseAcceptance`], the evidence that a replica which never revealed
    /// missed its reveal.
    #[derive(Debug, PartialEq, Eq)]
    struct SealCommitment {
        uint256 jobId;
        bytes32 specHash;
        address worker;
        bytes32 seal;
    }
}

/// Errors signing or recovering.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The private key bytes are not a valid secp256k1 scalar.
    #[error("invalid private key")]
    InvalidKey,
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The signature does not recover to any key.
    #[error("signature does not recover: {0}")]
    Recovery(String),
}

/// The escrow's EIP-712 domain on `chain_id` at `escrow`.
pub fn escrow_domain(chain_id: u64, escrow: Address) -> Eip712Domain {
    eip712_domain! {
        name: "QOR JobEscrow",
        version: "1",
        chain_id: chain_id,
        verifying_contract: escrow,
    }
}

/// The storage market's EIP-712 domain on `chain_id` at `market`.
pub fn market_domain(chain_id: u64, market: Address) -> Eip712Domain {
    eip712_domain! {
        name: "QOR StorageMarket",
        version: "1",
        chain_id: chain_id,
        verifying_contract: market,
    }
}

/// The commit-reveal seal a worker publishes before any replica reveals:
/// `keccak256(abi.encode(worker, jobId, resultDigest))`. It binds the worker, so a lazy replica cannot
/// copy another's seal.
pub fn seal(worker: Address, job_id: U256, result_digest: B256) -> B256 {
    keccak256((worker, job_id, result_digest).abi_encode())
}

/// A secp256k1 key that signs EIP-712 digests (a worker's or a committee member's).
///
/// Signing and recovery go through libsecp256k1 (the `secp256k1` crate, as reth does): recovering a
/// signer is the coordinator's and the verifier's hot path (every signed request, every receipt), and
/// the C library does it several times faster than the pure-Rust `k256`. Signatures are the same
/// bytes either way (RFC 6979 nonces, low s); the test vectors pin them.
#[derive(Clone)]
pub struct Signer {
    key: SecretKey,
    address: Address,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("address", &self.address).finish_non_exhaustive()
    }
}

fn address_of(key: &secp256k1::PublicKey) -> Address {
    Address::from_raw_public_key(&key.serialize_uncompressed()[1..])
}

impl Signer {
    /// A signer from 32 private-key bytes.
    pub fn from_bytes(bytes: &B256) -> Result<Self, SignatureError> {
        let key = SecretKey::from_byte_array(bytes.0).map_err(|_| SignatureError::InvalidKey)?;
        let address = address_of(&key.public_key(SECP256K1));
        Ok(Self { key, address })
    }

    /// The Ethereum address of the key.
    pub const fn address(&self) -> Address {
        self.address
    }

    /// Signs a 32-byte digest (low-s, recoverable); `as_bytes()` of the result is `r ‖ s ‖ v`.
    pub fn sign_hash(&self, digest: &B256) -> Result<Signature, SignatureError> {
        let sig = SECP256K1.sign_ecdsa_recoverable(Message::from_digest(digest.0), &self.key);
        let (recid, rs) = sig.serialize_compact();
        let parity = i32::from(recid) == 1;
        Ok(Signature::from_bytes_and_parity(&rs, parity))
    }

    /// Signs a receipt under `domain`.
    pub fn sign_receipt(&self, receipt: &Receipt, domain: &Eip712Domain) -> Result<Signature, SignatureError> {
        self.sign_typed(receipt, domain)
    }

    /// Signs any EIP-712 struct (a lease acceptance, a seal commitment) under `domain`.
    pub fn sign_typed<T: SolStruct>(&self, value: &T, domain: &Eip712Domain) -> Result<Signature, SignatureError> {
        self.sign_hash(&value.eip712_signing_hash(domain))
    }
}

/// Whether `signature` is `signer`'s signature of the EIP-712 struct `value` under `domain`.
pub fn signed_by<T: SolStruct>(value: &T, domain: &Eip712Domain, signature: &Signature, signer: Address) -> bool {
    recover(&value.eip712_signing_hash(domain), signature).is_ok_and(|a| a == signer)
}

/// The address that signed `digest`.
pub fn recover(digest: &B256, signature: &Signature) -> Result<Address, SignatureError> {
    let bytes = signature.as_bytes();
    let recid = RecoveryId::try_from(i32::from(signature.v())).map_err(|e| SignatureError::Recovery(e.to_string()))?;
    let sig = RecoverableSignature::from_compact(&bytes[..64], recid).map_err(|e| SignatureError::Recovery(e.to_string()))?;
    let key = SECP256K1.recover_ecdsa(Message::from_digest(digest.0), &sig).map_err(|e| SignatureError::Recovery(e.to_string()))?;
    Ok(address_of(&key))
}

/// The digest a worker signs for `receipt`.
pub fn receipt_digest(receipt: &Receipt, domain: &Eip712Domain) -> B256 {
    receipt.eip712_signing_hash(domain)
}

/// The digest the committee signs to settle `batch` (`JobEscrow.hashSettlementBatch`).
pub fn settlement_batch_digest(batch: &SettlementBatch, domain: &Eip712Domain) -> B256 {
    batch.eip712_signing_hash(domain)
}

/// The digest the committee signs to resolve `job_id`'s challenge (`JobEscrow.hashChallengeResolution`).
pub fn challenge_resolution_digest(job_id: U256, upheld: bool, domain: &Eip712Domain) -> B256 {
    ChallengeResolution { jobId: job_id, upheld }.eip712_signing_hash(domain)
}

/// The digest the committee signs to attest that each `(deal, provider, periods)` passed, valid until
/// `valid_until` (`StorageMarket.hashStorageAttestations`, under [`market_domain`]).
pub fn storage_attestations_digest(attestations: &[(U256, Address, U256)], valid_until: u64, domain: &Eip712Domain) -> B256 {
    StorageAttestationBatch {
        attestations: attestations
            .iter()
            .map(|&(deal_id, provider, periods)| StorageAttestation { dealId: deal_id, provider, periods })
            .collect(),
        validUntil: valid_until,
    }
    .eip712_signing_hash(domain)
}
