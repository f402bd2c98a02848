//! Serving the router: connection limits against abusive clients, and graceful shutdown (in-flight
//! requests finish; nothing is lost).
//!
//! The server is hyper-util's (HTTP/1.1 and HTTP/2 with prior knowledge) rather than `axum::serve`,
//! which has no header read timeout: a client sending its headers one byte at a time (slowloris), or
//! nothing at all, would hold its connection forever. Here:
//!
//! * a connection must deliver a complete request head within [`ServeConfig::header_read_timeout`]
//!   of being accepted, and again for each later request on a kept-alive connection (the deadline is
//!   not pushed back by each byte); otherwise it is closed;
//! * a request head larger than [`ServeConfig::max_header_bytes`] is answered with 431 and the
//!   connection closed;
//! * at most [`ServeConfig::max_connections`] connections are served at once; past that the server
//!   stops accepting (new clients wait in the kernel's backlog) until one closes;
//! * HTTP/2 connections are pinged every [`ServeConfig::http2_keep_alive`] and dropped when the peer
//!   does not answer; their concurrent streams are bounded.
//!
//! Slow request bodies and slow handlers are bounded by the router's own request timeout
//! ([`ApiConfig::request_timeout`](crate::ApiConfig::request_timeout)).

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

/// Limits of the connections [`serve_with`](crate::serve_with) accepts.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long a client may take to send a complete request head (default 10 s).
    pub header_read_timeout: Duration,
    /// The largest request head (request line and headers) in bytes (default 64 KiB, at least
    /// 8 KiB); a larger one is answered with 431.
    pub max_header_bytes: usize,
    /// The most headers a request may carry (default 100); more are answered with 431.
    pub max_headers: usize,
    /// The most connections served at once (default 1024).
    pub max_connections: usize,
    /// HTTP/2: the interval of keep-alive pings; a peer that does not answer one within this long
    /// is dropped (default 20 s).
    pub http2_keep_alive: Duration,
    /// HTTP/2: the most concurrent streams per connection (default 64).
    pub http2_max_streams: u32,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_connections: 1024,
            http2_keep_alive: Duration::from_secs(20),
            http2_max_streams: 64,
        }
    }
}

/// Serves `router` on `listener` with the default [`ServeConfig`] until `shutdown` resolves; then
/// stops accepting and waits for the requests in flight to finish.
///
/// # Errors
/// The listener's IO error.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, shutdown, ServeConfig::default()).await
}

/// The HTTP/2 connection preface: a connection starting with it speaks HTTP/2.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `router` on `listener` with the limits of `config` until `shutdown` resolves; then stops
/// accepting (the listener is closed), closes idle connections, and waits for the requests in flight
/// to finish.
///
/// # Errors
/// The listener's IO error (accept errors such as too many open files are logged and retried).
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    config: ServeConfig,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers.max(1));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(config.http2_keep_alive)
        .keep_alive_timeout(config.http2_keep_alive)
        .max_concurrent_streams(config.http2_max_streams.max(1))
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let service = TowerToHyperService::new(router);
    let permits = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if !is_connection_error(&e) {
                        tracing::warn!(error = %e, "accepting a connection failed; retrying in 100 ms");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let builder = Arc::clone(&builder);
        let service = service.clone();
        let watcher = graceful.watcher();
        let mut stopping = stopping_rx.clone();
        let head_timeout = config.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // hyper-util's version detection has no deadline of its own: wait (bounded) until the
            // first bytes tell HTTP/1 from HTTP/2, or drop the connection.
            tokio::select! {
                ready = tokio::time::timeout(head_timeout, preface_known(&stream)) => {
                    if !matches!(ready, Ok(Ok(true))) {
                        tracing::debug!(%peer, "closing a connection that sent no request in time");
                        return;
                    }
                }
                _ = stopping.wait_for(|s| *s) => return,
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    graceful.shutdown().await;
    Ok(())
}

/// Waits until the connection's first bytes tell whether it speaks HTTP/2 (with prior knowledge)
/// or HTTP/1: `Ok(false)` if the peer closed first.
async fn preface_known(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0_u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(false);
        }
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return Ok(true);
        }
        // A prefix of the HTTP/2 preface: wait for more (peek returns at once while data is
        // buffered, so yield to the peer).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Errors of one connection (the listener is fine).
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
