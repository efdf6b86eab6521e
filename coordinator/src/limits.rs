//! What one request may cost. JSON bodies are read within `body_timeout_ms` and out of one shared
//! budget of `max_buffered_body_bytes`, of which one address may hold an eighth (so a thousand
//! half-sent bodies cannot take a gigabyte of memory, nor a few addresses everyone's share); anonymous writes (specs, files to register, sign-in nonces) are rate-limited per IP
//! address; event streams are counted, in all and per address. Connections are bounded by
//! [`crate::server`], uploads by the blob quotas ([`crate::blobs`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::server::peer_of;
use crate::{AppState, Limits};

/// Body bytes per budget permit.
const PERMIT_BYTES: usize = 1024;

/// The shared state of the per-request bounds.
#[derive(Debug)]
pub struct Guards {
    /// JSON bodies being read, in KiB.
    body_budget: Arc<Semaphore>,
    /// Of which each IP address holds (KiB), at most [`Self::body_per_ip`].
    body_held: Arc<Mutex<HashMap<IpAddr, usize>>>,
    body_per_ip: usize,
    /// Anonymous writes per IP address.
    writes: RateLimiter,
    /// Event streams open.
    event_streams: Arc<Semaphore>,
    /// Event streams open per IP address.
    streams_per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// Files being hashed to register them (each reads up to a whole blob).
    pub hashing: Semaphore,
}

impl Guards {
    /// Guards for `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            body_budget: Arc::new(Semaphore::new((limits.max_buffered_body_bytes / PERMIT_BYTES).max(1))),
            body_held: Arc::default(),
            body_per_ip: (limits.max_buffered_body_bytes / PERMIT_BYTES / 8).max(1),
            writes: RateLimiter::new(limits.writes_per_second_per_ip, limits.write_burst_per_ip),
            event_streams: Arc::new(Semaphore::new(limits.max_event_streams)),
            streams_per_ip: Arc::default(),
            hashing: Semaphore::new(2),
        }
    }
}

/// A token bucket per IP address.
#[derive(Debug)]
struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_second: u32, burst: u32) -> Self {
        Self { per_second: f64::from(per_second.max(1)), burst: f64::from(burst.max(1)), buckets: Mutex::default() }
    }

    /// Takes a token for `ip`, or says how long until one is there.
    fn take(&self, ip: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget the addresses whose buckets have filled up again: they are as good as new.
            let full = self.burst;
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < full);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.per_second))
        }
    }
}

/// Gives back `n` of what `ip` holds in `counts`, forgetting the address at zero (so the map holds
/// only addresses that hold something).
pub(crate) fn give_back(counts: &Mutex<HashMap<IpAddr, usize>>, ip: IpAddr, n: usize) {
    let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(held) = counts.get_mut(&ip) {
        *held = held.saturating_sub(n);
        if *held == 0 {
            counts.remove(&ip);
        }
    }
}

fn too_many(code: &'static str, message: String, retry_after: Duration) -> Response {
    let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message).into_response();
    let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    response.headers_mut().insert(header::RETRY_AFTER, secs.into());
    response
}

/// Middleware of the anonymous endpoints that write: a token bucket per IP address (requests from
/// no address, as in-process tests make them, are not limited).
pub async fn limit_writes(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(peer) = peer_of(&request)
        && let Err(wait) = state.guards.writes.take(peer.ip())
    {
        let l = &state.cfg.limits;
        return too_many(
            "rate_limited",
            format!(
                "at most {} such requests a second from one address (bursts of {}); retry in {wait:?}",
                l.writes_per_second_per_ip, l.write_burst_per_ip
            ),
            wait,
        );
    }
    next.run(request).await
}

/// What a body being read holds of the budget, given back when dropped.
struct BodyCharge {
    permit: Option<OwnedSemaphorePermit>,
    ip: Option<IpAddr>,
    kib: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl BodyCharge {
    /// Takes `kib` more for this body, if the budget and the address's share leave them.
    fn grow(&mut self, guards: &Guards, kib: usize) -> bool {
        if let Some(ip) = self.ip {
            let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            let mine = held.entry(ip).or_default();
            if *mine + kib > guards.body_per_ip {
                return false;
            }
            *mine += kib;
        }
        self.kib += kib;
        match guards.body_budget.clone().try_acquire_many_owned(kib as u32) {
            Ok(more) => {
                match &mut self.permit {
                    Some(p) => p.merge(more),
                    None => self.permit = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }
}

impl Drop for BodyCharge {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            give_back(&self.held, ip, self.kib);
        }
    }
}

/// Middleware of the JSON routes: reads the whole body before the handler runs, within the body
/// deadline, the route's size limit, the shared budget and the address's share of it; the budget is
/// held until the answer.
pub async fn buffer_body(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.cfg.max_json_bytes;
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("bodies are at most {limit} bytes")).into_response();
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return too_large();
    }
    let ip = peer_of(&request).map(|p| p.ip());
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(state.cfg.limits.body_timeout_ms);
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(64 << 10));
    let mut charge = BodyCharge { permit: None, ip, kib: 0, held: state.guards.body_held.clone() };
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    format!("the body did not arrive within {} ms", state.cfg.limits.body_timeout_ms),
                )
                .into_response();
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return ApiError::new(StatusCode::BAD_REQUEST, "body_read_failed", format!("reading the body: {e}")).into_response();
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        if bytes.len() + chunk.len() > limit {
            return too_large();
        }
        let need = (bytes.len() + chunk.len()).div_ceil(PERMIT_BYTES) - bytes.len().div_ceil(PERMIT_BYTES);
        if need > 0 && !charge.grow(&state.guards, need) {
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many request bodies are being received; retry")
                .into_response();
        }
        bytes.extend_from_slice(&chunk);
    }
    let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    drop(charge);
    response
}

/// An open event stream's place, given back when the stream ends.
#[derive(Debug)]
pub struct StreamSlot {
    _permit: OwnedSemaphorePermit,
    ip: Option<IpAddr>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            give_back(&self.per_ip, ip, 1);
        }
    }
}

/// A place for one more event stream from `ip`, if the limits leave one.
pub fn event_stream_slot(state: &AppState, ip: Option<IpAddr>) -> Result<StreamSlot, ApiError> {
    let busy = |why: String| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", why);
    let permit = state
        .guards
        .event_streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| busy(format!("{} event streams are open; retry later", state.cfg.limits.max_event_streams)))?;
    if let Some(ip) = ip {
        let mut open = state.guards.streams_per_ip.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_default();
        if *n >= state.cfg.limits.max_event_streams_per_ip {
            return Err(busy(format!("{} event streams are open from {ip}", *n)));
        }
        *n += 1;
    }
    Ok(StreamSlot { _permit: permit, ip, per_ip: state.guards.streams_per_ip.clone() })
}
