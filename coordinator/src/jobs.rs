//! The buyer API: upload a spec, see a job's status with its whole timeline, its replicas' receipts
//! and outputs, and the providers on offer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use qor_protocol::spec::JobSpec;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::db::{now_ms, timeline};
use crate::error::{ApiError, ApiResult, parse_b256, parse_u256};

/// The blobs a spec names (its module and inputs), as the store keys them.
pub(crate) fn spec_blobs(spec: &JobSpec) -> Vec<String> {
    std::iter::once(spec.module).chain(spec.inputs.iter().map(|i| i.hash)).map(|h| format!("{h:#x}")).collect()
}

/// Marks the blobs of spec `spec_hash` as claimed by a funded job, kept until `keep_until`.
pub(crate) async fn claim_spec(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, spec_hash: &str, keep_until: i64) -> sqlx::Result<()> {
    let Some(json) = sqlx::query_scalar!("SELECT spec_json FROM specs WHERE spec_hash = ?", spec_hash).fetch_optional(&mut **tx).await?
    else {
        return Ok(());
    };
    if let Ok(spec) = JobSpec::from_json(json.as_bytes()) {
        crate::blobs::claim(tx, &spec_blobs(&spec), keep_until, true).await?;
    }
    Ok(())
}

/// `POST /v1/specs`: the body is a job spec (at most `max_spec_bytes`). Its module and inputs must
/// already be in the blob store, so a funded job never waits on data the coordinator does not have;
/// they are kept while the spec waits for its funding. An unfunded spec is deleted when it expires.
/// Uploading the same spec again answers 200 with the stored one.
pub async fn post_spec(State(state): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let max = state.cfg.limits.max_spec_bytes;
    if body.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "spec_too_large",
            format!("a spec is at most {max} bytes, not {}", body.len()),
        ));
    }
    let spec = JobSpec::from_json(&body).map_err(|e| ApiError::field("invalid_spec", e.field(), e.to_string()))?;
    if !state.blobs.contains(&spec.module) {
        return Err(ApiError::field("missing_blob", "module", format!("upload the module first: PUT /v1/blobs/{}", spec.module)));
    }
    for (i, input) in spec.inputs.iter().enumerate() {
        if !state.blobs.contains(&input.hash) {
            return Err(ApiError::field(
                "missing_blob",
                format!("inputs[{i}].hash"),
                format!("upload input `{}` first: PUT /v1/blobs/{}", input.path, input.hash),
            ));
        }
    }
    let spec_hash = format!("{:#x}", spec.spec_hash());
    let canonical = String::from_utf8(spec.canonical_json()).map_err(ApiError::internal)?;
    let module = format!("{:#x}", spec.module);
    let redundancy = i64::from(spec.redundancy);
    let fuel = spec.limits.fuel as i64;
    let wall_clock = spec.limits.wall_clock_ms as i64;
    let now = now_ms();
    let expires = now + state.cfg.spec_ttl_ms;

    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT OR IGNORE INTO specs
           (spec_hash, spec_json, module_hash, redundancy, fuel_limit, wall_clock_ms, uploaded_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        spec_hash,
        canonical,
        module,
        redundancy,
        fuel,
        wall_clock,
        now,
        expires
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if inserted {
        timeline(&mut tx, &format!("spec:{spec_hash}"), "buyer", "spec_uploaded", json!({}), None).await?;
        crate::blobs::claim(&mut tx, &spec_blobs(&spec), expires, false).await?;
        // Jobs funded before their spec arrived can be matched now.
        let waiting = sqlx::query!("SELECT job_id, deadline FROM jobs WHERE spec_hash = ? AND status = 'awaiting_spec'", spec_hash)
            .fetch_all(&mut *tx)
            .await?;
        for job in &waiting {
            let job_id = &job.job_id;
            crate::blobs::claim(&mut tx, &spec_blobs(&spec), job.deadline * 1000 + state.cfg.limits.retention_ms, true).await?;
            sqlx::query!("UPDATE jobs SET status = 'matching', reason = NULL, updated_at = ? WHERE job_id = ?", now, job_id)
                .execute(&mut *tx)
                .await?;
            timeline(&mut tx, &format!("job:{job_id}"), "coordinator", "spec_arrived", json!({ "specHash": spec_hash }), None).await?;
        }
    }
    tx.commit().await?;
    if inserted {
        state.metrics.specs_created.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        state.publish(json!({ "type": "spec", "specHash": spec_hash }));
        state.wake.matcher();
    }
    let status = if inserted { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(json!({ "specHash": spec_hash, "created": inserted }))).into_response())
}

