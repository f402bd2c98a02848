//! [`FairState`]: the persisted state of `RoundRobin` and `Priority`.

use super::Ratio;
use super::keys::KeyIndex;
use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The persisted per-insight state of [`RoundRobin`](crate::RoundRobin) and
/// [`Priority`](crate::Priority): they share it, so an insight switched between them keeps its
/// rotation.
///
/// It holds the smallest and largest tags of backlogged customers, the sequence counter that orders
/// equal tags, and an entry per backlogged customer and per idle customer still ahead of the round:
/// at most one small entry per customer, independent of the number of ready agendas.
///
/// Stored as JSON (format version [`FairState::FORMAT`]):
///
/// ```json
/// {"v": 1, "virtualTime": [num, den], "roundEnd": [num, den], "seq": 17,
///  "used": {"<customer>": [used, weight, backlogged 0|1, seq]}}
/// ```
///
/// A document without `v` is the format earlier versions wrote (the same fields), and loads
/// unchanged; missing fields take their fresh values (`roundEnd` that of `virtualTime`), unknown
/// ones are ignored. A value of the wrong type or out of range (a zero denominator or weight, a
/// flag other than 0 or 1) and a version newer than this build's are errors, which the scheduling
/// traits report as a corrupt state naming the insight and the path of the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FairState {
    /// Smallest tag of a backlogged customer at the end of the previous call.
    pub(crate) virtual_time: Ratio,
    /// Largest tag of a backlogged customer at the end of the previous call: the back of the round.
    pub(crate) round_end: Ratio,
    /// Next value of the sequence that orders equal tags.
    pub(crate) seq: u64,
    /// Customer → its account.
    pub(crate) used: BTreeMap<String, Entry>,
    /// In memory only: the entries by customer key, for views with keys (ignored by equality,
    /// empty in a copy).
    pub(crate) keyed: KeyIndex,
}

impl FairState {
    /// The format version this build writes (and the newest it reads).
    pub const FORMAT: u32 = 1;

    /// The customers with an entry, by id.
    pub fn customers(&self) -> impl ExactSizeIterator<Item = &str> {
        self.used.keys().map(String::as_str)
    }

    /// Whether customer `id` has an entry and was backlogged at the end of the last call.
    pub fn is_backlogged(&self, id: &str) -> bool {
        self.used.get(id).is_some_and(|e| e.backlogged)
    }

    /// The stored entries, to change them other than through the accounts (drops the key index).
    #[cfg(test)]
    pub(crate) fn entries_mut(&mut self) -> &mut BTreeMap<String, Entry> {
        self.keyed.drop_index();
        &mut self.used
    }
}

/// A customer's account: stored as `[used, weight, backlogged 0|1, seq]`. Its tag is
/// `used / weight`; `backlogged` whether it had entries at the end of the previous call; `seq`
/// when its tag was last set (ties between equal tags go to the earlier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) used: u64,
    pub(crate) weight: u64,
    pub(crate) backlogged: bool,
    pub(crate) seq: u64,
}

impl Entry {
    #[inline]
    pub(crate) fn tag(&self) -> Ratio {
        Ratio { num: self.used, den: self.weight }
    }
}

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        (self.used, self.weight, u64::from(self.backlogged), self.seq).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let (used, weight, flag, seq) = <(u64, u64, u64, u64)>::deserialize(deserializer)?;
        if weight == 0 {
            return Err(D::Error::custom("weight 0 in [used, weight, backlogged, seq]: a weight is at least 1"));
        }
        let backlogged = match flag {
            0 => false,
            1 => true,
            n => {
                return Err(D::Error::custom(format!(
                    "backlogged flag {n} in [used, weight, backlogged, seq]: expected 0 (idle) or 1 (backlogged)"
                )));
            }
        };
        Ok(Entry { used, weight, backlogged, seq })
    }
}

/// The stored form, fields in the order written (`v` first, so a reader checks it first).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a> {
    v: u32,
    virtual_time: Ratio,
    round_end: Ratio,
    seq: u64,
    used: &'a BTreeMap<String, Entry>,
}

impl Serialize for FairState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Doc {
            v: Self::FORMAT,
            virtual_time: self.virtual_time,
            round_end: self.round_end,
            seq: self.seq,
            used: &self.used,
        }
        .serialize(serializer)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "camelCase")]
enum Field {
    V,
    VirtualTime,
    RoundEnd,
    Seq,
    Used,
    #[serde(other)]
    Other,
}

struct StateVisitor;

