//! A customer's runs of equal priority (its list is sorted priority desc, added asc), found by binary
//! search and, for many customers, in lockstep; and the effective priority of an entry with aging.

use pop_core::model::{Millis, ReadyAgenda};
use pop_core::sched::RunHead;

/// The runs of equal priority of one customer's entries (sorted priority desc, added asc), as
/// half-open index ranges, highest priority first.
pub(crate) fn runs(entries: &[ReadyAgenda], out: &mut Vec<(usize, usize)>) {
    let Some(last) = entries.last().map(|e| e.priority) else { return };
    let len = entries.len();
    let mut start = 0;
    loop {
        let p = entries[start].priority;
        if p <= last {
            // The last run (or, in an unsorted list, the rest as one run).
            out.push((start, len));
            return;
        }
        // Binary search between the run's start and the last entry, which is of lower priority
        // (the same probes as `for_each_runs`).
        let (mut lo, mut hi) = (start + 1, len - 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if entries[mid].priority >= p {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        out.push((start, lo));
        start = lo;
    }
}

/// How many lists [`for_each_runs`] searches in lockstep.
const LANES: usize = 16;

/// A run search in progress (see [`for_each_runs`]).
#[derive(Clone, Copy, Default)]
struct Search {
    len: usize,
    last: i32,
    /// Start and priority of the run whose end is searched in `lo..hi`.
    start: usize,
    p: i32,
    lo: usize,
    hi: usize,
    done: bool,
}

/// Calls `f(i, entries, runs)` with the runs of every list, in list order: the runs given with a list
/// when there are any (a [`CustomerReady::runs`](pop_core::sched::CustomerReady) the caller found
/// while reading the ready set: no entry is read), else as [`runs`] finds them.
///
/// Lists without runs are searched sixteen at a time in lockstep, one probe of each per round, so
/// that the memory reads of different customers overlap instead of waiting for each other: the
/// probes of a binary search in a large ready set mostly miss the cache.
pub(crate) fn for_each_runs<'a>(
    lists: impl Iterator<Item = (&'a [ReadyAgenda], &'a [RunHead])>,
    mut f: impl FnMut(usize, &'a [ReadyAgenda], &[RunHead]),
) {
    let empty: &[ReadyAgenda] = &[];
    let mut lanes = [(0usize, empty); LANES];
    let mut used = 0;
    let mut scratch = Lockstep::default();
    for (i, (entries, given)) in lists.enumerate() {
        if !given.is_empty() {
            if used > 0 {
                scratch.search(&lanes[..used], &mut f);
                used = 0;
            }
            f(i, entries, given);
            continue;
        }
        lanes[used] = (i, entries);
        used += 1;
        if used == LANES {
            scratch.search(&lanes[..used], &mut f);
            used = 0;
        }
    }
    if used > 0 {
        scratch.search(&lanes[..used], &mut f);
    }
}

/// The buffers of a lockstep search (see [`for_each_runs`]).
#[derive(Default)]
struct Lockstep {
    out: [Vec<RunHead>; LANES],
    st: [Search; LANES],
}

impl Lockstep {
    fn search<'a>(
        &mut self,
        batch: &[(usize, &'a [ReadyAgenda])],
        f: &mut impl FnMut(usize, &'a [ReadyAgenda], &[RunHead]),
    ) {
        let (out, st) = (&mut self.out, &mut self.st);
        let head = |entries: &[ReadyAgenda], start: usize, end: usize| RunHead {
            start: start as u32,
            end: end as u32,
            priority: entries[start].priority,
            added: entries[start].added,
        };
        for (g, &(_, entries)) in batch.iter().enumerate() {
            out[g].clear();
            let s = &mut st[g];
            let Some(last) = entries.last().map(|e| e.priority) else {
                s.done = true;
                continue;
            };
            let p = entries[0].priority;
            *s = Search { len: entries.len(), last, start: 0, p, lo: 1, hi: entries.len() - 1, done: false };
            if p <= last {
                out[g].push(head(entries, 0, s.len));
                s.done = true;
            }
        }
        loop {
            let mut active = false;
            for (g, &(_, entries)) in batch.iter().enumerate() {
                let s = &mut st[g];
                if s.done {
                    continue;
                }
                active = true;
                if s.lo < s.hi {
                    let mid = s.lo + (s.hi - s.lo) / 2;
                    let ge = entries[mid].priority >= s.p;
                    s.lo = if ge { mid + 1 } else { s.lo };
                    s.hi = if ge { s.hi } else { mid };
                } else {
                    // The run ends at `lo`; the next starts there.
                    out[g].push(head(entries, s.start, s.lo));
                    s.start = s.lo;
                    s.p = entries[s.start].priority;
                    if s.p <= s.last {
                        out[g].push(head(entries, s.start, s.len));
                        s.done = true;
                    } else {
                        s.lo = s.start + 1;
                        s.hi = s.len - 1;
                    }
                }
            }
            if !active {
                break;
            }
        }
        for (g, &(i, entries)) in batch.iter().enumerate() {
            f(i, entries, &out[g]);
        }
    }
}

/// Effective priority: priority plus one level per `step_ms` waited (none without aging).
#[inline]
pub(crate) fn effective(entry: &ReadyAgenda, now: Millis, step_ms: Option<u64>) -> i64 {
    effective_of(entry.priority, entry.added, now, step_ms)
}

/// [`effective`] of an entry's priority and `added`.
#[inline]
pub(crate) fn effective_of(priority: i32, added: Millis, now: Millis, step_ms: Option<u64>) -> i64 {
    let entry = (priority, added);
    let base = i64::from(entry.0);
    match step_ms {
        Some(step) if step > 0 => {
            let wait = now.saturating_sub(entry.1).max(0) as u64;
            base.saturating_add((wait / step).min(i64::MAX as u64) as i64)
        }
        _ => base,
    }
}

/// [`effective_of`] for one pick call (one `now`, one step), without a division per entry: the
/// quotient `wait / step` comes from a multiplication by the step's reciprocal and one correction,
/// exact for every wait (a division costs tens of cycles, and a pass computes one per run).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Aging {
    now: Millis,
    /// The step, 0 without aging.
    step: u64,
    /// `floor(2^64 / step)` for a step of at least 2 (then below 2^64).
    inverse: u64,
    /// `before[d]`: an entry added at or before it has waited at least `d + 1` steps (`Millis::MAX`
    /// when that time is out of range: any entry may have). See [`Aging::may_exceed`].
    before: [Millis; 8],
}

impl Aging {
    pub(crate) fn new(now: Millis, step_ms: Option<u64>) -> Self {
        let step = step_ms.unwrap_or(0);
        let inverse = if step < 2 { 0 } else { ((1u128 << 64) / u128::from(step)) as u64 };
        let mut before = [Millis::MAX; 8];
        for (d, b) in before.iter_mut().enumerate() {
            if let Some(t) = i64::try_from(step.saturating_mul(d as u64 + 1)).ok().and_then(|x| now.checked_sub(x)) {
                *b = t;
            }
        }
        Self { now, step, inverse, before }
    }

    /// Whether an entry of `priority` added at `added` may have an effective priority above `best`:
    /// false only when it certainly has not. Decided by one comparison of `added` (no division or
    /// multiplication) when `best` is less than 8 levels above `priority`.
    #[inline(always)]
    pub(crate) fn may_exceed(&self, priority: i32, added: Millis, best: i64) -> bool {
        let Some(d) = best.checked_sub(i64::from(priority)) else { return true };
        if self.step == 0 {
            return d < 0;
        }
        // Above `best` takes at least `d + 1` levels, that is a wait of `(d + 1) * step`.
        match d {
            ..0 => true,
            0..8 => added <= self.before[d as usize],
            _ => true,
        }
    }

    /// `wait / step` (`step > 0`). With `inverse = floor(2^64 / step)`, `wait * inverse / 2^64`
    /// is more than `wait / step - 1` and at most `wait / step`: the estimate `q` is the quotient or
    /// one less, which the remainder `wait - q * step` (no overflow: `q * step <= wait`) settles.
    #[inline(always)]
    fn levels(&self, wait: u64) -> u64 {
        if self.step == 1 {
            return wait;
        }
        let q = ((u128::from(wait) * u128::from(self.inverse)) >> 64) as u64;
        q + u64::from(wait - q * self.step >= self.step)
    }

    /// The effective priority of an entry of `priority` added at `added`: [`effective_of`].
    #[inline(always)]
    pub(crate) fn effective(&self, priority: i32, added: Millis) -> i64 {
        let base = i64::from(priority);
        if self.step == 0 {
            return base;
        }
        // `now.saturating_sub(added).max(0)`: a positive difference of two i64 fits a u64 exactly.
        let wait = if self.now > added { (self.now.wrapping_sub(added) as u64).min(i64::MAX as u64) } else { 0 };
        base.saturating_add(self.levels(wait) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fair::tests::Rng;

    fn naive(priorities: &[i32]) -> Vec<(usize, usize)> {
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (i, p) in priorities.iter().enumerate() {
            match out.last_mut() {
                Some((s, e)) if priorities[*s] == *p => *e = i + 1,
                _ => out.push((i, i + 1)),
            }
        }
        out
    }

    #[test]
    fn runs_match_a_linear_scan() {
        let cases: Vec<Vec<i32>> = vec![
            vec![],
            vec![0],
            vec![3, 3, 3],
            vec![3, 2, 1, 0],
            vec![5, 5, 5, 5, 5, 5, 5, 5, 5, 4],
            vec![9, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0],
            (0..100).map(|i| 3 - i / 25).collect(),
            (0..37).map(|i| 10 - i / 3).collect(),
        ];
        for priorities in cases {
            let entries: Vec<ReadyAgenda> =
                priorities.iter().map(|&priority| ReadyAgenda { priority, ..ReadyAgenda::default() }).collect();
            let mut got = Vec::new();
            runs(&entries, &mut got);
            assert_eq!(got, naive(&priorities), "{priorities:?}");
        }
    }

    #[test]
    fn runs_in_lockstep_match_runs_one_by_one() {
        let mut rng = Rng(7);
        let lists: Vec<Vec<ReadyAgenda>> = (0..53)
            .map(|n| {
                let len = rng.below(40) as usize;
                let mut p: Vec<i32> = (0..len).map(|_| rng.below(1 + n % 5) as i32).collect();
                if n % 7 != 3 {
                    p.sort_unstable_by(|a, b| b.cmp(a));
                }
                p.into_iter().map(|priority| ReadyAgenda { priority, ..ReadyAgenda::default() }).collect()
            })
            .collect();
        // Every third sorted list comes with its runs from `RunHead::scan` (as a scheduler hands them):
        // the lists with and without runs interleave, and both must agree with `runs`.
        let given: Vec<Vec<RunHead>> = lists
            .iter()
            .enumerate()
            .map(|(n, l)| {
                let mut out = Vec::new();
                if n % 3 == 0 && l.is_sorted_by(|a, b| a.priority >= b.priority) {
                    RunHead::scan(l, &mut out);
                }
                out
            })
            .collect();
        let mut seen = 0;
        for_each_runs(lists.iter().map(Vec::as_slice).zip(given.iter().map(Vec::as_slice)), |i, entries, got| {
            assert_eq!(i, seen);
            seen += 1;
            assert_eq!(entries.len(), lists[i].len());
            let got: Vec<(usize, usize)> = got
                .iter()
                .map(|h| {
                    assert_eq!(
                        (h.priority, h.added),
                        (entries[h.start as usize].priority, entries[h.start as usize].added)
                    );
                    (h.start as usize, h.end as usize)
                })
                .collect();
            let priorities: Vec<i32> = entries.iter().map(|e| e.priority).collect();
            let mut one = Vec::new();
            runs(entries, &mut one);
            assert_eq!(got, one, "list {i}: lockstep and one by one");
            if priorities.is_sorted_by(|a, b| a >= b) {
                assert_eq!(got, naive(&priorities), "list {i}");
            }
            // Sorted or not, the runs cover the list in order, each non-empty.
            let mut at = 0;
            for &(s, e) in &got {
                assert!(s == at && e > s, "list {i}: {got:?}");
                at = e;
            }
            assert_eq!(at, entries.len(), "list {i}: {got:?}");
        });
        assert_eq!(seen, lists.len());
    }

    #[test]
    fn aging_without_division_matches_effective_of() {
        let mut rng = Rng(11);
        let steps = [1u64, 2, 3, 7, 1000, 60_000, 86_400_000, u64::MAX / 3, u64::MAX - 1, u64::MAX];
        let nows = [0i64, 1, 1_700_000_100_000, i64::MAX, i64::MIN, -5];
        for &step in &steps {
            for &now in &nows {
                let aging = Aging::new(now, Some(step));
                let mut addeds =
                    vec![0i64, 1, -1, now, now.wrapping_sub(1), i64::MIN, i64::MAX, now.wrapping_sub(step as i64)];
                for _ in 0..200 {
                    let r = (rng.below(u64::MAX) as i64).wrapping_mul(if rng.below(2) == 0 { 1 } else { -1 });
                    addeds.push(r);
                    addeds.push(now.wrapping_sub(rng.below(10 * step.min(1 << 40)) as i64));
                }
                for &added in &addeds {
                    for priority in [i32::MIN, -1, 0, 3, i32::MAX] {
                        assert_eq!(
                            aging.effective(priority, added),
                            effective_of(priority, added, now, Some(step)),
                            "priority {priority} added {added} now {now} step {step}"
                        );
                    }
                }
            }
        }
        // `may_exceed` is false only when the effective priority is not above `best`.
        for &step in &[1u64, 2, 7, 60_000, u64::MAX] {
            for &now in &[0i64, 1_700_000_100_000, i64::MIN, i64::MAX] {
                let aging = Aging::new(now, Some(step));
                for _ in 0..300 {
                    let added = now.wrapping_sub(rng.below(12 * step.min(1 << 40)) as i64);
                    let priority = rng.below(6) as i32 - 1;
                    for best in [-3i64, 0, 1, 2, 3, 5, 8, 11, 20, i64::MAX, i64::MIN] {
                        let e = aging.effective(priority, added);
                        assert!(
                            aging.may_exceed(priority, added, best) || e <= best,
                            "{priority} {added} {best} {now} {step}"
                        );
                    }
                }
            }
        }
        for step in [None, Some(0)] {
            let aging = Aging::new(5_000, step);
            assert_eq!(aging.effective(2, 0), effective_of(2, 0, 5_000, step));
            assert_eq!(aging.effective(2, 0), 2);
        }
    }
}
