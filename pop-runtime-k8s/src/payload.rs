//! Passing the payload to a handler in environment variables: `PAYLOAD`, or the original's compressed
//! form (zlib deflate → base64 → `POP_COMPRESSED_PAYLOAD_0..N` segments) with `POP_PAYLOAD_TYPE`.
//!
//! The process runtime has the same rules; backends do not depend on each other, so this crate has its
//! own copy, checked here by a round trip.

use crate::config::PayloadMode;
use base64::Engine;
use flate2::Compression;
use flate2::write::ZlibEncoder;
use std::io::Write;

/// `POP_PAYLOAD_TYPE` for an uncompressed payload.
pub const ENV_VAR: &str = "envVar";
/// `POP_PAYLOAD_TYPE` for a compressed payload.
pub const COMPRESSED_ENV_VAR: &str = "compressedEnvVar";
/// The prefix of compressed segments.
pub const SEGMENT_PREFIX: &str = "POP_COMPRESSED_PAYLOAD_";

/// The payload's environment variables, in order (`POP_PAYLOAD_TYPE` first).
pub fn payload_env(json: &str, mode: PayloadMode, max_segment_size: usize) -> std::io::Result<Vec<(String, String)>> {
    let compress = match mode {
        PayloadMode::EnvVar => false,
        PayloadMode::Compressed => true,
        PayloadMode::Auto { threshold } => json.len() > threshold,
    };
    if !compress {
        return Ok(vec![("POP_PAYLOAD_TYPE".into(), ENV_VAR.into()), ("PAYLOAD".into(), json.into())]);
    }
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(json.as_bytes())?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(encoder.finish()?);
    let size = max_segment_size.max(1);
    let mut env = vec![("POP_PAYLOAD_TYPE".to_string(), COMPRESSED_ENV_VAR.to_string())];
    // base64 is ASCII, so byte chunks are character chunks.
    for (i, chunk) in encoded.as_bytes().chunks(size).enumerate() {
        env.push((format!("{SEGMENT_PREFIX}{i}"), String::from_utf8_lossy(chunk).into_owned()));
    }
    if encoded.is_empty() {
        env.push((format!("{SEGMENT_PREFIX}0"), String::new()));
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    fn decode(env: &[(String, String)]) -> String {
        let joined: String =
            env.iter().filter(|(k, _)| k.starts_with(SEGMENT_PREFIX)).map(|(_, v)| v.as_str()).collect();
        let bytes = base64::engine::general_purpose::STANDARD.decode(joined).unwrap();
        let mut out = String::new();
        ZlibDecoder::new(bytes.as_slice()).read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn small_payloads_stay_plain() {
        let env = payload_env(r#"{"a":1}"#, PayloadMode::default(), 100_000).unwrap();
        assert_eq!(env[0], ("POP_PAYLOAD_TYPE".into(), "envVar".into()));
        assert_eq!(env[1], ("PAYLOAD".into(), r#"{"a":1}"#.into()));
    }

    #[test]
    fn large_payloads_are_compressed_in_segments_that_round_trip() {
        let big = serde_json::json!({"items": (0..5000).map(|i| format!("item-{i}-{}", i * 7919 % 1013)).collect::<Vec<_>>()})
            .to_string();
        let env = payload_env(&big, PayloadMode::Auto { threshold: 1024 }, 1000).unwrap();
        assert_eq!(env[0].1, COMPRESSED_ENV_VAR);
        assert!(env.len() > 2, "expected several segments, got {}", env.len());
        assert!(env.iter().skip(1).all(|(_, v)| v.len() <= 1000));
        assert_eq!(env[1].0, "POP_COMPRESSED_PAYLOAD_0");
        assert!(!env.iter().any(|(k, _)| k == "PAYLOAD"));
        assert_eq!(decode(&env), big);
    }

    #[test]
    fn forced_compression_of_a_tiny_payload() {
        let env = payload_env("{}", PayloadMode::Compressed, 100_000).unwrap();
        assert_eq!(env.len(), 2);
        assert_eq!(decode(&env), "{}");
    }
}
