//! The worker API. Every request is signed ([`crate::auth`]); a worker sees and touches only its own
//! assignments (another's is 404). The flow per replica: long-poll `assignments` → `accept` (the lease,
//! signed) → run → `seal` (commit to the result digest before anyone reveals, signed) → `receipt`
//! (reveal the signed receipt and the outputs already uploaded to the blob store). Every step is
//! idempotent under retries.
//!
//! The acceptance and the seal are EIP-712 signatures the coordinator checks and keeps: they are what
//! the verifier needs to hold a replica that never revealed to its word. A replica the coordinator
//! cannot show them for costs its provider nothing.

use std::time::Duration;

use alloy_primitives::{Address, B256, Signature, U256};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::Uri;
use qor_protocol::bindings::IJobEscrow::Receipt;
use qor_protocol::eip712::{LeaseAcceptance, SealCommitment, escrow_domain, receipt_digest, recover, seal as seal_of, signed_by};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Signed;
use crate::db::{now_ms, timeline};
use crate::error::{ApiError, ApiResult};
use crate::matcher::end_lease;

/// Longest a long poll waits.
const MAX_WAIT_MS: u64 = 30_000;

pub(crate) fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        ApiError::field("invalid_json", if field == "." { "body".into() } else { field }, e.inner().to_string())
    })
}

async fn touch(state: &AppState, worker: Address) -> ApiResult<()> {
    let key = format!("{worker:#x}");
    let now = now_ms();
    sqlx::query!("UPDATE providers SET last_heartbeat = ? WHERE address = ?", now, key).execute(&state.db).await?;
    state.heartbeats.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, now);
    Ok(())
}

/// A poll counts as a heartbeat, but is written at most once per tenth of the liveness TTL: a busy
/// worker polls many times a second, and liveness is judged in tens of seconds.
async fn touch_lazily(state: &AppState, worker: Address) -> ApiResult<()> {
    let key = format!("{worker:#x}");
    let last = state.heartbeats.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).copied();
    if last.is_some_and(|at| now_ms() - at < state.cfg.heartbeat_ttl_ms / 10) {
        return Ok(());
    }
    touch(state, worker).await
}

/// `POST /v1/worker/register`: a registered provider's worker checks in; answers what the coordinator
/// knows of it (from the chain) so the worker can show it.
pub async fn register(State(state): State<AppState>, Signed { worker, .. }: Signed) -> ApiResult<Json<Value>> {
    touch(&state, worker).await?;
    let key = format!("{worker:#x}");
    let p =
        sqlx::query!("SELECT stake, price_per_fuel, capacity, region, completed, failed, slashed FROM providers WHERE address = ?", key)
            .fetch_one(&state.read)
            .await?;
    state.wake.matcher();
    Ok(Json(json!({
        "address": key, "stake": p.stake, "pricePerFuel": p.price_per_fuel, "capacity": p.capacity, "region": p.region,
        "completed": p.completed, "failed": p.failed, "slashed": p.slashed,
        "chainId": state.cfg.chain_id, "escrow": state.cfg.escrow,
    })))
}

/// `POST /v1/worker/heartbeat`.
pub async fn heartbeat(State(state): State<AppState>, Signed { worker, .. }: Signed) -> ApiResult<Json<Value>> {
    touch(&state, worker).await?;
    state.wake.matcher();
    Ok(Json(json!({ "ok": true, "at": now_ms() })))
}

