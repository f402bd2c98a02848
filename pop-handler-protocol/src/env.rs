//! The input half of the protocol: the names of the environment variables a handler gets, and the
//! environment of one launch built from a [`LaunchRequest`].

use crate::error::ProtocolError;
use crate::payload::{PayloadEncoding, encode_payload};
use pop_core::runtime::LaunchRequest;

/// The payload JSON, in the plain form (`POP_PAYLOAD_TYPE=envVar`).
pub const PAYLOAD: &str = "PAYLOAD";
/// Which form the payload has: [`PAYLOAD_TYPE_PLAIN`] or [`PAYLOAD_TYPE_COMPRESSED`]. Missing means plain.
pub const PAYLOAD_TYPE: &str = "POP_PAYLOAD_TYPE";
/// `POP_PAYLOAD_TYPE` of the plain form: the JSON is in [`PAYLOAD`].
pub const PAYLOAD_TYPE_PLAIN: &str = "envVar";
/// `POP_PAYLOAD_TYPE` of the compressed form: zlib, then base64, in chunks `POP_COMPRESSED_PAYLOAD_0..N`.
pub const PAYLOAD_TYPE_COMPRESSED: &str = "compressedEnvVar";
/// The prefix of the compressed chunks; chunk `n` is `POP_COMPRESSED_PAYLOAD_<n>`.
pub const COMPRESSED_PAYLOAD_PREFIX: &str = "POP_COMPRESSED_PAYLOAD_";
/// The agenda's id.
pub const AGENDA_ID: &str = "AGENDA_ID";
/// The correlation id.
pub const CID: &str = "CID";
/// The agenda's customer.
pub const CUSTOMER_ID: &str = "CUSTOMER_ID";
/// The agenda progress's id.
pub const PROGRESS_ID: &str = "PROGRESS_ID";
/// The operation's name.
pub const OPERATION_NAME: &str = "OPERATION_NAME";
/// The operation's id.
pub const OPERATION_ID: &str = "OPERATION_ID";
/// The JSON of the operation's progress from an earlier attempt (only on re-runs).
pub const LAST_PROGRESS: &str = "LAST_PROGRESS";
/// The log level the handler should use.
pub const LOG_LEVEL: &str = "LOG_LEVEL";

/// The name of compressed chunk `index` (`POP_COMPRESSED_PAYLOAD_<index>`).
pub fn compressed_payload_var(index: usize) -> String {
    format!("{COMPRESSED_PAYLOAD_PREFIX}{index}")
}

/// Whether `name` is one of the variables a runtime sets for every launch (payload, chunks, ids,
/// `LAST_PROGRESS`); `LOG_LEVEL` is not one (a registry may set it). A runtime removes these from what
/// a handler would otherwise inherit, so a stale value never reaches it.
pub fn is_protocol_var(name: &str) -> bool {
    matches!(
        name,
        PAYLOAD
            | PAYLOAD_TYPE
            | AGENDA_ID
            | CID
            | CUSTOMER_ID
            | PROGRESS_ID
            | OPERATION_NAME
            | OPERATION_ID
            | LAST_PROGRESS
    ) || name.starts_with(COMPRESSED_PAYLOAD_PREFIX)
}

/// What to do with an id the launch request does not have (`cid`, `customer_id`, `agenda_progress_id`,
/// `operation_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnknownIds {
    /// Set the variable to the empty string (local processes: a shell handler with `set -u` may read it).
    #[default]
    Empty,
    /// Leave the variable out (Pods: the original POP set only what it had).
    Omit,
}

/// How [`handler_env`] builds an environment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EnvOptions {
    /// How the payload travels.
    pub payload: PayloadEncoding,
    /// Ids the request does not have.
    pub unknown_ids: UnknownIds,
    /// `LOG_LEVEL`, when the runtime sets it among the protocol's variables (`None`: not set here).
    pub log_level: Option<String>,
}

impl EnvOptions {
    /// Options with this payload encoding, empty unknown ids and no `LOG_LEVEL`.
    pub fn new(payload: PayloadEncoding) -> Self {
        Self { payload, ..Self::default() }
    }

    /// Sets [`unknown_ids`](Self::unknown_ids).
    pub fn unknown_ids(mut self, unknown_ids: UnknownIds) -> Self {
        self.unknown_ids = unknown_ids;
        self
    }

    /// Sets [`log_level`](Self::log_level).
    pub fn log_level(mut self, level: impl Into<String>) -> Self {
        self.log_level = Some(level.into());
        self
    }
}

