//! Which listed ready entries `ready_heads` reads, run by run.
//!
//! The keys-only index that lists an insight's ready set is, on AWS, eventually consistent: right
//! after a refill it may still list the heads that refill removed. A run's first `per_run` listed
//! entries are therefore only candidates. They are read consistently, and a run that comes back
//! short (entries gone or moved) is topped up from its next listed entries, round after round, until
//! it has `per_run` current entries or its listing is exhausted. The listing keeps a few spare
//! entries per run for that ([`Heads::spare`]), so a stale head costs another read, not a head.

/// The listed entries of each run and what was read of them. `T` is a listed entry, `E` a current
/// one.
pub(crate) struct Heads<T, E> {
    per_run: usize,
    /// Per run: its listed entries (at most `per_run` + spare), the next one not yet read, and its
    /// current entries read so far, in listing order.
    runs: Vec<Run<T, E>>,
    /// Runs' candidates (up to `per_run` each) listed so far.
    candidates: usize,
}

struct Run<T, E> {
    prefix: String,
    listed: Vec<T>,
    next: usize,
    got: Vec<E>,
}

impl<T, E> Heads<T, E> {
    pub(crate) fn new(per_run: usize) -> Self {
        Self { per_run, runs: Vec::new(), candidates: 0 }
    }

    /// Listed entries kept per run beyond its `per_run` candidates.
    pub(crate) fn spare(per_run: usize) -> usize {
        per_run.clamp(4, 64)
    }

    /// Adds the next listed entry, of the run `prefix`. Returns the candidates listed so far.
    pub(crate) fn list(&mut self, prefix: &str, item: T) -> usize {
        if self.runs.last().is_none_or(|r| r.prefix != prefix) {
            self.runs.push(Run { prefix: prefix.to_owned(), listed: Vec::new(), next: 0, got: Vec::new() });
        }
        let keep = self.per_run.saturating_add(Self::spare(self.per_run));
        if let Some(run) = self.runs.last_mut() {
            if run.listed.len() < keep {
                if run.listed.len() < self.per_run {
                    self.candidates += 1;
                }
                run.listed.push(item);
            }
        }
        self.candidates
    }

    /// The listed entries to read next: for each run short of `per_run` current entries, as many of
    /// its next listed ones as it lacks, with their runs. Empty when no run can get more.
    pub(crate) fn batch(&mut self) -> Vec<(usize, &T)> {
        let mut out = Vec::new();
        for (r, run) in self.runs.iter_mut().enumerate() {
            let need = self.per_run.saturating_sub(run.got.len());
            let take = need.min(run.listed.len() - run.next);
            out.extend(run.listed[run.next..run.next + take].iter().map(|t| (r, t)));
            run.next += take;
        }
        out
    }

    /// A current entry of run `r`, read from the last batch.
    pub(crate) fn found(&mut self, r: usize, entry: E) {
        if let Some(run) = self.runs.get_mut(r) {
            run.got.push(entry);
        }
    }

    /// Each run's current entries, in run order, at most `limit` in all.
    pub(crate) fn into_heads(self, limit: usize) -> Vec<E> {
        self.runs.into_iter().flat_map(|r| r.got).take(limit).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Heads;
    use std::collections::HashSet;

    /// Reads batch after batch as `ready_heads` does, `stale` entries coming back missing.
    fn read(per_run: usize, limit: usize, listing: &[(&str, u32)], stale: &HashSet<u32>) -> (Vec<u32>, usize) {
        let mut heads = Heads::new(per_run);
        for (prefix, id) in listing {
            if heads.list(prefix, *id) == limit {
                break;
            }
        }
        let mut rounds = 0;
        loop {
            let batch: Vec<(usize, u32)> = heads.batch().into_iter().map(|(r, t)| (r, *t)).collect();
            if batch.is_empty() {
                break;
            }
            rounds += 1;
            for (r, id) in batch {
                if !stale.contains(&id) {
                    heads.found(r, id);
                }
            }
        }
        (heads.into_heads(limit), rounds)
    }

    fn listing() -> Vec<(&'static str, u32)> {
        let mut out = Vec::new();
        for i in 0..10 {
            out.push(("c1#5", 100 + i));
        }
        out.push(("c1#0", 200));
        for i in 0..3 {
            out.push(("c2#5", 300 + i));
        }
        out
    }

    #[test]
    fn without_stale_entries_one_round_reads_each_runs_first_per_run() {
        let (heads, rounds) = read(2, usize::MAX, &listing(), &HashSet::new());
        assert_eq!(heads, [100, 101, 200, 300, 301]);
        assert_eq!(rounds, 1);
        let (heads, _) = read(2, 3, &listing(), &HashSet::new());
        assert_eq!(heads, [100, 101, 200]);
        let (heads, _) = read(usize::MAX, usize::MAX, &listing(), &HashSet::new());
        assert_eq!(heads.len(), 14);
    }

    /// The heads the previous refill removed, still listed by a lagging index: the run is topped up
    /// from its next listed entries instead of coming back short.
    #[test]
    fn stale_heads_are_replaced_by_the_runs_next_entries() {
        let stale: HashSet<u32> = [100, 101, 102, 300].into_iter().collect();
        let (heads, rounds) = read(2, usize::MAX, &listing(), &stale);
        assert_eq!(heads, [103, 104, 200, 301, 302]);
        assert_eq!(rounds, 3);
        // a run whose listing runs out gives what it has
        let stale: HashSet<u32> = [300, 301].into_iter().collect();
        let (heads, _) = read(2, usize::MAX, &listing(), &stale);
        assert_eq!(heads, [100, 101, 200, 302]);
    }

    /// A run keeps `per_run` + spare listed entries: more stale heads than that leave it short.
    #[test]
    fn the_spare_bounds_what_a_run_keeps() {
        let spare = Heads::<u32, u32>::spare(2);
        let stale: HashSet<u32> = (100..100 + 2 + spare as u32).collect();
        let (heads, _) = read(2, usize::MAX, &listing(), &stale);
        assert_eq!(heads, [200, 300, 301]);
        assert_eq!(Heads::<u32, u32>::spare(1), 4);
        assert_eq!(Heads::<u32, u32>::spare(usize::MAX), 64);
    }
}