/// An assignment as the worker sees it.
async fn own_assignments(state: &AppState, worker: &str) -> ApiResult<Vec<Value>> {
    let rows = sqlx::query!(
        r#"SELECT a.id, a.job_id, a.status, a.lease_expires_at, a.seal, s.spec_json, j.spec_hash, j.redundancy, j.buyer, j.token,
                  j.budget, j.deadline, j.funded_redundancy, j.preferred,
                  (SELECT COUNT(*) FROM assignments b WHERE b.job_id = a.job_id AND b.status IN ('sealed', 'revealed')) AS "sealed!: i64"
         FROM assignments a JOIN jobs j ON j.job_id = a.job_id JOIN specs s ON s.spec_hash = j.spec_hash
         WHERE a.provider = ? AND a.status IN ('leased', 'accepted', 'sealed') ORDER BY a.id"#,
        worker
    )
    .fetch_all(&state.read)
    .await?;
    Ok(rows
        .into_iter()
        .map(|a| {
            json!({
                "assignment": a.id, "jobId": a.job_id, "status": a.status, "leaseExpiresAt": a.lease_expires_at,
                "seal": a.seal, "specHash": a.spec_hash, "redundancy": a.redundancy, "replicasSealed": a.sealed,
                // Reveal once every replica has sealed (the receipt is refused before).
                "revealable": a.sealed >= a.redundancy,
                "spec": serde_json::from_str::<Value>(&a.spec_json).unwrap_or(Value::Null),
                // The job as funded: the worker checks it against the escrow's commitment.
                "job": {
                    "specHash": a.spec_hash, "buyer": a.buyer, "token": a.token, "budget": a.budget, "deadline": a.deadline,
                    "redundancy": a.funded_redundancy, "preferredProvider": a.preferred,
                },
            })
        })
        .collect())
}

/// The query parameter `name` as a number (`what` it must be, for the error), if given.
fn query_number<T: std::str::FromStr>(uri: &Uri, name: &str, what: &str) -> ApiResult<Option<T>> {
    let prefix = format!("{name}=");
    let Some(v) = uri.query().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix(prefix.as_str()))) else { return Ok(None) };
    v.parse().map(Some).map_err(|_| ApiError::field("invalid_number", name, format!("`{name}` must be {what}")))
}

