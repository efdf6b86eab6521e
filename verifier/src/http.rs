//! `/health` (JSON; 503 when the last round failed or rounds stopped) and `/metrics` (Prometheus).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::service::Service;

/// The router.
pub fn router(service: Arc<Service>) -> Router {
    Router::new().route("/health", get(health)).route("/metrics", get(metrics)).with_state(service)
}

async fn health(State(s): State<Arc<Service>>) -> impl IntoResponse {
    let body = s.health().await;
    let code = if body["ok"] == true { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, axum::Json(body))
}

async fn metrics(State(s): State<Arc<Service>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics_text().await)
}
