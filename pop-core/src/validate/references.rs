//! References in payloads: malformed ones, the obsolete `$$$` syntax, unknown tokens, names without
//! `.out`, and operations that do not exist. The references that name an operation are its edges.

use super::{Checker, KNOWN_TOKENS};
use crate::dag::{EdgeKind, is_generator_template};
use crate::refs::{OUTPUT_SUFFIX, PAYLOAD, Piece, RefSpan, TRANSFORM_REQUEST, scan};
use crate::walk::{PathStep, display_path};

impl Checker<'_> {
    /// Checks one string leaf of operation `i`'s payload: legacy syntax, malformed and unknown references.
    /// A generator's `payload.operations` is skipped: it describes the operations to add.
    pub(super) fn check_string(&mut self, i: usize, path: &[PathStep<'_>], text: &str) {
        if is_generator_template(self.ops[i], path) {
            return;
        }
        if text.contains('$') && text.contains("$$$") {
            for legacy in legacy_references(text) {
                let message = if legacy.len() > 3 {
                    format!(
                        "`{legacy}` uses the obsolete `$$$` reference prefix, which POP does not resolve; write \
                         `@<{}>` instead",
                        &legacy[3..]
                    )
                } else {
                    "`$$$` is the obsolete reference prefix, which POP does not resolve; write references as \
                     `@<name.out::/pointer>`"
                        .to_owned()
                };
                let p = self.problem(i, &display_path("payload", path), message);
                self.problems.push(p);
            }
        }
        if !text.contains('@') {
            return;
        }
        scan(text, |piece| match piece {
            Piece::Text(_) => {}
            Piece::Ref(r) => self.check_reference(i, path, &r),
            Piece::Malformed { text, message } => {
                let p =
                    self.problem(i, &display_path("payload", path), format!("malformed reference `{text}`: {message}"));
                self.problems.push(p);
            }
        });
    }

    fn check_reference(&mut self, i: usize, path: &[PathStep<'_>], r: &RefSpan<'_>) {
        let name = r.name;
        let message = if r.is_token() {
            if KNOWN_TOKENS.contains(&name) {
                return;
            }
            if name == PAYLOAD || name == TRANSFORM_REQUEST {
                format!(
                    "reference `{}`: `{name}` is only defined while a template is expanded; an agenda cannot use it",
                    r.raw
                )
            } else {
                format!(
                    "reference `{}`: unknown token `{name}`; the known tokens are {}",
                    r.raw,
                    KNOWN_TOKENS.join(", ")
                )
            }
        } else if let Some(target) = name.strip_suffix(OUTPUT_SUFFIX) {
            match self.find(target) {
                Ok(j) if j == i => {
                    format!(
                        "reference `{}` names the operation's own output: an operation cannot depend on itself",
                        r.raw
                    )
                }
                Ok(j) => {
                    self.add_edge(j, EdgeKind::Reference);
                    return;
                }
                Err(why) => format!("reference `{}` names an unknown operation: {why}", r.raw),
            }
        } else {
            match self.graph.find(name) {
                Some(j) => {
                    let target = &self.ops[j].name;
                    let rest = r.raw.get(2 + name.len()..r.raw.len().saturating_sub(1)).unwrap_or("");
                    format!(
                        "reference `{}` names operation `{target}` without `{OUTPUT_SUFFIX}`; write \
                         `@<{target}{OUTPUT_SUFFIX}{rest}>` to use its output",
                        r.raw
                    )
                }
                None => format!(
                    "reference `{}`: `{name}` is neither an operation output (`<operation>{OUTPUT_SUFFIX}`) nor a known \
                     token ({})",
                    r.raw,
                    KNOWN_TOKENS.join(", ")
                ),
            }
        };
        let p = self.problem(i, &display_path("payload", path), message);
        self.problems.push(p);
    }
}

/// The `$$$…` words of a string (the obsolete reference syntax).
fn legacy_references(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(start) = rest.find("$$$") {
        let tail = &rest[start..];
        let end = tail[3..].find(|c: char| c.is_whitespace() || c == '"' || c == '\'').map_or(tail.len(), |e| e + 3);
        out.push(&tail[..end]);
        rest = &tail[end.max(3)..];
    }
    out
}