/// `GET /v1/worker/assignments?wait_ms=N[&after=A]`: this worker's live assignments and its storage
/// work (deals offered to it or held by it, open challenges); waits up to N ms (at most 30 s) while
/// there is nothing to do. With `after`, live assignments up to id A (the ones the worker already has)
/// are not something to do: a busy worker waits for a new lease instead of asking again after every
/// job. Polling counts as a heartbeat.
pub async fn assignments(State(state): State<AppState>, uri: Uri, Signed { worker, .. }: Signed) -> ApiResult<Json<Value>> {
    let wait_ms = query_number::<u64>(&uri, "wait_ms", "milliseconds")?.unwrap_or(0).min(MAX_WAIT_MS);
    let after = query_number::<i64>(&uri, "after", "an assignment id")?;
    touch_lazily(&state, worker).await?;
    state.wake.matcher(); // a live worker may make a waiting job matchable
    let key = format!("{worker:#x}");
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let wake = state.wake.worker(&key);
    loop {
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let found = own_assignments(&state, &key).await?;
        let storage = crate::storage::storage_work(&state, &key).await?;
        let storage_pending = !storage["challenges"].as_array().is_none_or(Vec::is_empty)
            || storage["deals"].as_array().into_iter().flatten().any(|d| d["status"] == "offered");
        let new_work = found.iter().any(|a| after.is_none_or(|after| a["assignment"].as_i64().is_some_and(|id| id > after)));
        if new_work || storage_pending || tokio::time::Instant::now() >= deadline {
            return Ok(Json(json!({ "assignments": found, "storage": storage })));
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

struct Owned {
    job_id: String,
    spec_hash: String,
    status: String,
    seal: Option<String>,
}

/// The assignment `id` if it belongs to `worker`; 404 otherwise, whoever's it is.
async fn owned(state: &AppState, id: i64, worker: &str) -> ApiResult<Owned> {
    let row = sqlx::query!(
        "SELECT a.job_id, j.spec_hash, a.status, a.seal FROM assignments a JOIN jobs j ON j.job_id = a.job_id WHERE a.id = ? AND a.provider = ?",
        id,
        worker
    )
    .fetch_optional(&state.read)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no assignment {id} for {worker}")))?;
    Ok(Owned { job_id: row.job_id, spec_hash: row.spec_hash, status: row.status, seal: row.seal })
}

impl Owned {
    fn job(&self) -> ApiResult<(U256, B256)> {
        Ok((self.job_id.parse().map_err(ApiError::internal)?, self.spec_hash.parse().map_err(ApiError::internal)?))
    }
}

/// A 65-byte 0x-hex signature in `field`.
fn signature_in(field: &str, text: &str) -> ApiResult<Signature> {
    text.parse().map_err(|_| ApiError::field("bad_signature", field, format!("`{field}` must be 65 bytes of 0x-hex")))
}

/// Body of `accept`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    /// EIP-712 signature of `LeaseAcceptance{jobId, specHash, worker}` under the escrow's domain.
    pub signature: String,
}

/// `POST /v1/worker/assignments/{id}/accept`: the worker takes the lease, with its signed acceptance.
/// From here a lease that ends unsealed is this provider's failure (recorded, not slashed).
pub async fn accept(State(state): State<AppState>, Path(id): Path<i64>, Signed { worker, body }: Signed) -> ApiResult<Json<Value>> {
    let AcceptBody { signature } = parse_json(&body)?;
    let signature = signature_in("signature", &signature)?;
    let key = format!("{worker:#x}");
    let a = owned(&state, id, &key).await?;
    let (job_id, spec_hash) = a.job()?;
    let acceptance = LeaseAcceptance { jobId: job_id, specHash: spec_hash, worker };
    if !signed_by(&acceptance, &escrow_domain(state.cfg.chain_id, state.cfg.escrow), &signature, worker) {
        return Err(ApiError::field(
            "bad_signature",
            "signature",
            format!(
                "not {worker}'s LeaseAcceptance of job {job_id} (spec {spec_hash}) under chain {} escrow {}",
                state.cfg.chain_id, state.cfg.escrow
            ),
        ));
    }
    match a.status.as_str() {
        "leased" => {}
        "accepted" | "sealed" | "revealed" => return Ok(Json(json!({ "assignment": id, "status": a.status }))),
        other => return Err(ApiError::conflict("lease_lapsed", format!("assignment {id} is {other}; it cannot be accepted"))),
    }
    let (sig_hex, now) = (alloy_primitives::hex::encode_prefixed(signature.as_bytes()), now_ms());
    let mut tx = state.db.begin().await?;
    let changed = sqlx::query!(
        "UPDATE assignments SET status = 'accepted', acceptance = ?, updated_at = ? WHERE id = ? AND status = 'leased'",
        sig_hex,
        now,
        id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(ApiError::conflict("lease_lapsed", format!("assignment {id} changed; retry")));
    }
    timeline(&mut tx, &format!("job:{}", a.job_id), &format!("worker:{key}"), "accepted", json!({ "assignment": id }), None).await?;
    tx.commit().await?;
    state.publish(json!({ "type": "accepted", "jobId": a.job_id, "worker": key }));
    Ok(Json(json!({ "assignment": id, "status": "accepted" })))
}

/// Body of `seal`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealBody {
    /// `keccak256(abi.encode(worker, jobId, resultDigest))`.
    pub seal: B256,
    /// EIP-712 signature of `SealCommitment{jobId, specHash, worker, seal}` under the escrow's domain.
    pub signature: String,
}

/// `POST /v1/worker/assignments/{id}/seal`: commits to a result before any replica reveals, signed.
/// The seal that completes a job's seals opens the reveal window: every sealed replica's lease then
/// runs `lease_ms` from now (revealing computes nothing; the job's wall clock no longer counts). Until then a sealed replica waits for the others however long they take
/// (a replica that never seals lapses, and its slot goes to someone else); its seal stands.
pub async fn seal(State(state): State<AppState>, Path(id): Path<i64>, Signed { worker, body }: Signed) -> ApiResult<Json<Value>> {
    let SealBody { seal, signature } = parse_json(&body)?;
    let signature = signature_in("signature", &signature)?;
    let key = format!("{worker:#x}");
    let seal_hex = format!("{seal:#x}");
    let a = owned(&state, id, &key).await?;
    let (job_id, spec_hash) = a.job()?;
    let commitment = SealCommitment { jobId: job_id, specHash: spec_hash, worker, seal };
    if !signed_by(&commitment, &escrow_domain(state.cfg.chain_id, state.cfg.escrow), &signature, worker) {
        return Err(ApiError::field(
            "bad_signature",
            "signature",
            format!("not {worker}'s SealCommitment of job {job_id} (spec {spec_hash}) to {seal}"),
        ));
    }
    match (a.status.as_str(), a.seal.as_deref()) {
        ("leased", _) => return Err(ApiError::conflict("accept_first", format!("accept assignment {id} before sealing it"))),
        ("accepted", _) => {}
        ("sealed" | "revealed", Some(existing)) if existing == seal_hex => {
            return Ok(Json(json!({ "assignment": id, "status": a.status })));
        }
        ("sealed" | "revealed", _) => {
            return Err(ApiError::conflict("seal_conflict", format!("assignment {id} is already sealed with another seal")));
        }
        (other, _) => return Err(ApiError::conflict("lease_lapsed", format!("assignment {id} is {other}; it cannot be sealed"))),
    }
    let (now, sig_hex) = (now_ms(), alloy_primitives::hex::encode_prefixed(signature.as_bytes()));
    let mut tx = state.db.begin().await?;
    let changed = sqlx::query!(
        "UPDATE assignments SET status = 'sealed', seal = ?, seal_signature = ?, updated_at = ? WHERE id = ? AND status = 'accepted'",
        seal_hex,
        sig_hex,
        now,
        id
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Err(ApiError::conflict("lease_lapsed", format!("assignment {id} changed; retry")));
    }
    timeline(&mut tx, &format!("job:{}", a.job_id), &format!("worker:{key}"), "sealed", json!({ "seal": seal_hex }), None).await?;
    // Every replica sealed: the reveal window opens for all of them now.
    let reveal_by = now + state.cfg.lease_ms;
    sqlx::query!(
        "UPDATE assignments SET lease_expires_at = ?
         WHERE job_id = ? AND status = 'sealed'
           AND (SELECT COUNT(*) FROM assignments b WHERE b.job_id = ? AND b.status IN ('sealed', 'revealed'))
               >= (SELECT redundancy FROM jobs WHERE job_id = ?)",
        reveal_by,
        a.job_id,
        a.job_id,
        a.job_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.publish(json!({ "type": "sealed", "jobId": a.job_id, "worker": key }));
    Ok(Json(json!({ "assignment": id, "status": "sealed" })))
}

/// An output file of a receipt: its path under /out and the keccak of its bytes (uploaded as a blob).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutputFile {
    /// Path relative to /out, `/`-separated.
    pub path: String,
    /// keccak256 of the file.
    pub hash: B256,
}

/// A receipt as JSON (the EIP-712 `Receipt` fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReceiptJson {
    /// On-chain job id.
    pub job_id: U256,
    /// The spec the worker ran.
    pub spec_hash: B256,
    /// The worker's address.
    pub worker: Address,
    /// keccak over exit code, stdout and /out.
    pub result_digest: B256,
    /// keccak256 of stdout.
    pub stdout_hash: B256,
    /// Exit code.
    pub exit_code: u32,
    /// Fuel used.
    pub fuel_used: u64,
}

