//! Properties of the protocol: every payload survives encode → decode whatever its size around the
//! compression threshold and the chunk size; no line, however odd, makes the output side panic; the
//! framer never yields a line over its bound and loses nothing under it, however the bytes arrive.

use pop_core::runtime::{LaunchRequest, LogStream, RuntimeEvent};
use pop_handler_protocol::env::{self, EnvOptions, handler_env};
use pop_handler_protocol::framing::{Frame, LineFramer};
use pop_handler_protocol::output::{OutputLimits, OutputParser, QUOTED_START_BYTES, parse_line};
use pop_handler_protocol::payload::{DEFAULT_COMPRESS_THRESHOLD, PayloadEncoding, PayloadMode};
use pop_handler_protocol::{HandlerInput, decode_payload, encode_payload};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::HashMap;

/// A JSON string payload of exactly `size` bytes of JSON text, built from `seed` (non-ASCII included).
fn payload_of_size(size: usize, seed: &str) -> Value {
    // `{"d":"..."}` is 8 bytes around the text; fill with the seed's characters, then ASCII to the byte.
    let mut text = String::new();
    let budget = size.saturating_sub(8);
    for c in seed.chars().cycle() {
        let escaped = serde_json::to_string(&c.to_string()).unwrap_or_default();
        if c == '"' || c == '\\' || escaped.len() != c.len_utf8() + 2 || text.len() + c.len_utf8() > budget {
            break;
        }
        text.push(c);
    }
    while text.len() < budget {
        text.push('x');
    }
    let v = json!({"d": text});
    assert_eq!(v.to_string().len(), size.max(8), "payload_of_size");
    v
}

