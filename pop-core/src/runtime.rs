//! The `PodRuntime` trait: where handlers run (in-process closures, local processes, Kubernetes Pods).
//!
//! A runtime launches one operation and returns a stream of [`RuntimeEvent`]s that ends with exactly one
//! [`RuntimeEvent::Exited`]. The handler protocol (env vars in, `POP_PROGRESS`/`POP_RESULT` lines out) is
//! the runtime's business; the executor only sees events.

use crate::error::Result;
use crate::model::{DiagnosticEvent, Millis, OperationProgress, Params};
use async_trait::async_trait;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::pin::Pin;

/// Everything a runtime needs to launch one operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LaunchRequest {
    /// The agenda (`AGENDA_ID`).
    pub agenda_id: String,
    /// The agenda's progress id.
    pub agenda_progress_id: Option<String>,
    /// Correlation id (`CID`).
    pub cid: Option<String>,
    /// The agenda's customer (`CUSTOMER_ID`).
    pub customer_id: Option<String>,
    /// The insight the agenda came from (labels).
    pub insight_id: Option<String>,
    /// The operation's name (`OPERATION_NAME`).
    pub operation_name: String,
    /// The operation's id (`OPERATION_ID`).
    pub operation_id: Option<String>,
    /// The operation's type: selects the handler.
    pub operation_type: String,
    /// The resolved payload (`PAYLOAD`).
    pub payload: Value,
    /// The operation's last progress from an earlier attempt (`LAST_PROGRESS`).
    pub last_progress: Option<OperationProgress>,
}

/// A partial operation progress reported by a handler (`POP_PROGRESS {json}`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProgressUpdate {
    /// Percent complete, 0–100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent_complete: Option<f64>,
    /// A message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processing_state_message: Option<String>,
    /// Resume state the handler wants back as `LAST_PROGRESS.params` on a re-run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<Params>,
    /// Diagnostics.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnostic_events: Vec<DiagnosticEvent>,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output (lines that are not protocol lines).
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a handler ended.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exit {
    /// Whether it succeeded (exit status 0, no protocol error).
    pub success: bool,
    /// The exit code, if it exited.
    pub code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// A one-line summary for a person.
    pub message: String,
    /// Details for a failure (e.g. the last log lines).
    pub diagnostic: Option<DiagnosticEvent>,
}

impl Exit {
    /// A success.
    pub fn success() -> Self {
        Self { success: true, code: Some(0), message: "succeeded".into(), ..Self::default() }
    }

    /// A failure with a message.
    pub fn failure(message: impl Into<String>) -> Self {
        Self { success: false, message: message.into(), ..Self::default() }
    }
}

/// What a running handler reports.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeEvent {
    /// The handler is running (the pod is scheduled, the process spawned).
    Started,
    /// Progress.
    Progress(ProgressUpdate),
    /// The operation's output (`POP_RESULT`); the last one wins.
    Output(Value),
    /// A log line.
    Log(LogStream, String),
    /// The end; always the last event.
    Exited(Exit),
}

/// A stream of runtime events.
pub type EventStream = Pin<Box<dyn Stream<Item = RuntimeEvent> + Send + 'static>>;

/// A launched operation.
pub struct Launched {
    /// The runtime's handle (process id, pod name, ...), for cancel and cleanup.
    pub handle: String,
    /// Its events, ending with `Exited`.
    pub events: EventStream,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched").field("handle", &self.handle).finish_non_exhaustive()
    }
}

/// Whether a launched handler still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LaunchedState {
    /// Still running (or pending).
    Running,
    /// Finished (any outcome).
    Finished,
}

/// What a runtime knows about something it launched (for the pod reaper).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchedInfo {
    /// The handle.
    pub handle: String,
    /// The agenda.
    pub agenda_id: String,
    /// The operation's name.
    pub operation_name: String,
    /// The operation's type.
    pub operation_type: String,
    /// Running or finished.
    pub state: LaunchedState,
    /// Launch time, epoch ms.
    pub started: Millis,
    /// End time, epoch ms.
    pub finished: Option<Millis>,
}

/// Runs handlers.
#[async_trait]
pub trait PodRuntime: Send + Sync + 'static {
    /// The runtime's name, for messages.
    fn name(&self) -> &str;

    /// Whether this runtime has a handler for the operation type.
    fn supports(&self, operation_type: &str) -> bool;

    /// Launches one operation. An unknown type is `Error::Invalid` naming the type.
    async fn launch(&self, request: LaunchRequest) -> Result<Launched>;

    /// Stops a running operation (its stream then ends with a failed `Exited`); a no-op if finished.
    async fn cancel(&self, handle: &str) -> Result<()>;

    /// What this runtime launched and has not cleaned up.
    async fn list(&self) -> Result<Vec<LaunchedInfo>>;

    /// Removes what is left of a launched operation (kills it if still running).
    async fn cleanup(&self, handle: &str) -> Result<()>;
}