/// Body of `receipt`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    /// The receipt.
    pub receipt: ReceiptJson,
    /// EIP-712 signature of the receipt under the escrow's domain, 0x-hex `r ‖ s ‖ v`.
    pub signature: String,
    /// Files under /out, uploaded to the blob store first.
    #[serde(default)]
    pub outputs: Vec<OutputFile>,
}

/// `POST /v1/worker/assignments/{id}/receipt`: reveals the signed receipt matching the seal.
pub async fn receipt(State(state): State<AppState>, Path(id): Path<i64>, Signed { worker, body }: Signed) -> ApiResult<Json<Value>> {
    let ReceiptBody { receipt: r, signature, outputs } = parse_json(&body)?;
    let signature: Signature =
        signature.parse().map_err(|_| ApiError::field("bad_receipt_signature", "signature", "`signature` must be 65 bytes of 0x-hex"))?;
    let key = format!("{worker:#x}");
    let a = owned(&state, id, &key).await?;
    if r.job_id.to_string() != a.job_id {
        return Err(ApiError::field("wrong_job", "receipt.jobId", format!("assignment {id} is job {}", a.job_id)));
    }
    if r.worker != worker {
        return Err(ApiError::field("wrong_worker", "receipt.worker", format!("the request is signed by {worker}")));
    }
    if format!("{:#x}", r.spec_hash) != a.spec_hash {
        return Err(ApiError::field("wrong_spec", "receipt.specHash", format!("job {} was funded with spec {}", a.job_id, a.spec_hash)));
    }
    let sol = Receipt {
        jobId: r.job_id,
        specHash: r.spec_hash,
        worker: r.worker,
        resultDigest: r.result_digest,
        stdoutHash: r.stdout_hash,
        exitCode: r.exit_code,
        fuelUsed: r.fuel_used,
    };
    let digest = receipt_digest(&sol, &escrow_domain(state.cfg.chain_id, state.cfg.escrow));
    match recover(&digest, &signature) {
        Ok(signer) if signer == worker => {}
        Ok(signer) => {
            return Err(ApiError::field(
                "bad_receipt_signature",
                "signature",
                format!(
                    "the receipt is signed by {signer}, not {worker} (domain: chain {}, escrow {})",
                    state.cfg.chain_id, state.cfg.escrow
                ),
            ));
        }
        Err(e) => return Err(ApiError::field("bad_receipt_signature", "signature", e.to_string())),
    }
    let expected_seal = format!("{:#x}", seal_of(worker, r.job_id, r.result_digest));
    match (a.status.as_str(), a.seal.as_deref()) {
        ("leased" | "accepted", _) => return Err(ApiError::conflict("seal_first", format!("seal assignment {id} before revealing"))),
        ("sealed" | "revealed", Some(s)) if s == expected_seal => {}
        ("sealed" | "revealed", _) => {
            return Err(ApiError::conflict("seal_mismatch", "the receipt does not open the seal this worker committed to"));
        }
        (other, _) => return Err(ApiError::conflict("lease_lapsed", format!("assignment {id} is {other}"))),
    }
    // Commit-reveal: no receipt is taken (so none is published) before every replica has committed,
    // or a lazy replica could read a revealed digest and seal it as its own.
    let seals = sqlx::query!(
        r#"SELECT j.redundancy, (SELECT COUNT(*) FROM assignments a WHERE a.job_id = j.job_id AND a.status IN ('sealed', 'revealed'))
             AS "sealed!: i64"
           FROM jobs j WHERE j.job_id = ?"#,
        a.job_id
    )
    .fetch_one(&state.read)
    .await?;
    if a.status == "sealed" && seals.sealed < seals.redundancy {
        return Err(ApiError::conflict(
            "awaiting_seals",
            format!("{} of {} replicas have sealed; reveal once every replica has (retry)", seals.sealed, seals.redundancy),
        ));
    }
    for (i, o) in outputs.iter().enumerate() {
        if o.path.is_empty() || o.path.starts_with('/') || o.path.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(ApiError::field("invalid_path", format!("outputs[{i}].path"), "a relative path under /out without `.` or `..`"));
        }
        if !state.blobs.contains(&o.hash) {
            return Err(ApiError::field("missing_blob", format!("outputs[{i}].hash"), format!("upload `{}` first", o.path)));
        }
    }
    let (digest_hex, stdout_hex, sig_hex, spec_hex) = (
        format!("{:#x}", r.result_digest),
        format!("{:#x}", r.stdout_hash),
        alloy_primitives::hex::encode_prefixed(signature.as_bytes()),
        format!("{:#x}", r.spec_hash),
    );
    let outputs_json = serde_json::to_string(&outputs).map_err(ApiError::internal)?;
    let (exit, fuel, now) = (i64::from(r.exit_code), r.fuel_used as i64, now_ms());

    let mut tx = state.db.begin().await?;
    let inserted =
        sqlx::query!(
        "INSERT OR IGNORE INTO receipts (job_id, worker, result_digest, stdout_hash, exit_code, fuel_used, signature, outputs, received_at,
           spec_hash)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        a.job_id, key, digest_hex, stdout_hex, exit, fuel, sig_hex, outputs_json, now, spec_hex
    )
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
    if !inserted {
        let existing = sqlx::query!("SELECT result_digest, outputs FROM receipts WHERE job_id = ? AND worker = ?", a.job_id, key)
            .fetch_one(&mut *tx)
            .await?;
        if existing.result_digest != digest_hex || existing.outputs != outputs_json {
            return Err(ApiError::conflict("receipt_conflict", "a different receipt for this job and worker is already stored"));
        }
        return Ok(Json(json!({ "assignment": id, "status": "revealed", "duplicate": true })));
    }
    sqlx::query!("UPDATE assignments SET status = 'revealed', updated_at = ? WHERE id = ?", now, id).execute(&mut *tx).await?;
    // Stdout and the outputs are the job's result: kept past its deadline for whoever re-checks it.
    let deadline = sqlx::query_scalar!("SELECT deadline FROM jobs WHERE job_id = ?", a.job_id).fetch_one(&mut *tx).await?;
    let results: Vec<String> = std::iter::once(stdout_hex.clone()).chain(outputs.iter().map(|o| format!("{:#x}", o.hash))).collect();
    crate::blobs::claim(&mut tx, &results, deadline * 1000 + state.cfg.limits.retention_ms, true).await?;
    timeline(
        &mut tx,
        &format!("job:{}", a.job_id),
        &format!("worker:{key}"),
        "revealed",
        json!({ "resultDigest": digest_hex, "exitCode": exit, "fuelUsed": fuel }),
        None,
    )
    .await?;
    let job = sqlx::query!(
        r#"SELECT j.redundancy, (SELECT COUNT(*) FROM receipts r WHERE r.job_id = j.job_id) AS "revealed!: i64"
           FROM jobs j WHERE j.job_id = ?"#,
        a.job_id
    )
    .fetch_one(&mut *tx)
    .await?;
    let complete = job.revealed >= job.redundancy;
    if complete {
        sqlx::query!("UPDATE jobs SET status = 'completed', reason = NULL, updated_at = ? WHERE job_id = ?", now, a.job_id)
            .execute(&mut *tx)
            .await?;
        timeline(&mut tx, &format!("job:{}", a.job_id), "coordinator", "receipts_complete", json!({ "receipts": job.revealed }), None)
            .await?;
    }
    tx.commit().await?;
    state.metrics.receipts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.publish(json!({ "type": "revealed", "jobId": a.job_id, "worker": key, "complete": complete }));
    state.wake.matcher(); // a slot of this worker's capacity is free again
    Ok(Json(json!({ "assignment": id, "status": "revealed", "duplicate": false })))
}

