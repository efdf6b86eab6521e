//! The QOR coordinator: the market's switchboard. It stores job specs and data, watches the escrow and
//! the provider registry on chain, matches funded jobs to providers, hands out leases and collects
//! sealed and revealed receipts. It never moves money: payment is the escrow's, verification the
//! verifier committee's.
//!
//! - [`db`]: SQLite (WAL) with migrations and compile-time checked queries (offline data in `.sqlx`);
//! - [`blobs`]: content-addressed, keccak-verified blob store with range downloads;
//! - [`chain`]: the chain watcher (confirmations, reorgs, restarts);
//! - [`matcher`]: matching and lease expiry;
//! - [`jobs`], [`worker`], [`storage`], [`verifier`]: the buyer, worker, storage and verifier APIs;
//! - [`auth`]: signed worker and verifier requests; [`sessions`]: Sign-In with Ethereum sessions;
//! - [`events`]: Server-Sent Events; [`openapi`]: `/openapi.json`; [`metrics`]: `/metrics`.

#![recursion_limit = "256"]

use std::collections::HashMap;
use std::sync::Arc;

use alloy_primitives::{Address, U256};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use sqlx::SqlitePool;
use tokio::sync::{Notify, broadcast};
use tower_http::services::ServeDir;

pub mod auth;
pub mod blobs;
pub mod chain;
pub mod db;
pub mod error;
pub mod events;
pub mod gc;
pub mod jobs;
pub mod limits;
pub mod matcher;
pub mod metrics;
pub mod openapi;
pub mod server;
pub mod sessions;
pub mod storage;
pub mod verifier;
pub mod worker;

/// What the coordinator is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain the escrow is on (its EIP-712 domain).
    pub chain_id: u64,
    /// JobEscrow.
    pub escrow: Address,
    /// ProviderRegistry.
    pub registry: Address,
    /// VerifierCommittee (zero: none is watched, so no verifier can sign in).
    pub committee: Address,
    /// StorageMarket (zero: no storage deal is followed).
    pub market: Address,
    /// The block the contracts were deployed at (where event scans start).
    pub deploy_block: u64,
    /// Hosts a Sign-In with Ethereum message may name (empty: the request's own `Host`).
    pub siwe_domains: Vec<String>,
    /// How long a session lasts.
    pub session_ttl_ms: i64,
    /// How long a lease lasts beyond the job's own wall-clock limit.
    pub lease_ms: i64,
    /// A provider whose last heartbeat is older than this is not live.
    pub heartbeat_ttl_ms: i64,
    /// How long an uploaded spec waits for its funding before it is expired.
    pub spec_ttl_ms: i64,
    /// Stake a provider needs to be matched, in wei.
    pub min_stake: U256,
    /// Largest blob accepted.
    pub max_blob_bytes: u64,
    /// Largest JSON request body accepted.
    pub max_json_bytes: usize,
    /// How far a signed request's timestamp may be from the coordinator's clock.
    pub clock_skew_ms: i64,
    /// The chain's JSON-RPC URL as a browser should reach it (`/v1/chain` tells the web app).
    pub public_rpc_url: Option<String>,
    /// WalletConnect (Reown) project id for the web app's WalletConnect connector.
    pub walletconnect_project_id: Option<String>,
    /// Confirmations before a chain event is applied (told to the web app).
    pub confirmations: u64,
    /// The built web app (`web/dist`), served at `/` when set.
    pub web_dir: Option<std::path::PathBuf>,
    /// What anonymous and abusive callers get at most.
    pub limits: Limits,
}