impl<'de> Visitor<'de> for StateVisitor {
    type Value = FairState;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a RoundRobin/Priority state {\"v\", \"virtualTime\", \"roundEnd\", \"seq\", \"used\"}")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<FairState, M::Error> {
        let (mut virtual_time, mut round_end, mut seq, mut used) = (None, None, 0, BTreeMap::new());
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::V => {
                    let v: u32 = map.next_value()?;
                    if v > FairState::FORMAT {
                        return Err(M::Error::custom(format!(
                            "state format version {v} is newer than this build reads (up to {}): it was written by \
                             a newer pop-sched",
                            FairState::FORMAT
                        )));
                    }
                }
                Field::VirtualTime => virtual_time = Some(map.next_value()?),
                Field::RoundEnd => round_end = Some(map.next_value()?),
                Field::Seq => seq = map.next_value()?,
                Field::Used => used = map.next_value()?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let virtual_time = virtual_time.unwrap_or(Ratio::ZERO);
        Ok(FairState {
            virtual_time,
            round_end: round_end.unwrap_or(virtual_time),
            seq,
            used,
            keyed: KeyIndex::default(),
        })
    }
}

impl<'de> Deserialize<'de> for FairState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(StateVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FairState, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(&mut de).map_err(|e| e.to_string())
    }

    fn sample() -> FairState {
        let mut used = BTreeMap::new();
        used.insert("acme".to_owned(), Entry { used: 3000, weight: 2, backlogged: true, seq: 7 });
        used.insert("bolt".to_owned(), Entry { used: 9000, weight: 4, backlogged: false, seq: 15 });
        FairState {
            virtual_time: Ratio { num: 3000, den: 2 },
            round_end: Ratio { num: 2000, den: 1 },
            seq: 16,
            used,
            keyed: KeyIndex::default(),
        }
    }

    #[test]
    fn round_trips_and_writes_the_version_first() {
        let text = serde_json::to_string(&sample()).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"v":1,"virtualTime":[3000,2],"roundEnd":[2000,1],"seq":16,"used":{"acme":[3000,2,1,7],"bolt":[9000,4,0,15]}}"#
        );
        assert_eq!(parse(&text), Ok(sample()));
        assert_eq!(parse(&serde_json::to_string(&FairState::default()).unwrap_or_default()), Ok(FairState::default()));
        assert_eq!(sample().customers().collect::<Vec<_>>(), ["acme", "bolt"]);
        assert!(sample().is_backlogged("acme") && !sample().is_backlogged("bolt") && !sample().is_backlogged("crux"));
    }

    /// The format written before states were typed: the same fields without `v`, in key order.
    #[test]
    fn reads_the_earlier_unversioned_format() {
        let old = r#"{"roundEnd":[2000,1],"seq":16,"used":{"acme":[3000,2,1,7],"bolt":[9000,4,0,15]},"virtualTime":[3000,2]}"#;
        assert_eq!(parse(old), Ok(sample()));
        // Missing fields are fresh; roundEnd defaults to virtualTime; unknown fields are ignored.
        let partial = parse(r#"{"virtualTime":[5,1],"note":"x"}"#).unwrap_or_default();
        assert_eq!(
            (partial.virtual_time, partial.round_end, partial.seq),
            (Ratio { num: 5, den: 1 }, Ratio { num: 5, den: 1 }, 0)
        );
        assert_eq!(parse("{}"), Ok(FairState::default()));
    }

    #[test]
    fn bad_values_are_errors_with_their_path() {
        let cases = [
            (r#"{"used":{"acme":[1,2,7,3]}}"#, "used.acme: backlogged flag 7"),
            (r#"{"used":{"acme":[1,0,1,3]}}"#, "used.acme: weight 0"),
            (r#"{"used":{"acme":[1,2,"x",3]}}"#, "used.acme[2]: invalid type: string \"x\", expected u64"),
            (r#"{"used":{"acme":[1,2,1]}}"#, "used.acme: invalid length 3"),
            (r#"{"used":{"acme":"junk"}}"#, "used.acme: invalid type: string \"junk\""),
            (r#"{"virtualTime":[1,0]}"#, "virtualTime: [1, 0]: the denominator"),
            (r#"{"roundEnd":[-1,2]}"#, "roundEnd[0]: invalid value: integer `-1`"),
            (r#"{"seq":"7"}"#, "seq: invalid type: string"),
            (
                r#"{"v":2,"used":{"acme":{"new":"shape"}}}"#,
                "state format version 2 is newer than this build reads (up to 1)",
            ),
            (r#"[1,2]"#, "invalid type: sequence, expected a RoundRobin/Priority state"),
        ];
        for (text, want) in cases {
            let err = parse(text).err().unwrap_or_default();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
