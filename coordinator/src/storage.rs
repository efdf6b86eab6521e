//! Storage deals. The buyer uploads the file as a blob and registers it, and the coordinator recomputes
//! its Merkle root; once the deal is funded on chain (`StorageDealCreated` with that root) the
//! coordinator offers it to a provider (the preferred one, else the best-ranked live one), which
//! fetches the file, recomputes the root and reports it; a match is its cue to call
//! `acceptStorageDeal`, a mismatch a refusal (the deal goes to someone else). Each period a committee
//! member relays the challenge index the escrow derives; the provider answers with the chunk and its
//! Merkle path, which the coordinator checks against the root before keeping it for the verifier.

use std::cmp::Ordering as CmpOrdering;

use alloy_primitives::{Address, B256, U256};
use axum::Json;
use axum::extract::{Path, Query, State};
use qor_protocol::merkle::{CHUNK_SIZE, ChunkProof, chunk_count, root_from_reader, verify};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{AccountSigned, Signed, VerifierSigned};
use crate::db::{now_ms, timeline};
use crate::error::{ApiError, ApiResult, parse_u256};
use crate::worker::parse_json;

/// Body of `POST /v1/storage/files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileBody {
    /// keccak256 of the file, uploaded first with `PUT /v1/blobs/{hash}`.
    pub blob_hash: B256,
}

/// `POST /v1/storage/files`: registers an uploaded blob for storage; answers the Merkle root the deal
/// must lock (the coordinator's own computation, streamed from disk). A blob registered before is
/// answered from the root computed then: hashing a gigabyte again on every call would be anyone's to
/// ask for. At most two files are hashed at once.
pub async fn post_file(State(state): State<AppState>, body: axum::body::Bytes) -> ApiResult<Json<Value>> {
    let FileBody { blob_hash } = parse_json(&body)?;
    let blob_hex = format!("{blob_hash:#x}");
    let answer = |root: &str, size: i64| {
        Json(json!({ "root": root, "size": size, "chunks": chunk_count(size as u64), "chunkSize": CHUNK_SIZE, "blobHash": blob_hex }))
    };
    if let Some(known) =
        sqlx::query!("SELECT root, size FROM storage_files WHERE blob_hash = ?", blob_hex).fetch_optional(&state.read).await?
    {
        return Ok(answer(&known.root, known.size));
    }
    let file = state
        .blobs
        .open_file(&blob_hash)
        .map_err(|_| ApiError::field("missing_blob", "blobHash", format!("upload the file first: PUT /v1/blobs/{blob_hash}")))?;
    let _hashing = state.guards.hashing.acquire().await.map_err(ApiError::internal)?;
    let (root, size) = tokio::task::spawn_blocking(move || root_from_reader(std::io::BufReader::new(file.into_std())))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::field("invalid_file", "blobHash", e.to_string()))?;
    let (root_hex, size_i, now) = (format!("{root:#x}"), size as i64, now_ms());
    sqlx::query!(
        "INSERT OR IGNORE INTO storage_files (root, blob_hash, size, uploaded_at) VALUES (?, ?, ?, ?)",
        root_hex,
        blob_hex,
        size_i,
        now
    )
    .execute(&state.db)
    .await?;
    state.wake.matcher(); // a deal funded before its file arrived can be offered now
    Ok(answer(&root_hex, size_i))
}

/// What a deal is doing, from its chain state and its hosting progress.
fn deal_status(chain: &str, has_file: bool, offered_to: Option<&str>, reported_root: Option<&str>) -> &'static str {
    match (chain, has_file, offered_to, reported_root) {
        ("open", false, _, _) => "awaiting_file",
        ("open", true, None, _) => "awaiting_provider",
        ("open", true, Some(_), None) => "offered",
        ("open", true, Some(_), Some(_)) => "awaiting_acceptance",
        ("active", ..) => "active",
        ("cancelled", ..) => "cancelled",
        ("completed", ..) => "completed",
        _ => "unknown",
    }
}

