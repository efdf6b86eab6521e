//! `GET /openapi.json`: the API as an OpenAPI 3.1 document.

use axum::Json;
use serde_json::{Value, json};

fn op(summary: &str, auth: bool, body: Option<&str>, ok: &str) -> Value {
    let mut op = json!({
        "summary": summary,
        "responses": {
            ok: { "description": "success" },
            "4XX": { "description": "the request was wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        },
    });
    if auth {
        op["security"] = json!([{ "workerSignature": [] }]);
    }
    if let Some(schema) = body {
        op["requestBody"] = json!({ "required": true, "content": { schema: {} } });
    }
    op
}

/// The document.
pub async fn openapi() -> Json<Value> {
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "QOR coordinator", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Job store, blob store, chain watcher, matching and the worker protocol. It never moves money." },
        "paths": {
            "/v1/blobs/{hash}": {
                "put": op("Upload a blob named by its keccak256 (413 past the size limit, 400 when the bytes do not hash to the name)", false, Some("application/octet-stream"), "201"),
                "get": op("Download a blob; supports `Range: bytes=a-b`", false, None, "200"),
            },
            "/v1/specs": { "post": op("Upload a job spec (its module and inputs must be uploaded first)", false, Some("application/json"), "201") },
            "/v1/specs/{spec_hash}": { "get": op("A spec, whether it is funded, its jobs and timeline", false, None, "200") },
            "/v1/jobs": { "get": op("Jobs, newest first; filter with `status`, `buyer`, `limit`", false, None, "200") },
            "/v1/jobs/{job_id}": { "get": op("A job: status, replicas, receipts, timeline", false, None, "200") },
            "/v1/jobs/{job_id}/outputs/{worker}/{path}": { "get": op("Redirect to an output file a worker reported", false, None, "307") },
            "/v1/providers": { "get": op("Registered providers with liveness and free capacity", false, None, "200") },
            "/v1/worker/register": { "post": op("A registered provider's worker checks in", true, Some("application/json"), "200") },
            "/v1/worker/heartbeat": { "post": op("Liveness", true, Some("application/json"), "200") },
            "/v1/worker/assignments": { "get": op("This worker's live assignments; `wait_ms` long-polls up to 30 s", true, None, "200") },
            "/v1/worker/assignments/{id}/seal": { "post": op("Commit to a result: {seal}", true, Some("application/json"), "200") },
            "/v1/worker/assignments/{id}/receipt": { "post": op("Reveal the EIP-712 signed receipt and the outputs: {receipt, signature, outputs}", true, Some("application/json"), "200") },
            "/v1/worker/assignments/{id}/release": { "post": op("Give a lease back", true, Some("application/json"), "200") },
            "/v1/events": { "get": op("Server-Sent Events of job and chain updates; `job` filters to one job", false, None, "200") },
            "/health": { "get": op("The database answers", false, None, "200") },
            "/metrics": { "get": op("Prometheus metrics", false, None, "200") },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": { "error": { "type": "object", "properties": {
                        "code": { "type": "string" }, "message": { "type": "string" }, "field": { "type": ["string", "null"] } } } },
                },
            },
            "securitySchemes": {
                "workerSignature": {
                    "type": "apiKey", "in": "header", "name": "x-qor-signature",
                    "description": "EIP-191 signature of `QOR request\\n<METHOD> <path>\\ntimestamp: <ms>\\nnonce: <nonce>\\nbody: <keccak>` with x-qor-address, x-qor-timestamp and x-qor-nonce headers",
                },
            },
        },
    }))
}
