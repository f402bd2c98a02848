//! Serving the router: graceful shutdown (in-flight requests finish; nothing is lost).

use axum::Router;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` resolves; then stops accepting and waits for the
/// requests in flight to finish.
///
/// # Errors
/// The listener's IO error.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown).await
}
