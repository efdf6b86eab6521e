//! The worker's side of the coordinator protocol: every request signed (`qor_protocol::auth`) with a
//! fresh nonce, blobs downloaded with their keccak checked before anything uses them.
//!
//! A coordinator is trusted for liveness only, so nothing it answers is taken on faith or without
//! bound: a JSON answer is read up to [`MAX_JSON_RESPONSE`] bytes, a download streams to disk up to the
//! client's [`Coordinator::max_download_bytes`], and every request has a deadline.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::transports::http::reqwest;
use alloy_primitives::{Address, B256, Keccak256};
use qor_protocol::auth::sign_request;
use qor_protocol::eip712::Signer;
pub use qor_protocol::worker_requests::{acceptance_body, receipt_body, seal_body};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// What a call to the coordinator can end in.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code (`awaiting_seals`, `provider_not_registered`, ...).
        code: String,
        /// What it said.
        message: String,
    },
    /// It could not be reached (down, restarting, network): worth retrying.
    #[error("coordinator unreachable: {0}")]
    Transport(String),
    /// Downloaded bytes do not hash to the name they were asked for under.
    #[error("blob {expected} hash mismatch: the bytes received hash to {got}")]
    HashMismatch {
        /// Asked for.
        expected: B256,
        /// Received.
        got: B256,
    },
    /// Local I/O (writing a download).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The answer is larger than this client reads.
    #[error("{what} is larger than {limit} bytes; not read further")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit.
        limit: u64,
    },
}

impl ClientError {
    /// The API error code, if the coordinator answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport(_)) || matches!(self, Self::Api { status, .. } if *status >= 500)
    }
}

fn transport(e: reqwest::Error) -> ClientError {
    // reqwest's own message ("error sending request for url …") hides the cause; name it too.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport(message)
}

/// The largest JSON answer read from a coordinator (a page of jobs with their receipts fits many times).
pub const MAX_JSON_RESPONSE: u64 = 16 << 20;
/// Downloads (blobs) are read up to this many bytes unless the client says otherwise: the
/// coordinator's own default blob limit.
pub const DEFAULT_MAX_DOWNLOAD: u64 = 1 << 30;
/// How long a download may go without receiving a byte.
const DOWNLOAD_IDLE: Duration = Duration::from_secs(30);
/// The longest one blob transfer may take (1 GiB at 300 KB/s).
const TRANSFER_DEADLINE: Duration = Duration::from_secs(3_600);

/// Attempts at a blob upload that failed in transport (a pooled connection the server had just
/// closed, say). An upload is idempotent: the blob is named by its hash.
const UPLOAD_ATTEMPTS: u32 = 4;

/// Where the coordinator says the market's contracts are (`GET /v1/chain`): compared with the pinned
/// deployment, never used instead of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChainInfo {
    /// Chain id.
    pub chain_id: u64,
    /// JobEscrow.
    pub job_escrow: Address,
    /// ProviderRegistry.
    pub provider_registry: Address,
    /// VerifierCommittee.
    pub verifier_committee: Address,
    /// StorageMarket.
    pub storage_market: Address,
    /// Deployment block.
    pub deploy_block: u64,
    /// How deep the coordinator lets a block get before acting on its events (0 from a coordinator
    /// that does not say).
    #[serde(default)]
    pub confirmations: u64,
}

impl ChainInfo {
    /// The deployment the coordinator names, to compare with the pinned one.
    pub fn deployment(&self) -> qor_protocol::deployment::Deployment {
        qor_protocol::deployment::Deployment {
            chain_id: self.chain_id,
            deploy_block: self.deploy_block,
            job_escrow: self.job_escrow,
            provider_registry: self.provider_registry,
            verifier_committee: self.verifier_committee,
            storage_market: self.storage_market,
        }
    }
}

/// A client of one coordinator, signing as one provider.
pub struct Coordinator {
    http: reqwest::Client,
    base: String,
    signer: Signer,
    nonce_prefix: u64,
    nonce: AtomicU64,
    /// The largest download this client takes (a blob past it is abandoned and deleted).
    pub max_download_bytes: u64,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.base)
    }
}

