//! `/health` and Prometheus `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Counters, all monotonic but the chain gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests answered.
    pub requests: AtomicU64,
    /// Of which 4xx.
    pub client_errors: AtomicU64,
    /// Of which 5xx.
    pub server_errors: AtomicU64,
    /// Specs accepted.
    pub specs_created: AtomicU64,
    /// Blobs stored.
    pub blobs_stored: AtomicU64,
    /// Assignments leased.
    pub leases: AtomicU64,
    /// Leases that lapsed and were handed to someone else.
    pub leases_lapsed: AtomicU64,
    /// Receipts accepted (retries of the same receipt not counted).
    pub receipts: AtomicU64,
    /// Chain events applied.
    pub chain_events: AtomicU64,
    /// Reorgs rolled back.
    pub reorgs: AtomicU64,
    /// Last block the watcher applied.
    pub chain_block: AtomicU64,
}

/// Counts every request by outcome.
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let m = &state.metrics;
    m.requests.fetch_add(1, Ordering::Relaxed);
    if response.status().is_client_error() {
        m.client_errors.fetch_add(1, Ordering::Relaxed);
    } else if response.status().is_server_error() {
        m.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// `GET /health`: the database answers.
pub async fn health(State(state): State<AppState>) -> Response {
    match sqlx::query_scalar!("SELECT 1 AS ok").fetch_one(&state.read).await {
        Ok(_) => axum::Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(e) => (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("database: {e}")).into_response(),
    }
}

/// `GET /metrics` in Prometheus' text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let m = &state.metrics;
    let rows: [(&str, &str, &str, &AtomicU64); 11] = [
        ("qor_http_requests_total", "counter", "HTTP requests answered", &m.requests),
        ("qor_http_client_errors_total", "counter", "HTTP 4xx answers", &m.client_errors),
        ("qor_http_server_errors_total", "counter", "HTTP 5xx answers", &m.server_errors),
        ("qor_specs_created_total", "counter", "job specs accepted", &m.specs_created),
        ("qor_blobs_stored_total", "counter", "blobs stored", &m.blobs_stored),
        ("qor_leases_total", "counter", "assignments leased", &m.leases),
        ("qor_leases_lapsed_total", "counter", "leases that lapsed", &m.leases_lapsed),
        ("qor_receipts_total", "counter", "receipts accepted", &m.receipts),
        ("qor_chain_events_total", "counter", "chain events applied", &m.chain_events),
        ("qor_chain_reorgs_total", "counter", "reorgs rolled back", &m.reorgs),
        ("qor_chain_block", "gauge", "last block applied", &m.chain_block),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}\n", value.load(Ordering::Relaxed)));
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
