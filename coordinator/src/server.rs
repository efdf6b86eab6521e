//! The HTTP server in front of the router, bounding what a connection can hold: at most
//! `max_connections` open at once and `max_connections_per_ip` from one address (a connection past
//! either is closed at once), a request's headers within `header_timeout_ms` of the connection
//! opening or of the previous request ending (so an idle or trickling connection is closed), and an
//! accept loop that never sleeps long when the process runs out of file descriptors. `axum::serve`
//! has none of these: 1,100 idle connections once kept `/health` from answering for a minute.
//!
//! Bodies, request deadlines and the per-route limits are the router's ([`crate::limits`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::Limits;

/// Connections open per IP address.
#[derive(Debug, Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in [`PerIp`], given back when it closes.
struct IpSlot {
    ip: IpAddr,
    per_ip: Arc<PerIp>,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot { ip, per_ip: self.clone() })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        crate::limits::give_back(&self.per_ip.open, self.ip, 1);
    }
}

/// Raises this process's soft open-file limit to its hard limit (a server holds a descriptor per
/// connection); returns the limit now in force.
pub fn raise_open_file_limit() -> std::io::Result<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        setrlimit(Resource::Nofile, rustix::process::Rlimit { current: limit.maximum, maximum: limit.maximum })?;
    }
    Ok(getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX))
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves. `open_files` is the process's
/// open-file limit: the connection cap leaves room under it for the database, blobs and the chain.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    open_files: u64,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let max_connections = limits.max_connections.min(usize::try_from(open_files.saturating_sub(256)).unwrap_or(usize::MAX)).max(16);
    let global = Arc::new(Semaphore::new(max_connections));
    let per_ip = Arc::new(PerIp::default());
    let header_timeout = Duration::from_millis(limits.header_timeout_ms);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors (or a connection reset before it was taken): try again soon,
                    // not after a second as axum does, so the connections already open keep flowing.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let Ok(permit) = global.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: the server is at its connection limit");
            continue;
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(%peer, "connection refused: its address is at its connection limit");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), request)
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop((permit, slot));
        });
    }
}

/// The address a request came from, when it came over a socket (not in an in-process test).
pub fn peer_of<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0)
}
