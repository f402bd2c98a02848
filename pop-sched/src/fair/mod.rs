//! Weighted virtual-time accounting shared by `RoundRobin` and `Priority`, and the helpers every
//! algorithm's candidate selection uses.
//!
//! Each customer `c` has a start tag `S_c = used_c / w_c`: the cost units it has been charged divided
//! by its weight. A pick charges the customer `charge_c` units (1000 per pick, or its cost relative to
//! the mean with cost weighting); the next customer to serve is the one whose finish tag
//! `(used_c + charge_c) / w_c` is smallest. A customer that (re)joins the
//! backlog starts at the back of the current round — the largest tag of a backlogged customer — as
//! the original's rotation served newcomers after the customers already pending: idling banks no
//! credit, and a rejoining customer cannot overtake one that kept waiting. When nobody is backlogged
//! everyone restarts level.
//!
//! Tags are exact rationals ([`Ratio`]: integers compared by cross-multiplication in `u128`), so ties
//! behave like the original's rotation and the fairness bounds hold exactly.
//!
//! Among equal finish tags, the customer that reached its tag first goes first (a sequence number
//! set at each pick and at each join, joiners numbered in id order): this is the original's cyclic
//! rotation, with a joining customer inserted just behind the rotation's cursor.
//!
//! The files, one concept each:
//!
//! * `ratio`: the exact tags;
//! * `state`: [`FairState`], the persisted state (typed, versioned, reading the earlier format);
//! * `keys`: the stored entries by customer key, in memory, for views that carry keys;
//! * `accounts`: the per-call accounts, read from the state and written back (the state walk and
//!   merge, with a fast path that touches only the entries that change);
//! * `topk` and `runs`: candidate selection (the `count` best keys; a customer's runs of equal
//!   priority, searched sixteen customers in lockstep; effective priority with aging);
//! * `tests`: the fast and general paths of the accounts, side by side;
//! * `reference`: a straightforward reference of `Priority`, and a property test that the algorithm
//!   matches it.

mod accounts;
mod keys;
mod ratio;
#[cfg(test)]
mod reference;
mod runs;
mod state;
#[cfg(test)]
mod tests;
mod topk;

pub(crate) use accounts::{Accounts, Visit};
pub(crate) use ratio::Ratio;
pub(crate) use runs::{Aging, effective, for_each_runs, runs};
pub use state::FairState;
pub(crate) use topk::TopK;
