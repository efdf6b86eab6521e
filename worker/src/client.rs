//! The worker's side of the coordinator protocol: every request signed (`qor_protocol::auth`) with a
//! fresh nonce, blobs downloaded with their keccak checked before anything uses them.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alloy::transports::http::reqwest;
use alloy_primitives::{Address, B256, Keccak256};
use qor_protocol::auth::sign_request;
use qor_protocol::eip712::Signer;
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

/// Attempts at a blob upload that failed in transport (a pooled connection the server had just
/// closed, say). An upload is idempotent: the blob is named by its hash.
const UPLOAD_ATTEMPTS: u32 = 4;

/// Where the market's contracts are (`GET /v1/chain`).
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
    /// Deployment block.
    pub deploy_block: u64,
    /// How deep the coordinator lets a block get before acting on its events (0 from a coordinator
    /// that does not say).
    #[serde(default)]
    pub confirmations: u64,
}

/// A client of one coordinator, signing as one provider.
pub struct Coordinator {
    http: reqwest::Client,
    base: String,
    signer: Signer,
    nonce_prefix: u64,
    nonce: AtomicU64,
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
            .build()
            .expect("a default HTTP client builds");
        // Nonces are unique across restarts: the start time, then a counter.
        let nonce_prefix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Self { http, base: base.trim_end_matches('/').to_string(), signer, nonce_prefix, nonce: AtomicU64::new(0) }
    }

    /// The provider's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    async fn answer(response: reqwest::Response) -> Result<Value, ClientError> {
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport)?;
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

    /// A signed request; `body` is sent as JSON (`None`: no body).
    pub async fn signed(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON serializes")).unwrap_or_default();
        let nonce = format!("{:x}-{}", self.nonce_prefix, self.nonce.fetch_add(1, Ordering::Relaxed));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let headers = sign_request(&self.signer, method, path, now, &nonce, &bytes)
            .map_err(|e| ClientError::Transport(format!("signing the request: {e}")))?;
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut request = self.http.request(method, format!("{}{path}", self.base)).timeout(Duration::from_secs(60));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(k, v);
        }
        Self::answer(request.body(bytes).send().await.map_err(transport)?).await
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

    /// Downloads blob `hash` into `dest`, streaming, and keeps it only if the bytes hash to `hash`.
    /// `progress` draws a bar on the terminal (long downloads).
    pub async fn download(&self, hash: B256, dest: &Path, progress: bool) -> Result<u64, ClientError> {
        let response = self.http.get(format!("{}/v1/blobs/{hash}", self.base)).send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(Self::answer(response).await.err().unwrap_or(ClientError::Transport("download failed".into())));
        }
        let total = response.content_length();
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
        // A name of its own per download: two jobs may fetch the same blob at once.
        static DOWNLOADS: AtomicU64 = AtomicU64::new(0);
        let part = dest.with_extension(format!("part-{}-{}", std::process::id(), DOWNLOADS.fetch_add(1, Ordering::Relaxed)));
        let result = async {
            let mut file = tokio::fs::File::create(&part).await?;
            let mut hasher = Keccak256::new();
            let mut size = 0u64;
            let mut response = response;
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                hasher.update(&chunk);
                file.write_all(&chunk).await?;
                size += chunk.len() as u64;
                if let Some(bar) = &bar {
                    bar.set_position(size);
                }
            }
            file.sync_all().await?;
            let got = hasher.finalize();
            if got != hash {
                return Err(ClientError::HashMismatch { expected: hash, got });
            }
            tokio::fs::rename(&part, dest).await?;
            Ok(size)
        }
        .await;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if result.is_err() {
            let _ = tokio::fs::remove_file(&part).await;
        }
        result
    }

    /// Uploads a file as a blob named by its keccak (which the coordinator checks).
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
            let sent = self.http.put(&url).header("content-length", len).body(body).send().await;
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
