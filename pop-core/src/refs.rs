//! The reference language: `@<name>`, `@<name::/json/pointer>`, `@<name::/ptr?fallback>`, `@<name::/ptr?>`.
//!
//! Strings are parsed once into a small AST ([`Template`]: text and [`Reference`] segments); a JSON
//! document is parsed once into a [`ParsedDocument`] that remembers where its references are, and can
//! then be resolved against any [`Context`] many times.
//!
//! Resolution follows the original POP (`JsonReferenceReplacer`), with its boolean quirk fixed:
//!
//! * A string that is exactly one reference is replaced by the referenced JSON value, whatever its
//!   type (object, array, string, number, boolean, null).
//! * In a longer ("composite") string each reference is replaced by the text of a scalar; an object or
//!   array there is an *invalid* reference.
//! * A pointer that finds nothing uses the fallback (`?text` → the string `text`; `?` → `null`, or the
//!   text `null` in a composite string); without a fallback the reference is *invalid*.
//! * A name the context does not have is a *missing* reference: the text is left as it is, and the
//!   name is a dependency (for `<op>.out`, on operation `op`).
//!
//! ```
//! use pop_core::refs::{ParsedDocument, resolve};
//! use serde_json::json;
//! let ctx: std::collections::HashMap<String, serde_json::Value> =
//!     [("encode.out".to_string(), json!({"file": "a.mp4", "ok": true}))].into();
//! let r = resolve(&json!({"in": "@<encode.out::/file>", "ok": "@<encode.out::/ok>", "x": "@<b.out>"}), &ctx);
//! assert_eq!(r.value, json!({"in": "a.mp4", "ok": true, "x": "@<b.out>"}));
//! assert_eq!(r.missing, vec!["b.out".to_string()]);
//! ```

use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// The suffix of an operation's output name: `<op>.out`.
pub const OUTPUT_SUFFIX: &str = ".out";
/// The prefix of the built-in tokens (`pop.agendaId`, `pop.operationName`, `pop.params`).
pub const TOKEN_PREFIX: &str = "pop.";
/// Token: the agenda's id.
pub const AGENDA_ID: &str = "pop.agendaId";
/// Token: the operation's name.
pub const OPERATION_NAME: &str = "pop.operationName";
/// Token (extension): the agenda's params.
pub const PARAMS: &str = "pop.params";
/// Template expansion: the run payload.
pub const PAYLOAD: &str = "pop.payload";
/// Template expansion: the run payload (legacy name).
pub const TRANSFORM_REQUEST: &str = "pop.transformRequest";

/// What to substitute when a pointer finds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `?` alone: `null`.
    Null,
    /// `?text`: the string `text`.
    Text(String),
}

/// One parsed reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The full text, e.g. `@<encode.out::/file?none>`.
    pub raw: String,
    /// The name, e.g. `encode.out`.
    pub name: String,
    /// The JSON pointer (with a leading `/`), or `None` for the whole value (`@<x>`, `@<x::/>`).
    pub pointer: Option<String>,
    /// The fallback, if any.
    pub fallback: Option<Fallback>,
}

impl Reference {
    /// The operation this reference depends on: the name without its `.out` suffix; `None` for
    /// `pop.*` tokens.
    pub fn operation(&self) -> Option<&str> {
        operation_of(&self.name)
    }

    /// Whether the name is a built-in `pop.*` token.
    pub fn is_token(&self) -> bool {
        self.name.starts_with(TOKEN_PREFIX)
    }

    /// Looks the reference up: `Ok(Some(v))` found, `Ok(None)` name missing, `Err(msg)` invalid.
    fn lookup<'c>(&self, ctx: &'c dyn Context) -> Result<Option<Looked<'c>>, String> {
        let Some(root) = ctx.lookup(&self.name) else { return Ok(None) };
        let found = match &self.pointer {
            None => Some(root),
            Some(p) => root.pointer(p),
        };
        match (found, &self.fallback) {
            (Some(v), _) => Ok(Some(Looked::Value(v))),
            (None, Some(Fallback::Null)) => Ok(Some(Looked::Null)),
            (None, Some(Fallback::Text(t))) => Ok(Some(Looked::Text(t.clone()))),
            (None, None) => Err(format!(
                "{}: pointer {} finds nothing in {}",
                self.raw,
                self.pointer.as_deref().unwrap_or("/"),
                self.name
            )),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The operation a reference name depends on (`x.out` → `x`; `x.out.out` → `x.out`); `None` for tokens.
pub fn operation_of(name: &str) -> Option<&str> {
    if name.starts_with(TOKEN_PREFIX) {
        return None;
    }
    Some(name.strip_suffix(OUTPUT_SUFFIX).unwrap_or(name))
}

enum Looked<'c> {
    Value(&'c Value),
    Null,
    Text(String),
}

/// A piece of a parsed string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A reference.
    Ref(Reference),
}