fn lookup(vars: &[(String, String)]) -> impl Fn(&str) -> Option<String> + '_ {
    let map: HashMap<&str, &str> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    move |k| map.get(k).map(|v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Every size from 8 below to 8 above the threshold (the default one and small ones), any chunk size:
    /// plain exactly up to the threshold, the handler reads back exactly what was sent.
    #[test]
    fn payload_round_trips_around_the_threshold(
        threshold in prop_oneof![Just(DEFAULT_COMPRESS_THRESHOLD), 8usize..4096],
        delta in -8i64..=8,
        chunk in prop_oneof![Just(100_000usize), 1usize..300],
        seed in "\\PC{1,16}",
    ) {
        let size = (threshold as i64 + delta).max(8) as usize;
        let payload = payload_of_size(size, &seed);
        let request = LaunchRequest { agenda_id: "a".into(), operation_name: "o".into(), payload: payload.clone(), ..LaunchRequest::default() };
        let options = EnvOptions::new(PayloadEncoding { mode: PayloadMode::Auto { threshold }, max_chunk_chars: chunk });
        let vars = handler_env(&request, &options).unwrap();
        let compressed = vars[0].1 == env::PAYLOAD_TYPE_COMPRESSED;
        prop_assert_eq!(compressed, size > threshold, "size {} threshold {}", size, threshold);
        prop_assert_eq!(vars.iter().any(|(k, _)| k == env::PAYLOAD), !compressed);
        prop_assert!(vars.iter().filter(|(k, _)| k.starts_with(env::COMPRESSED_PAYLOAD_PREFIX)).all(|(_, v)| v.len() <= chunk));
        let input = HandlerInput::from_lookup(lookup(&vars)).unwrap();
        prop_assert_eq!(input.payload, payload);
    }

    /// Any text at all, in either mode.
    #[test]
    fn any_text_round_trips(text in "\\PC{0,600}", compressed in any::<bool>(), chunk in 1usize..64) {
        let mode = if compressed { PayloadMode::Compressed } else { PayloadMode::EnvVar };
        let vars = encode_payload(&text, &PayloadEncoding { mode, max_chunk_chars: chunk }).unwrap();
        prop_assert_eq!(decode_payload(lookup(&vars)).unwrap(), text);
    }

    /// Arbitrary lines never panic the parser, on either stream, with tiny or default bounds; stderr is
    /// always log; a line is never reported longer than the bound.
    #[test]
    fn arbitrary_lines_never_panic(
        lines in proptest::collection::vec(
            prop_oneof![
                "\\PC{0,80}",
                "POP_(PROGRESS|RESULT)[ \t]?\\PC{0,40}",
                "POP_PROGRESS \\{\"percentComplete\": -?[0-9]{1,4}(\\.[0-9])?\\}",
                "POP_RESULT [\\[\\]{}\"0-9a-z:,]{0,30}",
            ],
            0..30,
        ),
        small in any::<bool>(),
    ) {
        let limits = if small {
            OutputLimits { max_line_bytes: 16, max_result_bytes: 4, tail_lines: 2, tail_line_bytes: 3 }
        } else {
            OutputLimits::default()
        };
        let mut parser = OutputParser::new(limits);
        for (i, line) in lines.iter().enumerate() {
            let _ = parse_line(line, limits.max_result_bytes);
            let stream = if i % 3 == 0 { LogStream::Stderr } else { LogStream::Stdout };
            let parsed = parser.line(stream, line.clone());
            if stream == LogStream::Stderr {
                prop_assert!(matches!(parsed.event, RuntimeEvent::Log(LogStream::Stderr, _)));
            }
            // A log event is the line itself or a short note about it, never more.
            if let RuntimeEvent::Log(_, l) = &parsed.event {
                prop_assert!(l.len() <= line.len().max(QUOTED_START_BYTES + 200), "{l:?} for {line:?}");
            }
            if line.len() > limits.max_line_bytes {
                prop_assert!(parser.violation().is_some());
            }
        }
        prop_assert!(parser.tail().len() <= limits.tail_lines);
        let _ = parser.tail().to_json();
    }

    /// However the bytes are chunked, the framer gives every line under the bound back unchanged and
    /// never holds more than the bound.
    #[test]
    fn framer_is_chunking_independent(
        data in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), any::<u8>(), b'a'..=b'e'], 0..400),
        max in 1usize..40,
        chunks in proptest::collection::vec(1usize..50, 1..20),
    ) {
        let mut whole = LineFramer::new(max);
        let mut expected = Vec::new();
        whole.push(&data, &mut expected);
        whole.finish(&mut expected);

        let mut framer = LineFramer::new(max);
        let mut got = Vec::new();
        let mut rest = data.as_slice();
        for size in chunks.iter().cycle() {
            if rest.is_empty() { break; }
            let (head, tail) = rest.split_at((*size).min(rest.len()));
            framer.push(head, &mut got);
            rest = tail;
        }
        framer.finish(&mut got);
        prop_assert_eq!(&got, &expected);

        let mut lines = Vec::new();
        for frame in &got {
            match frame {
                Frame::Line(l) => { prop_assert!(l.len() <= max * 3); lines.push(l.clone()); }
                Frame::TooLong(start) => prop_assert_eq!(start.len(), max),
            }
        }
        // Without over-long lines, framing is splitting on \n (dropping one \r before it).
        if !got.iter().any(|f| matches!(f, Frame::TooLong(_))) {
            let text = data.as_slice();
            let mut want: Vec<String> = text.split(|b| *b == b'\n').map(|l| {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                String::from_utf8_lossy(l).into_owned()
            }).collect();
            if data.last().is_none_or(|b| *b == b'\n') { want.pop(); }
            // A last line that ended without \n keeps its \r.
            if let (Some(last), Some(b'\r')) = (want.last_mut(), data.last()) { last.push('\r'); }
            prop_assert_eq!(lines, want);
        }
    }
}

/// Every size from `reach` bytes below to `reach` above the default threshold, exhaustively (and around
/// a small threshold with one-character chunks): plain exactly up to the threshold, unchanged either way.
#[test]
fn every_size_around_the_threshold_round_trips() {
    for (threshold, chunk, reach) in
        [(DEFAULT_COMPRESS_THRESHOLD, 100_000, 24), (DEFAULT_COMPRESS_THRESHOLD, 977, 24), (100, 1, 64)]
    {
        let encoding = PayloadEncoding { mode: PayloadMode::Auto { threshold }, max_chunk_chars: chunk };
        for size in threshold - reach..=threshold + reach {
            let payload = payload_of_size(size, "aé€𝄞\u{7f}z");
            let json = payload.to_string();
            let vars = encode_payload(&json, &encoding).unwrap();
            assert_eq!(
                vars[0].1 == env::PAYLOAD_TYPE_COMPRESSED,
                size > threshold,
                "size {size}, threshold {threshold}"
            );
            assert_eq!(decode_payload(lookup(&vars)).unwrap(), json, "size {size}, threshold {threshold}");
        }
    }
}
