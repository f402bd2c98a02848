//! Names: every new operation has one, unique case-insensitively; looking names up for references.

use super::Checker;

impl<'a> Checker<'a> {
    /// Adds every operation to the graph (which indexes the names) and reports empty names and names
    /// that an earlier operation already has, case-insensitively (among existing operations, nothing is
    /// reported: they were validated before).
    pub(super) fn index_names(&mut self) {
        for i in 0..self.ops.len() {
            let op = self.ops[i];
            if op.name.trim().is_empty() {
                if i >= self.first_new {
                    let p = self.problem(
                        i,
                        "name",
                        "the operation has no name: give every operation a unique name (references use it)".into(),
                    );
                    self.problems.push(p);
                }
                self.graph.add_operation(op);
                continue;
            }
            if i >= self.first_new
                && let Some(j) = self.graph.find_ignoring_case(&op.name)
            {
                let other = &self.ops[j].name;
                let message = if j < self.first_new {
                    format!(
                        "the generated operation `{}` has the name of an existing operation `{other}` (names are \
                         compared case-insensitively); give it another name",
                        op.name
                    )
                } else {
                    format!(
                        "duplicate operation name: {} `{other}` and {} `{}` (names are compared \
                         case-insensitively); rename one of them",
                        self.position(j),
                        self.position(i),
                        op.name
                    )
                };
                let p = self.problem(i, "name", message);
                self.problems.push(p);
            }
            self.graph.add_operation(op);
        }
    }

    /// Where the operation named `target` is: `Ok(index)`, or `Err(message tail)` saying it is unknown.
    /// Names are matched exactly (as execution finds them first); a case-insensitive match is suggested.
    pub(super) fn find(&self, target: &str) -> Result<usize, String> {
        if let Some(j) = self.graph.find_exact(target) {
            return Ok(j);
        }
        let scope = if self.first_new > 0 {
            "neither in the agenda nor among the generated operations"
        } else {
            "not an operation of the agenda"
        };
        match self.graph.find_ignoring_case(target) {
            Some(j) => Err(format!(
                "`{target}` is {scope} (names are matched exactly here); did you mean `{}`?",
                self.ops[j].name
            )),
            None => Err(format!("`{target}` is {scope}")),
        }
    }
}
