//! `params.dependsOn`: its shape, and the operations it names (read by [`Operation::depends_on_names`],
//! the one reader of the param).
//!
//! [`Operation::depends_on_names`]: crate::model::Operation::depends_on_names

use super::Checker;
use crate::dag::EdgeKind;
use crate::model::param_keys;
use serde_json::Value;

impl Checker<'_> {
    pub(super) fn check_depends_on(&mut self, i: usize) {
        let op = self.ops[i];
        let field = format!("params.{}", param_keys::DEPENDS_ON);
        let raw = op.params.as_ref().and_then(|p| p.get(param_keys::DEPENDS_ON));
        match raw {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(Value::Array(items)) => {
                if items.iter().any(|v| !v.is_string()) {
                    let p = self.problem(
                        i,
                        &field,
                        "`dependsOn` must list operation names: a comma-separated string or an array of strings".into(),
                    );
                    self.problems.push(p);
                }
            }
            Some(other) => {
                let p = self.problem(
                    i,
                    &field,
                    format!("`dependsOn` must be a comma-separated string or an array of operation names, got {other}"),
                );
                self.problems.push(p);
            }
        }
        for target in op.depends_on_names() {
            let message = match self.find(target) {
                Ok(j) if j == i => {
                    "`dependsOn` names the operation itself: an operation cannot depend on itself".into()
                }
                Ok(j) => {
                    self.add_edge(j, EdgeKind::DependsOn);
                    continue;
                }
                Err(why) => format!("`dependsOn` names an unknown operation: {why}"),
            };
            let p = self.problem(i, &field, message);
            self.problems.push(p);
        }
    }
}
