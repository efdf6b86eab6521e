//! The bodies of a worker's signed steps on an assignment, with the EIP-712 signatures that make them
//! evidence: `accept` ([`acceptance_body`]), `seal` ([`seal_body`]) and `receipt` ([`receipt_body`]).
//! The worker daemon sends them; the tests and benchmarks that play a worker build them here too.

use alloy_primitives::{B256, U256, hex};
use alloy_sol_types::Eip712Domain;
use serde_json::{Value, json};

use crate::bindings::IJobEscrow::Receipt;
use crate::eip712::{LeaseAcceptance, SealCommitment, SignatureError, Signer, seal};

/// The body of `POST /v1/worker/assignments/{id}/accept`: this worker takes job `job_id` (spec
/// `spec_hash`), signed as a [`LeaseAcceptance`].
pub fn acceptance_body(signer: &Signer, domain: &Eip712Domain, job_id: U256, spec_hash: B256) -> Result<Value, SignatureError> {
    let acceptance = LeaseAcceptance { jobId: job_id, specHash: spec_hash, worker: signer.address() };
    Ok(json!({ "signature": hex::encode_prefixed(signer.sign_typed(&acceptance, domain)?.as_bytes()) }))
}

/// The body of `POST /v1/worker/assignments/{id}/seal`: the seal of `result_digest`, signed as a
/// [`SealCommitment`].
pub fn seal_body(
    signer: &Signer,
    domain: &Eip712Domain,
    job_id: U256,
    spec_hash: B256,
    result_digest: B256,
) -> Result<Value, SignatureError> {
    let seal = seal(signer.address(), job_id, result_digest);
    let commitment = SealCommitment { jobId: job_id, specHash: spec_hash, worker: signer.address(), seal };
    Ok(json!({ "seal": seal, "signature": hex::encode_prefixed(signer.sign_typed(&commitment, domain)?.as_bytes()) }))
}

/// The body of `POST /v1/worker/assignments/{id}/receipt`: the receipt, signed, and the output files
/// (`[{path, hash}]`, uploaded as blobs first).
pub fn receipt_body(signer: &Signer, domain: &Eip712Domain, receipt: &Receipt, outputs: &[Value]) -> Result<Value, SignatureError> {
    let signature = signer.sign_receipt(receipt, domain)?;
    Ok(json!({
        "receipt": {
            "jobId": receipt.jobId.to_string(), "specHash": receipt.specHash, "worker": receipt.worker,
            "resultDigest": receipt.resultDigest, "stdoutHash": receipt.stdoutHash, "exitCode": receipt.exitCode,
            "fuelUsed": receipt.fuelUsed,
        },
        "signature": hex::encode_prefixed(signature.as_bytes()),
        "outputs": outputs,
    }))
}
