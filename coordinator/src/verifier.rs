//! The verifier API. Every request is signed by a member of the VerifierCommittee (its committee key,
//! [`crate::auth::VerifierSigned`]). The verifier reads jobs and receipts through the public API; here
//! it records its verdict on a job, and relays storage challenges ([`crate::storage::relay_challenge`]).

use alloy_primitives::{Address, B256};
use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::VerifierSigned;
use crate::db::{now_ms, timeline};
use crate::error::{ApiError, ApiResult, parse_u256};
use crate::worker::parse_json;

/// Most replicas an escalation may ask for.
pub const MAX_REPLICAS: u8 = 9;

/// What the verifier decided.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A strict majority agrees: `resultDigest` wins; the settlement goes on chain.
    Settle,
    /// No majority: run more replicas.
    Escalate,
    /// No majority and no more replicas: the buyer is refunded.
    Refund,
}

/// Body of `POST /v1/verifier/jobs/{job_id}/verdict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VerdictBody {
    /// The decision.
    pub outcome: Outcome,
    /// The winning digest (`settle`).
    #[serde(default)]
    pub result_digest: Option<B256>,
    /// Replicas whose receipts carry the winning digest (`settle`).
    #[serde(default)]
    pub winners: Vec<Address>,
    /// Replicas whose receipts disagree (`settle`).
    #[serde(default)]
    pub losers: Vec<Address>,
    /// Replicas wanted in all (`escalate`): more than now, at most [`MAX_REPLICAS`].
    #[serde(default)]
    pub replicas: Option<u8>,
}

/// `POST /v1/verifier/jobs/{job_id}/verdict`: records the verifier's decision on a job whose receipts
/// are all in. `settle` checks that every winner's receipt carries the digest and every loser's does
/// not; `escalate` raises the replicas wanted and puts the job back up for matching (to providers that
/// have not run it). The same verdict twice is one verdict.
pub async fn verdict(
    State(state): State<AppState>,
    Path(job_id): Path<String>,
    VerifierSigned { verifier, body }: VerifierSigned,
) -> ApiResult<Json<Value>> {
    let job_id = parse_u256("job_id", &job_id)?.to_string();
    let v: VerdictBody = parse_json(&body)?;
    let job = sqlx::query!("SELECT status, redundancy FROM jobs WHERE job_id = ?", job_id)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {job_id}")))?;
    let receipts = sqlx::query!("SELECT worker, result_digest FROM receipts WHERE job_id = ?", job_id).fetch_all(&state.read).await?;
    let digest_of = |a: &Address| {
        let key = format!("{a:#x}");
        receipts.iter().find(|r| r.worker == key).map(|r| r.result_digest.clone())
    };
    let detail = match v.outcome {
        Outcome::Settle => {
            let digest =
                v.result_digest.ok_or_else(|| ApiError::field("missing_field", "resultDigest", "`settle` names the winning digest"))?;
            let digest = format!("{digest:#x}");
            if v.winners.is_empty() {
                return Err(ApiError::field("no_winners", "winners", "`settle` needs at least one winner"));
            }
            for (i, w) in v.winners.iter().enumerate() {
                if digest_of(w).as_deref() != Some(digest.as_str()) {
                    return Err(ApiError::field(
                        "winner_mismatch",
                        format!("winners[{i}]"),
                        format!("{w} has no receipt with digest {digest}"),
                    ));
                }
            }
            // A loser disagreed (its signed receipt), or accepted and sealed and never revealed (its
            // signed acceptance and seal: a missed reveal is a loss).
            let sealed = sqlx::query_scalar!(
                "SELECT provider FROM assignments WHERE job_id = ? AND acceptance IS NOT NULL AND seal_signature IS NOT NULL",
                job_id
            )
            .fetch_all(&state.read)
            .await?;
            for (i, l) in v.losers.iter().enumerate() {
                let missed_reveal = sealed.contains(&format!("{l:#x}"));
                match digest_of(l) {
                    Some(d) if d != digest => {}
                    None if missed_reveal => {}
                    _ => {
                        return Err(ApiError::field(
                            "loser_mismatch",
                            format!("losers[{i}]"),
                            format!("{l} neither disagrees nor missed a reveal it signed for this job"),
                        ));
                    }
                }
            }
            json!({ "outcome": "settle", "resultDigest": digest, "winners": v.winners, "losers": v.losers })
        }
        Outcome::Refund => json!({ "outcome": "refund" }),
        Outcome::Escalate => {
            let wanted =
                v.replicas.ok_or_else(|| ApiError::field("missing_field", "replicas", "`escalate` says how many replicas in all"))?;
            if i64::from(wanted) <= job.redundancy || wanted > MAX_REPLICAS {
                return Err(ApiError::field(
                    "invalid_replicas",
                    "replicas",
                    format!("more than the {} replicas now, at most {MAX_REPLICAS}", job.redundancy),
                ));
            }
            json!({ "outcome": "escalate", "replicas": wanted })
        }
    };
    let key = format!("{verifier:#x}");
    let subject = format!("job:{job_id}");
    let previous =
        sqlx::query_scalar!("SELECT detail FROM timeline WHERE subject = ? AND kind = 'verdict' ORDER BY id DESC LIMIT 1", subject)
            .fetch_optional(&state.read)
            .await?;
    if job.status == "verified" && previous.as_deref() == Some(detail.to_string().as_str()) {
        return Ok(Json(json!({ "jobId": job_id, "status": job.status, "duplicate": true })));
    }
    if job.status != "completed" {
        return Err(ApiError::conflict("not_completed", format!("job {job_id} is {}; a verdict needs every receipt in", job.status)));
    }
    let (status, now) = (if v.outcome == Outcome::Escalate { "matching" } else { "verified" }, now_ms());
    let mut tx = state.db.begin().await?;
    let changed = match v.outcome {
        Outcome::Escalate => {
            let wanted = i64::from(v.replicas.unwrap_or_default());
            sqlx::query!(
                "UPDATE jobs SET status = 'matching', redundancy = ?, reason = NULL, updated_at = ? WHERE job_id = ? AND status = 'completed'",
                wanted,
                now,
                job_id
            )
            .execute(&mut *tx)
            .await?
        }
        _ => {
            sqlx::query!("UPDATE jobs SET status = 'verified', updated_at = ? WHERE job_id = ? AND status = 'completed'", now, job_id)
                .execute(&mut *tx)
                .await?
        }
    }
    .rows_affected();
    if changed == 0 {
        return Err(ApiError::conflict("not_completed", format!("job {job_id} changed; read it again")));
    }
    timeline(&mut tx, &format!("job:{job_id}"), &format!("verifier:{key}"), "verdict", detail.clone(), None).await?;
    tx.commit().await?;
    state.publish(json!({ "type": "verdict", "jobId": job_id, "verdict": detail }));
    if v.outcome == Outcome::Escalate {
        state.wake.matcher();
    }
    Ok(Json(json!({ "jobId": job_id, "status": status, "duplicate": false })))
}

