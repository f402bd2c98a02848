//! The payload's two forms: `PAYLOAD=<json>` with `POP_PAYLOAD_TYPE=envVar`, or — above a size
//! threshold — `POP_PAYLOAD_TYPE=compressedEnvVar` and the JSON zlib-deflated, base64-encoded (standard
//! alphabet, padded) and split into chunks `POP_COMPRESSED_PAYLOAD_0`, `_1`, ... of at most
//! [`PayloadEncoding::max_chunk_chars`] characters. A reader concatenates the chunks from 0 up to the
//! first missing one, decodes and inflates. This is the original POP's format (its
//! `payload.compression.maxSegmentSize` is the chunk size), so its handlers read ours and ours read its.

use crate::env::{PAYLOAD, PAYLOAD_TYPE, PAYLOAD_TYPE_COMPRESSED, PAYLOAD_TYPE_PLAIN, compressed_payload_var};
use crate::error::ProtocolError;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;
use std::io::{Read, Write};

/// Payloads whose JSON is longer than this many bytes are compressed under [`PayloadMode::default`]
/// (the local-process runtime's default; keep it below the kernel's 128 KiB limit on one environment
/// string).
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 100_000;
/// The original's `payload.compression.maxSegmentSize`: at most this many characters per chunk.
pub const DEFAULT_MAX_CHUNK_CHARS: usize = 100_000;

/// Which form the payload takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// Always `PAYLOAD` (`POP_PAYLOAD_TYPE=envVar`).
    EnvVar,
    /// Always zlib + base64 chunks `POP_COMPRESSED_PAYLOAD_0..N` (`POP_PAYLOAD_TYPE=compressedEnvVar`).
    Compressed,
    /// `PAYLOAD` up to this many bytes of JSON, compressed above.
    Auto {
        /// The largest payload passed uncompressed, in bytes.
        threshold: usize,
    },
}

impl Default for PayloadMode {
    /// `Auto` at [`DEFAULT_COMPRESS_THRESHOLD`].
    fn default() -> Self {
        Self::Auto { threshold: DEFAULT_COMPRESS_THRESHOLD }
    }
}

impl PayloadMode {
    /// Whether a payload of `bytes` bytes of JSON is compressed.
    pub fn compresses(&self, bytes: usize) -> bool {
        match *self {
            Self::EnvVar => false,
            Self::Compressed => true,
            Self::Auto { threshold } => bytes > threshold,
        }
    }
}

/// How a payload is put into the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadEncoding {
    /// Plain, compressed, or by size.
    pub mode: PayloadMode,
    /// The longest chunk, in characters (at least 1 is used).
    pub max_chunk_chars: usize,
}

impl Default for PayloadEncoding {
    fn default() -> Self {
        Self { mode: PayloadMode::default(), max_chunk_chars: DEFAULT_MAX_CHUNK_CHARS }
    }
}

/// The variables that carry `json`, `POP_PAYLOAD_TYPE` first.
///
/// ```
/// use pop_handler_protocol::payload::{PayloadEncoding, PayloadMode, decode_payload, encode_payload};
/// let big = "x".repeat(500);
/// let vars = encode_payload(&format!("{{\"s\":\"{big}\"}}"),
///     &PayloadEncoding { mode: PayloadMode::Auto { threshold: 100 }, max_chunk_chars: 16 }).unwrap();
/// assert_eq!(vars[0].1, "compressedEnvVar");
/// let back = decode_payload(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
/// assert_eq!(back, format!("{{\"s\":\"{big}\"}}"));
/// ```
pub fn encode_payload(json: &str, encoding: &PayloadEncoding) -> Result<Vec<(String, String)>, ProtocolError> {
    if !encoding.mode.compresses(json.len()) {
        return Ok(vec![(PAYLOAD_TYPE.into(), PAYLOAD_TYPE_PLAIN.into()), (PAYLOAD.into(), json.into())]);
    }
    let compress_error = |source| ProtocolError::Compress { bytes: json.len(), source };
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(json.as_bytes()).map_err(compress_error)?;
    let text = STANDARD.encode(encoder.finish().map_err(compress_error)?);
    let size = encoding.max_chunk_chars.max(1);
    let mut vars = Vec::with_capacity(text.len() / size + 2);
    vars.push((PAYLOAD_TYPE.to_string(), PAYLOAD_TYPE_COMPRESSED.to_string()));
    // base64 is ASCII: byte chunks are character chunks.
    for (i, chunk) in text.as_bytes().chunks(size).enumerate() {
        vars.push((compressed_payload_var(i), String::from_utf8_lossy(chunk).into_owned()));
    }
    if text.is_empty() {
        vars.push((compressed_payload_var(0), String::new()));
    }
    Ok(vars)
}