async fn deal_json(state: &AppState, deal_id: &str, with_timeline: bool) -> ApiResult<Option<Value>> {
    let Some(d) = sqlx::query!(
        r#"SELECT d.deal_id, d.buyer, d.provider, d.root, d.size, d.status, d.block_number, d.periods, d.period_length,
                  d.price_per_period, d.preferred, d.start_block, d.offered_to, d.reported_root, f.blob_hash AS "blob_hash?"
           FROM storage_deals d LEFT JOIN storage_files f ON f.root = d.root WHERE d.deal_id = ?"#,
        deal_id
    )
    .fetch_optional(&state.read)
    .await?
    else {
        return Ok(None);
    };
    let challenges = sqlx::query!(
        "SELECT period, chunk_indexes, issued_by, issued_at, status, chunk, path, answered_at FROM storage_challenges
         WHERE deal_id = ? ORDER BY period",
        deal_id
    )
    .fetch_all(&state.read)
    .await?;
    let timeline = if with_timeline { Some(crate::jobs::subject_timeline(state, &format!("deal:{deal_id}")).await?) } else { None };
    let mut deal = json!({
        "dealId": d.deal_id, "buyer": d.buyer, "provider": d.provider, "root": d.root, "size": d.size,
        "chunks": chunk_count(d.size as u64), "periods": d.periods, "periodLength": d.period_length,
        "pricePerPeriod": d.price_per_period, "preferredProvider": d.preferred, "startBlock": d.start_block,
        "chainStatus": d.status,
        "status": deal_status(&d.status, d.blob_hash.is_some(), d.offered_to.as_deref(), d.reported_root.as_deref()),
        "offeredTo": d.offered_to, "reportedRoot": d.reported_root, "blobHash": d.blob_hash, "block": d.block_number,
        "challenges": challenges.into_iter().map(|c| json!({
            "period": c.period, "chunkIndexes": json_of(&c.chunk_indexes), "issuedBy": c.issued_by, "issuedAt": c.issued_at,
            "status": c.status, "chunks": c.chunk.as_deref().map(json_of), "paths": c.path.as_deref().map(json_of),
            "answeredAt": c.answered_at,
        })).collect::<Vec<_>>(),
    });
    if let Some(t) = timeline {
        deal["timeline"] = t.into();
    }
    Ok(Some(deal))
}

fn deal_id_of(raw: &str) -> ApiResult<String> {
    Ok(parse_u256("deal_id", raw)?.to_string())
}

/// `GET /v1/storage/deals/{deal_id}`: the deal, its status, every challenge and its answer, and its
/// timeline.
pub async fn get_deal(State(state): State<AppState>, Path(deal_id): Path<String>) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    deal_json(&state, &id, true).await?.map(Json).ok_or_else(|| ApiError::not_found(format!("no storage deal {id}")))
}

/// Filters of `GET /v1/storage/deals`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealQuery {
    /// Only this buyer's deals.
    pub buyer: Option<Address>,
    /// Only deals this provider holds or was offered.
    pub provider: Option<Address>,
}

/// `GET /v1/storage/deals?buyer=&provider=`: deals, newest first (at most 500).
pub async fn list_deals(State(state): State<AppState>, Query(q): Query<DealQuery>) -> ApiResult<Json<Value>> {
    let buyer = q.buyer.map(|a| format!("{a:#x}"));
    let provider = q.provider.map(|a| format!("{a:#x}"));
    let ids = sqlx::query_scalar!(
        "SELECT deal_id FROM storage_deals WHERE (?1 IS NULL OR buyer = ?1) AND (?2 IS NULL OR provider = ?2 OR offered_to = ?2)
         ORDER BY block_number DESC, deal_id DESC LIMIT 500",
        buyer,
        provider
    )
    .fetch_all(&state.read)
    .await?;
    let mut deals = Vec::with_capacity(ids.len());
    for id in ids {
        deals.extend(deal_json(&state, &id, false).await?);
    }
    Ok(Json(json!({ "deals": deals })))
}

