//! The compute verdict, from evidence each replica signed. The coordinator reports a job's replicas,
//! but it is trusted for liveness only: a replica counts for or against its provider only on what
//! that provider signed (EIP-712, under the escrow's domain, for this job and the spec it was funded
//! with):
//!
//! - a **vote**: a receipt that opens the replica's signed seal;
//! - a **fault**, a loss whatever the verdict: a signed lease acceptance and signed seal and no receipt
//!   (a missed reveal), or a signed receipt that does not open the replica's own signed seal;
//! - an **unsealed receipt**: signed, but with no signed seal to hold it to; a loss if its digest
//!   loses, nothing if it is the winning one (it could have been copied);
//! - and otherwise the replica **did not run**: no pay, no slash, not a vote. That is what an invented
//!   replica, a forged or foreign receipt, a receipt for another job or spec, or a provider that took a
//!   lease and never sealed come to.
//!
//! A strict majority is needed of every replica that committed to a result (a vote or a fault), and
//! never of fewer than the replicas the job was funded with, so neither silence nor a coordinator that hides replicas can
//! turn a minority into a majority.

use alloy_primitives::{Address, B256, Signature, U256};
use alloy_sol_types::Eip712Domain;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{LeaseAcceptance, SealCommitment, receipt_digest, recover, seal, signed_by};
use serde::Serialize;

/// A revealed receipt and its signature.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The receipt as revealed.
    pub receipt: Receipt,
    /// The worker's EIP-712 signature of it under the escrow's domain.
    pub signature: Signature,
}

/// One replica of a job as the coordinator reports it, with what its provider signed.
#[derive(Debug, Clone)]
pub struct Replica {
    /// The assigned provider.
    pub provider: Address,
    /// Its signature of its `LeaseAcceptance`.
    pub acceptance: Option<Signature>,
    /// Its commit-phase seal and its signature of the `SealCommitment`.
    pub seal: Option<(B256, Signature)>,
    /// Its revealed receipt.
    pub receipt: Option<SignedReceipt>,
    /// Whether the ProviderRegistry has it registered (checked on chain by the service).
    pub registered: bool,
}

/// The job being judged, as funded on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Its id.
    pub id: U256,
    /// The spec it was funded with.
    pub spec_hash: B256,
    /// The replicas it was funded with: a majority is never of fewer.
    pub redundancy: u8,
}

/// Why a replica is not a vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Rejection {
    /// It never revealed.
    #[error("no receipt revealed")]
    NotRevealed,
    /// It revealed without a signed seal.
    #[error("revealed without a signed seal")]
    NotSealed,
    /// The receipt is for another job (a replay).
    #[error("the receipt is for job {got}, not this one")]
    WrongJob {
        /// The job the receipt names.
        got: U256,
    },
    /// The receipt names another spec than the one funded.
    #[error("the receipt is for spec {got}, the job was funded with another")]
    WrongSpec {
        /// The spec the receipt names.
        got: B256,
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
    /// The receipt does not open the seal the replica signed.
    #[error("the receipt does not open the replica's signed seal")]
    SealMismatch,
    /// The provider is not registered in the ProviderRegistry.
    #[error("the provider is not registered on chain")]
    NotRegistered,
}

/// What a replica's evidence makes of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// A valid receipt that opens its signed seal: a vote for this digest.
    Vote(B256),
    /// Signed evidence of a failure: a loss whatever the verdict.
    Fault(Rejection),
    /// A valid receipt without a signed seal: a loss if this digest loses, nothing if it wins.
    Unsealed(B256),
    /// No evidence it ran: no pay, no slash, not a vote.
    DidNotRun(Rejection),
}

/// One replica's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The assigned provider.
    pub provider: Address,
    /// The digest of its vote, or why it is none.
    pub result: Result<B256, Rejection>,
    /// What that makes of it.
    pub standing: Standing,
}

