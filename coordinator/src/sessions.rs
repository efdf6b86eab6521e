//! Sign-In with Ethereum (EIP-4361) sessions for buyers and providers in the browser or the CLI.
//!
//! `GET /v1/auth/nonce` hands out a nonce; the wallet signs a message naming this coordinator's host,
//! the chain and that nonce; `POST /v1/auth/siwe` checks it (domain, URI, chain, nonce used once, times,
//! signature) and opens a session: a random bearer token, answered once and also set as an HttpOnly
//! cookie, of which only the keccak is stored. [`Session`] is the extractor of endpoints that act for
//! the signed-in account (`/v1/me/...`).

use alloy_primitives::{Address, Signature, keccak256};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use qor_protocol::siwe::{SiweMessage, recover_signer};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::worker::parse_json;

/// How long a nonce waits to be used.
const NONCE_TTL_MS: i64 = 10 * 60_000;
/// The session cookie.
pub const COOKIE: &str = "qor_session";

fn random_hex(bytes: usize) -> ApiResult<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(ApiError::internal)?;
    Ok(alloy_primitives::hex::encode(buf))
}

/// `GET /v1/auth/nonce`: a fresh nonce for a Sign-In with Ethereum message, valid for ten minutes (at
/// most `max_siwe_nonces` are out at once; anonymous callers are rate-limited per address too).
pub async fn nonce(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let nonce = random_hex(12)?;
    let now = now_ms();
    let expires = now + NONCE_TTL_MS;
    sqlx::query!("DELETE FROM siwe_nonces WHERE expires_at < ?", now).execute(&state.db).await?;
    let out = sqlx::query_scalar!("SELECT COUNT(*) FROM siwe_nonces").fetch_one(&state.db).await?;
    if out >= state.cfg.limits.max_siwe_nonces {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_nonces",
            format!("{out} sign-in nonces are out; retry later"),
        ));
    }
    sqlx::query!("INSERT INTO siwe_nonces (nonce, expires_at) VALUES (?, ?)", nonce, expires).execute(&state.db).await?;
    Ok(Json(json!({ "nonce": nonce, "expiresAt": expires, "chainId": state.cfg.chain_id })))
}

/// Body of `POST /v1/auth/siwe`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    /// The EIP-4361 message, exactly as signed.
    pub message: String,
    /// The `personal_sign` signature, 0x-hex.
    pub signature: String,
}

fn siwe_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::field("invalid_siwe", field.to_string(), message)
}

/// What the account is in the market, for the web app to pick a workspace.
async fn roles(state: &AppState, address: &str) -> ApiResult<Vec<&'static str>> {
    let mut roles = vec!["buyer"];
    if sqlx::query_scalar!("SELECT address FROM providers WHERE address = ?", address).fetch_optional(&state.read).await?.is_some() {
        roles.push("provider");
    }
    if sqlx::query_scalar!("SELECT address FROM committee_members WHERE address = ?", address).fetch_optional(&state.read).await?.is_some()
    {
        roles.push("verifier");
    }
    Ok(roles)
}

/// `POST /v1/auth/siwe`: signs in. Answers the bearer token once (and sets it as a cookie).
pub async fn sign_in(State(state): State<AppState>, body: axum::body::Bytes) -> ApiResult<Response> {
    let SignInBody { message, signature } = parse_json(&body)?;
    let m = SiweMessage::parse(&message).map_err(|e| siwe_error(&format!("message.{}", e.field()), e.to_string()))?;
    // The domain is this coordinator's own, as configured: never the request's `Host`, which whoever
    // relays a phished message chooses. And the URI is on that domain.
    if state.cfg.siwe_domains.is_empty() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "siwe_not_configured",
            "Sign-In with Ethereum needs the coordinator's domain: start it with --siwe-domain <host[:port]>",
        ));
    }
    if !state.cfg.siwe_domains.contains(&m.domain) {
        let expected = state.cfg.siwe_domains.join(", ");
        return Err(siwe_error("message.domain", format!("the message is for `{}`, this coordinator is `{expected}`", m.domain)));
    }
    let authority = m
        .uri
        .split_once("://")
        .filter(|(scheme, _)| matches!(*scheme, "http" | "https"))
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default());
    if authority != Some(m.domain.as_str()) {
        return Err(siwe_error("message.URI", format!("the URI `{}` is not on the message's domain `{}`", m.uri, m.domain)));
    }
    if m.chain_id != state.cfg.chain_id {
        return Err(siwe_error(
            "message.Chain ID",
            format!("the message is for chain {}, the market is on chain {}", m.chain_id, state.cfg.chain_id),
        ));
    }
    let now = now_ms();
    let issued = m.issued_at.timestamp_millis();
    if (issued - now).abs() > state.cfg.clock_skew_ms {
        return Err(siwe_error("message.Issued At", format!("issued {} ms from the coordinator's clock", issued - now)));
    }
    if let Some(t) = m.expiration_time
        && t.timestamp_millis() <= now
    {
        return Err(siwe_error("message.Expiration Time", "the message has expired"));
    }
    if let Some(t) = m.not_before
        && t.timestamp_millis() > now
    {
        return Err(siwe_error("message.Not Before", "the message is not valid yet"));
    }
    let signature: Signature = signature.parse().map_err(|_| ApiError::field("bad_signature", "signature", "65 bytes of 0x-hex"))?;
    let signer = recover_signer(&message, &signature).map_err(|e| ApiError::field("bad_signature", "signature", e.to_string()))?;
    if signer != m.address {
        return Err(ApiError::unauthorized("bad_signature", format!("the message is signed by {signer}, not by {}", m.address)));
    }
    // The nonce is spent with the session in one transaction: a replayed sign-in finds it gone.
    let token = random_hex(32)?;
    let token_hash = format!("{:#x}", keccak256(token.as_bytes()));
    let address = format!("{:#x}", m.address);
    let lifetime_end = now + state.cfg.session_ttl_ms;
    let expires = m.expiration_time.map_or(lifetime_end, |t| t.timestamp_millis().min(lifetime_end));
    let mut tx = state.db.begin().await?;
    let spent =
        sqlx::query!("DELETE FROM siwe_nonces WHERE nonce = ? AND expires_at >= ?", m.nonce, now).execute(&mut *tx).await?.rows_affected();
    if spent == 0 {
        return Err(ApiError::unauthorized(
            "unknown_nonce",
            format!("nonce `{}` was not issued here, was used already, or expired", m.nonce),
        ));
    }
    sqlx::query!(
        "INSERT INTO sessions (token_hash, address, issued_at, expires_at) VALUES (?, ?, ?, ?)",
        token_hash,
        address,
        now,
        expires
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM sessions WHERE expires_at < ?", now).execute(&mut *tx).await?;
    tx.commit().await?;
    let roles = roles(&state, &address).await?;
    let max_age = (expires - now) / 1000;
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}");
    let body = Json(json!({ "token": token, "address": m.address, "expiresAt": expires, "roles": roles }));
    Ok((StatusCode::CREATED, [(header::SET_COOKIE, cookie)], body).into_response())
}

