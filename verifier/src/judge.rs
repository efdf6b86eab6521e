//! The compute verdict. A replica that did not reveal, or whose receipt fails any check, counts as a
//! loss; a strict majority of all assigned replicas (not just of the valid ones) is needed to settle,
//! so silence cannot turn a minority into a majority.

use alloy_primitives::{Address, B256, Signature, U256};
use alloy_sol_types::Eip712Domain;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{receipt_digest, recover, seal};
use serde::Serialize;

/// A revealed receipt and its signature.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The receipt as revealed.
    pub receipt: Receipt,
    /// The worker's EIP-712 signature of it under the escrow's domain.
    pub signature: Signature,
}

/// One replica of a job as the coordinator reports it: the provider it was assigned to, the seal it
/// committed, and the receipt it revealed (if it did).
#[derive(Debug, Clone)]
pub struct Replica {
    /// The assigned provider.
    pub provider: Address,
    /// Its commit-phase seal.
    pub seal: Option<B256>,
    /// Its revealed receipt.
    pub receipt: Option<SignedReceipt>,
    /// Whether the ProviderRegistry has it registered (checked on chain by the service).
    pub registered: bool,
}

/// Why a replica's receipt does not count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Rejection {
    /// It never revealed (or the reveal deadline passed).
    #[error("no receipt revealed")]
    NotRevealed,
    /// It revealed without having sealed.
    #[error("revealed without a seal")]
    NotSealed,
    /// The receipt is for another job (a replay).
    #[error("the receipt is for job {got}, not this one")]
    WrongJob {
        /// The job the receipt names.
        got: U256,
    },
    /// The receipt names another worker than the assigned provider.
    #[error("the receipt names worker {named}, the replica is assigned to another provider")]
    WrongWorker {
        /// The worker the receipt names.
        named: Address,
    },
    /// The signature does not recover at all.
    #[error("the signature does not recover: {0}")]
    BadSignature(String),
    /// The signature recovers to someone other than the assigned provider (forged, or another key).
    #[error("signed by {signer}, not by the assigned provider")]
    NotSigner {
        /// Who signed.
        signer: Address,
    },
    /// The receipt does not open the seal the replica committed to.
    #[error("the receipt does not open the replica's seal")]
    SealMismatch,
    /// The provider is not registered in the ProviderRegistry.
    #[error("the provider is not registered on chain")]
    NotRegistered,
}

/// One replica's check: its digest, or why it does not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The assigned provider.
    pub provider: Address,
    /// The digest its valid receipt carries, or the rejection.
    pub result: Result<B256, Rejection>,
}

/// What to do with the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A strict majority agrees: pay the winners, the rest lose.
    Settle {
        /// The majority's digest.
        result_digest: B256,
        /// Replicas whose valid receipt carries it.
        winners: Vec<Address>,
        /// Every other replica (other digests, rejected or missing receipts).
        losers: Vec<Address>,
    },
    /// No majority yet: run this many replicas in all.
    Escalate {
        /// Replicas wanted in all.
        replicas: u8,
    },
    /// No majority and no more replicas allowed: the buyer gets the budget back.
    Refund,
}

/// The verdict and every replica's check (the service logs the rejections with their reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The decision.
    pub decision: Decision,
    /// One per replica, in the order given.
    pub checks: Vec<Check>,
}

/// Checks one replica's receipt for job `job_id` under `domain`.
pub fn check(job_id: U256, domain: &Eip712Domain, replica: &Replica) -> Check {
    let result = (|| {
        if !replica.registered {
            return Err(Rejection::NotRegistered);
        }
        let Some(signed) = &replica.receipt else { return Err(Rejection::NotRevealed) };
        let r = &signed.receipt;
        if r.jobId != job_id {
            return Err(Rejection::WrongJob { got: r.jobId });
        }
        if r.worker != replica.provider {
            return Err(Rejection::WrongWorker { named: r.worker });
        }
        let signer = recover(&receipt_digest(r, domain), &signed.signature).map_err(|e| Rejection::BadSignature(e.to_string()))?;
        if signer != replica.provider {
            return Err(Rejection::NotSigner { signer });
        }
        let Some(committed) = replica.seal else { return Err(Rejection::NotSealed) };
        if seal(replica.provider, job_id, r.resultDigest) != committed {
            return Err(Rejection::SealMismatch);
        }
        Ok(r.resultDigest)
    })();
    Check { provider: replica.provider, result }
}

/// The verdict on job `job_id` from its replicas. More replicas are asked for two at a time (an odd
/// count can break a tie), up to `max_replicas`.
pub fn judge(job_id: U256, domain: &Eip712Domain, replicas: &[Replica], max_replicas: u8) -> Verdict {
    judge_with(job_id, domain, replicas, max_replicas, None)
}

/// [`judge`] with the verifier's own re-execution as one more vote (`reference`): it counts in the
/// tally and in the number of votes a majority needs, but names no provider, so a re-run that
/// disagrees weighs like a losing replica.
pub fn judge_with(job_id: U256, domain: &Eip712Domain, replicas: &[Replica], max_replicas: u8, reference: Option<B256>) -> Verdict {
    let checks: Vec<Check> = replicas.iter().map(|r| check(job_id, domain, r)).collect();
    // Votes per digest, in first-seen order (deterministic).
    let mut tally: Vec<(B256, usize)> = Vec::new();
    for d in checks.iter().filter_map(|c| c.result.as_ref().ok()).chain(reference.as_ref()) {
        match tally.iter_mut().find(|(digest, _)| digest == d) {
            Some((_, n)) => *n += 1,
            None => tally.push((*d, 1)),
        }
    }
    let assigned = replicas.len();
    let votes_cast = assigned + usize::from(reference.is_some());
    let best = tally.iter().max_by_key(|(_, n)| *n).copied();
    let decision = match best {
        Some((digest, votes)) if votes * 2 > votes_cast && checks.iter().any(|c| c.result == Ok(digest)) => Decision::Settle {
            result_digest: digest,
            winners: checks.iter().filter(|c| c.result == Ok(digest)).map(|c| c.provider).collect(),
            losers: checks.iter().filter(|c| c.result != Ok(digest)).map(|c| c.provider).collect(),
        },
        _ if assigned < usize::from(max_replicas) => Decision::Escalate { replicas: (assigned + 2).min(usize::from(max_replicas)) as u8 },
        _ => Decision::Refund,
    };
    Verdict { decision, checks }
}