/// `GET /v1/specs/{spec_hash}`: the spec, whether it is funded, and its jobs.
pub async fn get_spec(State(state): State<AppState>, Path(hash): Path<String>) -> ApiResult<Json<Value>> {
    let hash = format!("{:#x}", parse_b256("spec_hash", &hash)?);
    let spec = sqlx::query!("SELECT spec_json, uploaded_at, expires_at FROM specs WHERE spec_hash = ?", hash)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no spec {hash}")))?;
    let jobs =
        sqlx::query_scalar!("SELECT job_id FROM jobs WHERE spec_hash = ? ORDER BY block_number", hash).fetch_all(&state.read).await?;
    let status = if !jobs.is_empty() {
        "funded"
    } else if spec.expires_at < now_ms() {
        "expired"
    } else {
        "awaiting_funding"
    };
    let parsed: Value = serde_json::from_str(&spec.spec_json).map_err(ApiError::internal)?;
    Ok(Json(json!({
        "specHash": hash,
        "spec": parsed,
        "status": status,
        "uploadedAt": spec.uploaded_at,
        "expiresAt": spec.expires_at,
        "jobs": jobs,
        "timeline": subject_timeline(&state, &format!("spec:{hash}")).await?,
    })))
}

/// Query of `GET /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    /// Only jobs in this status.
    pub status: Option<String>,
    /// Only jobs of this buyer.
    pub buyer: Option<String>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<i64>,
}

/// `GET /v1/jobs`.
pub async fn list_jobs(State(state): State<AppState>, Query(filter): Query<JobFilter>) -> ApiResult<Json<Value>> {
    let limit = filter.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::field("out_of_range", "limit", "`limit` must be 1 to 1000"));
    }
    let buyer = match &filter.buyer {
        Some(b) => Some(format!(
            "{:#x}",
            b.parse::<alloy_primitives::Address>().map_err(|_| ApiError::field(
                "invalid_address",
                "buyer",
                "`buyer` must be an address"
            ))?
        )),
        None => None,
    };
    let rows = sqlx::query!(
        "SELECT job_id, spec_hash, buyer, budget, token, redundancy, status, reason, block_number, updated_at FROM jobs
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR buyer = ?2)
         ORDER BY block_number DESC, job_id DESC LIMIT ?3",
        filter.status,
        buyer,
        limit
    )
    .fetch_all(&state.read)
    .await?;
    let jobs: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({
                "jobId": r.job_id, "specHash": r.spec_hash, "buyer": r.buyer, "budget": r.budget, "token": r.token,
                "redundancy": r.redundancy, "status": r.status, "reason": r.reason, "block": r.block_number,
                "updatedAt": r.updated_at,
            })
        })
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

/// `GET /v1/jobs/{job_id}`: status, replicas, receipts and the timeline of every transition.
pub async fn get_job(State(state): State<AppState>, Path(job_id): Path<String>) -> ApiResult<Json<Value>> {
    let job_id = parse_u256("job_id", &job_id)?.to_string();
    let job = sqlx::query!(
        "SELECT job_id, spec_hash, buyer, token, budget, deadline, redundancy, funded_redundancy, preferred, block_number, block_hash,
                status, reason, updated_at FROM jobs WHERE job_id = ?",
        job_id
    )
    .fetch_optional(&state.read)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no job {job_id} (not funded on chain, or not yet confirmed)")))?;
    let replicas = sqlx::query!(
        "SELECT id, provider, status, lease_expires_at, seal, acceptance, seal_signature, created_at, updated_at FROM assignments
         WHERE job_id = ? ORDER BY id",
        job_id
    )
    .fetch_all(&state.read)
    .await?
    .into_iter()
    .map(|a| {
        json!({
            "assignment": a.id, "provider": a.provider, "status": a.status, "leaseExpiresAt": a.lease_expires_at,
            "seal": a.seal, "acceptance": a.acceptance, "sealSignature": a.seal_signature,
            "createdAt": a.created_at, "updatedAt": a.updated_at,
        })
    })
    .collect::<Vec<_>>();
    let receipts = sqlx::query!(
        "SELECT worker, spec_hash, result_digest, stdout_hash, exit_code, fuel_used, signature, outputs, received_at
         FROM receipts WHERE job_id = ? ORDER BY received_at",
        job_id
    )
    .fetch_all(&state.read)
    .await?
    .into_iter()
    .map(|r| {
        json!({
            "worker": r.worker, "specHash": r.spec_hash, "resultDigest": r.result_digest, "stdoutHash": r.stdout_hash,
            "exitCode": r.exit_code,
            "fuelUsed": r.fuel_used, "signature": r.signature,
            "outputs": serde_json::from_str::<Value>(&r.outputs).unwrap_or(Value::Null), "receivedAt": r.received_at,
        })
    })
    .collect::<Vec<_>>();
    let spec_present =
        sqlx::query_scalar!("SELECT spec_hash FROM specs WHERE spec_hash = ?", job.spec_hash).fetch_optional(&state.read).await?.is_some();
    Ok(Json(json!({
        "jobId": job.job_id,
        "specHash": job.spec_hash,
        "specUploaded": spec_present,
        "buyer": job.buyer,
        "token": job.token,
        "budget": job.budget,
        "deadline": job.deadline,
        "redundancy": job.redundancy,
        "fundedRedundancy": job.funded_redundancy,
        "preferredProvider": job.preferred,
        "block": { "number": job.block_number, "hash": job.block_hash },
        "status": job.status,
        "reason": job.reason,
        "updatedAt": job.updated_at,
        "replicas": replicas,
        "receipts": receipts,
        "timeline": subject_timeline(&state, &format!("job:{job_id}")).await?,
    })))
}

