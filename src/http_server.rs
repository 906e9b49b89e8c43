//! The accept loop: hyper connections that run the warp filter tree.
//!
//! We own this loop (instead of `warp::serve`) for two reasons. The agent
//! WebSocket needs its upgrade handle so it can choose the tungstenite
//! buffer sizes itself: warp's `Ws` always allocates and zero-fills a
//! 128 KiB read buffer per socket, twice the memory budget of a whole
//! agent session. And the loop is where slow-header clients are cut off
//! (`HEADER_READ_TIMEOUT`), which warp's loop does not do.
//!
//! Each request gets two extensions the filters read back with
//! `warp::ext::optional`: the peer address and, for upgrade requests, the
//! one-shot upgrade handle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_service::Service;
use warp::Filter;

use crate::routes::router::Response;

/// A client that has not sent its full request head by then is dropped.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Back-off after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The TCP peer of the connection a request arrived on.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The connection's upgrade handle, for the one route that takes it.
/// Shared and taken at most once (warp extensions must be `Clone`).
#[derive(Clone)]
pub struct UpgradeSlot(Arc<Mutex<Option<OnUpgrade>>>);

impl UpgradeSlot {
    pub fn take(&self) -> Option<OnUpgrade> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

fn wants_upgrade(req: &hyper::Request<Incoming>) -> bool {
    req.headers().contains_key(hyper::header::UPGRADE)
}

/// Serve until `stop` fires, then stop accepting and wait for in-flight
/// HTTP requests (upgraded sockets are owned by their sessions by then).
pub async fn run<F>(listener: TcpListener, filter: F, stop: oneshot::Receiver<()>)
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let _ = io.set_nodelay(true);
        let warp_svc = warp::service(filter.clone());
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(PeerAddr(peer));
            if wants_upgrade(&req) {
                let on = hyper::upgrade::on(&mut req);
                req.extensions_mut().insert(UpgradeSlot(Arc::new(Mutex::new(Some(on)))));
            }
            let mut warp_svc = warp_svc.clone();
            async move { warp_svc.call(req).await }
        });
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
