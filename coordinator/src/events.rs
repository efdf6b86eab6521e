//! `GET /v1/events`: Server-Sent Events of job and chain updates (`?job=<id>` for one job).

use std::convert::Infallible;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;

use crate::AppState;

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
    Query(filter): Query<Filter>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let needle = filter.job.map(|j| format!("\"jobId\":\"{j}\""));
    let stream = BroadcastStream::new(state.bus.subscribe()).filter_map(move |item| {
        let needle = needle.clone();
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
    Sse::new(stream).keep_alive(KeepAlive::default())
}
