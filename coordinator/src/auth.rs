//! Signed requests ([`qor_protocol::auth`]) from workers and verifiers: the signature must recover to
//! the address header, the timestamp must be within the clock window, the nonce must be new for that
//! address, and the address must hold the role on chain: a provider registered in the
//! ProviderRegistry ([`Signed`]) or a member of the VerifierCommittee ([`VerifierSigned`]).
//!
//! The nonces are kept in memory ([`Replays`]), for as long as their requests' timestamps are within
//! the window; an older request is refused as stale before its nonce is looked at. A request signed
//! before this process started is refused as stale too, so a restart, which forgets the nonces, cannot
//! let a captured request be replayed. Keeping them in SQLite cost a write per request, more than the
//! rest of most requests.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use alloy_primitives::{Address, Signature};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use qor_protocol::auth::{ADDRESS, NONCE, SIGNATURE, TIMESTAMP, recover_request};

use crate::AppState;
use crate::db::now_ms;
use crate::error::{ApiError, ApiResult};

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> ApiResult<&'a str> {
    headers
        .get(name)
        .ok_or_else(|| ApiError::unauthorized("missing_auth", format!("missing header `{name}`")))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("bad_auth_header", format!("header `{name}` is not text")))
}

/// Who may sign a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A provider registered on chain (its worker).
    Provider,
    /// A member of the verifier committee.
    Verifier,
    /// Any account (a buyer): the signature and the nonce are checked, not a role on chain.
    Account,
}

/// Who signed this request, holding `role`. Records the nonce, so the same request twice fails.
pub async fn authenticate(
    state: &AppState,
    role: Role,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Address> {
    let claimed: Address = header(headers, ADDRESS)?
        .parse()
        .map_err(|_| ApiError::unauthorized("bad_auth_header", format!("`{ADDRESS}` is not an address")))?;
    let timestamp: u64 = header(headers, TIMESTAMP)?
        .parse()
        .map_err(|_| ApiError::unauthorized("bad_auth_header", format!("`{TIMESTAMP}` is not unix milliseconds")))?;
    let nonce = header(headers, NONCE)?;
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(ApiError::unauthorized("bad_auth_header", format!("`{NONCE}` must be 1 to 64 characters")));
    }
    let signature: Signature = header(headers, SIGNATURE)?
        .parse()
        .map_err(|_| ApiError::unauthorized("bad_signature", format!("`{SIGNATURE}` is not a 65-byte signature")))?;
    let skew = (now_ms() - timestamp as i64).abs();
    if skew > state.cfg.clock_skew_ms {
        return Err(ApiError::unauthorized(
            "stale_timestamp",
            format!("`{TIMESTAMP}` is {skew} ms from the coordinator's clock (at most {})", state.cfg.clock_skew_ms),
        ));
    }
    if (timestamp as i64) < state.replays.started_ms {
        return Err(ApiError::unauthorized(
            "stale_timestamp",
            format!("`{TIMESTAMP}` {timestamp} is before the coordinator started ({}); sign the request again", state.replays.started_ms),
        ));
    }
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let signer = recover_request(method.as_str(), path, timestamp, nonce, body, &signature)
        .map_err(|e| ApiError::unauthorized("bad_signature", e.to_string()))?;
    if signer != claimed {
        return Err(ApiError::unauthorized("bad_signature", format!("the request is signed by {signer}, not by {claimed}")));
    }
    let key = format!("{signer:#x}");
    match role {
        Role::Provider => {
            let registered =
                sqlx::query_scalar!("SELECT address FROM providers WHERE address = ?", key).fetch_optional(&state.read).await?;
            if registered.is_none() {
                return Err(ApiError::forbidden(
                    "provider_not_registered",
                    format!("{signer} is not registered in the ProviderRegistry (register on chain first)"),
                ));
            }
        }
        Role::Verifier => {
            let member =
                sqlx::query_scalar!("SELECT address FROM committee_members WHERE address = ?", key).fetch_optional(&state.read).await?;
            if member.is_none() {
                return Err(ApiError::forbidden("not_a_verifier", format!("{signer} is not a member of the VerifierCommittee")));
            }
        }
        Role::Account => {}
    }
    if !state.replays.first_use(signer, nonce, timestamp as i64, state.cfg.clock_skew_ms) {
        return Err(ApiError::unauthorized("replayed_nonce", format!("nonce `{nonce}` was already used by {signer}")));
    }
    Ok(signer)
}

/// The nonces signed requests used, with their timestamps, while those are within the clock window.
#[derive(Debug)]
pub struct Replays {
    /// Requests signed before this are refused.
    pub started_ms: i64,
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    nonces: HashMap<(Address, String), i64>,
    /// When the nonces past the window were last dropped.
    pruned_ms: i64,
}

impl Default for Replays {
    fn default() -> Self {
        Self { started_ms: now_ms(), seen: Mutex::default() }
    }
}

impl Replays {
    /// Records `nonce` of `signer` (whose request is signed at `timestamp_ms`); false if it was
    /// recorded already. Nonces of requests older than `window_ms` are dropped now and then: their
    /// requests are stale, refused before this is asked.
    pub fn first_use(&self, signer: Address, nonce: &str, timestamp_ms: i64, window_ms: i64) -> bool {
        let now = now_ms();
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if now - seen.pruned_ms > window_ms / 10 {
            seen.nonces.retain(|_, at| now - *at <= window_ms);
            seen.pruned_ms = now;
        }
        match seen.nonces.entry((signer, nonce.to_string())) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(timestamp_ms);
                true
            }
        }
    }
}

/// A request signed by a registered provider's worker: the extractor every worker endpoint takes.
#[derive(Debug)]
pub struct Signed {
    /// Who signed it.
    pub worker: Address,
    /// The body, as signed.
    pub body: Bytes,
}

async fn signed_body(request: Request, state: &AppState, role: Role) -> ApiResult<(Address, Bytes)> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, state.cfg.max_json_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("signed requests are at most {} bytes", state.cfg.max_json_bytes),
        )
    })?;
    let signer = authenticate(state, role, &parts.method, &parts.uri, &parts.headers, &body).await?;
    Ok((signer, body))
}

impl FromRequest<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (worker, body) = signed_body(request, state, Role::Provider).await?;
        Ok(Self { worker, body })
    }
}

/// A request signed by a member of the verifier committee: the extractor of every verifier endpoint.
#[derive(Debug)]
pub struct VerifierSigned {
    /// Who signed it.
    pub verifier: Address,
    /// The body, as signed.
    pub body: Bytes,
}

impl FromRequest<AppState> for VerifierSigned {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (verifier, body) = signed_body(request, state, Role::Verifier).await?;
        Ok(Self { verifier, body })
    }
}

/// A request signed by any account, with the same scheme (a buyer's command-line client, say); the
/// handler decides what that account may do.
#[derive(Debug)]
pub struct AccountSigned {
    /// Who signed it.
    pub account: Address,
    /// The body, as signed.
    pub body: Bytes,
}

impl FromRequest<AppState> for AccountSigned {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (account, body) = signed_body(request, state, Role::Account).await?;
        Ok(Self { account, body })
    }
}