/// Bounds on what any caller (none of which is trusted) can make the coordinator do or keep: every
/// connection, request, body, upload and subscription is capped in size, time or number, and
/// nothing an anonymous caller leaves behind is kept forever.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open connections at once, from everyone (raised to fit the open-file limit at start).
    pub max_connections: usize,
    /// Open connections at once from one IP address.
    pub max_connections_per_ip: usize,
    /// How long a connection may take to send a request's headers (from its opening, or from the end
    /// of the previous request): an idle or trickling connection is closed.
    pub header_timeout_ms: u64,
    /// How long a request's body may take to arrive.
    pub body_timeout_ms: u64,
    /// How long a request (other than a blob transfer or an event stream) may take to be answered.
    pub request_timeout_ms: u64,
    /// JSON bodies being read at once, in bytes, from everyone: past it a request is answered 503.
    pub max_buffered_body_bytes: usize,
    /// Largest job spec accepted (its canonical JSON).
    pub max_spec_bytes: usize,
    /// Requests a second one IP address may make to an anonymous endpoint that writes (specs, files
    /// to register, sign-in nonces), sustained...
    pub writes_per_second_per_ip: u32,
    /// ...and in a burst.
    pub write_burst_per_ip: u32,
    /// Event streams open at once, from everyone and from one IP address.
    pub max_event_streams: usize,
    /// Event streams open at once from one IP address.
    pub max_event_streams_per_ip: usize,
    /// Sign-in nonces handed out and not yet used or expired.
    pub max_siwe_nonces: i64,
    /// How long an uploaded blob nothing references is kept.
    pub blob_grace_ms: i64,
    /// How long a job's results (and its module and inputs) are kept after its deadline, and a
    /// storage file after its deal ends.
    pub retention_ms: i64,
    /// Bytes of blobs one account uploaded that nothing funded references yet.
    pub max_unclaimed_bytes_per_account: u64,
    /// The same, from every account together.
    pub max_unclaimed_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_ip: 256,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            request_timeout_ms: 60_000,
            max_buffered_body_bytes: 64 << 20,
            max_spec_bytes: 256 << 10,
            writes_per_second_per_ip: 50,
            write_burst_per_ip: 500,
            max_event_streams: 1024,
            max_event_streams_per_ip: 32,
            max_siwe_nonces: 100_000,
            blob_grace_ms: 3_600_000,
            retention_ms: 7 * 24 * 3_600_000,
            max_unclaimed_bytes_per_account: 2 << 30,
            max_unclaimed_bytes: 16 << 30,
        }
    }
}

impl Config {
    /// Defaults for a local chain with these contracts.
    pub fn new(chain_id: u64, escrow: Address, registry: Address) -> Self {
        Self {
            chain_id,
            escrow,
            registry,
            committee: Address::ZERO,
            market: Address::ZERO,
            deploy_block: 0,
            siwe_domains: Vec::new(),
            session_ttl_ms: 24 * 3_600_000,
            lease_ms: 60_000,
            heartbeat_ttl_ms: 30_000,
            spec_ttl_ms: 24 * 3_600_000,
            min_stake: U256::from(1),
            max_blob_bytes: 1 << 30,
            max_json_bytes: 1 << 20,
            clock_skew_ms: 300_000,
            public_rpc_url: None,
            walletconnect_project_id: None,
            confirmations: 0,
            web_dir: None,
            limits: Limits::default(),
        }
    }
}

/// Who to wake when something changes. The matcher has one wake-up that is never lost (a stored
/// permit); each worker has its own, so an assignment for one worker wakes only that worker's long
/// polls rather than every waiting worker (which at 100 workers costs 100 queries per event).
#[derive(Debug, Default)]
pub struct Wakers {
    matcher: Notify,
    workers: std::sync::Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    /// Matching may have new work (a job funded, a slot freed, a worker checked in).
    pub fn matcher(&self) {
        self.matcher.notify_one();
    }

    /// Waits for [`Self::matcher`] (returns at once if it was called since the last wait).
    pub async fn matcher_notified(&self) {
        self.matcher.notified().await;
    }

    /// The wake-up of `worker` (lowercase hex address).
    pub fn worker(&self, worker: &str) -> Arc<Notify> {
        let mut map = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.entry(worker.to_string()).or_default().clone()
    }

    /// Wakes the long polls of `worker`.
    pub fn assigned(&self, worker: &str) {
        let notify = self.workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(worker).cloned();
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }
}

/// Shared state of every handler and background task.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store: the one connection that writes (SQLite allows one writer at a time)...
    pub db: SqlitePool,
    /// ...and a few that only read, which in WAL mode never wait for it.
    pub read: SqlitePool,
    /// The blob folder.
    pub blobs: Arc<blobs::BlobStore>,
    /// Settings.
    pub cfg: Arc<Config>,
    /// Job and chain updates, as JSON, for SSE subscribers.
    pub bus: broadcast::Sender<Arc<str>>,
    /// Wakes the matcher, and each worker's long polls when it gets an assignment.
    pub wake: Arc<Wakers>,
    /// When each worker's heartbeat was last written (long polls write it at most this often).
    pub heartbeats: Arc<std::sync::Mutex<HashMap<String, i64>>>,
    /// Counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Nonces of signed requests within the clock window.
    pub replays: Arc<auth::Replays>,
    /// Per-request bounds: the body budget, rate limits, event stream slots.
    pub guards: Arc<limits::Guards>,
}

impl AppState {
    /// State over an open database and data folder.
    pub fn new(db: SqlitePool, data_dir: &std::path::Path, cfg: Config) -> std::io::Result<Self> {
        let blobs = blobs::BlobStore::open(data_dir, cfg.max_blob_bytes)?;
        let (bus, _) = broadcast::channel(1024);
        Ok(Self {
            read: db::read_pool(&db),
            db,
            blobs: Arc::new(blobs),
            guards: Arc::new(limits::Guards::new(&cfg.limits)),
            cfg: Arc::new(cfg),
            bus,
            wake: Arc::new(Wakers::default()),
            heartbeats: Arc::default(),
            metrics: Arc::new(metrics::Metrics::default()),
            replays: Arc::default(),
        })
    }