/// Offers funded deals whose file is here to a provider: the preferred one (the escrow lets only it
/// accept), else the live, staked provider that was never slashed, with the best record and the
/// fewest deals, that has not refused this one. Called from every matching pass.
pub(crate) async fn offer_deals(state: &AppState) -> sqlx::Result<()> {
    let deals = sqlx::query!(
        "SELECT d.deal_id, d.preferred, d.refused_by FROM storage_deals d JOIN storage_files f ON f.root = d.root
         WHERE d.status = 'open' AND d.offered_to IS NULL ORDER BY d.block_number, d.deal_id LIMIT 256"
    )
    .fetch_all(&state.read)
    .await?;
    if deals.is_empty() {
        return Ok(());
    }
    let providers = crate::matcher::providers(state).await?;
    let mut hosted: std::collections::HashMap<String, i64> = sqlx::query!(
        r#"SELECT COALESCE(provider, offered_to) AS "p!: String", COUNT(*) AS "n!: i64" FROM storage_deals
           WHERE status IN ('open', 'active') AND COALESCE(provider, offered_to) IS NOT NULL GROUP BY 1"#
    )
    .fetch_all(&state.read)
    .await?
    .into_iter()
    .map(|r| (r.p, r.n))
    .collect();
    let zero = format!("{:#x}", Address::ZERO);
    for deal in deals {
        let refused: Vec<String> = serde_json::from_str(&deal.refused_by).unwrap_or_default();
        let chosen = if deal.preferred != zero {
            providers.iter().find(|p| p.address == deal.preferred && !refused.contains(&p.address))
        } else {
            let min_stake = state.cfg.min_stake;
            let mut fit: Vec<_> = providers
                .iter()
                .filter(|p| p.live && p.stake.parse::<U256>().is_ok_and(|s| s >= min_stake) && !refused.contains(&p.address))
                .collect();
            let load = |p: &str| hosted.get(p).copied().unwrap_or(0);
            let record = |p: &crate::matcher::ProviderView| (p.completed as f64 + 1.0) / ((p.completed + p.failed) as f64 + 1.0);
            fit.sort_by(|a, b| {
                a.slashed
                    .cmp(&b.slashed)
                    .then(record(b).partial_cmp(&record(a)).unwrap_or(CmpOrdering::Equal))
                    .then(load(&a.address).cmp(&load(&b.address)))
                    .then(a.address.cmp(&b.address))
            });
            fit.first().copied()
        };
        let Some(p) = chosen else { continue };
        let mut tx = state.db.begin().await?;
        let now = now_ms();
        let changed = sqlx::query!(
            "UPDATE storage_deals SET offered_to = ?, reported_root = NULL, updated_at = ? WHERE deal_id = ? AND offered_to IS NULL AND status = 'open'",
            p.address,
            now,
            deal.deal_id
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            timeline(&mut tx, &format!("deal:{}", deal.deal_id), "coordinator", "offered", json!({ "provider": p.address }), None).await?;
        }
        tx.commit().await?;
        if changed == 1 {
            *hosted.entry(p.address.clone()).or_default() += 1;
            state.publish(json!({ "type": "deal", "dealId": deal.deal_id, "status": "offered", "provider": p.address }));
            state.wake.assigned(&p.address);
        }
    }
    Ok(())
}