/// Body of `release` (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBody {
    /// Why, for the job's timeline: shutting down, an input whose hash did not match, a run that
    /// produced no result.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/worker/assignments/{id}/release`: gives a lease back (shutting down, say) so the job goes
/// to another provider at once rather than when the lease lapses.
pub async fn release(State(state): State<AppState>, Path(id): Path<i64>, Signed { worker, body }: Signed) -> ApiResult<Json<Value>> {
    let ReleaseBody { reason } = if body.is_empty() { ReleaseBody::default() } else { parse_json(&body)? };
    if reason.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(ApiError::field("too_long", "reason", "at most 1024 characters"));
    }
    let key = format!("{worker:#x}");
    let a = owned(&state, id, &key).await?;
    if a.status == "released" {
        return Ok(Json(json!({ "assignment": id, "status": "released" })));
    }
    if !matches!(a.status.as_str(), "leased" | "accepted" | "sealed") {
        return Err(ApiError::conflict("not_releasable", format!("assignment {id} is {}", a.status)));
    }
    let mut tx = state.db.begin().await?;
    let detail = json!({ "assignment": id, "reason": reason });
    let ended = end_lease(&mut tx, id, &a.job_id, "released", &format!("worker:{key}"), detail).await?;
    tx.commit().await?;
    if !ended {
        return Err(ApiError::conflict("not_releasable", format!("assignment {id} changed; retry")));
    }
    state.publish(json!({ "type": "released", "jobId": a.job_id, "worker": key }));
    state.wake.matcher();
    Ok(Json(json!({ "assignment": id, "status": "released" })))
}
