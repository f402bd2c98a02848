//! The payload part of the handler protocol: `PAYLOAD`, or zlib+base64 `POP_COMPRESSED_PAYLOAD_n` chunks.
//!
//! Small payloads travel as `PAYLOAD=<json>` with `POP_PAYLOAD_TYPE=envVar`. Above a size threshold the
//! JSON is zlib-deflated, base64-encoded (standard alphabet, padded) and split into chunks of at most
//! `chunk_size` characters named `POP_COMPRESSED_PAYLOAD_0`, `_1`, ... with
//! `POP_PAYLOAD_TYPE=compressedEnvVar`; a reader concatenates the chunks from 0 until the first missing
//! one, decodes and inflates. This is the original POP's format, so its handlers can read ours.

use crate::error::ProcessError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use std::io::{Read, Write};

/// The uncompressed payload variable.
pub const PAYLOAD: &str = "PAYLOAD";
/// Says which form the payload has: [`TYPE_ENV_VAR`] or [`TYPE_COMPRESSED`].
pub const PAYLOAD_TYPE: &str = "POP_PAYLOAD_TYPE";
/// `POP_PAYLOAD_TYPE` of the plain form.
pub const TYPE_ENV_VAR: &str = "envVar";
/// `POP_PAYLOAD_TYPE` of the compressed form.
pub const TYPE_COMPRESSED: &str = "compressedEnvVar";
/// The prefix of the compressed chunks (`POP_COMPRESSED_PAYLOAD_0..N`).
pub const COMPRESSED_PREFIX: &str = "POP_COMPRESSED_PAYLOAD_";

/// The name of compressed chunk `index`.
pub fn chunk_var(index: usize) -> String {
    format!("{COMPRESSED_PREFIX}{index}")
}

/// The environment variables that carry `json`: plain when `json.len() <= threshold`, else compressed in
/// chunks of at most `chunk_size` characters.
pub fn encode(json: &str, threshold: usize, chunk_size: usize) -> Result<Vec<(String, String)>, ProcessError> {
    if json.len() <= threshold {
        return Ok(vec![(PAYLOAD_TYPE.into(), TYPE_ENV_VAR.into()), (PAYLOAD.into(), json.into())]);
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(json.as_bytes())
        .and_then(|_| encoder.flush())
        .map_err(|e| ProcessError::Payload(format!("compressing {} bytes: {e}", json.len())))?;
    let compressed =
        encoder.finish().map_err(|e| ProcessError::Payload(format!("compressing {} bytes: {e}", json.len())))?;
    let text = STANDARD.encode(compressed);
    let chunk_size = chunk_size.max(1);
    let mut vars = vec![(PAYLOAD_TYPE.to_string(), TYPE_COMPRESSED.to_string())];
    // base64 is ASCII: byte offsets are character offsets.
    for (i, start) in (0..text.len()).step_by(chunk_size).enumerate() {
        let end = (start + chunk_size).min(text.len());
        vars.push((chunk_var(i), text[start..end].to_string()));
    }
    Ok(vars)
}

/// Reads the payload JSON text from variables looked up with `get` (`std::env::var` in a handler).
/// A missing `POP_PAYLOAD_TYPE` means the plain form.
pub fn decode(get: impl Fn(&str) -> Option<String>) -> Result<String, ProcessError> {
    match get(PAYLOAD_TYPE).as_deref() {
        None | Some("") | Some(TYPE_ENV_VAR) => get(PAYLOAD).ok_or_else(|| {
            ProcessError::Payload(format!("{PAYLOAD} is not set (is this program running as a POP handler?)"))
        }),
        Some(TYPE_COMPRESSED) => {
            let mut text = String::new();
            let mut index = 0;
            while let Some(part) = get(&chunk_var(index)) {
                text.push_str(&part);
                index += 1;
            }
            if index == 0 {
                return Err(ProcessError::Payload(format!(
                    "{PAYLOAD_TYPE}={TYPE_COMPRESSED} but {} is not set",
                    chunk_var(0)
                )));
            }
            let compressed = STANDARD.decode(text.trim()).map_err(|e| {
                ProcessError::Payload(format!("{COMPRESSED_PREFIX}0..{}: not valid base64: {e}", index - 1))
            })?;
            let mut json = String::new();
            ZlibDecoder::new(compressed.as_slice()).read_to_string(&mut json).map_err(|e| {
                ProcessError::Payload(format!("{COMPRESSED_PREFIX}0..{}: not valid zlib data: {e}", index - 1))
            })?;
            Ok(json)
        }
        Some(other) => Err(ProcessError::Payload(format!(
            "{PAYLOAD_TYPE}={other:?} is not a known payload form (expected {TYPE_ENV_VAR} or {TYPE_COMPRESSED})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn roundtrip(json: &str, threshold: usize, chunk: usize) -> (Vec<(String, String)>, String) {
        let vars = encode(json, threshold, chunk).unwrap();
        let map: HashMap<String, String> = vars.iter().cloned().collect();
        let back = decode(|k| map.get(k).cloned()).unwrap();
        (vars, back)
    }

    #[test]
    fn plain_below_threshold() {
        let (vars, back) = roundtrip(r#"{"a":1}"#, 100, 10);
        assert_eq!(vars[0], (PAYLOAD_TYPE.to_string(), TYPE_ENV_VAR.to_string()));
        assert_eq!(back, r#"{"a":1}"#);
    }

    #[test]
    fn compressed_chunks_above_threshold() {
        let json: String = (0..5000).map(|i| format!("{{\"k{i}\":{}}},", i * 7919 % 1000)).collect();
        let (vars, back) = roundtrip(&json, 10, 100);
        assert_eq!(vars[0].1, TYPE_COMPRESSED);
        assert!(vars.len() > 3, "several chunks");
        assert!(vars.iter().skip(1).all(|(k, v)| k.starts_with(COMPRESSED_PREFIX) && v.len() <= 100));
        assert!(!vars.iter().any(|(k, _)| k == PAYLOAD));
        assert_eq!(back, json);
    }

    #[test]
    fn decode_errors_name_the_variable() {
        let e = decode(|_| None).unwrap_err().to_string();
        assert!(e.contains("PAYLOAD is not set"), "{e}");
        let e = decode(|k| (k == PAYLOAD_TYPE).then(|| TYPE_COMPRESSED.to_string())).unwrap_err().to_string();
        assert!(e.contains("POP_COMPRESSED_PAYLOAD_0"), "{e}");
        let e = decode(|k| match k {
            PAYLOAD_TYPE => Some(TYPE_COMPRESSED.into()),
            "POP_COMPRESSED_PAYLOAD_0" => Some("!!!".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("base64"), "{e}");
        let e = decode(|k| (k == PAYLOAD_TYPE).then(|| "s3".to_string())).unwrap_err().to_string();
        assert!(e.contains("\"s3\""), "{e}");
    }
}
