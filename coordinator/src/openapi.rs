//! `GET /openapi.json`: the API as an OpenAPI 3.1 document.

use axum::Json;
use serde_json::{Value, json};

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    Public,
    /// Signed by a registered provider's key.
    Worker,
    /// Signed by a committee member's key.
    Verifier,
    /// A Sign-In with Ethereum session.
    Session,
    /// Signed by any account's key (the handler checks which may call it).
    Account,
}

const PUBLIC: Auth = Auth::Public;
const WORKER: Auth = Auth::Worker;

fn op(summary: &str, auth: Auth, body: Option<&str>, ok: &str) -> Value {
    let mut op = json!({
        "summary": summary,
        "responses": {
            ok: { "description": "success" },
            "4XX": { "description": "the request was wrong", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        },
    });
    match auth {
        Auth::Public => {}
        Auth::Worker => op["security"] = json!([{ "workerSignature": [] }]),
        Auth::Verifier => op["security"] = json!([{ "verifierSignature": [] }]),
        Auth::Session => op["security"] = json!([{ "session": [] }, { "sessionCookie": [] }]),
        Auth::Account => op["security"] = json!([{ "accountSignature": [] }]),
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
                  "description": "Job store, blob store, chain watcher, matching, storage hosting and the worker and verifier protocols. It never moves money." },
        "paths": {
            "/v1/blobs/{hash}": {
                "put": op("Upload a blob named by its keccak256 (413 past the size limit, 400 when the bytes do not hash to the name)", PUBLIC, Some("application/octet-stream"), "201"),
                "get": op("Download a blob; supports `Range: bytes=a-b`", PUBLIC, None, "200"),
            },
            "/v1/specs": { "post": op("Upload a job spec (its module and inputs must be uploaded first)", PUBLIC, Some("application/json"), "201") },
            "/v1/specs/{spec_hash}": { "get": op("A spec, whether it is funded, its jobs and timeline", PUBLIC, None, "200") },
            "/v1/jobs": { "get": op("Jobs, newest first; filter with `status`, `buyer`, `limit`", PUBLIC, None, "200") },
            "/v1/jobs/{job_id}": { "get": op("A job: status, replicas, receipts, timeline", PUBLIC, None, "200") },
            "/v1/jobs/{job_id}/outputs/{worker}/{path}": { "get": op("Redirect to an output file a worker reported", PUBLIC, None, "307") },
            "/v1/chain": { "get": op("The chain id, contract addresses, deployment block, the RPC URL for browsers, the WalletConnect project id and the confirmations the coordinator waits for", PUBLIC, None, "200") },
            "/v1/providers": { "get": op("Registered providers with liveness and free capacity", PUBLIC, None, "200") },
            "/v1/worker/register": { "post": op("A registered provider's worker checks in", WORKER, Some("application/json"), "200") },
            "/v1/worker/heartbeat": { "post": op("Liveness", WORKER, Some("application/json"), "200") },
            "/v1/worker/assignments": { "get": op("This worker's live assignments; `wait_ms` long-polls up to 30 s, until there is an assignment past `after`", WORKER, None, "200") },
            "/v1/worker/assignments/{id}/accept": { "post": op("Take the lease: {signature} of the EIP-712 LeaseAcceptance{jobId, specHash, worker}", WORKER, Some("application/json"), "200") },
            "/v1/worker/assignments/{id}/seal": { "post": op("Commit to a result: {seal, signature} of the EIP-712 SealCommitment{jobId, specHash, worker, seal}", WORKER, Some("application/json"), "200") },
            "/v1/worker/assignments/{id}/receipt": { "post": op("Reveal the EIP-712 signed receipt (it names the spec run) and the outputs: {receipt, signature, outputs}", WORKER, Some("application/json"), "200") },
            "/v1/worker/assignments/{id}/release": { "post": op("Give a lease back: {reason} (optional)", WORKER, Some("application/json"), "200") },
            "/v1/worker/storage": { "get": op("This provider's storage work: deals offered to or held by it, open challenges", WORKER, None, "200") },
            "/v1/worker/storage/{deal_id}/decline": { "post": op("Decline an offered deal: {reason} (no room); it is offered to someone else", WORKER, Some("application/json"), "200") },
            "/v1/worker/storage/{deal_id}/root": { "post": op("Report the Merkle root recomputed from the fetched file: {root}; a mismatch refuses the deal", WORKER, Some("application/json"), "200") },
            "/v1/worker/storage/{deal_id}/probes/{probe}": { "post": op("Answer a buyer's probe: {chunk, path}, checked against the root", WORKER, Some("application/json"), "200") },
            "/v1/worker/storage/{deal_id}/challenges/{period}": { "post": op("Answer a period's challenge: {chunks, paths}, one per challenged index, each checked against the root", WORKER, Some("application/json"), "200") },
            "/v1/storage/files": { "post": op("Register an uploaded blob for storage: {blobHash}; answers its Merkle root", PUBLIC, Some("application/json"), "200") },
            "/v1/storage/deals": { "get": op("Storage deals, newest first; filter with `buyer`, `provider`", PUBLIC, None, "200") },
            "/v1/storage/deals/{deal_id}": { "get": op("A storage deal: status, challenges and answers, timeline", PUBLIC, None, "200") },
            "/v1/storage/deals/{deal_id}/probes": { "post": op("The deal's buyer asks its provider to prove a chunk now: {chunkIndex}", Auth::Account, Some("application/json"), "201") },
            "/v1/storage/deals/{deal_id}/probes/{probe}": { "get": op("A probe and, once answered, the chunk and its Merkle path", PUBLIC, None, "200") },
            "/v1/verifier/jobs/{job_id}/verdict": { "post": op("Record a verdict: {outcome: settle|escalate|refund, resultDigest, winners, losers, replicas}", Auth::Verifier, Some("application/json"), "200") },
            "/v1/verifier/storage/{deal_id}/challenges": { "post": op("Relay a period's challenge to the deal's provider: {period, chunkIndexes}", Auth::Verifier, Some("application/json"), "200") },
            "/v1/verifier/proposals": {
                "post": op("Propose a digest for the committee to sign: {kind: settlement|attestation|resolution, digest, payload, signature}", Auth::Verifier, Some("application/json"), "200"),
                "get": op("Recent proposals with their signatures; `since_ms` (default 10 minutes)", PUBLIC, None, "200"),
            },
            "/v1/verifier/proposals/{digest}": { "get": op("A proposal with its signatures, ascending by signer", PUBLIC, None, "200") },
            "/v1/verifier/proposals/{digest}/signatures": { "post": op("Add a member's signature of the proposal's digest: {signature}", Auth::Verifier, Some("application/json"), "200") },
            "/v1/auth/nonce": { "get": op("A nonce for a Sign-In with Ethereum message", PUBLIC, None, "200") },
            "/v1/auth/siwe": { "post": op("Sign in: {message (EIP-4361), signature}; answers a bearer token and sets a cookie", PUBLIC, Some("application/json"), "201") },
            "/v1/auth/session": {
                "get": op("Who is signed in, and as what (buyer, provider, verifier)", Auth::Session, None, "200"),
                "delete": op("Sign out", Auth::Session, None, "204"),
            },
            "/v1/me": { "get": op("The signed-in account's jobs, deals and assignments", Auth::Session, None, "200") },
            "/v1/me/storage/deals/{deal_id}/probes": { "post": op("As POST /v1/storage/deals/{deal_id}/probes, for the buyer signed in with Sign-In with Ethereum: {chunkIndex}", Auth::Session, Some("application/json"), "201") },
            "/v1/events": { "get": op("Server-Sent Events of job and chain updates; `job` filters to one job", PUBLIC, None, "200") },
            "/health": { "get": op("The database answers", PUBLIC, None, "200") },
            "/openapi.json": { "get": op("This document", PUBLIC, None, "200") },
            "/metrics": { "get": op("Prometheus metrics", PUBLIC, None, "200") },
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
                "session": { "type": "http", "scheme": "bearer", "description": "a token from POST /v1/auth/siwe" },
                "sessionCookie": { "type": "apiKey", "in": "cookie", "name": "qor_session" },
                "accountSignature": {
                    "type": "apiKey", "in": "header", "name": "x-qor-signature",
                    "description": "the worker signature scheme, signed by any account's key (a storage probe: the deal's buyer)",
                },
                "verifierSignature": {
                    "type": "apiKey", "in": "header", "name": "x-qor-signature",
                    "description": "the worker signature scheme, signed by a member of the VerifierCommittee",
                },
                "workerSignature": {
                    "type": "apiKey", "in": "header", "name": "x-qor-signature",
                    "description": "EIP-191 signature of `QOR request\\n<METHOD> <path>\\ntimestamp: <ms>\\nnonce: <nonce>\\nbody: <keccak>` with x-qor-address, x-qor-timestamp and x-qor-nonce headers",
                },
            },
        },
    }))
}
