//! The handler's side of the input: everything the runtime passed, decoded from the environment.

use crate::env;
use crate::error::ProtocolError;
use crate::payload::decode_payload;
use pop_core::model::{OperationProgress, Params};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Everything a runtime passes to a handler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HandlerInput {
    /// The operation's resolved payload (decoded from `PAYLOAD` or the compressed chunks).
    pub payload: Value,
    /// `AGENDA_ID`.
    pub agenda_id: String,
    /// `CID` (empty when unknown).
    pub cid: String,
    /// `CUSTOMER_ID` (empty when unknown).
    pub customer_id: String,
    /// `PROGRESS_ID`: the agenda progress's id (empty when unknown).
    pub progress_id: String,
    /// `OPERATION_NAME`.
    pub operation_name: String,
    /// `OPERATION_ID` (empty when unknown).
    pub operation_id: String,
    /// `LAST_PROGRESS`: the operation's progress from an earlier attempt, on a re-run.
    pub last_progress: Option<OperationProgress>,
}

impl HandlerInput {
    /// Reads the input from this process's environment.
    pub fn from_env() -> Result<Self, ProtocolError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the input through a lookup function (for tests, or a handler that got its variables
    /// elsewhere, such as a Pod spec's `env`).
    ///
    /// ```
    /// use pop_handler_protocol::HandlerInput;
    /// let input = HandlerInput::from_lookup(|k| match k {
    ///     "PAYLOAD" => Some(r#"{"file": "in.mp4"}"#.to_string()),
    ///     "AGENDA_ID" => Some("a-1".to_string()),
    ///     _ => None,
    /// }).unwrap();
    /// assert_eq!(input.payload["file"], "in.mp4");
    /// assert_eq!(input.agenda_id, "a-1");
    /// assert_eq!(input.cid, "");
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ProtocolError> {
        let text = decode_payload(&get)?;
        let payload =
            serde_json::from_str(&text).map_err(|source| ProtocolError::BadJson { var: env::PAYLOAD, source })?;
        let last_progress = match get(env::LAST_PROGRESS).filter(|s| !s.trim().is_empty()) {
            None => None,
            Some(text) => Some(
                serde_json::from_str(&text)
                    .map_err(|source| ProtocolError::BadJson { var: env::LAST_PROGRESS, source })?,
            ),
        };
        let var = |k: &str| get(k).unwrap_or_default();
        Ok(Self {
            payload,
            agenda_id: var(env::AGENDA_ID),
            cid: var(env::CID),
            customer_id: var(env::CUSTOMER_ID),
            progress_id: var(env::PROGRESS_ID),
            operation_name: var(env::OPERATION_NAME),
            operation_id: var(env::OPERATION_ID),
            last_progress,
        })
    }

    /// The payload as a typed value.
    pub fn payload_as<T: DeserializeOwned>(&self) -> Result<T, ProtocolError> {
        serde_json::from_value(self.payload.clone())
            .map_err(|source| ProtocolError::BadJson { var: env::PAYLOAD, source })
    }

    /// The resume state an earlier attempt reported (`LAST_PROGRESS.params`).
    pub fn resume_params(&self) -> Option<&Params> {
        self.last_progress.as_ref().and_then(|p| p.params.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{EnvOptions, handler_env};
    use crate::payload::{PayloadEncoding, PayloadMode};
    use pop_core::runtime::LaunchRequest;
    use std::collections::HashMap;

    #[test]
    fn input_from_plain_and_compressed() {
        for mode in [PayloadMode::EnvVar, PayloadMode::Compressed] {
            let request = LaunchRequest {
                agenda_id: "a1".into(),
                operation_name: "op".into(),
                agenda_progress_id: Some("p1".into()),
                payload: serde_json::json!({"actions": [], "big": "x".repeat(1000)}),
                last_progress: Some(
                    serde_json::from_str(r#"{"params":{"jobInfo":{"jobId":"123456-987654"}}}"#).unwrap(),
                ),
                ..LaunchRequest::default()
            };
            let options = EnvOptions::new(PayloadEncoding { mode, max_chunk_chars: 64 });
            let vars: HashMap<String, String> = handler_env(&request, &options).unwrap().into_iter().collect();
            let input = HandlerInput::from_lookup(|k| vars.get(k).cloned()).unwrap();
            assert_eq!(input.payload, request.payload);
            assert_eq!(input.agenda_id, "a1");
            assert_eq!(input.operation_name, "op");
            assert_eq!(input.progress_id, "p1");
            assert_eq!(input.cid, "");
            assert_eq!(input.resume_params().unwrap()["jobInfo"]["jobId"], "123456-987654");
            assert_eq!(input.payload_as::<HashMap<String, Value>>().unwrap().len(), 2);
        }
    }

    #[test]
    fn bad_input_names_the_variable() {
        let e = HandlerInput::from_lookup(|k| (k == "PAYLOAD").then(|| "{".to_string())).unwrap_err();
        assert!(e.to_string().contains("PAYLOAD"), "{e}");
        let e = HandlerInput::from_lookup(|k| match k {
            "PAYLOAD" => Some("{}".into()),
            "LAST_PROGRESS" => Some("[".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("LAST_PROGRESS"), "{e}");
        let input = HandlerInput::from_lookup(|k| match k {
            "PAYLOAD" => Some("[1]".into()),
            "LAST_PROGRESS" => Some("  ".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(input.last_progress, None);
        assert!(input.payload_as::<String>().unwrap_err().to_string().contains("PAYLOAD"));
    }
}