/// Reads the payload's JSON text from variables looked up with `get` (`std::env::var` in a handler).
/// A missing or empty `POP_PAYLOAD_TYPE` means the plain form.
pub fn decode_payload(get: impl Fn(&str) -> Option<String>) -> Result<String, ProtocolError> {
    match get(PAYLOAD_TYPE).as_deref() {
        None | Some("") | Some(PAYLOAD_TYPE_PLAIN) => get(PAYLOAD).ok_or(ProtocolError::PayloadMissing),
        Some(PAYLOAD_TYPE_COMPRESSED) => {
            let mut text = String::new();
            let mut count = 0;
            while let Some(part) = get(&compressed_payload_var(count)) {
                text.push_str(&part);
                count += 1;
            }
            if count == 0 {
                return Err(ProtocolError::ChunksMissing);
            }
            let last = count - 1;
            let compressed = STANDARD.decode(text.trim()).map_err(|source| ProtocolError::Base64 { last, source })?;
            let mut json = String::new();
            ZlibDecoder::new(compressed.as_slice())
                .read_to_string(&mut json)
                .map_err(|source| ProtocolError::Zlib { last, source })?;
            Ok(json)
        }
        Some(other) => Err(ProtocolError::UnknownPayloadType { found: other.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::COMPRESSED_PAYLOAD_PREFIX;
    use std::collections::HashMap;

    fn roundtrip(json: &str, mode: PayloadMode, chunk: usize) -> (Vec<(String, String)>, String) {
        let vars = encode_payload(json, &PayloadEncoding { mode, max_chunk_chars: chunk }).unwrap();
        let map: HashMap<String, String> = vars.iter().cloned().collect();
        let back = decode_payload(|k| map.get(k).cloned()).unwrap();
        (vars, back)
    }

    #[test]
    fn plain_up_to_the_threshold() {
        let (vars, back) = roundtrip(r#"{"a":1}"#, PayloadMode::Auto { threshold: 7 }, 10);
        assert_eq!(vars, [(PAYLOAD_TYPE.into(), PAYLOAD_TYPE_PLAIN.into()), (PAYLOAD.into(), r#"{"a":1}"#.into())]);
        assert_eq!(back, r#"{"a":1}"#);
        let (vars, _) = roundtrip(r#"{"a":1}"#, PayloadMode::Auto { threshold: 6 }, 10);
        assert_eq!(vars[0].1, PAYLOAD_TYPE_COMPRESSED);
        let (vars, _) = roundtrip(&"1".repeat(1000), PayloadMode::EnvVar, 10);
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn compressed_chunks_above_threshold() {
        let json: String = (0..5000).map(|i| format!("{{\"k{i}\":{}}},", i * 7919 % 1000)).collect();
        let (vars, back) = roundtrip(&json, PayloadMode::Auto { threshold: 10 }, 100);
        assert_eq!(vars[0].1, PAYLOAD_TYPE_COMPRESSED);
        assert!(vars.len() > 3, "several chunks");
        assert!(vars.iter().skip(1).all(|(k, v)| k.starts_with(COMPRESSED_PAYLOAD_PREFIX) && v.len() <= 100));
        assert_eq!(vars[1].0, "POP_COMPRESSED_PAYLOAD_0");
        assert!(!vars.iter().any(|(k, _)| k == PAYLOAD));
        assert_eq!(back, json);
    }

    #[test]
    fn the_format_is_zlib_then_standard_base64() {
        // A fixed input gives fixed chunks: handlers in the wild decode exactly this.
        let vars =
            encode_payload("{}", &PayloadEncoding { mode: PayloadMode::Compressed, max_chunk_chars: 4 }).unwrap();
        let text: String = vars.iter().skip(1).map(|(_, v)| v.as_str()).collect();
        assert_eq!(text, "eJyrrgUAAXUA+Q=="); // python3: base64.b64encode(zlib.compress(b"{}"))
        assert_eq!(vars[1], ("POP_COMPRESSED_PAYLOAD_0".to_string(), "eJyr".to_string()));
    }

    #[test]
    fn decode_errors_name_the_variable() {
        let e = decode_payload(|_| None).unwrap_err().to_string();
        assert!(e.contains("PAYLOAD is not set"), "{e}");
        let e = decode_payload(|k| (k == PAYLOAD_TYPE).then(|| PAYLOAD_TYPE_COMPRESSED.to_string()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("POP_COMPRESSED_PAYLOAD_0"), "{e}");
        let e = decode_payload(|k| match k {
            PAYLOAD_TYPE => Some(PAYLOAD_TYPE_COMPRESSED.into()),
            "POP_COMPRESSED_PAYLOAD_0" => Some("!!!".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("base64") && e.contains("POP_COMPRESSED_PAYLOAD_0..0"), "{e}");
        let e = decode_payload(|k| match k {
            PAYLOAD_TYPE => Some(PAYLOAD_TYPE_COMPRESSED.into()),
            "POP_COMPRESSED_PAYLOAD_0" => Some("aGVsbG8=".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("zlib"), "{e}");
        let e = decode_payload(|k| (k == PAYLOAD_TYPE).then(|| "s3".to_string())).unwrap_err().to_string();
        assert!(e.contains("\"s3\""), "{e}");
        let e: pop_core::Error = decode_payload(|_| None).unwrap_err().into();
        assert!(matches!(e, pop_core::Error::Invalid(_)));
    }
}