    /// Publishes an update to SSE subscribers (none listening is fine).
    pub fn publish(&self, event: serde_json::Value) {
        let _ = self.bus.send(Arc::from(event.to_string()));
    }
}

/// Every route.
pub fn router(state: AppState) -> Router {
    let json_limit = state.cfg.max_json_bytes;
    let web = state.cfg.web_dir.clone();
    let request_timeout = std::time::Duration::from_millis(state.cfg.limits.request_timeout_ms);
    // Anonymous endpoints that write: rate-limited per IP address.
    let writes = Router::new()
        .route("/v1/specs", post(jobs::post_spec))
        .route("/v1/storage/files", post(storage::post_file))
        .route("/v1/auth/nonce", get(sessions::nonce))
        .route("/v1/auth/siwe", post(sessions::sign_in))
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::limit_writes));
    let api = Router::new()
        .merge(writes)
        .route("/v1/specs/{spec_hash}", get(jobs::get_spec))
        .route("/v1/jobs", get(jobs::list_jobs))
        .route("/v1/jobs/{job_id}", get(jobs::get_job))
        .route("/v1/jobs/{job_id}/outputs/{worker}/{*path}", get(jobs::get_output))
        .route("/v1/providers", get(jobs::list_providers))
        .route("/v1/chain", get(jobs::chain_info))
        .route("/v1/worker/register", post(worker::register))
        .route("/v1/worker/heartbeat", post(worker::heartbeat))
        .route("/v1/worker/assignments", get(worker::assignments))
        .route("/v1/worker/assignments/{id}/accept", post(worker::accept))
        .route("/v1/worker/assignments/{id}/seal", post(worker::seal))
        .route("/v1/worker/assignments/{id}/receipt", post(worker::receipt))
        .route("/v1/worker/assignments/{id}/release", post(worker::release))
        .route("/v1/worker/storage", get(storage::worker_storage))
        .route("/v1/worker/storage/{deal_id}/root", post(storage::report_root))
        .route("/v1/worker/storage/{deal_id}/decline", post(storage::decline))
        .route("/v1/worker/storage/{deal_id}/challenges/{period}", post(storage::answer_challenge))
        .route("/v1/worker/storage/{deal_id}/probes/{probe}", post(storage::answer_probe))
        .route("/v1/storage/deals/{deal_id}/probes", post(storage::post_probe))
        .route("/v1/storage/deals/{deal_id}/probes/{probe}", get(storage::get_probe))
        .route("/v1/storage/deals", get(storage::list_deals))
        .route("/v1/storage/deals/{deal_id}", get(storage::get_deal))
        .route("/v1/verifier/jobs/{job_id}/verdict", post(verifier::verdict))
        .route("/v1/verifier/storage/{deal_id}/challenges", post(storage::relay_challenge))
        .route("/v1/verifier/proposals", post(verifier::propose).get(verifier::list_proposals))
        .route("/v1/verifier/proposals/{digest}", get(verifier::get_proposal))
        .route("/v1/verifier/proposals/{digest}/signatures", post(verifier::cosign))
        .route("/v1/auth/session", get(sessions::whoami).merge(delete(sessions::sign_out)))
        .route("/v1/me", get(sessions::me))
        .route("/v1/me/storage/deals/{deal_id}/probes", post(storage::post_session_probe))
        // Every JSON body is read whole, in time and within the shared budget, before its handler
        // runs; and every answer comes within the request deadline (long polls end well before it).
        .layer(axum::middleware::from_fn_with_state(state.clone(), limits::buffer_body))
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, request_timeout));
    let app = Router::new()
        .merge(api)
        // Blobs carry their own streaming limits (413 past `max_blob_bytes`, quotas, an idle
        // deadline); event streams are counted.
        .route("/v1/blobs/{hash}", put(blobs::put_blob).get(blobs::get_blob).layer(DefaultBodyLimit::disable()))
        .route("/v1/events", get(events::stream))
        .route("/health", get(metrics::health))
        .route("/metrics", get(metrics::metrics))
        .route("/openapi.json", get(openapi::openapi));
    // The web app: its files at `/`. It routes with the URL's fragment, so every page is index.html
    // and no unknown path needs to fall back to it: a path that is no route and no file is a 404.
    let app = match web {
        Some(dir) => app.fallback_service(ServeDir::new(dir).append_index_html_on_directories(true)),
        None => app,
    };
    app.layer(axum::middleware::from_fn_with_state(state.clone(), metrics::count)).with_state(state)
}