impl Coordinator {
    /// A client of the coordinator at `base`.
    pub fn new(base: &str, signer: Signer) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .read_timeout(DOWNLOAD_IDLE)
            .build()
            .expect("a default HTTP client builds");
        // Nonces are unique across restarts: the start time, then a counter.
        let nonce_prefix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            signer,
            nonce_prefix,
            nonce: AtomicU64::new(0),
            max_download_bytes: DEFAULT_MAX_DOWNLOAD,
        }
    }

    /// The coordinator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The provider's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The body of `response`, read up to `limit` bytes.
    pub async fn read_capped(mut response: reqwest::Response, limit: u64, what: &str) -> Result<Vec<u8>, ClientError> {
        let too_large = || ClientError::TooLarge { what: what.to_string(), limit };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    async fn answer(response: reqwest::Response) -> Result<Value, ClientError> {
        let status = response.status();
        let what = format!("the answer from {}", response.url().path());
        let bytes = Self::read_capped(response, MAX_JSON_RESPONSE, &what).await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            code: value["error"]["code"].as_str().unwrap_or("http_error").to_string(),
            message: value["error"]["message"].as_str().map_or_else(|| value.to_string(), str::to_string),
        })
    }

    /// `request` with the signature headers of `method path` over `body` and a fresh nonce.
    fn sign(
        &self,
        mut request: reqwest::RequestBuilder,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let nonce = format!("{:x}-{}", self.nonce_prefix, self.nonce.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let headers = sign_request(&self.signer, method, path, now, &nonce, body)
            .map_err(|e| ClientError::Transport(format!("signing the request: {e}")))?;
        for (k, v) in headers {
            request = request.header(k, v);
        }
        Ok(request)
    }

    /// A signed request; `body` is sent as JSON (`None`: no body).
    pub async fn signed(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serializes")).unwrap_or_default();
        let http_method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut request = self.http.request(http_method, format!("{}{path}", self.base)).timeout(Duration::from_secs(60));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = self.sign(request, method, path, &bytes)?;
        Self::answer(request.body(bytes).send().await.map_err(transport)?).await
    }

    /// Uploads `bytes` as a blob named by their keccak, signed (over an empty body: the path's hash
    /// names the bytes).
    pub async fn upload_bytes(&self, bytes: Vec<u8>) -> Result<B256, ClientError> {
        let hash = alloy_primitives::keccak256(&bytes);
        let path = format!("/v1/blobs/{hash}");
        let request = self.sign(self.http.put(format!("{}{path}", self.base)).timeout(TRANSFER_DEADLINE), "PUT", &path, &[])?;
        Self::answer(request.body(bytes).send().await.map_err(transport)?).await?;
        Ok(hash)
    }

    /// An unsigned GET of a JSON document.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        Self::answer(self.http.get(format!("{}{path}", self.base)).timeout(Duration::from_secs(30)).send().await.map_err(transport)?).await
    }

    /// `GET /v1/chain`.
    pub async fn chain(&self) -> Result<ChainInfo, ClientError> {
        let v = self.get("/v1/chain").await?;
        serde_json::from_value(v).map_err(|e| ClientError::Transport(format!("unexpected /v1/chain answer: {e}")))
    }

    /// Downloads blob `hash` into `dest`, streaming, and keeps it only if the bytes hash to `hash`
    /// (and there are at most [`Self::max_download_bytes`] of them). `progress` draws a bar on the
    /// terminal (long downloads).
    pub async fn download(&self, hash: B256, dest: &Path, progress: bool) -> Result<u64, ClientError> {
        // A name of its own per download: two jobs may fetch the same blob at once.
        static DOWNLOADS: AtomicU64 = AtomicU64::new(0);
        let part = dest.with_extension(format!("part-{}-{}", std::process::id(), DOWNLOADS.fetch_add(1, Ordering::Relaxed)));
        let result = async {
            let size = self.download_into(hash, tokio::fs::File::create(&part).await?, progress).await?;
            tokio::fs::rename(&part, dest).await?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    /// Downloads blob `hash` into `file` (written from its start, synced), checking that the bytes
    /// hash to `hash` and that there are at most [`Self::max_download_bytes`] of them. On an error the
    /// file holds a part of the download: the caller throws it away.
    pub async fn download_into(&self, hash: B256, mut file: tokio::fs::File, progress: bool) -> Result<u64, ClientError> {
        let mut response =
            self.http.get(format!("{}/v1/blobs/{hash}", self.base)).timeout(TRANSFER_DEADLINE).send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(Self::answer(response).await.err().unwrap_or(ClientError::Transport("download failed".into())));
        }
        let limit = self.max_download_bytes;
        let too_large = || ClientError::TooLarge { what: format!("blob {hash}"), limit };
        let total = response.content_length();
        if total.is_some_and(|t| t > limit) {
            return Err(too_large());
        }
        let bar = (progress && total.is_some_and(|t| t > 8 << 20)).then(|| {
            let bar = indicatif::ProgressBar::new(total.unwrap_or(0));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_message(format!("blob {}", &format!("{hash:#x}")[..10]));
            bar
        });
        let result = async {
            let mut hasher = Keccak256::new();
            let mut size = 0u64;
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                size += chunk.len() as u64;
                if size > limit {
                    return Err(too_large());
                }
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
                if let Some(bar) = &bar {
                    bar.set_position(size);
                }
            }
            file.sync_all().await?;
            let got = hasher.finalize();
            if got != hash {
                return Err(ClientError::HashMismatch { expected: hash, got });
            }
            Ok(size)
        }
        .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        result
    }

    /// Uploads a file as a blob named by its keccak (which the coordinator checks), signed as
    /// [`Self::upload_bytes`].
    /// A failure in transport is retried (the body is a stream, which the HTTP client cannot replay
    /// on its own).
    pub async fn upload(&self, hash: B256, path: &Path) -> Result<(), ClientError> {
        // Replicas that agree produce the same outputs: only the first needs to send the bytes.
        let url = format!("{}/v1/blobs/{hash}", self.base);
        if self.http.head(&url).timeout(Duration::from_secs(30)).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        let mut attempt = 1;
        loop {
            let file = tokio::fs::File::open(path).await?;
            let len = file.metadata().await?.len();
            let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
            let request = self.http.put(&url).header("content-length", len).timeout(TRANSFER_DEADLINE);
            let sent = self.sign(request, "PUT", &format!("/v1/blobs/{hash}"), &[])?.body(body).send().await;
            match sent {
                Ok(response) => return Self::answer(response).await.map(|_| ()),
                Err(e) if attempt < UPLOAD_ATTEMPTS => {
                    tracing::warn!(%hash, attempt, error = %transport(e), "blob upload failed in transport; retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(transport(e)),
            }
        }
    }
}
