//! Content-addressed blob store: modules, inputs, outputs and storage files, named by their keccak256,
//! under one data folder opened with cap-std. Uploads stream to a temporary file while hashing, are
//! refused with 413 past the size limit and with 400 when the bytes do not hash to the name, and only
//! then are renamed into place: a blob is either whole and verified or absent.
//!
//! Nobody stores anything anonymously. An upload is signed by an account (the `x-qor-*` headers of
//! [`crate::auth`] over an empty body: the path's hash already names the bytes) or made in a signed-in
//! session, and counts against that account's quota (and everyone's) until something funded claims it
//! ([`claim`]). A stalled upload is cut off after `body_timeout_ms` without a byte, and its temporary
//! file removed; blobs nothing claims are deleted after their grace period ([`crate::gc`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::{Address, B256, Keccak256};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::AppState;
use crate::auth::{Role, authenticate};
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult, parse_b256};

/// The blob folder.
#[derive(Debug)]
pub struct BlobStore {
    blobs: Dir,
    tmp: Dir,
    max_bytes: u64,
    counter: AtomicU64,
}

impl BlobStore {
    /// Opens `<data_dir>/blobs` (creating it), refusing uploads over `max_bytes`.
    pub fn open(data_dir: &std::path::Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let root = Dir::open_ambient_dir(data_dir, ambient_authority())?;
        root.create_dir_all("blobs")?;
        root.create_dir_all("tmp")?;
        // Leftovers of uploads interrupted by a crash.
        let tmp = root.open_dir("tmp")?;
        for entry in tmp.entries()? {
            let _ = tmp.remove_file(entry?.file_name());
        }
        Ok(Self { blobs: root.open_dir("blobs")?, tmp, max_bytes, counter: AtomicU64::new(0) })
    }

    fn name(hash: &B256) -> String {
        format!("{hash:x}")
    }

    /// Whether the blob is stored.
    pub fn contains(&self, hash: &B256) -> bool {
        self.blobs.exists(Self::name(hash))
    }

    /// Size of a stored blob.
    pub fn size(&self, hash: &B256) -> Option<u64> {
        self.blobs.metadata(Self::name(hash)).ok().map(|m| m.len())
    }

    /// Reads a whole blob (for small ones: specs, tests).
    pub fn read(&self, hash: &B256) -> std::io::Result<Vec<u8>> {
        self.blobs.read(Self::name(hash))
    }

    /// Opens a stored blob for reading (large files: storage deals).
    pub fn open_file(&self, hash: &B256) -> std::io::Result<cap_std::fs::File> {
        self.blobs.open(Self::name(hash))
    }