/// Storage work of one provider: deals offered to it or held by it, and challenges it has not answered.
pub(crate) async fn storage_work(state: &AppState, worker: &str) -> ApiResult<Value> {
    let deals = sqlx::query!(
        r#"SELECT d.deal_id, d.root, d.size, d.status, d.periods, d.period_length, d.start_block, d.offered_to, d.reported_root,
                  d.provider, f.blob_hash AS "blob_hash?"
           FROM storage_deals d LEFT JOIN storage_files f ON f.root = d.root
           WHERE (d.offered_to = ?1 OR d.provider = ?1) AND d.status IN ('open', 'active') ORDER BY d.block_number, d.deal_id"#,
        worker
    )
    .fetch_all(&state.read)
    .await?;
    let challenges = sqlx::query!(
        "SELECT c.deal_id, c.period, c.chunk_indexes FROM storage_challenges c JOIN storage_deals d ON d.deal_id = c.deal_id
         WHERE d.provider = ? AND c.status = 'open' ORDER BY c.issued_at",
        worker
    )
    .fetch_all(&state.read)
    .await?;
    let probes = sqlx::query!(
        "SELECT p.id, p.deal_id, p.chunk_index FROM storage_probes p JOIN storage_deals d ON d.deal_id = p.deal_id
         WHERE d.provider = ? AND d.status = 'active' AND p.status = 'open' ORDER BY p.id",
        worker
    )
    .fetch_all(&state.read)
    .await?;
    Ok(json!({
        "probes": probes.into_iter().map(|p| json!({ "probeId": p.id, "dealId": p.deal_id, "chunkIndex": p.chunk_index })).collect::<Vec<_>>(),
        "deals": deals.into_iter().map(|d| json!({
            "dealId": d.deal_id, "root": d.root, "size": d.size, "blobHash": d.blob_hash, "periods": d.periods,
            "periodLength": d.period_length, "startBlock": d.start_block, "chainStatus": d.status,
            "status": deal_status(&d.status, d.blob_hash.is_some(), d.offered_to.as_deref(), d.reported_root.as_deref()),
        })).collect::<Vec<_>>(),
        "challenges": challenges.into_iter().map(|c| json!({
            "dealId": c.deal_id, "period": c.period, "chunkIndexes": json_of(&c.chunk_indexes),
        })).collect::<Vec<_>>(),
    }))
}

/// `GET /v1/worker/storage`: this provider's storage work.
pub async fn worker_storage(State(state): State<AppState>, Signed { worker, .. }: Signed) -> ApiResult<Json<Value>> {
    Ok(Json(storage_work(&state, &format!("{worker:#x}")).await?))
}

/// The offered provider will not host deal `id` (`kind`: refused or declined): it is taken off the offer
/// and never offered to that provider again, inside `tx`.
async fn give_back(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
    provider: &str,
    refused_by: &str,
    kind: &str,
    detail: Value,
) -> ApiResult<()> {
    let mut refused: Vec<String> = serde_json::from_str(refused_by).unwrap_or_default();
    refused.push(provider.to_string());
    let (refused, now) = (serde_json::to_string(&refused).map_err(ApiError::internal)?, now_ms());
    sqlx::query!(
        "UPDATE storage_deals SET offered_to = NULL, reported_root = NULL, refused_by = ?, updated_at = ? WHERE deal_id = ?",
        refused,
        now,
        id
    )
    .execute(&mut **tx)
    .await?;
    timeline(tx, &format!("deal:{id}"), &format!("worker:{provider}"), kind, detail, None).await?;
    Ok(())
}

/// Body of `POST /v1/worker/storage/{deal_id}/root`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootBody {
    /// The root the provider recomputed from the file it fetched.
    pub root: B256,
}

/// `POST /v1/worker/storage/{deal_id}/root`: the provider fetched the file and recomputed its root. A
/// match means it hosts the file (its next step is `acceptStorageDeal` on chain); a mismatch is a
/// refusal, and the deal is offered to someone else.
pub async fn report_root(
    State(state): State<AppState>,
    Path(deal_id): Path<String>,
    Signed { worker, body }: Signed,
) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let RootBody { root } = parse_json(&body)?;
    let key = format!("{worker:#x}");
    let d = sqlx::query!("SELECT root, status, refused_by, reported_root FROM storage_deals WHERE deal_id = ? AND offered_to = ?", id, key)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("storage deal {id} is not offered to {key}")))?;
    let reported = format!("{root:#x}");
    if d.status != "open" && d.status != "active" {
        return Err(ApiError::conflict("deal_closed", format!("storage deal {id} is {}", d.status)));
    }
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    let actor = format!("worker:{key}");
    let status = if reported == d.root {
        if d.reported_root.as_deref() != Some(reported.as_str()) {
            sqlx::query!("UPDATE storage_deals SET reported_root = ?, updated_at = ? WHERE deal_id = ?", reported, now, id)
                .execute(&mut *tx)
                .await?;
            timeline(&mut tx, &format!("deal:{id}"), &actor, "root_verified", json!({ "root": reported }), None).await?;
        }
        "hosting"
    } else {
        give_back(&mut tx, &id, &key, &d.refused_by, "refused", json!({ "expected": d.root, "computed": reported })).await?;
        "refused"
    };
    tx.commit().await?;
    state.publish(json!({ "type": "deal", "dealId": id, "status": status, "provider": key }));
    state.wake.matcher();
    let next = if status == "hosting" { json!(format!("acceptStorageDeal({id})")) } else { Value::Null };
    Ok(Json(json!({ "dealId": id, "status": status, "next": next })))
}