/// A string parsed into text and references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The segments, in order.
    pub segments: Vec<Segment>,
}

/// A piece of text that looks like a reference but is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The offending text.
    pub text: String,
    /// What is wrong.
    pub message: String,
}

impl Template {
    /// Parses a string. `None` when it holds no reference; malformed references are reported and left as
    /// text. Built on [`scan`].
    pub fn parse(s: &str) -> (Option<Template>, Vec<Malformed>) {
        let mut malformed = Vec::new();
        if find_pair(s, b'@', b'<').is_none() {
            return (None, malformed);
        }
        let mut segments = Vec::new();
        let mut text = String::new();
        scan(s, |piece| match piece {
            Piece::Text(t) => text.push_str(t),
            Piece::Malformed { text: raw, message } => {
                malformed.push(Malformed { text: raw.to_owned(), message });
                text.push_str(raw);
            }
            Piece::Ref(span) => {
                if !text.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut text)));
                }
                segments.push(Segment::Ref(span.to_reference()));
            }
        });
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        if segments.iter().any(|s| matches!(s, Segment::Ref(_))) {
            (Some(Template { segments }), malformed)
        } else {
            (None, malformed)
        }
    }

    /// The references, in order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.segments.iter().filter_map(|s| match s {
            Segment::Ref(r) => Some(r),
            Segment::Text(_) => None,
        })
    }

    /// Whether the string is exactly one reference (typed substitution).
    pub fn whole(&self) -> Option<&Reference> {
        match self.segments.as_slice() {
            [Segment::Ref(r)] => Some(r),
            _ => None,
        }
    }
}

/// A reference found by [`scan`], borrowed from the scanned text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefSpan<'s> {
    /// The full text, e.g. `@<encode.out::/file?none>`.
    pub raw: &'s str,
    /// The name, e.g. `encode.out`.
    pub name: &'s str,
    /// The pointer as written (`/file`, `file`, `/` or empty), if the reference has `::`.
    pub pointer: Option<&'s str>,
    /// The fallback text after `?` (empty for `?` alone), if any.
    pub fallback: Option<&'s str>,
}

impl<'s> RefSpan<'s> {
    /// The operation this reference depends on (see [`operation_of`]).
    pub fn operation(&self) -> Option<&'s str> {
        operation_of(self.name)
    }

    /// Whether the name is a built-in `pop.*` token.
    pub fn is_token(&self) -> bool {
        self.name.starts_with(TOKEN_PREFIX)
    }

    /// The owned, normalised [`Reference`].
    pub fn to_reference(&self) -> Reference {
        let pointer = match self.pointer {
            None | Some("") | Some("/") => None,
            Some(p) if p.starts_with('/') => Some(p.to_owned()),
            Some(p) => Some(format!("/{p}")),
        };
        let fallback = self.fallback.map(|f| if f.is_empty() { Fallback::Null } else { Fallback::Text(f.to_owned()) });
        Reference { raw: self.raw.to_owned(), name: self.name.to_owned(), pointer, fallback }
    }
}

