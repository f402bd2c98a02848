//! [`AlgorithmState`]: an insight's scheduler state between calls, stored as JSON.
//!
//! The stored format and the rules for reading it are on [`AlgorithmState`].

use crate::model::Insight;
use crate::{Error, Result};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use std::any::Any;
use std::borrow::Cow;
use std::fmt;

/// The object kind named by the [`Error::Corrupt`] of an unreadable state.
const KIND: &str = "scheduler state";

/// The state of an algorithm that keeps none: reads any stored document (ignoring it) and writes
/// `null`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct NoState;

impl Serialize for NoState {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for NoState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        IgnoredAny::deserialize(deserializer)?;
        Ok(NoState)
    }
}

/// A typed state behind the object-safe trait: downcast by type, encoded as JSON.
trait Erased: Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
    fn clone_box(&self) -> Box<dyn Erased>;
}

impl<T: Serialize + Clone + Send + Sync + 'static> Erased for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
    fn clone_box(&self) -> Box<dyn Erased> {
        Box::new(self.clone())
    }
}

enum Repr {
    /// Nothing stored: the algorithm starts from its state's `Default`.
    Fresh,
    /// A stored document, not decoded yet.
    Stored(Vec<u8>),
    /// Decoded (or started) by `algorithm`.
    Typed { algorithm: String, state: Box<dyn Erased> },
}

/// An insight's scheduler state between calls: fresh, a stored JSON document not yet decoded, or
/// the typed state of the algorithm that last used it.
///
/// # The stored document
///
/// [`AlgorithmState::to_json`] writes `{"algorithm": "<name>", "state": <the typed state>}`: the
/// algorithm that wrote it, and its state as the algorithm's serde type serializes it (versioned by
/// the algorithm, e.g. `pop_sched::FairState`'s `v`). Earlier versions stored the bare state
/// (`null` for none); such a document has no writer and is read as the state itself.
///
/// # Reading it
///
/// An algorithm decodes the document at its first `pick` or `explain`:
///
/// * nothing stored, or a bare `null`: the state's `Default`;
/// * its own document, or a bare one: decoded, and anything that does not decode is
///   [`Error::Corrupt`] (kind `scheduler state`, id the insight's), whose reason names the
///   algorithm and gives serde's message with the path of the bad value
///   (`state.used.acme[2]: invalid type: string "x", expected u64`, with serde's line and column);
/// * another algorithm's document (the insight switched algorithms): decoded if it fits (so
///   `RoundRobin` and `Priority`, which share a state type, keep the rotation across a switch),
///   otherwise the `Default`, and [`AlgorithmState::discarded_from`] names the writer. That is not
///   corruption: the old algorithm's state means nothing to the new one.
///
/// # Example
///
/// ```
/// use pop_core::model::Insight;
/// use pop_core::sched::AlgorithmState;
///
/// let insight = Insight { id: Some("i-7".into()), ..Insight::default() };
/// let mut state = AlgorithmState::new();
/// *state.state_mut::<Vec<String>>("Rotation", &insight)? = vec!["acme".into()];
/// let stored = state.to_json()?;
/// assert_eq!(stored, br#"{"algorithm":"Rotation","state":["acme"]}"#);
///
/// let loaded = AlgorithmState::from_json(stored);
/// assert_eq!(*loaded.state::<Vec<String>>("Rotation", &insight)?, ["acme"]);
/// let err = loaded.state::<Vec<u32>>("Rotation", &insight).unwrap_err().to_string();
/// assert!(err.starts_with("corrupt scheduler state i-7: algorithm Rotation"), "{err}");
/// assert!(err.contains("state[0]: invalid type: string \"acme\", expected u32"), "{err}");
/// # Ok::<(), pop_core::Error>(())
/// ```
pub struct AlgorithmState {
    repr: Repr,
    /// The algorithm whose stored state the last decode could not use (see `discarded_from`).
    discarded: Option<String>,
}

impl Default for AlgorithmState {
    fn default() -> Self {
        Self::new()
    }
}

impl Clone for AlgorithmState {
    fn clone(&self) -> Self {
        let repr = match &self.repr {
            Repr::Fresh => Repr::Fresh,
            Repr::Stored(b) => Repr::Stored(b.clone()),
            Repr::Typed { algorithm, state } => Repr::Typed { algorithm: algorithm.clone(), state: state.clone_box() },
        };
        Self { repr, discarded: self.discarded.clone() }
    }
}

impl fmt::Debug for AlgorithmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Fresh => f.write_str("AlgorithmState::Fresh"),
            Repr::Stored(b) => write!(f, "AlgorithmState::Stored({} bytes)", b.len()),
            Repr::Typed { algorithm, .. } => write!(f, "AlgorithmState::Typed({algorithm})"),
        }
    }
}