/// Body of `POST /v1/worker/storage/{deal_id}/decline`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclineBody {
    /// Why (no room within the quota, the disk is full).
    pub reason: String,
}

/// `POST /v1/worker/storage/{deal_id}/decline`: the offered provider will not host the file; the deal
/// is offered to someone else.
pub async fn decline(
    State(state): State<AppState>,
    Path(deal_id): Path<String>,
    Signed { worker, body }: Signed,
) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let DeclineBody { reason } = parse_json(&body)?;
    if reason.len() > 1024 {
        return Err(ApiError::field("too_long", "reason", "at most 1024 characters"));
    }
    let key = format!("{worker:#x}");
    let d = sqlx::query!("SELECT refused_by FROM storage_deals WHERE deal_id = ? AND offered_to = ? AND status = 'open'", id, key)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("storage deal {id} is not offered to {key}")))?;
    let mut tx = state.db.begin().await?;
    give_back(&mut tx, &id, &key, &d.refused_by, "declined", json!({ "reason": reason })).await?;
    tx.commit().await?;
    state.publish(json!({ "type": "deal", "dealId": id, "status": "declined", "provider": key }));
    state.wake.matcher();
    Ok(Json(json!({ "dealId": id, "status": "declined" })))
}

/// Body of a challenge answer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerBody {
    /// The chunk, 0x-hex, zero padded to the chunk size.
    pub chunk: alloy_primitives::Bytes,
    /// Its Merkle path, leaf to root.
    pub path: Vec<B256>,
}

/// Body of `POST /v1/worker/storage/{deal_id}/challenges/{period}`: one chunk and path per challenged
/// index, in the challenge's order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChallengeAnswerBody {
    /// The chunks, 0x-hex, each zero padded to the chunk size.
    pub chunks: Vec<alloy_primitives::Bytes>,
    /// Their Merkle paths, leaf to root.
    pub paths: Vec<Vec<B256>>,
}

/// A JSON column's value (`null` when it does not parse).
fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// Whether `chunk` and `path` prove chunk `index` of the file of `size` bytes under `root`.
fn check_proof(root: &str, size: i64, index: i64, chunk: &[u8], path: &[B256]) -> ApiResult<()> {
    if chunk.len() != CHUNK_SIZE {
        return Err(ApiError::field(
            "invalid_chunk",
            "chunk",
            format!("a chunk is {CHUNK_SIZE} bytes (the last one zero padded), not {}", chunk.len()),
        ));
    }
    let parsed: B256 = root.parse().map_err(ApiError::internal)?;
    let proof = ChunkProof { index: index as u64, chunk: chunk.to_vec(), path: path.to_vec() };
    if !verify(&parsed, chunk_count(size as u64), &proof) {
        return Err(ApiError::field("invalid_proof", "path", format!("the chunk and path do not prove chunk {index} of root {root}")));
    }
    Ok(())
}