/// The timeline of `spec:<hash>` or `job:<id>`, oldest first.
pub(crate) async fn subject_timeline(state: &AppState, subject: &str) -> ApiResult<Vec<Value>> {
    Ok(sqlx::query!("SELECT at, actor, kind, detail, block_number FROM timeline WHERE subject = ? ORDER BY id", subject)
        .fetch_all(&state.read)
        .await?
        .into_iter()
        .map(|t| {
            json!({
                "at": t.at, "actor": t.actor, "kind": t.kind, "block": t.block_number,
                "detail": serde_json::from_str::<Value>(&t.detail).unwrap_or(Value::Null),
            })
        })
        .collect())
}

/// `GET /v1/jobs/{job_id}/outputs/{worker}/{path}`: redirects to the output's blob.
pub async fn get_output(
    State(state): State<AppState>,
    Path((job_id, worker, path)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let job_id = parse_u256("job_id", &job_id)?.to_string();
    let worker = format!(
        "{:#x}",
        worker.parse::<alloy_primitives::Address>().map_err(|_| ApiError::field(
            "invalid_address",
            "worker",
            "`worker` must be an address"
        ))?
    );
    let outputs = sqlx::query_scalar!("SELECT outputs FROM receipts WHERE job_id = ? AND worker = ?", job_id, worker)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no receipt from {worker} for job {job_id}")))?;
    let outputs: Vec<crate::worker::OutputFile> = serde_json::from_str(&outputs).map_err(ApiError::internal)?;
    let file = outputs
        .iter()
        .find(|o| o.path == path)
        .ok_or_else(|| ApiError::not_found(format!("job {job_id} has no output `{path}` from {worker}")))?;
    Ok(Redirect::temporary(&format!("/v1/blobs/{:#x}", file.hash)).into_response())
}

/// `GET /v1/providers`: every registered provider, with liveness and free capacity.
pub async fn list_providers(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let providers: Vec<Value> = crate::matcher::providers(&state)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "address": p.address, "stake": p.stake, "pricePerFuel": p.price_per_fuel, "capacity": p.capacity,
                "region": p.region, "completed": p.completed, "failed": p.failed, "slashed": p.slashed,
                "lastHeartbeat": p.last_heartbeat, "live": p.live, "busy": p.busy, "failedLeases": p.failed_leases,
            })
        })
        .collect();
    Ok(Json(json!({ "providers": providers })))
}

/// `GET /v1/chain`: where the market's contracts are, for workers, the CLI and the web app.
pub async fn chain_info(State(state): State<AppState>) -> Json<Value> {
    let c = &state.cfg;
    Json(json!({
        "chainId": c.chain_id, "jobEscrow": c.escrow, "providerRegistry": c.registry, "verifierCommittee": c.committee,
        "storageMarket": c.market,
        "deployBlock": c.deploy_block, "rpcUrl": c.public_rpc_url, "walletConnectProjectId": c.walletconnect_project_id,
        "confirmations": c.confirmations,
        "chainBlock": state.metrics.chain_block.load(std::sync::atomic::Ordering::Relaxed),
    }))
}
