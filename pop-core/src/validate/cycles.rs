//! Cycles through references or `dependsOn`, found by the graph ([`crate::dag::AgendaGraph::cycles`])
//! and named once each: `a → b → c → a` (→ reads "depends on").

use super::Checker;
use crate::dag::Cycle;
use crate::error::Problem;
use std::collections::HashSet;
use std::fmt::Write as _;

/// How many other members of a tangle a cycle's message lists before summarising.
const MAX_OTHERS_NAMED: usize = 10;

impl Checker<'_> {
    /// One problem per strongly connected component of the dependencies found.
    pub(super) fn report_cycles(&mut self) {
        for cycle in self.graph.cycles() {
            // An operation depending on itself was reported where it was written (no edge was added).
            if cycle.members.len() > 1 {
                let p = self.cycle_problem(&cycle);
                self.problems.push(p);
            }
        }
    }

    /// The shortest cycle through the component's first operation, and the other operations caught in it.
    fn cycle_problem(&self, cycle: &Cycle) -> Problem {
        let names = self.graph.cycle_names(cycle);
        let mut message = format!(
            "circular dependency: {} (→ reads \"depends on\", through a reference or dependsOn), so none of these \
             operations can ever start; remove one of the dependencies",
            names.join(" → ")
        );
        let on_cycle: HashSet<usize> = cycle.path.iter().copied().collect();
        let others: Vec<usize> = cycle.members.iter().copied().filter(|v| !on_cycle.contains(v)).collect();
        if !others.is_empty() {
            let shown = self.graph.names(&others[..others.len().min(MAX_OTHERS_NAMED)]);
            let _ = write!(message, "; also caught in this tangle: {}", shown.join(", "));
            if others.len() > shown.len() {
                let _ = write!(message, " and {} more", others.len() - shown.len());
            }
        }
        let mut p = Problem::new(message);
        let start = cycle.path.first().copied().unwrap_or(0);
        p.operation = (!self.is_unnamed(start)).then(|| self.ops[start].name.clone());
        p
    }
}
