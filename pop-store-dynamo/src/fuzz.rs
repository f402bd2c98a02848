//! Fuzzing of the item decoders (no server): every item this backend reads back goes through
//! `DynamoStore::decode_record`, `phase::decode`, `DynamoQueue::lease_from` or a cursor decoder (the
//! phase listing's, the shard-merged listings', a single query's), and a
//! damaged item must be an `Error::Corrupt` naming its kind and id (a bad cursor: `Invalid` naming the
//! `cursor` field), never a panic.
//!
//! `cargo test -p pop-store-dynamo --lib fuzz` runs 256 cases per property;
//! `PROPTEST_CASES=100000 cargo test -p pop-store-dynamo --lib fuzz --release` is the long run.

use crate::codec::{Item, decode_cursor};
use crate::queue::DynamoQueue;
use crate::store::DynamoStore;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pop_core::Error;
use pop_core::store::{Kind, Phase};
use proptest::prelude::*;

use pop_core::testing::fuzz::bounded;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

/// Attribute names the decoders read, and a few they do not.
const NAMES: &[&str] = &[
    "pk",
    "id",
    "v",
    "b",
    "ph",
    "pt",
    "q",
    "i",
    "a",
    "r",
    "ep",
    "dl",
    "x_customerId",
    "x_linkId",
    "x_agendaId",
    "x_agendaProgressId",
    "x_resourcePoolId",
    "x_insightId",
    "x_title",
    "other",
];

/// Values of every attribute type, biased to ones that almost decode.
fn attribute() -> impl Strategy<Value = AttributeValue> {
    prop_oneof![
        3 => prop_oneof![
            ".{0,12}",
            Just("agenda#a-1".to_owned()),
            Just("agendaProgress#unfinished#3".to_owned()),
            Just("agendaProgress#finished".to_owned()),
            Just("7fffffffffffffff#id".to_owned()),
            Just("zzzzzzzzzzzzzzzz".to_owned()),
            Just("é".repeat(9)),
            Just(r#"{"insightId":"i","agendaId":"a","customerId":"c","priority":1,"added":5}"#.to_owned()),
        ].prop_map(AttributeValue::S),
        2 => prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            Just("1e400".to_owned()),
            Just("-0".to_owned()),
            Just("NaN".to_owned()),
            Just("99999999999999999999999999".to_owned()),
        ].prop_map(AttributeValue::N),
        2 => prop::collection::vec(any::<u8>(), 0..16).prop_map(|b| AttributeValue::B(Blob::new(b))),
        1 => Just(AttributeValue::B(Blob::new(b"{\"x\":1}".to_vec()))),
        1 => any::<bool>().prop_map(AttributeValue::Bool),
        1 => Just(AttributeValue::Null(true)),
        1 => prop::collection::vec(".{0,3}", 0..3).prop_map(AttributeValue::Ss),
        1 => Just(AttributeValue::L(vec![AttributeValue::S("x".into())])),
    ]
}

fn item() -> impl Strategy<Value = Item> {
    prop::collection::hash_map(prop::sample::select(NAMES.to_vec()).prop_map(str::to_owned), attribute(), 0..12)
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

fn phase() -> impl Strategy<Value = Phase> {
    prop::sample::select(Phase::ALL.to_vec())
}

fn assert_corrupt(e: &Error, kind: &str, item: &Item) {
    match e {
        Error::Corrupt { kind: k, id, reason } => {
            assert_eq!(k, kind, "{e:?} on {item:?}");
            assert!(!id.is_empty() && !reason.is_empty(), "{e:?} on {item:?}");
        }
        other => panic!("expected Corrupt, got {other:?} on {item:?}"),
    }
}

fn assert_cursor_problem(e: &Error, cursor: &str) {
    let problems = e.problem_list();
    assert!(!problems.is_empty(), "expected Invalid, got {e:?} for cursor {cursor:?}");
    for p in problems {
        assert_eq!(p.field.as_deref(), Some("cursor"), "{p:?}");
    }
}

proptest! {
    #![proptest_config(config())]

    /// Object items: decode or `Corrupt` naming the kind.
    #[test]
    fn object_items(k in kind(), it in item()) {
        match bounded(&it, || DynamoStore::decode_record(k, &it)) {
            Err(_) => panic!("decode_record panicked on {it:?}"),
            Ok(Ok(rec)) => prop_assert_eq!(rec.kind, k),
            Ok(Err(e)) => assert_corrupt(&e, k.as_str(), &it),
        }
    }

    /// Phase attributes.
    #[test]
    fn phase_attributes(k in kind(), it in item()) {
        match bounded(&it, || crate::phase::decode(k, "id-1", &it)) {
            Err(_) => panic!("phase::decode panicked on {it:?}"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert_corrupt(&e, k.as_str(), &it),
        }
    }

    /// Queue items.
    #[test]
    fn queue_items(it in item()) {
        match bounded(&it, || DynamoQueue::lease_from(&it)) {
            Err(_) => panic!("lease_from panicked on {it:?}"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => assert_corrupt(&e, "queueItem", &it),
        }
    }

    /// Page cursors: arbitrary text, and base64url of arbitrary or nearly right JSON.
    #[test]
    fn cursors(k in kind(), p in phase(), text in ".{0,40}", json in prop_oneof![
        ".{0,30}",
        Just(r#"{"k":"agendaProgress","p":"finished","s":["",null,"x"]}"#.to_owned()),
        Just(r#"{"k":"agendaProgress","p":"finished","s":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}"#.to_owned()),
        Just(r#"{"pk":"agenda#a","id":"a"}"#.to_owned()),
        Just(r#"{"pk":1}"#.to_owned()),
        Just(r#"{"l":"ins","s":["",null,{"a":"x","ri":"ins#2","ro":"k"}]}"#.to_owned()),
        Just(r#"{"l":"ins","s":[{"a":1},{},[]]}"#.to_owned()),
        Just(r#"{"l":7,"s":"x"}"#.to_owned()),
    ]) {
        let parts: Vec<String> = (0..3).map(|i| crate::shard::key("ins", i)).collect();
        for cursor in [text.clone(), URL_SAFE_NO_PAD.encode(json.as_bytes())] {
            match bounded(&cursor, || crate::phase::decode_cursor(k, p, &cursor)) {
                Err(_) => panic!("phase cursor decode panicked on {cursor:?}"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert_cursor_problem(&e, &cursor),
            }
            match bounded(&cursor, || crate::shard::decode_cursor("ins", &cursor, &["a", "ri", "ro"], "ri", &parts, "ready")) {
                Err(_) => panic!("shard cursor decode panicked on {cursor:?}"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert_cursor_problem(&e, &cursor),
            }
            match bounded(&cursor, || decode_cursor(&cursor, &["pk", "id"], ("pk", "agenda#a"), "agendas")) {
                Err(_) => panic!("cursor decode panicked on {cursor:?}"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => assert_cursor_problem(&e, &cursor),
            }
        }
    }
}
