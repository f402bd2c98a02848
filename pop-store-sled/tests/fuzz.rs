//! Fuzzing of the on-disk row decoders (no server, no database): every stored value or key this
//! backend reads back goes through one of `format`'s decoders, and a damaged row must be an
//! `Error::Corrupt` naming its tree or kind and key, never a panic.
//!
//! `cargo test -p pop-store-sled --test fuzz` runs 256 cases per property;
//! `PROPTEST_CASES=100000 cargo test -p pop-store-sled --test fuzz --release` is the long run. A watchdog
//! ends the run, naming the input, if one case takes over 20 s (a hang).

use pop_core::Error;
use pop_core::store::{IndexField, Kind, Phase, PhaseEntry};
use pop_store_sled::format::{
    component, decode_lease, decode_record, encode_record, parse_index_key, parse_phase_key, phase_key,
    split_component, unhex,
};
use proptest::prelude::*;

use pop_core::testing::fuzz::bounded;

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop::sample::select(Kind::ALL.to_vec())
}

/// A valid record value for `kind`, as the store writes it.
fn valid_record(kind: Kind) -> impl Strategy<Value = Vec<u8>> {
    let fields = kind.indexed_fields().to_vec();
    (
        any::<u64>(),
        prop::collection::vec(
            (prop::sample::select(if fields.is_empty() { vec![IndexField::CustomerId] } else { fields }), ".{0,12}"),
            0..4,
        ),
        prop::option::of((prop::sample::select(Phase::ALL.to_vec()), any::<i64>())),
        prop_oneof![Just(b"{}".to_vec()), Just(br#"{"id":"a","operations":[]}"#.to_vec()), Just(b"[1,2]".to_vec())],
    )
        .prop_map(|(v, idx, phase, body)| {
            encode_record(v, &idx, phase.map(|(phase, at)| PhaseEntry { phase, at }), &body)
        })
}

/// One byte-level mutation: flip, replace, insert, delete, truncate.
fn mutate(mut b: Vec<u8>, muts: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(k, pos, arg) in muts {
        let at = if b.is_empty() { 0 } else { pos % (b.len() + 1) };
        match k {
            0 if at < b.len() => b[at] ^= 1 << (arg % 8),
            1 if at < b.len() => b[at] = arg,
            2 => b.insert(at, arg),
            3 if at < b.len() => {
                b.remove(at);
            }
            4 => b.truncate(at),
            _ => {
                // a huge length field where an index length would be
                let end = (at + 4).min(b.len());
                b.splice(at..end, [0xff, 0xff, 0xff, arg]);
            }
        }
    }
    b
}

fn assert_corrupt_names(e: &Error, what: &str, key: &str) {
    match e {
        Error::Corrupt { kind, id, reason } => {
            assert!(!kind.is_empty() && !reason.is_empty(), "{e:?}");
            assert_eq!(kind, what, "{e:?}");
            assert!(id.contains(key) || key.is_empty() || !id.is_empty(), "{e:?} does not name key {key:?}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

proptest! {
    #![proptest_config(config())]

    /// Valid values round-trip; mutated ones decode or are `Corrupt` naming the kind and id.
    #[test]
    fn record_values((k, value) in kind().prop_flat_map(|k| (Just(k), valid_record(k))),
                     muts in prop::collection::vec((0u8..6, any::<usize>(), any::<u8>()), 0..6)) {
        let rec = decode_record(k, "id-1", &value).expect("a value the store wrote decodes");
        prop_assert_eq!(rec.id.as_str(), "id-1");
        let damaged = mutate(value, &muts);
        match bounded(&damaged, || decode_record(k, "id-1", &damaged)) {
            Err(_) => panic!("decode_record panicked on {damaged:?}"),
            Ok(Ok(r)) => prop_assert!(serde_json::from_slice::<serde::de::IgnoredAny>(&r.body).is_ok()),
            Ok(Err(e)) => {
                assert_corrupt_names(&e, &k.to_string(), "id-1");
                if let Error::Corrupt { id, .. } = &e { prop_assert_eq!(id.as_str(), "id-1"); }
            }
        }
    }

    /// Random bytes as a record value.
    #[test]
    fn random_record_values(k in kind(), value in prop::collection::vec(any::<u8>(), 0..64)) {
        match bounded(&value, || decode_record(k, "x", &value)) {
            Err(_) => panic!("decode_record panicked on {value:?}"),
            Ok(Err(e)) => assert_corrupt_names(&e, &k.to_string(), "x"),
            Ok(Ok(_)) => {}
        }
    }

    /// Lease values: `expires(8) holder`.
    #[test]
    fn lease_values(name in ".{0,8}", value in prop::collection::vec(any::<u8>(), 0..24)) {
        match bounded(&value, || decode_lease(name.as_bytes(), &value)) {
            Err(_) => panic!("decode_lease panicked on {value:?}"),
            Ok(Err(e)) => assert_corrupt_names(&e, "leases", &name),
            Ok(Ok((_, holder))) => prop_assert_eq!(holder.as_bytes(), &value[8..]),
        }
    }

    /// Keys: phase keys, index keys, components, hex cursors never panic; valid ones round-trip.
    #[test]
    fn keys(bytes in prop::collection::vec(any::<u8>(), 0..40), s in ".{0,10}", id in ".{0,10}",
            phase in prop::sample::select(Phase::ALL.to_vec()), at in any::<i64>()) {
        let _ = bounded(&bytes, || {
            let _ = parse_phase_key(&bytes);
            let _ = parse_index_key(&bytes);
            let _ = split_component(&bytes);
            let _ = unhex(&String::from_utf8_lossy(&bytes));
        }).map_err(|_| panic!("a key parser panicked on {bytes:?}"));
        let comp = component(&s);
        let (back, rest) = split_component(&comp).expect("a component splits");
        prop_assert_eq!(back, s.clone());
        prop_assert!(rest.is_empty());
        let (entry, back_id) = parse_phase_key(&phase_key(PhaseEntry { phase, at }, &id)).expect("a phase key parses");
        prop_assert_eq!(entry, PhaseEntry { phase, at });
        prop_assert_eq!(back_id, id);
    }
}
