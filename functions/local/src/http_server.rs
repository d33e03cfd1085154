//! The local runner's HTTP server: the routers over hyper, with the limits API Gateway puts in front
//! of the functions on AWS ([`Limits`]): a half-sent request is cut, not kept open. On stop, no new
//! connection is taken and those in progress finish.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;

/// How long a client has to send its request.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For the request line and headers.
    pub headers_within: Duration,
    /// Once the headers are in: for the body, read by the handler, and mailbridge's answer (API
    /// Gateway's HTTP API allows 30 s).
    pub handled_within: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            headers_within: Duration::from_secs(10),
            handled_within: Duration::from_secs(30),
        }
    }
}

/// Serves `router` on `listener` until `stopping` turns true, then lets the requests in
/// progress finish (each within its limit).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: Limits,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let handled_within = limits.handled_within;
    let router = router.layer(axum::middleware::from_fn(move |r, n| {
        within_time(handled_within, r, n)
    }));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers_within);
    let graceful = GracefulShutdown::new();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait, rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { let _ = stopping.wait_for(|s| *s).await; } => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(handled_within, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after the grace period were cut");
    }
}

/// 408 for a request not handled in time (a body sent too slowly, above all).
async fn within_time(limit: Duration, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            [(axum::http::header::CONNECTION, "close")],
            "the request took too long to arrive\n",
        )
            .into_response(),
    }
}