/// What a proposal is of.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProposalKind {
    /// A `settleComputeJobs` batch.
    Settlement,
    /// An `attestStorage` batch.
    Attestation,
    /// A `resolveChallenge`.
    Resolution,
}

impl ProposalKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Settlement => "settlement",
            Self::Attestation => "attestation",
            Self::Resolution => "resolution",
        }
    }
}

/// Body of `POST /v1/verifier/proposals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProposalBody {
    /// What it is of.
    pub kind: ProposalKind,
    /// The EIP-712 digest the committee signs.
    pub digest: B256,
    /// What the digest is of (members re-derive the digest from it and check it before signing).
    pub payload: Value,
    /// The proposer's signature of the digest.
    pub signature: String,
}

/// Body of `POST /v1/verifier/proposals/{digest}/signatures`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureBody {
    /// The member's signature of the digest.
    pub signature: String,
}

/// Checks that `signature` (hex) is `verifier`'s signature of `digest`; returns it normalized.
fn check_signature(digest: B256, signature: &str, verifier: Address) -> ApiResult<String> {
    let bytes = alloy_primitives::hex::decode(signature)
        .map_err(|_| ApiError::field("invalid_signature", "signature", "`signature` must be 65 hex bytes"))?;
    let sig = alloy_primitives::Signature::from_raw(&bytes)
        .map_err(|_| ApiError::field("invalid_signature", "signature", "`signature` must be 65 hex bytes"))?;
    let signer = qor_protocol::eip712::recover(&digest, &sig)
        .map_err(|e| ApiError::field("invalid_signature", "signature", format!("does not recover: {e}")))?;
    if signer != verifier {
        return Err(ApiError::field("signature_mismatch", "signature", format!("signed by {signer}, not by the requester {verifier}")));
    }
    Ok(alloy_primitives::hex::encode_prefixed(sig.as_bytes()))
}

async fn add_signature(state: &AppState, digest: &str, verifier: Address, signature: &str) -> ApiResult<()> {
    let (signer, now) = (format!("{verifier:#x}"), now_ms());
    sqlx::query!(
        "INSERT INTO verifier_signatures (digest, signer, signature, signed_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (digest, signer) DO NOTHING",
        digest,
        signer,
        signature,
        now
    )
    .execute(&state.db)
    .await?;
    Ok(())
}