/// A piece of a string, as [`scan`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'s> {
    /// Literal text.
    Text(&'s str),
    /// A well-formed reference.
    Ref(RefSpan<'s>),
    /// Text that looks like a reference but is not one (it stays literal text).
    Malformed {
        /// The offending text.
        text: &'s str,
        /// What is wrong.
        message: String,
    },
}

/// Scans `s` into text, references and malformed references, in order, without allocating (except
/// for the message of a malformed reference): the single parser behind [`Template::parse`], for callers
/// that only need to look (validation, dependency extraction).
pub fn scan<'s>(s: &'s str, mut f: impl FnMut(Piece<'s>)) {
    let mut rest = s;
    while let Some(start) = find_pair(rest, b'@', b'<') {
        if start > 0 {
            f(Piece::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find('>') else {
            f(Piece::Malformed {
                text: &rest[start..],
                message: "reference is not closed: `@<` without a matching `>`".into(),
            });
            return;
        };
        let raw = &rest[start..start + 2 + end + 1];
        match parse_inner(&after[..end]) {
            Ok((name, pointer, fallback)) => f(Piece::Ref(RefSpan { raw, name, pointer, fallback })),
            Err(message) => f(Piece::Malformed { text: raw, message }),
        }
        rest = &after[end + 1..];
    }
    if !rest.is_empty() {
        f(Piece::Text(rest));
    }
}

/// The first position of the ASCII pair `ab` in `s` (a `memchr` for `a`, then a look at the next byte:
/// much cheaper than a substring search on the short strings of a payload).
fn find_pair(s: &str, a: u8, b: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(i) = s[from..].find(a as char) {
        let at = from + i;
        if bytes.get(at + 1) == Some(&b) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Splits the inside of `@<…>` into name, pointer as written and fallback; checks them.
fn parse_inner(inner: &str) -> Result<(&str, Option<&str>, Option<&str>), String> {
    let (name, path) = match find_pair(inner, b':', b':') {
        Some(i) => (&inner[..i], Some(&inner[i + 2..])),
        None => (inner, None),
    };
    if name.trim().is_empty() {
        return Err("reference has an empty name".into());
    }
    let (pointer, fallback) = match path {
        None => (None, None),
        Some(p) => match p.find('?') {
            Some(i) => (Some(&p[..i]), Some(&p[i + 1..])),
            None => (Some(p), None),
        },
    };
    if let Some(p) = pointer.filter(|p| p.contains('~')) {
        if p.starts_with('/') {
            check_pointer(p)?;
        } else {
            check_pointer(&format!("/{p}"))?;
        }
    }
    Ok((name, pointer, fallback))
}

fn check_pointer(p: &str) -> Result<(), String> {
    let mut chars = p.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.peek(), Some('0') | Some('1')) {
            return Err(format!("bad JSON pointer {p}: `~` must be followed by 0 or 1"));
        }
    }
    Ok(())
}

/// Named JSON values that references resolve against.
pub trait Context {
    /// The value of `name`, if known.
    fn lookup(&self, name: &str) -> Option<&Value>;
}

impl Context for HashMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl Context for BTreeMap<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

impl Context for serde_json::Map<String, Value> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }
}

/// Several contexts, searched in order.
pub struct Layered<'a>(pub Vec<&'a dyn Context>);

impl Context for Layered<'_> {
    fn lookup(&self, name: &str) -> Option<&Value> {
        self.0.iter().find_map(|c| c.lookup(name))
    }
}

/// A reference that was found but could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidReference {
    /// The reference text.
    pub reference: String,
    /// Why.
    pub message: String,
}

impl fmt::Display for InvalidReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The outcome of resolving a document.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    /// The document with every resolvable reference substituted.
    pub value: Value,
    /// Names the context did not have (deduplicated, in order of appearance): dependencies.
    pub missing: Vec<String>,
    /// References that were found but could not be used.
    pub invalid: Vec<InvalidReference>,
}

impl Resolution {
    /// Whether every reference resolved.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A string leaf of a document that holds references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Where it is.
    pub path: Vec<Step>,
    /// Its parsed content.
    pub template: Template,
}

/// A JSON document parsed once for references.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDocument {
    value: Value,
    sites: Vec<Site>,
    malformed: Vec<Malformed>,
}

impl ParsedDocument {
    /// Parses every string leaf of `value` (object values and array items; keys are never replaced).
    pub fn parse(value: Value) -> Self {
        let mut sites = Vec::new();
        let mut malformed = Vec::new();
        let mut path = Vec::new();
        collect(&value, &mut path, &mut sites, &mut malformed);
        Self { value, sites, malformed }
    }