/// The stored document: `{"algorithm": ..., "state": ...}` (nothing else).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    algorithm: String,
    #[serde(borrow)]
    state: &'a RawValue,
}

/// What a stored document gives an algorithm.
enum Decoded<S> {
    State(S),
    /// Written by this other algorithm, and not readable as this one's state.
    Foreign(String),
}

fn insight_id(insight: &Insight) -> String {
    match (&insight.id, &insight.title) {
        (Some(id), _) => id.clone(),
        (None, Some(title)) => format!("(insight titled {title:?}, without id)"),
        (None, None) => "(insight without id)".to_owned(),
    }
}

fn same_name(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Decodes a stored document for `algorithm` (see the module docs for the rules).
fn decode<S: DeserializeOwned + Default>(doc: &[u8], algorithm: &str, insight: &Insight) -> Result<Decoded<S>> {
    let (writer, body) = match serde_json::from_slice::<Envelope<'_>>(doc) {
        Ok(env) => (Some(env.algorithm), env.state.get().as_bytes()),
        Err(_) => (None, doc),
    };
    if writer.is_none() && body.trim_ascii() == b"null" {
        return Ok(Decoded::State(S::default()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    // (path of the bad value, serde's message)
    let got = match serde_path_to_error::deserialize::<_, S>(&mut de) {
        Ok(s) => de.end().map(|()| s).map_err(|e| (String::new(), e.to_string())),
        Err(e) => Err((e.path().to_string(), e.inner().to_string())),
    };
    match (got, writer) {
        (Ok(s), _) => Ok(Decoded::State(s)),
        (Err(_), Some(w)) if !same_name(&w, algorithm) => Ok(Decoded::Foreign(w)),
        (Err((path, message)), writer) => {
            let path = path.trim_start_matches('.');
            let (whose, at) = match writer {
                // In the stored document the state sits under "state".
                Some(_) if path.starts_with('[') => ("its stored state", format!("state{path}: ")),
                Some(_) if !path.is_empty() => ("its stored state", format!("state.{path}: ")),
                Some(_) => ("its stored state", "state: ".to_owned()),
                None if !path.is_empty() => {
                    ("the stored state (written before states named their algorithm)", format!("{path}: "))
                }
                None => ("the stored state (written before states named their algorithm)", String::new()),
            };
            Err(Error::Corrupt {
                kind: KIND.to_owned(),
                id: insight_id(insight),
                reason: format!("algorithm {algorithm} cannot read {whose}: {at}{message}"),
            })
        }
    }
}

impl AlgorithmState {
    /// A fresh state: the algorithm starts from its state's `Default`.
    pub fn new() -> Self {
        Self { repr: Repr::Fresh, discarded: None }
    }

    /// A state as stored (the bytes [`to_json`](Self::to_json) wrote, or an earlier version's bare
    /// state). Nothing is decoded until an algorithm uses it, so a bad document is reported by the
    /// algorithm's `pick` or `explain`, with the insight's id.
    pub fn from_json(stored: impl Into<Vec<u8>>) -> Self {
        Self { repr: Repr::Stored(stored.into()), discarded: None }
    }

    /// A state holding `state`, as if `algorithm` had used it.
    pub fn from_state<S: Serialize + Clone + Send + Sync + 'static>(algorithm: &str, state: S) -> Self {
        Self { repr: Repr::Typed { algorithm: algorithm.to_owned(), state: Box::new(state) }, discarded: None }
    }

    /// The document to store: `{"algorithm": "<name>", "state": ...}` once an algorithm has used the
    /// state; a stored document not used since is returned as it was, and a fresh state is `null`.
    ///
    /// Errors only when the state's `Serialize` does (e.g. a map with keys JSON cannot hold).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        match &self.repr {
            Repr::Fresh => Ok(b"null".to_vec()),
            Repr::Stored(b) => Ok(b.clone()),
            Repr::Typed { algorithm, state } => {
                let mut out = Vec::with_capacity(64);
                out.extend_from_slice(b"{\"algorithm\":");
                let encoded = serde_json::to_writer(&mut out, algorithm)
                    .and_then(|()| {
                        out.extend_from_slice(b",\"state\":");
                        state.write_json(&mut out)
                    })
                    .map(|()| out.push(b'}'));
                encoded.map(|()| out).map_err(|e| {
                    Error::backend("json", format!("encoding the state of scheduling algorithm {algorithm}: {e}"))
                })
            }
        }
    }

    /// Whether nothing is stored and no algorithm has used the state yet.
    pub fn is_fresh(&self) -> bool {
        matches!(self.repr, Repr::Fresh)
    }

    /// The algorithm that last used the state (not set before one decodes a stored document).
    pub fn algorithm(&self) -> Option<&str> {
        match &self.repr {
            Repr::Typed { algorithm, .. } => Some(algorithm),
            _ => None,
        }
    }

    /// The typed state, if an algorithm with state type `S` has used it (for tests and tools).
    pub fn get<S: 'static>(&self) -> Option<&S> {
        match &self.repr {
            Repr::Typed { state, .. } => state.as_any().downcast_ref(),
            _ => None,
        }
    }

    /// When the last decode started afresh because the stored state was written by another
    /// algorithm and did not fit this one's type: that algorithm's name.
    pub fn discarded_from(&self) -> Option<&str> {
        self.discarded.as_deref()
    }

    /// The state as `algorithm`'s type `S`, decoding the stored document on first use (by the rules
    /// above); the state is typed from then on, and [`algorithm`](Self::algorithm) is `algorithm`.
    /// On [`Error::Corrupt`] the state is left as it was.
    pub fn state_mut<S>(&mut self, algorithm: &str, insight: &Insight) -> Result<&mut S>
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static,
    {
        let fits = match &mut self.repr {
            Repr::Typed { algorithm: by, state } if state.as_any().is::<S>() => {
                if by != algorithm {
                    algorithm.clone_into(by);
                }
                true
            }
            _ => false,
        };
        if !fits {
            let (typed, discarded) = self.decoded::<S>(algorithm, insight)?;
            self.discarded = discarded;
            self.repr = Repr::Typed { algorithm: algorithm.to_owned(), state: Box::new(typed) };
        }
        match &mut self.repr {
            Repr::Typed { state, .. } => state.as_any_mut().downcast_mut::<S>().ok_or_else(|| {
                Error::backend("scheduler", format!("the state of algorithm {algorithm} lost its type"))
            }),
            _ => Err(Error::backend("scheduler", format!("the state of algorithm {algorithm} was not set"))),
        }
    }

    /// The state as `algorithm`'s type `S` without changing it: borrowed when it already is an `S`,
    /// otherwise decoded (or defaulted) into a copy, by the rules of [`state_mut`](Self::state_mut).
    pub fn state<S>(&self, algorithm: &str, insight: &Insight) -> Result<Cow<'_, S>>
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static,
    {
        if let Some(s) = self.get::<S>() {
            return Ok(Cow::Borrowed(s));
        }
        self.decoded::<S>(algorithm, insight).map(|(s, _)| Cow::Owned(s))
    }

    /// The state decoded as `S`, and the writer whose state it discarded, if any.
    fn decoded<S>(&self, algorithm: &str, insight: &Insight) -> Result<(S, Option<String>)>
    where
        S: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static,
    {
        let decoded = match &self.repr {
            Repr::Fresh => Decoded::State(S::default()),
            Repr::Stored(doc) => decode::<S>(doc, algorithm, insight)?,
            Repr::Typed { algorithm: by, state } => {
                // Another algorithm's state of another type: read its JSON as this one's.
                let mut doc = Vec::new();
                match state.write_json(&mut doc) {
                    Ok(()) => match decode::<S>(&doc, algorithm, insight) {
                        Ok(Decoded::State(s)) => Decoded::State(s),
                        _ => Decoded::Foreign(by.clone()),
                    },
                    Err(_) => Decoded::Foreign(by.clone()),
                }
            }
        };
        Ok(match decoded {
            Decoded::State(s) => (s, None),
            Decoded::Foreign(by) => (S::default(), Some(by)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    struct Counts {
        served: BTreeMap<String, u64>,
    }

    fn insight() -> Insight {
        Insight { id: Some("i-1".into()), ..Insight::default() }
    }

    fn corrupt(e: Error) -> (String, String, String) {
        match e {
            Error::Corrupt { kind, id, reason } => (kind, id, reason),
            other => panic!("expected Corrupt, got {other}"),
        }
    }

    #[test]
    fn fresh_and_null_start_from_default() {
        for mut st in [AlgorithmState::new(), AlgorithmState::from_json(b" null ".to_vec())] {
            assert_eq!(*st.state::<Counts>("C", &insight()).unwrap(), Counts::default());
            assert_eq!(*st.state_mut::<Counts>("C", &insight()).unwrap(), Counts::default());
            assert_eq!(st.algorithm(), Some("C"));
        }
        assert_eq!(AlgorithmState::new().to_json().unwrap(), b"null");
        assert!(AlgorithmState::new().is_fresh());
    }

    #[test]
    fn typed_state_round_trips_through_the_envelope() {
        let mut st = AlgorithmState::new();
        st.state_mut::<Counts>("Counter", &insight()).unwrap().served.insert("acme".into(), 3);
        let doc = st.to_json().unwrap();
        assert_eq!(doc, br#"{"algorithm":"Counter","state":{"served":{"acme":3}}}"#);
        let mut back = AlgorithmState::from_json(doc.clone());
        assert_eq!(back.to_json().unwrap(), doc, "an unused stored state is stored back unchanged");
        let got = back.state_mut::<Counts>("counter", &insight()).unwrap();
        assert_eq!(got.served["acme"], 3, "names compare case-insensitively");
        assert_eq!(back.get::<Counts>().map(|c| c.served.len()), Some(1));
        assert!(back.discarded_from().is_none());
    }

    #[test]
    fn a_bare_state_of_earlier_versions_is_read_as_the_state() {
        let st = AlgorithmState::from_json(br#"{"served":{"bolt":2}}"#.to_vec());
        assert_eq!(st.state::<Counts>("Counter", &insight()).unwrap().served["bolt"], 2);
    }

    #[test]
    fn a_corrupt_state_names_the_insight_the_algorithm_and_the_path() {
        let mut st = AlgorithmState::from_json(br#"{"algorithm":"Counter","state":{"served":{"acme":"x"}}}"#.to_vec());
        let (kind, id, reason) = corrupt(st.state_mut::<Counts>("Counter", &insight()).unwrap_err());
        assert_eq!((kind.as_str(), id.as_str()), ("scheduler state", "i-1"));
        assert!(reason.starts_with("algorithm Counter cannot read its stored state: state.served.acme: "), "{reason}");
        assert!(reason.contains("invalid type: string \"x\", expected u64"), "{reason}");
        assert!(matches!(st.repr, Repr::Stored(_)), "left as it was, to be kept aside");

        let bare = AlgorithmState::from_json(br#"{"served": [1, 2]}"#.to_vec());
        let (_, _, reason) = corrupt(bare.state::<Counts>("Counter", &insight()).unwrap_err());
        assert!(
            reason.contains("written before states named their algorithm): served: invalid type: sequence"),
            "{reason}"
        );

        let garbage = AlgorithmState::from_json(b"{\"served\":".to_vec());
        let (_, id, reason) = corrupt(
            garbage.state::<Counts>("Counter", &Insight { title: Some("T".into()), ..Insight::default() }).unwrap_err(),
        );
        assert_eq!(id, "(insight titled \"T\", without id)");
        assert!(reason.contains("EOF while parsing"), "{reason}");

        let trailing = AlgorithmState::from_json(br#"{"served":{}} x"#.to_vec());
        let (_, _, reason) = corrupt(trailing.state::<Counts>("Counter", &insight()).unwrap_err());
        assert!(reason.contains("trailing characters"), "{reason}");
    }

    #[test]
    fn another_algorithms_state_is_used_if_it_fits_and_otherwise_discarded() {
        let doc = br#"{"algorithm":"Counter","state":{"served":{"acme":3}}}"#.to_vec();
        // Fits: a type with the same shape keeps it.
        let st = AlgorithmState::from_json(doc.clone());
        assert_eq!(st.state::<Counts>("OtherCounter", &insight()).unwrap().served["acme"], 3);
        // Does not fit: a fresh start, the writer named; not an error.
        let mut st = AlgorithmState::from_json(doc);
        assert_eq!(*st.state_mut::<Vec<u32>>("Lottery", &insight()).unwrap(), Vec::<u32>::new());
        assert_eq!(st.discarded_from(), Some("Counter"));
        assert_eq!(st.to_json().unwrap(), br#"{"algorithm":"Lottery","state":[]}"#);
        // In memory too: a typed state of another type goes through its JSON.
        let mut st = AlgorithmState::from_state("Lottery", vec![7u32]);
        assert_eq!(*st.state_mut::<Vec<u64>>("Lottery2", &insight()).unwrap(), [7]);
        assert!(st.discarded_from().is_none());
        assert_eq!(*st.state_mut::<Counts>("Counter", &insight()).unwrap(), Counts::default());
        assert_eq!(st.discarded_from(), Some("Lottery2"));
    }

    #[test]
    fn no_state_reads_anything_and_writes_null() {
        let mut st = AlgorithmState::from_json(br#"{"virtualTime":[1,1],"used":{}}"#.to_vec());
        assert_eq!(*st.state_mut::<NoState>("FirstInFirstOut", &insight()).unwrap(), NoState);
        assert_eq!(st.to_json().unwrap(), br#"{"algorithm":"FirstInFirstOut","state":null}"#);
        let clone = st.clone();
        assert_eq!(clone.get::<NoState>(), Some(&NoState));
        assert_eq!(format!("{clone:?}"), "AlgorithmState::Typed(FirstInFirstOut)");
    }
}