async fn proposal_json(state: &AppState, digest: &str) -> ApiResult<Option<Value>> {
    let Some(p) = sqlx::query!("SELECT digest, kind, payload, proposer, created_at FROM verifier_proposals WHERE digest = ?", digest)
        .fetch_optional(&state.read)
        .await?
    else {
        return Ok(None);
    };
    let signatures = sqlx::query!("SELECT signer, signature FROM verifier_signatures WHERE digest = ? ORDER BY signer", digest)
        .fetch_all(&state.read)
        .await?
        .into_iter()
        .map(|s| json!({ "signer": s.signer, "signature": s.signature }))
        .collect::<Vec<_>>();
    Ok(Some(json!({
        "digest": p.digest, "kind": p.kind, "proposer": p.proposer, "createdAt": p.created_at,
        "payload": serde_json::from_str::<Value>(&p.payload).unwrap_or(Value::Null), "signatures": signatures,
    })))
}

/// `POST /v1/verifier/proposals`: a member proposes a digest for the committee to sign, with what it
/// is of and its own signature. Proposing the same digest again adds the signature.
pub async fn propose(State(state): State<AppState>, VerifierSigned { verifier, body }: VerifierSigned) -> ApiResult<Json<Value>> {
    let p: ProposalBody = parse_json(&body)?;
    let signature = check_signature(p.digest, &p.signature, verifier)?;
    let (digest, kind, payload, proposer, now) =
        (format!("{:#x}", p.digest), p.kind.as_str(), p.payload.to_string(), format!("{verifier:#x}"), now_ms());
    sqlx::query!(
        "INSERT INTO verifier_proposals (digest, kind, payload, proposer, created_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (digest) DO NOTHING",
        digest,
        kind,
        payload,
        proposer,
        now
    )
    .execute(&state.db)
    .await?;
    add_signature(&state, &digest, verifier, &signature).await?;
    state.publish(json!({ "type": "proposal", "digest": digest, "kind": kind }));
    Ok(Json(proposal_json(&state, &digest).await?.unwrap_or(Value::Null)))
}

/// `POST /v1/verifier/proposals/{digest}/signatures`: a member adds its signature.
pub async fn cosign(
    State(state): State<AppState>,
    Path(digest): Path<String>,
    VerifierSigned { verifier, body }: VerifierSigned,
) -> ApiResult<Json<Value>> {
    let d: B256 = digest.parse().map_err(|_| ApiError::field("invalid_digest", "digest", "must be 32 hex bytes"))?;
    let key = format!("{d:#x}");
    if proposal_json(&state, &key).await?.is_none() {
        return Err(ApiError::not_found(format!("no proposal {key}")));
    }
    let SignatureBody { signature } = parse_json(&body)?;
    let signature = check_signature(d, &signature, verifier)?;
    add_signature(&state, &key, verifier, &signature).await?;
    Ok(Json(proposal_json(&state, &key).await?.unwrap_or(Value::Null)))
}

/// `GET /v1/verifier/proposals/{digest}`: a proposal with its signatures (ascending by signer, the
/// order the committee contract wants).
pub async fn get_proposal(State(state): State<AppState>, Path(digest): Path<String>) -> ApiResult<Json<Value>> {
    let d: B256 = digest.parse().map_err(|_| ApiError::field("invalid_digest", "digest", "must be 32 hex bytes"))?;
    proposal_json(&state, &format!("{d:#x}")).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("no proposal {d:#x}")))
}

/// Query of `GET /v1/verifier/proposals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProposalQuery {
    /// Only proposals made in the last this many milliseconds (default 10 minutes).
    pub since_ms: Option<i64>,
}

/// `GET /v1/verifier/proposals`: recent proposals, newest first, with their signatures.
pub async fn list_proposals(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<ProposalQuery>,
) -> ApiResult<Json<Value>> {
    let since = now_ms() - q.since_ms.unwrap_or(600_000).max(0);
    let digests =
        sqlx::query_scalar!("SELECT digest FROM verifier_proposals WHERE created_at >= ? ORDER BY created_at DESC LIMIT 200", since)
            .fetch_all(&state.read)
            .await?;
    let mut out = Vec::with_capacity(digests.len());
    for d in digests {
        if let Some(p) = proposal_json(&state, &d).await? {
            out.push(p);
        }
    }
    Ok(Json(json!({ "proposals": out })))
}