    /// The document as given.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The string leaves holding references.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// Text that looked like a reference but was not one.
    pub fn malformed(&self) -> &[Malformed] {
        &self.malformed
    }

    /// Every reference, in document order.
    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.sites.iter().flat_map(|s| s.template.references())
    }

    /// Whether the document holds any reference.
    pub fn has_references(&self) -> bool {
        !self.sites.is_empty()
    }

    /// Resolves against `ctx`, leaving the parsed document untouched.
    pub fn resolve(&self, ctx: &dyn Context) -> Resolution {
        let mut value = self.value.clone();
        let mut missing: Vec<String> = Vec::new();
        let mut invalid = Vec::new();
        for site in &self.sites {
            let replacement = substitute(&site.template, ctx, &mut missing, &mut invalid);
            if let Some(new) = replacement {
                if let Some(slot) = locate(&mut value, &site.path) {
                    *slot = new;
                }
            }
        }
        Resolution { value, missing, invalid }
    }
}

fn collect(v: &Value, path: &mut Vec<Step>, sites: &mut Vec<Site>, malformed: &mut Vec<Malformed>) {
    match v {
        Value::String(s) => {
            let (t, bad) = Template::parse(s);
            malformed.extend(bad);
            if let Some(template) = t {
                sites.push(Site { path: path.clone(), template });
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(Step::Index(i));
                collect(item, path, sites, malformed);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(Step::Key(k.clone()));
                collect(item, path, sites, malformed);
                path.pop();
            }
        }
        _ => {}
    }
}

fn locate<'v>(mut v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    for step in path {
        v = match (step, v) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(v)
}

fn note_missing(missing: &mut Vec<String>, name: &str) {
    if !missing.iter().any(|m| m == name) {
        missing.push(name.to_owned());
    }
}

/// The new value of a string leaf, or `None` to leave it unchanged.
fn substitute(
    template: &Template,
    ctx: &dyn Context,
    missing: &mut Vec<String>,
    invalid: &mut Vec<InvalidReference>,
) -> Option<Value> {
    if let Some(r) = template.whole() {
        return match r.lookup(ctx) {
            Ok(Some(Looked::Value(v))) => Some(v.clone()),
            Ok(Some(Looked::Null)) => Some(Value::Null),
            Ok(Some(Looked::Text(t))) => Some(Value::String(t)),
            Ok(None) => {
                note_missing(missing, &r.name);
                None
            }
            Err(message) => {
                invalid.push(InvalidReference { reference: r.raw.clone(), message });
                None
            }
        };
    }
    let mut out = String::new();
    let mut changed = false;
    for seg in &template.segments {
        match seg {
            Segment::Text(t) => out.push_str(t),
            Segment::Ref(r) => match r.lookup(ctx) {
                Ok(Some(Looked::Value(v))) => match v {
                    Value::String(s) => {
                        out.push_str(s);
                        changed = true;
                    }
                    Value::Number(_) | Value::Bool(_) | Value::Null => {
                        out.push_str(&v.to_string());
                        changed = true;
                    }
                    Value::Object(_) | Value::Array(_) => {
                        invalid.push(InvalidReference {
                            reference: r.raw.clone(),
                            message: format!(
                                "{}: {} is an {} and cannot be used in a composite string",
                                r.raw,
                                r.name,
                                if v.is_object() { "object" } else { "array" }
                            ),
                        });
                        out.push_str(&r.raw);
                    }
                },
                Ok(Some(Looked::Null)) => {
                    out.push_str("null");
                    changed = true;
                }
                Ok(Some(Looked::Text(t))) => {
                    out.push_str(&t);
                    changed = true;
                }
                Ok(None) => {
                    note_missing(missing, &r.name);
                    out.push_str(&r.raw);
                }
                Err(message) => {
                    invalid.push(InvalidReference { reference: r.raw.clone(), message });
                    out.push_str(&r.raw);
                }
            },
        }
    }
    changed.then_some(Value::String(out))
}

/// Parses and resolves a document in one go.
pub fn resolve(doc: &Value, ctx: &dyn Context) -> Resolution {
    ParsedDocument::parse(doc.clone()).resolve(ctx)
}

#[cfg(test)]
mod tests;
