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
            for (i, l) in v.losers.iter().enumerate() {
                match digest_of(l) {
                    Some(d) if d != digest => {}
                    _ => {
                        return Err(ApiError::field(
                            "loser_mismatch",
                            format!("losers[{i}]"),
                            format!("{l} has no receipt that disagrees"),
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
