use serde::{Deserialize, Serialize};
use std::fmt;

/// The processing state of an agenda or an operation (`ProcessingState` in the original).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ProcessingState {
    /// Submitted, not yet picked up (or reset for a rerun).
    #[default]
    Waiting,
    /// An executor is running it.
    Executing,
    /// Finished; the conclusion is in `processingStateMessage`.
    Complete,
}

impl fmt::Display for ProcessingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Waiting => "WAITING",
            Self::Executing => "EXECUTING",
            Self::Complete => "COMPLETE",
        })
    }
}

/// How a COMPLETE agenda or operation ended. Stored as the `processingStateMessage` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conclusion {
    /// `succeeded`
    Succeeded,
    /// `failed`
    Failed,
    /// `cancelled` (an extension: the original had no cancel)
    Cancelled,
}

impl Conclusion {
    /// The wire string (`succeeded`, `failed`, `cancelled`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a `processingStateMessage`, case-insensitively (the original compared both ways).
    pub fn parse(message: &str) -> Option<Self> {
        let m = message.trim();
        if m.eq_ignore_ascii_case("succeeded") {
            Some(Self::Succeeded)
        } else if m.eq_ignore_ascii_case("failed") {
            Some(Self::Failed)
        } else if m.eq_ignore_ascii_case("cancelled") || m.eq_ignore_ascii_case("canceled") {
            Some(Self::Cancelled)
        } else {
            None
        }
    }
}

impl fmt::Display for Conclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `processingStateMessage` of a waiting agenda (`pending`).
pub const PENDING: &str = "pending";
/// The `processingStateMessage` of an executing agenda (`Running Operations`).
pub const RUNNING_OPERATIONS: &str = "Running Operations";