    /// Deletes a stored blob (the garbage collector's).
    pub fn remove(&self, hash: &B256) -> std::io::Result<()> {
        match self.blobs.remove_file(Self::name(hash)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    /// Every stored blob with its size.
    pub fn list(&self) -> std::io::Result<Vec<(B256, u64)>> {
        let mut out = Vec::new();
        for entry in self.blobs.entries()? {
            let entry = entry?;
            if let Ok(hash) = entry.file_name().to_string_lossy().parse::<B256>() {
                out.push((hash, entry.metadata()?.len()));
            }
        }
        Ok(out)
    }

    /// Removes temporary files older than `age` (uploads a crash cut short; a dropped upload removes
    /// its own at once).
    pub fn sweep_tmp(&self, age: Duration) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in self.tmp.entries()? {
            let entry = entry?;
            let old = entry.metadata()?.modified().ok().and_then(|m| m.into_std().elapsed().ok()).is_some_and(|e| e > age);
            if old && self.tmp.remove_file(entry.file_name()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Stores `body` under `expected`, streaming, refusing it past the blob size limit, past `quota`
    /// bytes (`why` the quota is what it is, for the error), or when no byte arrives for `idle`.
    /// Errors are the API's answers.
    pub async fn put(&self, expected: B256, body: Body, quota: u64, why: &str, idle: Duration) -> ApiResult<u64> {
        if self.contains(&expected) {
            // The bytes are already here and verified. The body is still read to its end (not kept):
            // answering before it is read makes the server drop the connection while the client is
            // still sending, and the client sees a failed request instead of this success.
            let mut stream = body.into_data_stream();
            let mut size = 0u64;
            while let Some(chunk) = next_chunk(&mut stream, idle).await? {
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    break;
                }
            }
            return Ok(self.size(&expected).unwrap_or(0));
        }
        let tmp_name = format!("{}.{}", Self::name(&expected), self.counter.fetch_add(1, Ordering::Relaxed));
        let file = self.tmp.create(&tmp_name).map_err(ApiError::internal)?;
        // Removed on any way out but a completed upload, a dropped connection included.
        let mut guard = TmpFile { dir: &self.tmp, name: &tmp_name, kept: false };
        let mut file = tokio::fs::File::from_std(file.into_std());
        let mut hasher = Keccak256::new();
        let mut size = 0u64;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = next_chunk(&mut stream, idle).await? {
            size += chunk.len() as u64;
            if size > self.max_bytes {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "blob_too_large",
                    format!("blobs are at most {} bytes", self.max_bytes),
                ));
            }
            if size > quota {
                return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", format!("at most {quota} more bytes: {why}")));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        let got = hasher.finalize();
        if got != expected {
            return Err(ApiError::field("hash_mismatch", "hash", format!("the body hashes to {got}, not {expected}")));
        }
        file.sync_all().await.map_err(ApiError::internal)?;
        drop(file);
        self.tmp.rename(&tmp_name, &self.blobs, Self::name(&expected)).map_err(ApiError::internal)?;
        guard.kept = true;
        Ok(size)
    }
}

/// A temporary upload file, removed when dropped unless kept.
struct TmpFile<'a> {
    dir: &'a Dir,
    name: &'a str,
    kept: bool,
}

impl Drop for TmpFile<'_> {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.dir.remove_file(self.name);
        }
    }
}