/// The environment of one launch, in this order: `POP_PAYLOAD_TYPE`, `PAYLOAD` or the chunks,
/// `AGENDA_ID`, `CID`, `CUSTOMER_ID`, `PROGRESS_ID`, `OPERATION_NAME`, `OPERATION_ID`, `LOG_LEVEL` (if
/// set in `options`), `LAST_PROGRESS` (only when the request has one).
///
/// ```
/// use pop_core::runtime::LaunchRequest;
/// use pop_handler_protocol::env::{self, EnvOptions, handler_env};
///
/// let request = LaunchRequest {
///     agenda_id: "a-1".into(),
///     operation_name: "probe".into(),
///     payload: serde_json::json!({"file": "in.mp4"}),
///     ..LaunchRequest::default()
/// };
/// let vars = handler_env(&request, &EnvOptions::default()).unwrap();
/// assert!(vars.contains(&(env::PAYLOAD.to_string(), r#"{"file":"in.mp4"}"#.to_string())));
/// assert!(vars.contains(&(env::CID.to_string(), String::new())));
/// assert!(!vars.iter().any(|(k, _)| k == env::LAST_PROGRESS));
/// ```
pub fn handler_env(request: &LaunchRequest, options: &EnvOptions) -> Result<Vec<(String, String)>, ProtocolError> {
    let mut vars = encode_payload(&request.payload.to_string(), &options.payload)?;
    vars.reserve(9);
    let mut optional = |name: &str, value: &Option<String>| match (value, options.unknown_ids) {
        (Some(v), _) => vars.push((name.to_string(), v.clone())),
        (None, UnknownIds::Empty) => vars.push((name.to_string(), String::new())),
        (None, UnknownIds::Omit) => {}
    };
    optional(AGENDA_ID, &Some(request.agenda_id.clone()));
    optional(CID, &request.cid);
    optional(CUSTOMER_ID, &request.customer_id);
    optional(PROGRESS_ID, &request.agenda_progress_id);
    optional(OPERATION_NAME, &Some(request.operation_name.clone()));
    optional(OPERATION_ID, &request.operation_id);
    if let Some(level) = &options.log_level {
        vars.push((LOG_LEVEL.to_string(), level.clone()));
    }
    if let Some(last) = &request.last_progress {
        let text =
            serde_json::to_string(last).map_err(|source| ProtocolError::Encode { var: LAST_PROGRESS, source })?;
        vars.push((LAST_PROGRESS.to_string(), text));
    }
    Ok(vars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::PayloadMode;
    use pop_core::model::OperationProgress;
    use serde_json::json;

    fn full() -> LaunchRequest {
        LaunchRequest {
            agenda_id: "ag".into(),
            agenda_progress_id: Some("ap".into()),
            cid: Some("c".into()),
            customer_id: Some("cu".into()),
            insight_id: Some("i".into()),
            operation_name: "op".into(),
            operation_id: Some("oid".into()),
            operation_type: "t".into(),
            payload: json!({"a": 1}),
            last_progress: Some(OperationProgress { percent_complete: 40.0, ..Default::default() }),
        }
    }

    fn names(vars: &[(String, String)]) -> Vec<&str> {
        vars.iter().map(|(k, _)| k.as_str()).collect()
    }

    #[test]
    fn order_and_values() {
        let vars = handler_env(&full(), &EnvOptions::default().log_level("INFO")).unwrap();
        assert_eq!(
            names(&vars),
            [
                PAYLOAD_TYPE,
                PAYLOAD,
                AGENDA_ID,
                CID,
                CUSTOMER_ID,
                PROGRESS_ID,
                OPERATION_NAME,
                OPERATION_ID,
                LOG_LEVEL,
                LAST_PROGRESS
            ]
        );
        assert_eq!(vars[1].1, r#"{"a":1}"#);
        assert_eq!(vars[5].1, "ap");
        let last: OperationProgress = serde_json::from_str(&vars[9].1).unwrap();
        assert_eq!(last.percent_complete, 40.0);
        assert!(vars.iter().all(|(k, _)| is_protocol_var(k) || k == LOG_LEVEL));
    }

    #[test]
    fn unknown_ids_are_empty_or_left_out() {
        let bare = LaunchRequest { agenda_id: "ag".into(), operation_name: "op".into(), ..LaunchRequest::default() };
        let vars = handler_env(&bare, &EnvOptions::default()).unwrap();
        assert_eq!(
            names(&vars),
            [PAYLOAD_TYPE, PAYLOAD, AGENDA_ID, CID, CUSTOMER_ID, PROGRESS_ID, OPERATION_NAME, OPERATION_ID]
        );
        assert!(vars.iter().filter(|(k, _)| k == CID || k == OPERATION_ID).all(|(_, v)| v.is_empty()));
        assert_eq!(vars[1].1, "null");
        let vars = handler_env(&bare, &EnvOptions::default().unknown_ids(UnknownIds::Omit)).unwrap();
        assert_eq!(names(&vars), [PAYLOAD_TYPE, PAYLOAD, AGENDA_ID, OPERATION_NAME]);
    }

    #[test]
    fn compressed_payload_replaces_plain() {
        let options = EnvOptions::new(PayloadEncoding { mode: PayloadMode::Compressed, max_chunk_chars: 8 });
        let vars = handler_env(&full(), &options).unwrap();
        assert_eq!(vars[0], (PAYLOAD_TYPE.to_string(), PAYLOAD_TYPE_COMPRESSED.to_string()));
        assert!(!vars.iter().any(|(k, _)| k == PAYLOAD));
        assert!(vars.iter().any(|(k, _)| k == &compressed_payload_var(1)));
    }

    #[test]
    fn protocol_vars() {
        for name in [PAYLOAD, "POP_COMPRESSED_PAYLOAD_12", AGENDA_ID, LAST_PROGRESS, PROGRESS_ID] {
            assert!(is_protocol_var(name), "{name}");
        }
        for name in [LOG_LEVEL, "PATH", "POP_COMPRESSED", "payload"] {
            assert!(!is_protocol_var(name), "{name}");
        }
    }
}