/// The signed-in account of a request (bearer token or session cookie).
#[derive(Debug, Clone)]
pub struct Session {
    /// Who signed in.
    pub address: Address,
    /// keccak of the token.
    token_hash: String,
    /// When the session ends, unix ms.
    pub expires_at: i64,
}

fn token_of(parts: &Parts) -> Option<String> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()) {
        return auth.strip_prefix("Bearer ").map(|t| t.trim().to_string());
    }
    parts.headers.get_all(header::COOKIE).iter().filter_map(|h| h.to_str().ok()).flat_map(|h| h.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_string())
    })
}

/// The session a request carries, if it carries one (an unknown or expired one is an error).
pub async fn session_of(state: &AppState, parts: &Parts) -> ApiResult<Option<Session>> {
    let Some(token) = token_of(parts) else { return Ok(None) };
    let token_hash = format!("{:#x}", keccak256(token.as_bytes()));
    let now = now_ms();
    let row = sqlx::query!("SELECT address, expires_at FROM sessions WHERE token_hash = ?", token_hash)
        .fetch_optional(&state.read)
        .await?
        .filter(|r| r.expires_at > now)
        .ok_or_else(|| ApiError::unauthorized("invalid_session", "the session token is unknown, signed out or expired; sign in again"))?;
    let address = row.address.parse().map_err(ApiError::internal)?;
    Ok(Some(Session { address, token_hash, expires_at: row.expires_at }))
}

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        session_of(state, parts).await?.ok_or_else(|| {
            ApiError::unauthorized("no_session", "sign in first: POST /v1/auth/siwe, then send `Authorization: Bearer <token>`")
        })
    }
}

/// `GET /v1/auth/session`: who is signed in, and as what.
pub async fn whoami(State(state): State<AppState>, session: Session) -> ApiResult<Json<Value>> {
    let address = format!("{:#x}", session.address);
    Ok(Json(json!({ "address": session.address, "expiresAt": session.expires_at, "roles": roles(&state, &address).await? })))
}

/// `DELETE /v1/auth/session`: signs out (the token stops working at once).
pub async fn sign_out(State(state): State<AppState>, session: Session) -> ApiResult<Response> {
    sqlx::query!("DELETE FROM sessions WHERE token_hash = ?", session.token_hash).execute(&state.db).await?;
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `GET /v1/me`: the signed-in account's workspace: its jobs as a buyer, its deals as buyer or
/// provider, and its assignments as a provider.
pub async fn me(State(state): State<AppState>, session: Session) -> ApiResult<Json<Value>> {
    let address = format!("{:#x}", session.address);
    let jobs = sqlx::query!(
        "SELECT job_id, spec_hash, status, reason, budget, block_number FROM jobs WHERE buyer = ? ORDER BY block_number DESC LIMIT 200",
        address
    )
    .fetch_all(&state.read)
    .await?;
    let deals = sqlx::query!(
        "SELECT deal_id, buyer, provider, offered_to, status, root, size FROM storage_deals
         WHERE buyer = ?1 OR provider = ?1 OR offered_to = ?1 ORDER BY block_number DESC LIMIT 200",
        address
    )
    .fetch_all(&state.read)
    .await?;
    let assignments = sqlx::query!(
        "SELECT id, job_id, status, lease_expires_at, updated_at FROM assignments WHERE provider = ? ORDER BY id DESC LIMIT 200",
        address
    )
    .fetch_all(&state.read)
    .await?;
    Ok(Json(json!({
        "address": session.address,
        "roles": roles(&state, &address).await?,
        "jobs": jobs.into_iter().map(|j| json!({
            "jobId": j.job_id, "specHash": j.spec_hash, "status": j.status, "reason": j.reason, "budget": j.budget, "block": j.block_number,
        })).collect::<Vec<_>>(),
        "deals": deals.into_iter().map(|d| json!({
            "dealId": d.deal_id, "buyer": d.buyer, "provider": d.provider, "offeredTo": d.offered_to, "chainStatus": d.status,
            "root": d.root, "size": d.size,
        })).collect::<Vec<_>>(),
        "assignments": assignments.into_iter().map(|a| json!({
            "assignment": a.id, "jobId": a.job_id, "status": a.status, "leaseExpiresAt": a.lease_expires_at, "updatedAt": a.updated_at,
        })).collect::<Vec<_>>(),
    })))
}