/// The next chunk of an upload, or an error when none came for `idle`.
async fn next_chunk(
    stream: &mut (impl futures_util::Stream<Item = Result<bytes::Bytes, axum::Error>> + Unpin),
    idle: Duration,
) -> ApiResult<Option<bytes::Bytes>> {
    match tokio::time::timeout(idle, stream.next()).await {
        Err(_) => Err(ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", format!("no byte of the upload arrived for {idle:?}"))),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(ApiError::new(StatusCode::BAD_REQUEST, "body_read_failed", format!("reading the body: {e}"))),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
    }
}

/// Who uploads: the account that signed the request (over an empty body), or the signed-in session's.
async fn uploader(state: &AppState, parts: &Parts) -> ApiResult<Address> {
    if parts.headers.contains_key(qor_protocol::auth::SIGNATURE) {
        return authenticate(state, Role::Account, &parts.method, &parts.uri, &parts.headers, &[]).await;
    }
    if let Some(session) = crate::sessions::session_of(state, parts).await? {
        return Ok(session.address);
    }
    Err(ApiError::unauthorized(
        "unsigned_upload",
        "uploads are signed (the x-qor-* headers over an empty body: the path names the bytes) or made in a signed-in session",
    ))
}

/// Marks blobs `hashes` (0x-hex) as kept until at least `keep_until`, and as claimed by something
/// funded when `claimed` (they then no longer count against their uploader's quota), inside `tx`.
pub async fn claim(tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>, hashes: &[String], keep_until: i64, claimed: bool) -> sqlx::Result<()> {
    let claimed = i64::from(claimed);
    for hash in hashes {
        sqlx::query!(
            "UPDATE blobs SET keep_until = MAX(keep_until, ?), claimed = MAX(claimed, ?) WHERE hash = ?",
            keep_until,
            claimed,
            hash
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// `PUT /v1/blobs/{hash}`: signed (or in a session), within the uploader's quota and everyone's.
pub async fn put_blob(State(state): State<AppState>, Path(hash): Path<String>, request: Request) -> ApiResult<Response> {
    let hash = parse_b256("hash", &hash)?;
    let (parts, body) = request.into_parts();
    let account = format!("{:#x}", uploader(&state, &parts).await?);
    let idle = Duration::from_millis(state.cfg.limits.body_timeout_ms);
    let key = format!("{hash:#x}");
    let now = now_ms();
    if state.blobs.contains(&hash) {
        let size = state.blobs.put(hash, body, state.cfg.max_blob_bytes, "", idle).await?;
        // Uploaded again: kept for another grace period at least.
        let keep_until = now + state.cfg.limits.blob_grace_ms;
        sqlx::query!("UPDATE blobs SET keep_until = MAX(keep_until, ?) WHERE hash = ?", keep_until, key).execute(&state.db).await?;
        return Ok((StatusCode::OK, axum::Json(serde_json::json!({ "hash": hash, "size": size, "stored": true }))).into_response());
    }
    // What this account, and everyone, has stored that nothing funded claims yet.
    let mine = sqlx::query_scalar!(
        r#"SELECT COALESCE(SUM(size), 0) AS "n!: i64" FROM blobs WHERE uploader = ? AND claimed = 0 AND keep_until >= ?"#,
        account,
        now
    )
    .fetch_one(&state.read)
    .await? as u64;
    let all = sqlx::query_scalar!(r#"SELECT COALESCE(SUM(size), 0) AS "n!: i64" FROM blobs WHERE claimed = 0 AND keep_until >= ?"#, now)
        .fetch_one(&state.read)
        .await? as u64;
    let l = &state.cfg.limits;
    let (left_mine, left_all) = (l.max_unclaimed_bytes_per_account.saturating_sub(mine), l.max_unclaimed_bytes.saturating_sub(all));
    let (limit, why) = if left_mine <= left_all {
        (left_mine, format!("{account} has {mine} bytes stored that nothing funded uses yet, of {}", l.max_unclaimed_bytes_per_account))
    } else {
        (left_all, format!("the coordinator holds {all} bytes that nothing funded uses yet, of {}", l.max_unclaimed_bytes))
    };
    // Refused before a byte is read when the declared length is already too much.
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared {
        if n > state.cfg.max_blob_bytes {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "blob_too_large",
                format!("blobs are at most {} bytes", state.cfg.max_blob_bytes),
            ));
        }
        if n > limit {
            return Err(ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded", format!("at most {limit} more bytes: {why}")));
        }
    }
    let size = state.blobs.put(hash, body, limit, &why, idle).await?;
    let (size_i, keep_until) = (size as i64, now + l.blob_grace_ms);
    sqlx::query!(
        "INSERT OR IGNORE INTO blobs (hash, size, uploader, uploaded_at, keep_until) VALUES (?, ?, ?, ?, ?)",
        key,
        size_i,
        account,
        now,
        keep_until
    )
    .execute(&state.db)
    .await?;
    state.metrics.blobs_stored.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "hash": hash, "size": size, "stored": true }))).into_response())
}

/// `GET /v1/blobs/{hash}`, with `Range: bytes=a-b` support.
pub async fn get_blob(State(state): State<AppState>, Path(hash): Path<String>, headers: HeaderMap) -> ApiResult<Response> {
    let hash = parse_b256("hash", &hash)?;
    let file = state.blobs.blobs.open(BlobStore::name(&hash)).map_err(|_| ApiError::not_found(format!("no blob {hash}")))?;
    let mut file = tokio::fs::File::from_std(file.into_std());
    let size = file.metadata().await.map_err(ApiError::internal)?.len();
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(parse_range(value, size).ok_or_else(|| {
            ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, "bad_range", format!("range not satisfiable for {size} bytes"))
        })?),
    };
    let (start, end) = range.unwrap_or((0, size.saturating_sub(1)));
    let len = if size == 0 { 0 } else { end - start + 1 };
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    let stream = tokio_util::io::ReaderStream::new(file.take(len));
    let mut response = Response::new(Body::from_stream(stream));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let value = format!("bytes {start}-{end}/{size}");
        response.headers_mut().insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).map_err(ApiError::internal)?);
    }
    Ok(response)
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` (one range) as inclusive offsets within `size`.
fn parse_range(value: &HeaderValue, size: u64) -> Option<(u64, u64)> {
    let spec = value.to_str().ok()?.strip_prefix("bytes=")?;
    if spec.contains(',') || size == 0 {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.checked_sub(n.min(size))?, size - 1)
        }
        (a, "") => (a.parse().ok()?, size - 1),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size - 1)),
    };
    (start <= end && start < size).then_some((start, end))
}
