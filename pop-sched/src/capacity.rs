//! Resource-aware admission: a pool declares its capacity (CPU, memory and custom counted
//! resources such as GPUs or licences), each agenda a demand, and an [`Admitter`] decides which of
//! the agendas a pool holds starts next so that the capacity is never exceeded and a large agenda is
//! not starved by small ones.
//!
//! # Reservation with bounded backfill
//!
//! Candidates are offered in queue order (the scheduling algorithm's order). The head starts when its
//! demand fits what is free. When it does not, the head is **reserved**: smaller candidates behind it
//! that fit may start in its place (backfill, which keeps the pool busy), but at most
//! `max_backfill` of them while the same head waits; after that nothing new starts until the head
//! fits, which it does once enough running agendas finish (its demand is within the capacity, or it
//! is refused outright). So a large agenda waits at most for the agendas running when it became the
//! head plus `max_backfill` more: no starvation, with a bound the operator sets.
//!
//! A demand for more than the capacity of some resource (or for a resource the pool does not
//! declare) can never fit: [`Admit::Never`] names it, so the caller refuses the agenda rather than
//! hold the pool for it.
//!
//! Pure: no IO, no clock; [`crate::sim::run_admission`] replays workloads through it.

use pop_core::{Error, Problem, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Amounts of counted resources: `cpu` in millicores, `memory` in bytes, any other name as a count.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Resources(pub BTreeMap<String, u64>);

impl Resources {
    /// Nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// `self` with `name` set to `amount` (base units: millicores, bytes, counts).
    pub fn with(mut self, name: &str, amount: u64) -> Self {
        self.0.insert(name.to_owned(), amount);
        self
    }

    /// The amount of `name` (0 when absent).
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// Parses `cpu=4,memory=8Gi,gpu=1`: `cpu` in cores or millicores (`500m`), `memory` in bytes
    /// with an optional suffix (`Ki` `Mi` `Gi` `Ti`, `K` `M` `G` `T`), anything else a whole count.
    /// An empty spec is no resources.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut out = Self::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(invalid(format!("{part:?} is not NAME=AMOUNT (e.g. cpu=4,memory=8Gi,gpu=1)")));
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(invalid(format!("{part:?} has no resource name")));
            }
            out.0.insert(name.to_owned(), quantity(name, value.trim())?);
        }
        Ok(out)
    }

    /// Whether every amount of `self` is at most the same amount of `other`.
    pub fn fits_in(&self, other: &Resources) -> bool {
        self.0.iter().all(|(k, v)| *v <= other.get(k))
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self` (saturating at 0).
    pub fn sub(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            if let Some(e) = self.0.get_mut(k) {
                *e = e.saturating_sub(*v);
            }
        }
    }

    /// `self − other` per resource of `self` (saturating at 0).
    pub fn minus(&self, other: &Resources) -> Resources {
        let mut out = self.clone();
        out.sub(other);
        out
    }

    /// Per resource, the larger of the two.
    pub fn max_with(&mut self, other: &Resources) {
        for (k, v) in &other.0 {
            let e = self.0.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// The first resource of `self` above `capacity`, as a sentence; `None` when it fits.
    pub fn exceeds(&self, capacity: &Resources) -> Option<String> {
        self.0.iter().find(|(k, v)| **v > capacity.get(k)).map(|(k, v)| {
            if capacity.0.contains_key(k) {
                format!("it needs {} {k}, more than the pool's capacity of {}", show(k, *v), show(k, capacity.get(k)))
            } else {
                format!("it needs {} {k}, which the pool does not declare", show(k, *v))
            }
        })
    }
}

impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={}", show(k, *v))).collect();
        f.write_str(&parts.join(","))
    }
}

fn show(name: &str, v: u64) -> String {
    match name {
        "cpu" if v % 1000 == 0 => (v / 1000).to_string(),
        "cpu" => format!("{v}m"),
        "memory" if v > 0 && v % (1 << 30) == 0 => format!("{}Gi", v >> 30),
        "memory" if v > 0 && v % (1 << 20) == 0 => format!("{}Mi", v >> 20),
        _ => v.to_string(),
    }
}

fn invalid(message: String) -> Error {
    Error::problems(vec![Problem::new(message).field("capacity")])
}

/// A quantity of `name` in base units (see [`Resources::parse`]).
pub fn quantity(name: &str, value: &str) -> Result<u64> {
    let bad = || invalid(format!("{name}={value:?}: not a quantity (e.g. cpu=500m or 2, memory=512Mi or 8Gi, gpu=1)"));
    match name {
        "cpu" => {
            if let Some(m) = value.strip_suffix('m') {
                m.parse::<u64>().map_err(|_| bad())
            } else {
                let cores: f64 = value.parse().map_err(|_| bad())?;
                if !(cores.is_finite() && cores >= 0.0) {
                    return Err(bad());
                }
                Ok((cores * 1000.0).round() as u64)
            }
        }
        "memory" => {
            let units: [(&str, u64); 8] = [
                ("Ki", 1 << 10),
                ("Mi", 1 << 20),
                ("Gi", 1 << 30),
                ("Ti", 1 << 40),
                ("K", 1_000),
                ("M", 1_000_000),
                ("G", 1_000_000_000),
                ("T", 1_000_000_000_000),
            ];
            let (num, mult) =
                units.iter().find_map(|(s, m)| value.strip_suffix(s).map(|n| (n, *m))).unwrap_or((value, 1));
            let n: f64 = num.parse().map_err(|_| bad())?;
            if !(n.is_finite() && n >= 0.0) {
                return Err(bad());
            }
            Ok((n * mult as f64).round() as u64)
        }
        _ => value.parse::<u64>().map_err(|_| bad()),
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// Start the candidate at this index (then call [`Admitter::started`]).
    Start(usize),
    /// The candidate at this index can never fit the pool: refuse it (the reason says why).
    Never(usize, String),
    /// Start nothing now: nothing fits, or the head is reserved and its backfill bound is spent.
    Wait,
}

/// The admission state of one pool (see the module docs).
#[derive(Debug, Clone)]
pub struct Admitter {
    capacity: Resources,
    in_use: Resources,
    max_backfill: usize,
    /// The reserved head and how many candidates started past it.
    reserved: Option<(String, usize)>,
}

impl Admitter {
    /// A pool of `capacity`, letting at most `max_backfill` smaller agendas start past a head that
    /// does not fit.
    pub fn new(capacity: Resources, max_backfill: usize) -> Self {
        Self { capacity, in_use: Resources::new(), max_backfill, reserved: None }
    }

    /// The capacity.
    pub fn capacity(&self) -> &Resources {
        &self.capacity
    }

    /// What running agendas use.
    pub fn in_use(&self) -> &Resources {
        &self.in_use
    }

    /// What is free.
    pub fn free(&self) -> Resources {
        self.capacity.minus(&self.in_use)
    }

    /// The reserved head, if any, and how many agendas started past it.
    pub fn reserved(&self) -> Option<(&str, usize)> {
        self.reserved.as_ref().map(|(k, n)| (k.as_str(), *n))
    }

    /// Decides among `candidates` (queue order: key, demand).
    pub fn choose(&mut self, candidates: &[(&str, &Resources)]) -> Admit {
        for (i, (_, d)) in candidates.iter().enumerate() {
            if let Some(why) = d.exceeds(&self.capacity) {
                return Admit::Never(i, why);
            }
        }
        let Some((head, demand)) = candidates.first() else { return Admit::Wait };
        let free = self.free();
        if demand.fits_in(&free) {
            if self.reserved.as_ref().is_some_and(|(k, _)| k == head) {
                self.reserved = None;
            }
            return Admit::Start(0);
        }
        match &mut self.reserved {
            Some((k, _)) if k == head => {}
            other => *other = Some(((*head).to_owned(), 0)),
        }
        let Some((_, bypassed)) = self.reserved.as_mut() else { return Admit::Wait };
        if *bypassed >= self.max_backfill {
            return Admit::Wait;
        }
        match candidates.iter().skip(1).position(|(_, d)| d.fits_in(&free)) {
            Some(j) => {
                *bypassed += 1;
                Admit::Start(j + 1)
            }
            None => Admit::Wait,
        }
    }

    /// Records that an agenda of `demand` started.
    pub fn started(&mut self, demand: &Resources) {
        self.in_use.add(demand);
    }

    /// Records that an agenda of `demand` finished.
    pub fn finished(&mut self, demand: &Resources) {
        self.in_use.sub(demand);
    }

    /// Why `key` (not started) waits, for `explain`.
    pub fn why_waiting(&self, key: &str, demand: &Resources) -> String {
        if let Some(why) = demand.exceeds(&self.capacity) {
            return format!("never fits the pool: {why}");
        }
        match &self.reserved {
            Some((k, n)) if k == key => format!(
                "reserved: waits for {} free (free now {}); {n} of at most {} smaller agendas started past it",
                demand,
                self.free(),
                self.max_backfill
            ),
            Some((k, _)) => format!("behind agenda {k}, reserved until it fits"),
            None => format!("waits for {demand} free (free now {})", self.free()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_capacities_and_refuses_bad_ones() {
        let r = Resources::parse("cpu=4, memory=8Gi,gpu=1,licence=3").unwrap();
        assert_eq!((r.get("cpu"), r.get("memory"), r.get("gpu"), r.get("licence")), (4000, 8 << 30, 1, 3));
        assert_eq!(Resources::parse("cpu=500m,memory=512Mi").unwrap().to_string(), "cpu=500m,memory=512Mi");
        assert_eq!(Resources::parse("cpu=1.5").unwrap().get("cpu"), 1500);
        assert_eq!(Resources::parse("").unwrap(), Resources::new());
        for bad in ["cpu", "cpu=x", "=3", "gpu=1.5", "memory=-1Gi", "cpu=-2"] {
            let e = Resources::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("quantity") || e.contains("NAME=AMOUNT") || e.contains("no resource name"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_head_that_does_not_fit_is_reserved_and_backfill_is_bounded() {
        let cap = Resources::new().with("cpu", 4000);
        let mut a = Admitter::new(cap, 2);
        let small = Resources::new().with("cpu", 1000);
        let big = Resources::new().with("cpu", 4000);
        a.started(&small);
        // big does not fit (1 cpu in use): up to 2 small ones start past it, then nothing
        let c = [("big", &big), ("s1", &small), ("s2", &small), ("s3", &small)];
        assert_eq!(a.choose(&c), Admit::Start(1));
        a.started(&small);
        assert_eq!(a.choose(&[c[0], c[2], c[3]]), Admit::Start(1));
        a.started(&small);
        assert_eq!(a.choose(&[c[0], c[3]]), Admit::Wait, "the backfill bound is spent");
        assert!(a.why_waiting("big", &big).starts_with("reserved"), "{}", a.why_waiting("big", &big));
        for _ in 0..3 {
            a.finished(&small);
        }
        assert_eq!(a.choose(&[c[0], c[3]]), Admit::Start(0));
        assert!(a.reserved().is_none());
        let gpu = Resources::new().with("gpu", 1);
        match a.choose(&[("g", &gpu)]) {
            Admit::Never(0, why) => assert!(why.contains("does not declare"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
