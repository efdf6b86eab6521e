//! `GET /v1/events`: Server-Sent Events of job and chain updates (`?job=<id>` for one job). Streams are
//! counted, in all and per address ([`crate::limits::event_stream_slot`]); past either count a new one
//! is answered 503.

use std::convert::Infallible;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;
use crate::error::{ApiResult, parse_u256};
use crate::limits::event_stream_slot;

/// Query of `/v1/events`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// Only updates about this job id.
    pub job: Option<String>,
}

/// The stream. A subscriber too slow to keep up misses updates and is told so (`lagged`).
pub async fn stream(
    State(state): State<AppState>,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    Query(filter): Query<Filter>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    // Updates carry job ids in decimal; `0x2a` and `42` name the same job.
    let needle = match filter.job {
        Some(job) => Some(format!("\"jobId\":\"{}\"", parse_u256("job", &job)?)),
        None => None,
    };
    // Held by the stream: dropped (and the place given back) when the subscriber goes away.
    let slot = Arc::new(event_stream_slot(&state, peer.map(|p| p.0.0.ip()))?);
    let stream = BroadcastStream::new(state.bus.subscribe()).filter_map(move |item| {
        let (needle, _slot) = (needle.clone(), slot.clone());
        async move {
            match item {
                Ok(json) if needle.as_ref().is_none_or(|n| json.contains(n.as_str())) => {
                    Some(Ok(Event::default().event("update").data(json.as_ref())))
                }
                Ok(_) => None,
                Err(_) => Some(Ok(Event::default().event("lagged").data("{}"))),
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