/// `POST /v1/worker/storage/{deal_id}/challenges/{period}`: the provider's answer, checked against the
/// deal's root and the challenged index before it is kept. A wrong proof is refused and not kept (the
/// provider may answer again until the period closes on chain).
pub async fn answer_challenge(
    State(state): State<AppState>,
    Path((deal_id, period)): Path<(String, i64)>,
    Signed { worker, body }: Signed,
) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let ChallengeAnswerBody { chunks, paths } = parse_json(&body)?;
    let key = format!("{worker:#x}");
    let c = sqlx::query!(
        "SELECT c.chunk_indexes, c.status, d.root, d.size FROM storage_challenges c JOIN storage_deals d ON d.deal_id = c.deal_id
         WHERE c.deal_id = ? AND c.period = ? AND d.provider = ?",
        id,
        period,
        key
    )
    .fetch_optional(&state.read)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no challenge for period {period} of deal {id} held by {key}")))?;
    let indexes: Vec<i64> = serde_json::from_str(&c.chunk_indexes).map_err(ApiError::internal)?;
    if chunks.len() != indexes.len() || paths.len() != indexes.len() {
        return Err(ApiError::field(
            "invalid_proof",
            "chunks",
            format!(
                "period {period} of deal {id} challenges {} chunks; {} chunks and {} paths were sent",
                indexes.len(),
                chunks.len(),
                paths.len()
            ),
        ));
    }
    for ((index, chunk), path) in indexes.iter().zip(&chunks).zip(&paths) {
        check_proof(&c.root, c.size, *index, chunk, path)?;
    }
    if c.status == "answered" {
        return Ok(Json(json!({ "dealId": id, "period": period, "status": "answered", "duplicate": true })));
    }
    let chunk_hex = serde_json::to_string(&chunks).map_err(ApiError::internal)?;
    let path_json = serde_json::to_string(&paths).map_err(ApiError::internal)?;
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE storage_challenges SET status = 'answered', chunk = ?, path = ?, answered_at = ? WHERE deal_id = ? AND period = ? AND status = 'open'",
        chunk_hex,
        path_json,
        now,
        id,
        period
    )
    .execute(&mut *tx)
    .await?;
    timeline(
        &mut tx,
        &format!("deal:{id}"),
        &format!("worker:{key}"),
        "challenge_answered",
        json!({ "period": period, "chunkIndexes": indexes }),
        None,
    )
    .await?;
    tx.commit().await?;
    state.publish(json!({ "type": "challenge_answered", "dealId": id, "period": period }));
    Ok(Json(json!({ "dealId": id, "period": period, "status": "answered", "duplicate": false })))
}

/// Open probes a deal may have at once: a buyer checks, it does not keep its provider busy.
const MAX_OPEN_PROBES: i64 = 4;

/// Body of `POST /v1/storage/deals/{deal_id}/probes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeBody {
    /// The chunk to prove (the buyer picks it, at random, so no one can prepare for it).
    pub chunk_index: u64,
}

/// `POST /v1/storage/deals/{deal_id}/probes`: the deal's buyer asks its provider to prove one chunk
/// now, outside the challenge periods (signed by the buyer's key). The answer shows up on the probe
/// once it checks against the deal's root.
pub async fn post_probe(
    State(state): State<AppState>,
    Path(deal_id): Path<String>,
    AccountSigned { account, body }: AccountSigned,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    open_probe(&state, &deal_id, account, &body).await
}

/// `POST /v1/me/storage/deals/{deal_id}/probes`: the same, for the buyer signed in with Sign-In with
/// Ethereum (the web app, whose wallet signs messages, not requests).
pub async fn post_session_probe(
    State(state): State<AppState>,
    Path(deal_id): Path<String>,
    session: crate::sessions::Session,
    body: axum::body::Bytes,
) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    open_probe(&state, &deal_id, session.address, &body).await
}

