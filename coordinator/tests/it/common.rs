//! A coordinator over a temporary SQLite file and data folder, called in process.

use std::path::PathBuf;

use alloy_primitives::{Address, B256, U256, keccak256};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use qor_coordinator::{AppState, Config, db, router};
use qor_protocol::auth::sign_request;
use qor_protocol::eip712::Signer;
use qor_protocol::spec::{JobSpec, Limits};
use serde_json::Value;
use tower::ServiceExt;

pub const ESCROW: Address = Address::repeat_byte(0xe5);
pub const REGISTRY: Address = Address::repeat_byte(0x5e);
pub const CHAIN_ID: u64 = 31337;

pub struct Harness {
    pub state: AppState,
    pub app: Router,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// The host the tests' Sign-In with Ethereum messages name.
pub const SIWE_HOST: &str = "127.0.0.1:8645";

pub fn config() -> Config {
    let mut cfg = Config::new(CHAIN_ID, ESCROW, REGISTRY);
    cfg.max_blob_bytes = 64 * 1024;
    cfg.max_json_bytes = 16 * 1024;
    cfg.siwe_domains = vec![SIWE_HOST.into()];
    cfg
}

/// Who uploads the tests' blobs.
pub fn uploader() -> Signer {
    signer(200)
}

/// `PUT /v1/blobs/<keccak of bytes>` signed by `by` (over an empty body: the path names the bytes).
pub fn blob_upload(bytes: &[u8], by: &Signer) -> Request<Body> {
    let hash = keccak256(bytes);
    let path = format!("/v1/blobs/{hash}");
    let (parts, _) = signed("PUT", &path, Vec::new(), by).into_parts();
    Request::from_parts(parts, Body::from(bytes.to_vec()))
}

impl Harness {
    pub async fn new() -> Self {
        Self::with_config(config()).await
    }

    pub async fn with_config(cfg: Config) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut h = Self::open(tmp.path().to_path_buf(), cfg).await;
        h._tmp = Some(tmp);
        h
    }

    /// A coordinator over the database and blobs in `dir` (a restart when they exist).
    pub async fn open(dir: PathBuf, cfg: Config) -> Self {
        let pool = db::open(dir.join("coordinator.db").to_str().unwrap()).await.unwrap();
        let state = AppState::new(pool, &dir.join("data"), cfg).unwrap();
        Self { app: router(state.clone()), state, dir, _tmp: None }
    }

    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Vec<u8>, axum::http::HeaderMap) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, body, headers)
    }

    pub async fn json(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, body, _) = self.send(request).await;
        let value = serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.json(Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn put_blob(&self, bytes: &[u8]) -> B256 {
        let (status, body) = self.json(blob_upload(bytes, &uploader())).await;
        assert!(status.is_success(), "{status} {body}");
        keccak256(bytes)
    }

    /// Uploads a module and a spec for it; returns the spec hash.
    pub async fn put_spec(&self, module: &[u8], redundancy: u8, fuel: u64) -> (JobSpec, B256) {
        let module_hash = self.put_blob(module).await;
        let spec = JobSpec {
            version: 1,
            module: module_hash,
            entry: "_start".into(),
            args: vec![],
            env: Default::default(),
            inputs: vec![],
            limits: Limits { fuel, memory_bytes: 1 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
            redundancy,
        };
        let (status, body) = self.json(Request::post("/v1/specs").body(Body::from(spec.canonical_json())).unwrap()).await;
        assert!(status.is_success(), "{status} {body}");
        (spec.clone(), spec.spec_hash())
    }

    /// What the chain watcher does on `ProviderRegistered`.
    pub async fn add_provider(&self, signer: &Signer, price_per_fuel: u64, capacity: i64, stake: U256) {
        sqlx::query(
            "INSERT INTO providers (address, stake, price_per_fuel, capacity, region, registered_block) VALUES (?, ?, ?, ?, 'test', 1)",
        )
        .bind(format!("{:#x}", signer.address()))
        .bind(stake.to_string())
        .bind(price_per_fuel.to_string())
        .bind(capacity)
        .execute(&self.state.db)
        .await
        .unwrap();
    }

    /// What the chain watcher does on `ComputeJobCreated`.
    pub async fn add_job(&self, job_id: u64, spec_hash: B256, redundancy: i64, budget: U256, preferred: Address) {
        let deadline = (qor_coordinator::db::now_ms() / 1000) + 3600;
        sqlx::query(
            "INSERT INTO jobs (job_id, spec_hash, buyer, token, budget, deadline, redundancy, funded_redundancy, preferred, block_number,
               block_hash, status, updated_at)
             VALUES (?, ?, '0x00000000000000000000000000000000000000b1', ?, ?, ?, ?, ?, ?, 1, '0x00', 'matching', 0)",
        )
        .bind(job_id.to_string())
        .bind(format!("{spec_hash:#x}"))
        .bind(format!("{:#x}", Address::ZERO))
        .bind(budget.to_string())
        .bind(deadline)
        .bind(redundancy)
        .bind(redundancy)
        .bind(format!("{preferred:#x}"))
        .execute(&self.state.db)
        .await
        .unwrap();
    }
}

impl Harness {
    /// What the chain watcher does on `StorageDealCreated`.
    pub async fn add_deal(&self, deal_id: u64, root: B256, size: u64, periods: i64, preferred: Address) {
        sqlx::query(
            "INSERT INTO storage_deals (deal_id, buyer, root, size, status, block_number, updated_at, periods, period_length,
               price_per_period, preferred)
             VALUES (?, '0x00000000000000000000000000000000000000b1', ?, ?, 'open', 1, 0, ?, 10, '1000', ?)",
        )
        .bind(deal_id.to_string())
        .bind(format!("{root:#x}"))
        .bind(size as i64)
        .bind(periods)
        .bind(format!("{preferred:#x}"))
        .execute(&self.state.db)
        .await
        .unwrap();
    }

    /// What the chain watcher does on `StorageDealAccepted`.
    pub async fn accept_deal(&self, deal_id: u64, provider: &Signer) {
        sqlx::query("UPDATE storage_deals SET status = 'active', provider = ?, start_block = 2 WHERE deal_id = ?")
            .bind(format!("{:#x}", provider.address()))
            .bind(deal_id.to_string())
            .execute(&self.state.db)
            .await
            .unwrap();
    }

    /// What the chain watcher does on the committee's `MemberAdded`.
    pub async fn add_verifier(&self, signer: &Signer) {
        sqlx::query("INSERT INTO committee_members (address, block_number) VALUES (?, 1)")
            .bind(format!("{:#x}", signer.address()))
            .execute(&self.state.db)
            .await
            .unwrap();
    }

    /// A signed JSON request from a worker or verifier.
    pub async fn call(&self, signer: &Signer, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(&body).unwrap() };
        self.json(signed(method, path, bytes, signer)).await
    }
}

/// A deterministic test key.
pub fn signer(i: u8) -> Signer {
    Signer::from_bytes(&keccak256([b'q', b'o', b'r', i])).unwrap()
}

static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A request signed by `signer` with a fresh nonce.
pub fn signed(method: &str, path: &str, body: Vec<u8>, signer: &Signer) -> Request<Body> {
    let nonce = format!("n{}", NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    signed_with(method, path, body, signer, &nonce, qor_coordinator::db::now_ms() as u64)
}

pub fn signed_with(method: &str, path: &str, body: Vec<u8>, signer: &Signer, nonce: &str, ts: u64) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in sign_request(signer, method, path, ts, nonce, &body).unwrap() {
        request = request.header(k, v);
    }
    request.body(Body::from(body)).unwrap()
}
