//! The algorithms' typed state: documents stored by earlier versions load and continue exactly where
//! they left off, every state round-trips through its stored form, a corrupt state is an error
//! naming the insight, a switch of algorithm is handled, and a custom algorithm's typed state works
//! through the registry.

mod common;

use common::{ReadySet, entry, fair, ids};
use pop_core::Error;
use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{Algorithm, AlgorithmState, Explanation, ReadyView, SchedulingAlgorithm};
use pop_sched::{FairState, FirstInFirstOut, Priority, PriorityConfig, Registry, RoundRobin};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The scenario the earlier version's states were captured from (with the code before typed
/// states: `pop-sched` at commit ee8f054).
fn scenario() -> ReadySet {
    let mut set = ReadySet::new();
    set.weight("acme", 2).many("acme", 6, 0, 0).many("bolt", 4, 3, 1).many("crux", 5, 1, 0);
    set.add(entry("crux", "crux-high", 9, 3)).add(entry("bolt", "bolt-low", 2, -1));
    set.costs = Some([("acme".to_string(), 2.0), ("crux".to_string(), 1.0)].into_iter().collect());
    set
}

struct Capture {
    name: &'static str,
    algo: Box<dyn SchedulingAlgorithm>,
    /// The state after `pick 3 at 10; pick 4 at 11`, as the earlier version stored it.
    state: &'static str,
    /// What it picked next (`pick 5 at 12`) from that state, and the state it stored then.
    next: [&'static str; 5],
    after: &'static str,
}

fn captures() -> Vec<Capture> {
    vec![
        Capture {
            name: "RoundRobin",
            algo: Box::new(RoundRobin::new()),
            state: r#"{"roundEnd":[2000,1],"seq":10,"used":{"acme":[3000,2,1,7],"bolt":[2000,1,1,8],"crux":[2000,1,1,9]},"virtualTime":[3000,2]}"#,
            next: ["acme-00003", "acme-00004", "bolt-00002", "crux-00001", "acme-00005"],
            after: r#"{"roundEnd":[3000,1],"seq":15,"used":{"bolt":[3000,1,1,12],"crux":[3000,1,1,13]},"virtualTime":[3000,1]}"#,
        },
        Capture {
            name: "RoundRobin by cost",
            algo: Box::new(RoundRobin::cost_weighted()),
            state: r#"{"roundEnd":[2000,1],"seq":10,"used":{"acme":[3999,2,1,8],"bolt":[2000,1,1,9],"crux":[1334,1,1,7]},"virtualTime":[1334,1]}"#,
            next: ["crux-00001", "acme-00003", "crux-00002", "bolt-00002", "acme-00004"],
            after: r#"{"roundEnd":[6665,2],"seq":15,"used":{"acme":[6665,2,1,14],"bolt":[3000,1,1,13],"crux":[2668,1,1,12]},"virtualTime":[2668,1]}"#,
        },
        Capture {
            name: "Priority aging 2 ms",
            algo: Box::new(Priority::with_config(PriorityConfig { aging_step_ms: Some(2), cost_weighted: false })),
            state: r#"{"roundEnd":[2000,1],"seq":10,"used":{"acme":[3000,2,1,7],"bolt":[2000,1,1,8],"crux":[2000,1,1,9]},"virtualTime":[3000,2]}"#,
            next: ["crux-00001", "acme-00003", "acme-00004", "bolt-00002", "crux-00002"],
            after: r#"{"roundEnd":[4000,1],"seq":15,"used":{"acme":[5000,2,1,12],"bolt":[3000,1,1,13],"crux":[4000,1,1,14]},"virtualTime":[5000,2]}"#,
        },
    ]
}

fn parse_fair(text: &str) -> FairState {
    serde_json::from_str(text).expect("a fair state")
}

/// Today's code reaches the same states as the earlier version did, and a state the earlier version
/// stored continues exactly as the earlier version continued it.
#[test]
fn states_stored_by_the_earlier_version_load_and_continue_unchanged() {
    for c in captures() {
        // Same history, same state (compared as typed values: the stored form now has `v`).
        let mut set = scenario();
        let mut state = AlgorithmState::new();
        set.pick(c.algo.as_ref(), &mut state, 3, 10);
        set.pick(c.algo.as_ref(), &mut state, 4, 11);
        assert_eq!(fair(&state), parse_fair(c.state), "{}: state after the same calls", c.name);

        // The earlier document, loaded as stored, continues as before.
        let mut old = AlgorithmState::from_json(c.state.as_bytes().to_vec());
        let next = set.pick(c.algo.as_ref(), &mut old, 5, 12);
        assert_eq!(ids(&next), c.next, "{}: picks from the stored state", c.name);
        assert_eq!(fair(&old), parse_fair(c.after), "{}: state after", c.name);
        let stored = String::from_utf8(old.to_json().expect("encodes")).expect("utf-8");
        assert!(stored.contains(r#""state":{"v":1,"virtualTime":"#), "{}: {stored}", c.name);
    }
}

/// An idle customer's entry (`backlogged` 0) and a `null` state, as the earlier version stored them.
#[test]
fn idle_entries_and_null_states_of_the_earlier_version_load() {
    let rr = RoundRobin::new();
    let mut set = ReadySet::new();
    set.weight("B", 4).many("B", 9, 0, 0).many("C", 9, 0, 0);
    for k in 0..3 {
        set.add(entry("A", &format!("A-{k:05}"), 20 + k, 0));
    }
    for k in 0..2 {
        set.remove(&[entry("C", &format!("C-{k:05}"), k, 0)]);
    }
    set.customers.remove("B");
    let mut state = AlgorithmState::from_json(
        br#"{"roundEnd":[2000,1],"seq":16,"used":{"B":[9000,4,0,15],"C":[2000,1,1,13]},"virtualTime":[2000,1]}"#
            .to_vec(),
    );
    assert!(!fair(&state).is_backlogged("B") && fair(&state).is_backlogged("C"));
    let next = set.pick(&rr, &mut state, 6, 12);
    assert_eq!(ids(&next), ["C-00002", "A-00000", "C-00003", "A-00001", "C-00004", "A-00002"]);
    assert_eq!(
        fair(&state),
        parse_fair(r#"{"roundEnd":[5000,1],"seq":23,"used":{"C":[5000,1,1,21]},"virtualTime":[5000,1]}"#)
    );

    for algo in [&FirstInFirstOut as &dyn SchedulingAlgorithm, &rr, &Priority::new()] {
        let mut null = AlgorithmState::from_json(b"null".to_vec());
        let picks = algo.pick(&scenario().view(5), &mut null, 2).expect("null is a fresh state");
        let fresh = algo.pick(&scenario().view(5), &mut AlgorithmState::new(), 2).expect("picks");
        assert_eq!(picks, fresh, "{}", algo.name());
    }
}

/// Every built-in state round-trips through its stored form: a state kept in memory and one stored
/// and loaded between calls pick the same, call after call, and encode to the same document.
#[test]
fn every_algorithms_state_round_trips() {
    let algos: Vec<Box<dyn SchedulingAlgorithm>> = vec![
        Box::new(FirstInFirstOut),
        Box::new(RoundRobin::new()),
        Box::new(RoundRobin::cost_weighted()),
        Box::new(Priority::new()),
        Box::new(Priority::with_config(PriorityConfig { aging_step_ms: Some(3), cost_weighted: true })),
    ];
    for algo in &algos {
        let mut set = scenario();
        let (mut memory, mut stored) = (AlgorithmState::new(), AlgorithmState::new());
        for (call, count) in [2, 1, 3, 4, 2].into_iter().enumerate() {
            let view = set.view(10 + call as i64);
            let a = algo.pick(&view, &mut memory, count).expect("picks");
            let b = algo.pick(&view, &mut stored, count).expect("picks");
            assert_eq!(a, b, "{} call {call}", algo.name());
            let doc = stored.to_json().expect("encodes");
            assert_eq!(memory.to_json().expect("encodes"), doc, "{} call {call}", algo.name());
            let text = String::from_utf8_lossy(&doc).into_owned();
            assert!(text.starts_with(&format!(r#"{{"algorithm":"{}","state":"#, algo.name())), "{text}");
            stored = AlgorithmState::from_json(doc);
            set.remove(&a);
        }
    }
}

fn corrupt_reason(e: Error) -> (String, String) {
    match e {
        Error::Corrupt { kind, id, reason } => {
            assert_eq!(kind, "scheduler state");
            (id, reason)
        }
        other => panic!("expected a corrupt state, got {other}"),
    }
}

/// A state that does not decode is an error naming the insight, the algorithm and the bad value;
/// the state is left as stored (for the caller to keep aside), and explain reports it too.
#[test]
fn a_corrupt_state_is_an_error_naming_the_insight() {
    let mut set = scenario();
    set.insight = Insight { id: Some("i-42".into()), ..Insight::default() };
    let cases: [(&str, &dyn SchedulingAlgorithm, &str); 4] = [
        (
            r#"{"algorithm":"RoundRobin","state":{"v":1,"used":{"acme":[3000,2,7,7]}}}"#,
            &RoundRobin::new(),
            "algorithm RoundRobin cannot read its stored state: state.used.acme: backlogged flag 7",
        ),
        (
            r#"{"roundEnd":[2000,0],"seq":10,"used":{}}"#,
            &Priority::new(),
            "algorithm Priority cannot read the stored state (written before states named their algorithm): \
             roundEnd: [2000, 0]: the denominator",
        ),
        (
            r#"{"algorithm":"Priority","state":{"v":9}}"#,
            &Priority::new(),
            "state: state format version 9 is newer than this build reads (up to 1)",
        ),
        (r#"{"virtualTime":"#, &RoundRobin::new(), "EOF while parsing"),
    ];
    for (doc, algo, want) in cases {
        let mut state = AlgorithmState::from_json(doc.as_bytes().to_vec());
        let err = algo.pick(&set.view(10), &mut state, 3).expect_err(doc);
        assert!(err.to_string().starts_with("corrupt scheduler state i-42: "), "{err}");
        let (id, reason) = corrupt_reason(err);
        assert_eq!(id, "i-42");
        assert!(reason.contains(want), "{doc}: {reason}");
        assert_eq!(state.to_json().expect("as stored"), doc.as_bytes(), "left as stored");
        let err = algo.explain(&set.view(10), &state, "acme-00000").expect_err(doc);
        assert!(corrupt_reason(err).1.contains(want));
    }
    // FirstInFirstOut keeps no state, so no stored document is corrupt for it.
    let mut junk = AlgorithmState::from_json(br#"{"algorithm":"FirstInFirstOut","state":{"x":[1,"y"]}}"#.to_vec());
    assert_eq!(SchedulingAlgorithm::pick(&FirstInFirstOut, &set.view(10), &mut junk, 1).map(|p| p.len()).ok(), Some(1));
}

/// RoundRobin and Priority share their state, so a switch between them keeps the rotation; a
/// switch to an algorithm with another state starts that one afresh and says whose state it dropped.
#[test]
fn switching_algorithms() {
    let mut set = ReadySet::new();
    set.many("A", 5, 0, 0).many("B", 5, 0, 0).many("C", 5, 0, 0);
    let flat = Priority::with_config(PriorityConfig { aging_step_ms: None, cost_weighted: false });
    let mut state = AlgorithmState::new();
    set.pick(&RoundRobin::new(), &mut state, 2, 10);
    let before = fair(&state);
    let stored = AlgorithmState::from_json(state.to_json().expect("encodes"));
    let mut switched = stored.clone();
    let got = SchedulingAlgorithm::pick(&flat, &set.view(10), &mut switched, 6).expect("reads RoundRobin's state");
    assert!(switched.discarded_from().is_none());
    assert_eq!(switched.algorithm(), Some("Priority"));
    let mut same = AlgorithmState::from_state("Priority", before);
    assert_eq!(got, SchedulingAlgorithm::pick(&flat, &set.view(10), &mut same, 6).expect("picks"));
    let fresh = SchedulingAlgorithm::pick(&flat, &set.view(10), &mut AlgorithmState::new(), 6).expect("picks");
    assert_eq!(common::customers(&got), ["C", "A", "B", "C", "A", "B"], "the rotation goes on after A, B");
    assert_eq!(common::customers(&fresh), ["A", "B", "C", "A", "B", "C"]);

    let mut to_custom = stored;
    LeastServed.pick_checked(&set.view(10), &mut to_custom).expect("a fresh start is no error");
    assert_eq!(to_custom.discarded_from(), Some("RoundRobin"));
    assert_eq!(to_custom.get::<Served>().map(|s| s.counts.values().sum::<u64>()), Some(1));
}

/// A custom algorithm with typed state, registered by name.
struct LeastServed;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Served {
    counts: BTreeMap<String, u64>,
}

impl LeastServed {
    fn pick_checked(&self, view: &ReadyView<'_>, state: &mut AlgorithmState) -> pop_core::Result<Vec<ReadyAgenda>> {
        SchedulingAlgorithm::pick(self, view, state, 1)
    }
}

impl Algorithm for LeastServed {
    type State = Served;

    fn name(&self) -> &str {
        "LeastServed"
    }

    fn pick(&self, view: &ReadyView<'_>, state: &mut Served, count: usize) -> Vec<ReadyAgenda> {
        let mut next = vec![0; view.customers.len()];
        let mut out = Vec::new();
        while out.len() < count {
            let served = |i: &usize| state.counts.get(view.customers[*i].customer_id).copied().unwrap_or(0);
            let left = (0..view.customers.len()).filter(|&i| next[i] < view.customers[i].entries.len());
            let Some(i) = left.min_by_key(served) else { break };
            out.push(view.customers[i].entries[next[i]].clone());
            next[i] += 1;
            *state.counts.entry(view.customers[i].customer_id.to_owned()).or_default() += 1;
        }
        out
    }

    fn explain(&self, view: &ReadyView<'_>, state: &Served, agenda_id: &str) -> Option<Explanation> {
        let position = Algorithm::pick(self, view, &mut state.clone(), view.len())
            .iter()
            .position(|p| p.agenda_id == agenda_id)?;
        Some(Explanation { agenda_id: agenda_id.into(), position, reason: format!("{position} go first") })
    }
}

#[test]
fn a_custom_algorithm_with_typed_state_works_through_the_registry() {
    let mut registry = Registry::new();
    registry.register(Arc::new(LeastServed));
    let mut set = scenario();
    set.insight =
        Insight { id: Some("i-7".into()), scheduling_algorithm: Some("LEASTSERVED".into()), ..Insight::default() };
    let algo = registry.for_insight(&set.insight).expect("registered");
    let mut state = AlgorithmState::new();
    let mut order = Vec::new();
    for t in 0..4 {
        order.extend(set.pick(algo.as_ref(), &mut state, 2, t));
    }
    // Lifetime counts carried through the stored state: each customer served in turn.
    let customers: Vec<&str> = order.iter().map(|p| p.customer_id.as_str()).collect();
    assert_eq!(customers, ["acme", "bolt", "crux", "acme", "bolt", "crux", "acme", "bolt"]);
    let served = state.state::<Served>("LeastServed", &set.insight).expect("reads").into_owned();
    assert_eq!(served.counts, BTreeMap::from([("acme".into(), 3), ("bolt".into(), 3), ("crux".into(), 2)]));
    let e = algo.explain(&set.view(5), &state, "crux-00001").expect("explains").expect("in view");
    assert_eq!(e.position, 0, "crux was served least: {}", e.reason);

    let mut bad = AlgorithmState::from_json(br#"{"algorithm":"LeastServed","state":{"counts":[1]}}"#.to_vec());
    let (id, reason) = corrupt_reason(algo.pick(&set.view(5), &mut bad, 1).expect_err("corrupt"));
    assert_eq!(id, "i-7");
    assert!(
        reason.starts_with("algorithm LeastServed cannot read its stored state: state.counts: invalid type"),
        "{reason}"
    );
}
