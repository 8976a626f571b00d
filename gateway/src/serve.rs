//! The accept loop: HTTP/1.1 on hyper with a header read timeout, each connection watched
//! for a graceful shutdown.
//!
//! Shutdown: when the token fires, the listener closes at once (nothing new is accepted);
//! idle keep-alive connections close; a request in progress finishes; an open stream gets
//! the configured grace and is then ended by its turn with the dialect's error event. After
//! the grace (plus a margin for the last bytes) connections still open are dropped.

use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{GatewayError, ServeConfig};

/// Serves `router` on `listener` until `shutdown` fires, then shuts down gracefully.
///
/// # Errors
/// [`GatewayError::OpenRelay`] when the listener is not on loopback and `config` has no keys.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    config: &ServeConfig,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let addr = listener.local_addr().map_err(|e| GatewayError::Io(format!("listener address: {e}")))?;
    crate::check_bind(addr, config.keys.len())?;
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(config.header_timeout).keep_alive(true);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(target: "executus_gateway", %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(target: "executus_gateway", %peer, %error, "connection ended");
            }
        });
    }
    drop(listener);
    tracing::info!(target: "executus_gateway", grace_s = config.shutdown_grace.as_secs_f64(), "shutting down: no longer accepting");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(config.shutdown_grace + Duration::from_secs(2)) => {
            tracing::warn!(target: "executus_gateway", "connections still open after the shutdown grace were dropped");
        }
    }
    Ok(())
}
