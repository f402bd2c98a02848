//! Tracing around every runtime: each launched operation gets an `operation` span carrying the
//! agenda id, cid, operation name and type, entered while the runtime launches it and whenever its
//! events are polled. Nested in the worker's `execute` span and the executor's `agenda` span, so a
//! log line from a handler's runtime carries the whole context whatever runtime the instance uses.

use async_trait::async_trait;
use futures_util::Stream;
use pop_core::Result;
use pop_core::runtime::{EventStream, LaunchRequest, Launched, LaunchedInfo, PodRuntime, RuntimeEvent};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tracing::Instrument;

/// Wraps the instance's runtime (see the module docs).
pub(crate) struct TracedRuntime(pub Arc<dyn PodRuntime>);

#[async_trait]
impl PodRuntime for TracedRuntime {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn supports(&self, operation_type: &str) -> bool {
        self.0.supports(operation_type)
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        let span = tracing::info_span!(
            "operation",
            agenda_id = %request.agenda_id,
            cid = request.cid.as_deref().unwrap_or_default(),
            operation = %request.operation_name,
            op_type = %request.operation_type,
            runtime = self.0.name(),
        );
        let launched = self.0.launch(request).instrument(span.clone()).await;
        let _entered = span.enter();
        match launched {
            Ok(Launched { handle, events }) => {
                tracing::debug!(handle, "operation launched");
                drop(_entered);
                Ok(Launched { handle, events: Box::pin(InSpan { events, span }) })
            }
            Err(e) => {
                tracing::warn!(error = %e, "operation could not be launched");
                Err(e)
            }
        }
    }

    async fn cancel(&self, handle: &str) -> Result<()> {
        self.0.cancel(handle).await
    }

    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        self.0.list().await
    }

    async fn cleanup(&self, handle: &str) -> Result<()> {
        self.0.cleanup(handle).await
    }
}

/// An operation's events, polled inside its span; the end is logged there.
struct InSpan {
    events: EventStream,
    span: tracing::Span,
}

impl Stream for InSpan {
    type Item = RuntimeEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RuntimeEvent>> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        let polled = this.events.as_mut().poll_next(cx);
        if let Poll::Ready(Some(RuntimeEvent::Exited(exit))) = &polled {
            if exit.success {
                tracing::debug!(code = ?exit.code, "operation ended: {}", exit.message);
            } else {
                tracing::info!(code = ?exit.code, signal = ?exit.signal, "operation failed: {}", exit.message);
            }
        }
        polled
    }
}
