//! # pop-sched: pure scheduling for POP
//!
//! Everything here is a pure function of its inputs — no IO, no clock reads (time comes in the
//! [`ReadyView`](pop_core::sched::ReadyView)), no async — so the scheduler loop in `pop` can call it
//! and the properties below can be tested exhaustively.
//!
//! * [`insight`]: which insight a submitted agenda goes to ([`select_insight`]), and
//!   [`validate_insight`] for insight create/update;
//! * the algorithms, each an [`Algorithm`](pop_core::sched::Algorithm) with typed state (so a
//!   [`SchedulingAlgorithm`](pop_core::sched::SchedulingAlgorithm)):
//!   [`FirstInFirstOut`] (oldest first, the default), [`RoundRobin`] (alias `Fairness`: weighted
//!   rotation across customers, optionally by cost) and [`Priority`] (highest effective priority
//!   first, aging so nothing starves, fair among equals); `RoundRobin` and `Priority` share their
//!   state, [`FairState`] (versioned; the format earlier versions stored still loads);
//! * [`Registry`]: algorithms by name, where an application adds its own;
//! * [`refill`]: how many to pick for an insight's queue, with the contract enforced;
//! * explain: every algorithm gives an agenda's position (exact if nothing arrives before it is
//!   picked; `RoundRobin` and `Priority` replay their rotation, so the cost grows with the position)
//!   and says why it waits;
//! * [`sim`]: a deterministic simulator replaying a trace through any algorithm.
//!
//! Per pick call an algorithm makes one pass over the view's customers — a few reads per customer:
//! the head (and, with mixed priorities, a binary search per priority run, sixteen customers in
//! lockstep) and, for `RoundRobin` and `Priority`, one id comparison against the stored state — and
//! keeps only the `count` best candidates; then each pick costs O(log count), and each state entry
//! that changes O(log customers). Its state holds at most one small entry per customer.
//!
//! ```
//! use pop_core::model::{Insight, ReadyAgenda};
//! use pop_core::sched::{AlgorithmState, CustomerReady, ReadyView};
//! use pop_sched::{Registry, refill::plan_refill};
//!
//! let insight = Insight { scheduling_algorithm: Some("Fairness".into()), queue_size: Some(2), ..Insight::default() };
//! let entry = |c: &str, n: i64| ReadyAgenda {
//!     agenda_id: format!("{c}-{n}"), customer_id: c.into(), added: n, ..ReadyAgenda::default()
//! };
//! let (a, b) = (vec![entry("a", 1), entry("a", 2)], vec![entry("b", 3)]);
//! let view = ReadyView::new(&insight, vec![
//!     CustomerReady { customer_id: "a", weight: 1, entries: &a, runs: &[], key: 0 },
//!     CustomerReady { customer_id: "b", weight: 1, entries: &b, runs: &[], key: 0 },
//! ], 10);
//! let algorithm = Registry::new().for_insight(&insight)?;
//! let mut state = AlgorithmState::new(); // or AlgorithmState::from_json(stored bytes)
//! let plan = plan_refill(algorithm.as_ref(), &view, &mut state, 0)?;
//! let ids: Vec<&str> = plan.picks.iter().map(|p| p.agenda_id.as_str()).collect();
//! assert_eq!(ids, ["a-1", "b-3"]); // one per customer before a second of a's
//! let stored = state.to_json()?; // {"algorithm":"RoundRobin","state":{"v":1,...}}
//! assert!(stored.starts_with(br#"{"algorithm":"RoundRobin","state":{"v":1,"#));
//! # Ok::<(), pop_core::Error>(())
//! ```

pub mod capacity;
mod fair;
mod fifo;
pub mod insight;
mod priority;
pub mod refill;
mod registry;
mod round_robin;
pub mod sim;

pub use capacity::{Admit, Admitter, Resources};
pub use fair::FairState;
pub use fifo::FirstInFirstOut;
pub use insight::{select_insight, validate_insight};
pub use priority::{Priority, PriorityConfig};
pub use refill::{RefillPlan, plan_refill, refill_count};
pub use registry::Registry;
pub use round_robin::RoundRobin;
