//! A borrowed walk over the string leaves of a JSON document, with their paths, without recursion.
//!
//! Shared by the dependency parser ([`crate::dag::for_each_dependency`]) and validation (which also
//! needs each leaf's path for its messages and a bound of the document's serialized size).

use serde_json::Value;
use std::fmt::Write as _;

/// One step of a borrowed path into a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathStep<'a> {
    /// An object key.
    Key(&'a str),
    /// An array position.
    Index(usize),
}

/// `prefix.key[3].other`.
pub(crate) fn display_path(prefix: &str, path: &[PathStep<'_>]) -> String {
    let mut out = String::from(prefix);
    for step in path {
        match step {
            PathStep::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            PathStep::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// The buffers of [`walk_strings`], reused from one document to the next.
#[derive(Default)]
pub(crate) struct Walk<'a> {
    /// The containers being iterated, innermost last.
    frames: Vec<Frame<'a>>,
    /// The path to the current container's children (one step per frame but the root's).
    path: Vec<PathStep<'a>>,
}

enum Frame<'a> {
    Array(std::iter::Enumerate<std::slice::Iter<'a, Value>>),
    Object(serde_json::map::Iter<'a>),
}

/// The size bound of a scalar (see [`walk_strings`]).
fn scalar_bound(v: &Value) -> usize {
    match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::String(s) => s.len().saturating_mul(6).saturating_add(2),
        _ => 25,
    }
}

/// Calls `f(path, text)` for every string leaf of `root` (object values and array items, not keys), in
/// document order, without recursion, reusing `walk`'s buffers. Returns an upper bound of the document's
/// size as serialized JSON (every string byte counted as a 6-byte escape, every number and container as
/// 25 bytes, plus one separator per item), so that the exact size ([`json_size`]) need only be computed
/// for documents that might be too large.
pub(crate) fn walk_strings<'a>(
    walk: &mut Walk<'a>,
    root: &'a Value,
    mut f: impl FnMut(&[PathStep<'a>], &'a str),
) -> usize {
    let Walk { frames, path } = walk;
    frames.clear();
    path.clear();
    let mut bound = scalar_bound(root);
    match root {
        Value::String(s) => {
            f(path, s);
            return bound;
        }
        // An empty container is common (`{}`): no buffer is allocated for it.
        Value::Array(items) if items.is_empty() => return bound,
        Value::Object(map) if map.is_empty() => return bound,
        Value::Array(items) => frames.push(Frame::Array(items.iter().enumerate())),
        Value::Object(map) => frames.push(Frame::Object(map.iter())),
        _ => return bound,
    }
    while let Some(frame) = frames.last_mut() {
        let (step, v) = match frame {
            Frame::Array(it) => match it.next() {
                Some((i, v)) => (PathStep::Index(i), v),
                None => {
                    frames.pop();
                    path.pop();
                    continue;
                }
            },
            Frame::Object(it) => match it.next() {
                Some((k, v)) => {
                    bound = bound.saturating_add(k.len().saturating_mul(6).saturating_add(4));
                    (PathStep::Key(k.as_str()), v)
                }
                None => {
                    frames.pop();
                    path.pop();
                    continue;
                }
            },
        };
        bound = bound.saturating_add(scalar_bound(v) + 1);
        match v {
            Value::String(s) => {
                path.push(step);
                f(path, s);
                path.pop();
            }
            Value::Array(items) => {
                path.push(step);
                frames.push(Frame::Array(items.iter().enumerate()));
            }
            Value::Object(map) => {
                path.push(step);
                frames.push(Frame::Object(map.iter()));
            }
            _ => {}
        }
    }
    bound
}

/// Counts the bytes of serialized JSON without building the string.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The size of `v` as serialized JSON, in bytes.
pub(crate) fn json_size(v: &Value) -> usize {
    let mut count = ByteCount(0);
    // Writing a `Value` to a writer that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, v);
    count.0
}

#[cfg(test)]
mod tests;