async fn open_probe(state: &AppState, deal_id: &str, account: Address, body: &[u8]) -> ApiResult<(axum::http::StatusCode, Json<Value>)> {
    let id = deal_id_of(deal_id)?;
    let ProbeBody { chunk_index } = parse_json(body)?;
    let key = format!("{account:#x}");
    let d = sqlx::query!("SELECT buyer, status, size, provider FROM storage_deals WHERE deal_id = ?", id)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no storage deal {id}")))?;
    if d.buyer != key {
        return Err(ApiError::forbidden("not_the_buyer", format!("only the deal's buyer ({}) may probe it, not {key}", d.buyer)));
    }
    let Some(provider) = d.provider.filter(|_| d.status == "active") else {
        return Err(ApiError::conflict(
            "deal_not_active",
            format!("storage deal {id} is {}; only a hosted (active) deal is probed", d.status),
        ));
    };
    let chunks = chunk_count(d.size as u64);
    if chunk_index >= chunks {
        return Err(ApiError::field("invalid_chunk_index", "chunkIndex", format!("deal {id} has {chunks} chunks (0 to {})", chunks - 1)));
    }
    let (index, now) = (chunk_index as i64, now_ms());
    let mut tx = state.db.begin().await?;
    let open =
        sqlx::query_scalar!("SELECT COUNT(*) FROM storage_probes WHERE deal_id = ? AND status = 'open'", id).fetch_one(&mut *tx).await?;
    if open >= MAX_OPEN_PROBES {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_probes",
            format!("deal {id} has {open} unanswered probes; wait for their answers"),
        ));
    }
    let probe = sqlx::query!(
        "INSERT INTO storage_probes (deal_id, chunk_index, requested_by, requested_at, status) VALUES (?, ?, ?, ?, 'open')",
        id,
        index,
        key,
        now
    )
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    timeline(
        &mut tx,
        &format!("deal:{id}"),
        &format!("buyer:{key}"),
        "probed",
        json!({ "probeId": probe, "chunkIndex": chunk_index }),
        None,
    )
    .await?;
    tx.commit().await?;
    state.publish(json!({ "type": "probed", "dealId": id, "probeId": probe, "chunkIndex": chunk_index }));
    state.wake.assigned(&provider);
    Ok((axum::http::StatusCode::CREATED, Json(json!({ "dealId": id, "probeId": probe, "chunkIndex": chunk_index, "status": "open" }))))
}

/// `GET /v1/storage/deals/{deal_id}/probes/{probe}`: a probe and, once answered, the chunk and its path.
pub async fn get_probe(State(state): State<AppState>, Path((deal_id, probe)): Path<(String, i64)>) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let p = sqlx::query!(
        "SELECT chunk_index, status, chunk, path, requested_at, answered_at FROM storage_probes WHERE deal_id = ? AND id = ?",
        id,
        probe
    )
    .fetch_optional(&state.read)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no probe {probe} of storage deal {id}")))?;
    let path: Option<Value> = p.path.as_deref().map(serde_json::from_str).transpose().map_err(ApiError::internal)?;
    Ok(Json(json!({
        "dealId": id, "probeId": probe, "chunkIndex": p.chunk_index, "status": p.status, "chunk": p.chunk, "path": path,
        "requestedAt": p.requested_at, "answeredAt": p.answered_at,
    })))
}

/// `POST /v1/worker/storage/{deal_id}/probes/{probe}`: the provider's answer to a buyer's probe, kept
/// only if it proves the probed chunk against the deal's root.
pub async fn answer_probe(
    State(state): State<AppState>,
    Path((deal_id, probe)): Path<(String, i64)>,
    Signed { worker, body }: Signed,
) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let AnswerBody { chunk, path } = parse_json(&body)?;
    let key = format!("{worker:#x}");
    let p = sqlx::query!(
        "SELECT p.chunk_index, p.status, d.root, d.size FROM storage_probes p JOIN storage_deals d ON d.deal_id = p.deal_id
         WHERE p.deal_id = ? AND p.id = ? AND d.provider = ?",
        id,
        probe,
        key
    )
    .fetch_optional(&state.read)
    .await?
    .ok_or_else(|| ApiError::not_found(format!("no probe {probe} of deal {id} held by {key}")))?;
    check_proof(&p.root, p.size, p.chunk_index, &chunk, &path)?;
    if p.status == "answered" {
        return Ok(Json(json!({ "dealId": id, "probeId": probe, "status": "answered", "duplicate": true })));
    }
    let (chunk_hex, path_json, now) =
        (alloy_primitives::hex::encode_prefixed(&chunk), serde_json::to_string(&path).map_err(ApiError::internal)?, now_ms());
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "UPDATE storage_probes SET status = 'answered', chunk = ?, path = ?, answered_at = ? WHERE id = ? AND status = 'open'",
        chunk_hex,
        path_json,
        now,
        probe
    )
    .execute(&mut *tx)
    .await?;
    timeline(
        &mut tx,
        &format!("deal:{id}"),
        &format!("worker:{key}"),
        "probe_answered",
        json!({ "probeId": probe, "chunkIndex": p.chunk_index }),
        None,
    )
    .await?;
    tx.commit().await?;
    state.publish(json!({ "type": "probe_answered", "dealId": id, "probeId": probe }));
    Ok(Json(json!({ "dealId": id, "probeId": probe, "status": "answered", "duplicate": false })))
}

