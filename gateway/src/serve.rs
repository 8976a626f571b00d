//! The accept loop: HTTP/1.1 on hyper with a header read timeout, each connection watched
//! for a graceful shutdown. Every request carries its peer's address as axum's
//! `ConnectInfo<SocketAddr>` (the router is served through
//! `into_make_service_with_connect_info`), so mounted routes can tell loopback peers apart.
//!
//! Shutdown: when the token fires, the listener closes at once (nothing new is accepted);
//! idle keep-alive connections close; a request in progress finishes; an open stream gets
//! the configured grace and is then ended by its turn with the dialect's error event. After
//! the grace (plus a margin for the last bytes) connections still open are dropped.

use std::net::SocketAddr;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

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
    let mut make = router.into_make_service_with_connect_info::<SocketAddr>();
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
        // Always ready, and infallible: it only wraps the router with the peer's address.
        if let Err(never) = std::future::poll_fn(|cx| Service::<SocketAddr>::poll_ready(&mut make, cx)).await
        {
            match never {}
        }
        let service = match make.call(peer).await {
            Ok(service) => TowerToHyperService::new(service),
            Err(never) => match never {},
        };
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
