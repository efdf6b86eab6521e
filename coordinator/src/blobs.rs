//! Content-addressed blob store: modules, inputs, outputs and storage files, named by their keccak256,
//! under one data folder opened with cap-std. Uploads stream to a temporary file while hashing, are
//! refused with 413 past the size limit and with 400 when the bytes do not hash to the name, and only
//! then are renamed into place: a blob is either whole and verified or absent.

use std::sync::atomic::{AtomicU64, Ordering};

use alloy_primitives::{B256, Keccak256};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cap_std::ambient_authority;
use cap_std::fs::Dir;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::AppState;
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

    /// Stores `body` under `expected`, streaming. Errors are the API's answers.
    pub async fn put(&self, expected: B256, body: Body) -> ApiResult<u64> {
        if self.contains(&expected) {
            // The bytes are already here and verified. The body is still read to its end (not kept):
            // answering before it is read makes the server drop the connection while the client is
            // still sending, and the client sees a failed request instead of this success.
            let mut stream = body.into_data_stream();
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                size += chunk
                    .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body_read_failed", format!("reading the body: {e}")))?
                    .len() as u64;
                if size > self.max_bytes {
                    break;
                }
            }
            return Ok(self.size(&expected).unwrap_or(0));
        }
        let tmp_name = format!("{}.{}", Self::name(&expected), self.counter.fetch_add(1, Ordering::Relaxed));
        let file = self.tmp.create(&tmp_name).map_err(ApiError::internal)?;
        let mut file = tokio::fs::File::from_std(file.into_std());
        let result = async {
            let mut hasher = Keccak256::new();
            let mut size = 0u64;
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body_read_failed", format!("reading the body: {e}")))?;
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "blob_too_large",
                        format!("blobs are at most {} bytes", self.max_bytes),
                    ));
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await.map_err(ApiError::internal)?;
            }
            let got = hasher.finalize();
            if got != expected {
                return Err(ApiError::field("hash_mismatch", "hash", format!("the body hashes to {got}, not {expected}")));
            }
            file.sync_all().await.map_err(ApiError::internal)?;
            Ok(size)
        }
        .await;
        drop(file);
        match result {
            Ok(size) => {
                self.tmp.rename(&tmp_name, &self.blobs, Self::name(&expected)).map_err(ApiError::internal)?;
                Ok(size)
            }
            Err(e) => {
                let _ = self.tmp.remove_file(&tmp_name);
                Err(e)
            }
        }
    }
}

/// `PUT /v1/blobs/{hash}`.
pub async fn put_blob(State(state): State<AppState>, Path(hash): Path<String>, body: Body) -> ApiResult<Response> {
    let hash = parse_b256("hash", &hash)?;
    let size = state.blobs.put(hash, body).await?;
    state.metrics.blobs_stored.fetch_add(1, Ordering::Relaxed);
    Ok((StatusCode::CREATED, axum::Json(serde_json::json!({ "hash": hash, "size": size }))).into_response())
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