/// Body of `POST /v1/verifier/storage/{deal_id}/challenges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChallengeBody {
    /// The period challenged.
    pub period: u64,
    /// The chunks the market's `storageChallengeIndexes(dealId, period)` names, in its order.
    pub chunk_indexes: Vec<u64>,
}

/// The most chunks a period challenges (`StorageMarket.MAX_CHALLENGES_PER_PERIOD`).
pub const MAX_CHALLENGES_PER_PERIOD: usize = 16;

/// `POST /v1/verifier/storage/{deal_id}/challenges`: a committee member relays a period's challenge to
/// the deal's provider. The same challenge twice is one challenge; another index for the same period
/// is a conflict.
pub async fn relay_challenge(
    State(state): State<AppState>,
    Path(deal_id): Path<String>,
    VerifierSigned { verifier, body }: VerifierSigned,
) -> ApiResult<Json<Value>> {
    let id = deal_id_of(&deal_id)?;
    let ChallengeBody { period, chunk_indexes } = parse_json(&body)?;
    let d = sqlx::query!("SELECT status, size, periods, provider FROM storage_deals WHERE deal_id = ?", id)
        .fetch_optional(&state.read)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no storage deal {id}")))?;
    if d.status != "active" {
        return Err(ApiError::conflict("deal_not_active", format!("storage deal {id} is {}; only active deals are challenged", d.status)));
    }
    if period >= d.periods as u64 {
        return Err(ApiError::field("invalid_period", "period", format!("deal {id} has {} periods", d.periods)));
    }
    let chunks = chunk_count(d.size as u64);
    if chunk_indexes.is_empty() || chunk_indexes.len() > MAX_CHALLENGES_PER_PERIOD {
        return Err(ApiError::field(
            "invalid_chunk_index",
            "chunkIndexes",
            format!("a period challenges 1 to {MAX_CHALLENGES_PER_PERIOD} chunks, not {}", chunk_indexes.len()),
        ));
    }
    if let Some(bad) = chunk_indexes.iter().find(|i| **i >= chunks) {
        return Err(ApiError::field("invalid_chunk_index", "chunkIndexes", format!("chunk {bad}: deal {id} has {chunks} chunks")));
    }
    let indexes_json = serde_json::to_string(&chunk_indexes).map_err(ApiError::internal)?;
    let (period_i, index_i, key, now) = (period as i64, chunk_indexes[0] as i64, format!("{verifier:#x}"), now_ms());
    let mut tx = state.db.begin().await?;
    let inserted = sqlx::query!(
        "INSERT OR IGNORE INTO storage_challenges (deal_id, period, chunk_index, chunk_indexes, issued_by, issued_at, status)
         VALUES (?, ?, ?, ?, ?, ?, 'open')",
        id,
        period_i,
        index_i,
        indexes_json,
        key,
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        let existing = sqlx::query_scalar!("SELECT chunk_indexes FROM storage_challenges WHERE deal_id = ? AND period = ?", id, period_i)
            .fetch_one(&mut *tx)
            .await?;
        if existing != indexes_json {
            return Err(ApiError::conflict(
                "challenge_conflict",
                format!("period {period} of deal {id} was already challenged at chunks {existing}"),
            ));
        }
        return Ok(Json(json!({ "dealId": id, "period": period, "chunkIndexes": chunk_indexes, "duplicate": true })));
    }
    timeline(
        &mut tx,
        &format!("deal:{id}"),
        &format!("verifier:{key}"),
        "challenged",
        json!({ "period": period, "chunkIndexes": chunk_indexes }),
        None,
    )
    .await?;
    tx.commit().await?;
    state.publish(json!({ "type": "challenged", "dealId": id, "period": period, "chunkIndexes": chunk_indexes }));
    if let Some(p) = d.provider {
        state.wake.assigned(&p);
    }
    Ok(Json(json!({ "dealId": id, "period": period, "chunkIndexes": chunk_indexes, "duplicate": false })))
}
