//! API errors: every 4xx names the field or rule that was wrong, as `{"error": {"code", "message", "field"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error an API call answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code, e.g. `bad_signature`.
    pub code: &'static str,
    /// What was wrong, for a person.
    pub message: String,
    /// The request field at fault, if one is.
    pub field: Option<String>,
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), field: None }
    }
    /// 400 about `field`.
    pub fn field(code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code, message: message.into(), field: Some(field.into()) }
    }
    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }
    /// 403.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    /// 409.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    /// 500: logged with its cause, answered without it.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        Self::internal(err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        (self.status, Json(body)).into_response()
    }
}

/// Parses a 0x-hex 32-byte hash from a path or body field.
pub fn parse_b256(field: &str, value: &str) -> ApiResult<alloy_primitives::B256> {
    value.parse().map_err(|_| ApiError::field("invalid_hash", field, format!("`{field}` must be 0x and 64 hex digits")))
}

/// Parses a decimal or 0x-hex uint256.
pub fn parse_u256(field: &str, value: &str) -> ApiResult<alloy_primitives::U256> {
    value.parse().map_err(|_| ApiError::field("invalid_number", field, format!("`{field}` must be a uint256")))
}