/// What to do with the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A strict majority agrees: pay the winners, the losers are slashed.
    Settle {
        /// The majority's digest.
        result_digest: B256,
        /// Replicas whose vote carries it.
        winners: Vec<Address>,
        /// Replicas with signed evidence against them: another digest, or a fault.
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

/// Whether `signature` recovers to `provider` over `digest`, or why not.
fn by(provider: Address, digest: &B256, signature: &Signature) -> Result<(), Rejection> {
    match recover(digest, signature) {
        Ok(signer) if signer == provider => Ok(()),
        Ok(signer) => Err(Rejection::NotSigner { signer }),
        Err(e) => Err(Rejection::BadSignature(e.to_string())),
    }
}

/// Checks one replica of `job` under `domain`: what its provider signed, and what that makes of it.
pub fn check(job: &Job, domain: &Eip712Domain, replica: &Replica) -> Check {
    let provider = replica.provider;
    let (result, standing) = (|| {
        if !replica.registered {
            return (Err(Rejection::NotRegistered), Standing::DidNotRun(Rejection::NotRegistered));
        }
        let accepted = replica.acceptance.as_ref().is_some_and(|sig| {
            signed_by(&LeaseAcceptance { jobId: job.id, specHash: job.spec_hash, worker: provider }, domain, sig, provider)
        });
        let sealed = replica.seal.as_ref().filter(|(committed, sig)| {
            signed_by(&SealCommitment { jobId: job.id, specHash: job.spec_hash, worker: provider, seal: *committed }, domain, sig, provider)
        });
        let Some(signed) = &replica.receipt else {
            // Took the lease, committed to a result and never revealed it: a missed reveal. Anything
            // less is no evidence at all.
            let standing = if accepted && sealed.is_some() {
                Standing::Fault(Rejection::NotRevealed)
            } else {
                Standing::DidNotRun(Rejection::NotRevealed)
            };
            return (Err(Rejection::NotRevealed), standing);
        };
        let r = &signed.receipt;
        let valid = (|| {
            if r.jobId != job.id {
                return Err(Rejection::WrongJob { got: r.jobId });
            }
            if r.worker != provider {
                return Err(Rejection::WrongWorker { named: r.worker });
            }
            if r.specHash != job.spec_hash {
                return Err(Rejection::WrongSpec { got: r.specHash });
            }
            by(provider, &receipt_digest(r, domain), &signed.signature)
        })();
        if let Err(why) = valid {
            return (Err(why.clone()), Standing::DidNotRun(why));
        }
        match sealed {
            Some((committed, _)) if seal(provider, job.id, r.resultDigest) == *committed => {
                (Ok(r.resultDigest), Standing::Vote(r.resultDigest))
            }
            Some(_) => (Err(Rejection::SealMismatch), Standing::Fault(Rejection::SealMismatch)),
            None => (Err(Rejection::NotSealed), Standing::Unsealed(r.resultDigest)),
        }
    })();
    Check { provider, result, standing }
}

/// The verdict on `job` from its replicas. More replicas are asked for two at a time (an odd count can
/// break a tie), up to `max_replicas`, and never fewer than `wanted + 2` (the replicas the coordinator
/// wants now).
pub fn judge(job: &Job, domain: &Eip712Domain, replicas: &[Replica], wanted: u8, max_replicas: u8) -> Verdict {
    judge_with(job, domain, replicas, wanted, max_replicas, None)
}

/// [`judge`] with the verifier's own re-execution as one more vote (`reference`): it counts in the
/// tally and in the number of votes a majority needs, but names no provider, so a re-run that
/// disagrees weighs like a losing replica.
pub fn judge_with(
    job: &Job,
    domain: &Eip712Domain,
    replicas: &[Replica],
    wanted: u8,
    max_replicas: u8,
    reference: Option<B256>,
) -> Verdict {
    let checks: Vec<Check> = replicas.iter().map(|r| check(job, domain, r)).collect();
    // Votes per digest, in first-seen order (deterministic).
    let mut tally: Vec<(B256, usize)> = Vec::new();
    let votes = checks.iter().filter_map(|c| match c.standing {
        Standing::Vote(d) => Some(d),
        _ => None,
    });
    for d in votes.chain(reference) {
        match tally.iter_mut().find(|(digest, _)| *digest == d) {
            Some((_, n)) => *n += 1,
            None => tally.push((d, 1)),
        }
    }
    // A replica counts when it committed to a result: a vote, or a fault. An unsealed receipt never
    // was a commitment (it can only lose), and a replica that did not run is not there at all.
    let counted = checks.iter().filter(|c| matches!(c.standing, Standing::Vote(_) | Standing::Fault(_))).count();
    let votes_needed_of = counted.max(usize::from(job.redundancy)) + usize::from(reference.is_some());
    let best = tally.iter().max_by_key(|(_, n)| *n).copied();
    let decision = match best {
        Some((digest, n)) if n * 2 > votes_needed_of && checks.iter().any(|c| c.standing == Standing::Vote(digest)) => Decision::Settle {
            result_digest: digest,
            winners: checks.iter().filter(|c| c.standing == Standing::Vote(digest)).map(|c| c.provider).collect(),
            losers: checks
                .iter()
                .filter(|c| match &c.standing {
                    Standing::Vote(d) | Standing::Unsealed(d) => *d != digest,
                    Standing::Fault(_) => true,
                    Standing::DidNotRun(_) => false,
                })
                .map(|c| c.provider)
                .collect(),
        },
        _ => {
            let now = counted.max(usize::from(wanted)).max(usize::from(job.redundancy));
            if now < usize::from(max_replicas) {
                Decision::Escalate { replicas: (now + 2).min(usize::from(max_replicas)) as u8 }
            } else {
                Decision::Refund
            }
        }
    };
    Verdict { decision, checks }
}
