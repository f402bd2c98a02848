//! The payload: one walk over its strings (each checked for references) and its size.

use super::Checker;
use crate::model::Operation;
use crate::walk::{json_size, walk_strings};

impl<'a> Checker<'a> {
    /// Walks operation `i`'s payload once: every string is checked for references
    /// ([`Checker::check_string`]), and the payload's serialized size against the limit (computed
    /// exactly only when the walk's bound says it might be over).
    pub(super) fn check_payload(&mut self, i: usize) {
        let op: &'a Operation = self.ops[i];
        let mut walk = std::mem::take(&mut self.walk);
        let bound = walk_strings(&mut walk, &op.payload, |path, text| self.check_string(i, path, text));
        self.walk = walk;
        if bound > self.opts.max_payload_bytes {
            let size = json_size(&op.payload);
            if size > self.opts.max_payload_bytes {
                let p = self.problem(
                    i,
                    "payload",
                    format!(
                        "the payload is {size} bytes of JSON, over the limit of {} bytes \
                         (ValidationOptions::max_payload_bytes); pass large data by location (a URL or a path) \
                         instead",
                        self.opts.max_payload_bytes
                    ),
                );
                self.problems.push(p);
            }
        }
    }
}
