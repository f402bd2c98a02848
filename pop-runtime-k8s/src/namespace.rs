//! Where handler Pods go: one namespace, one per customer or per insight, or explicit maps — and the
//! namespaces the runtime must look in to find its Pods again (listing, the pod reaper).
//!
//! | mode | a request goes to | listed by |
//! |---|---|---|
//! | [`Single`](NamespaceMode::Single) | the namespace | a list in that namespace |
//! | [`PerCustomer`](NamespaceMode::PerCustomer) | `prefix + customer id` (sanitized), else `fallback` | a cluster-wide list, kept to `prefix*` and `fallback` |
//! | [`PerInsight`](NamespaceMode::PerInsight) | `prefix + insight id` (sanitized), else `fallback` | a cluster-wide list, kept to `prefix*` and `fallback` |
//! | [`Mapped`](NamespaceMode::Mapped) | the customer's entry, else the insight's entry, else `default` | a list in each mapped namespace and `default` |
//!
//! **Precedence of [`Mapped`](NamespaceMode::Mapped): customer first.** The customer is the tenant that
//! namespace segregation isolates, while an insight is a queue that may carry several customers'
//! agendas. Looking the customer up first guarantees that a customer given its own namespace never has
//! a Pod elsewhere, whatever insight its agenda was routed through; the insight map only places the
//! customers that have no entry of their own.
//!
//! **Listing.** A mode whose namespaces are known from the configuration (`Single`, `Mapped`) lists in
//! each of them, so namespace-scoped Roles suffice (`deploy/k8s/rbac-handler-namespace.yaml`). The
//! prefix modes create namespace names from ids seen at run time; a restarted worker does not know which
//! it launched into, so it lists across the cluster by label (which needs `list` on pods in a
//! ClusterRole, `deploy/k8s/rbac-cluster-list.yaml`) and keeps the Pods whose namespace the mode could
//! have chosen.
//!
//! **Cancel and cleanup** act on the namespace in the handle (`namespace/name`), so a Pod launched
//! under an earlier configuration can still be stopped and removed.
//!
//! Every namespace name in the configuration must be a DNS-1123 label (at most 63 characters of
//! `[a-z0-9-]`, starting and ending with a letter or digit); [`NamespaceMode::validate`] names each
//! entry that is not.

use crate::labels::{MAX_LABEL, namespace_name_or};
use pop_core::{Error, Problem};
use std::collections::BTreeMap;

/// Where handler Pods go; see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceMode {
    /// Every Pod in this namespace (the original's `pop.kubernetes.namespace`, default `pop`).
    Single(String),
    /// One namespace per customer: `prefix + sanitized customer id` (namespace segregation). Operations
    /// without a customer go to `fallback`. The namespaces must exist; POP does not create them.
    PerCustomer {
        /// Prepended to the sanitized customer id (e.g. `pop-`).
        prefix: String,
        /// The namespace for operations without a customer.
        fallback: String,
    },
    /// One namespace per insight (queue): `prefix + sanitized insight id`. Operations without an insight
    /// go to `fallback`. The namespaces must exist; POP does not create them.
    PerInsight {
        /// Prepended to the sanitized insight id (e.g. `pop-q-`).
        prefix: String,
        /// The namespace for operations without an insight.
        fallback: String,
    },
    /// Explicit maps: the customer's namespace if the customer has an entry, else the insight's if the
    /// insight has one, else `default`. Ids are matched exactly (no sanitizing, case-sensitive).
    Mapped {
        /// Customer id → namespace.
        by_customer: BTreeMap<String, String>,
        /// Insight id → namespace.
        by_insight: BTreeMap<String, String>,
        /// The namespace of requests no entry names.
        default: String,
    },
}

impl Default for NamespaceMode {
    fn default() -> Self {
        Self::Single("pop".into())
    }
}

/// Where the runtime looks for its Pods (see [`NamespaceMode::scope`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceScope {
    /// These namespaces, each listed on its own (sorted, without duplicates).
    Namespaces(Vec<String>),
    /// A cluster-wide list, keeping Pods in namespaces that start with `prefix` or are `fallback`.
    Prefixed {
        /// The (validated) prefix.
        prefix: String,
        /// The fallback namespace.
        fallback: String,
    },
}

/// An id that counts: present and not blank.
fn present(id: Option<&str>) -> Option<&str> {
    id.filter(|s| !s.trim().is_empty())
}

impl NamespaceMode {
    /// The namespace of an operation of this customer and insight (either may be missing; a blank id
    /// counts as missing).
    pub fn namespace_for(&self, customer_id: Option<&str>, insight_id: Option<&str>) -> String {
        let customer = present(customer_id);
        let insight = present(insight_id);
        match self {
            Self::Single(ns) => ns.clone(),
            Self::PerCustomer { prefix, fallback } => match customer {
                Some(c) => namespace_name_or(prefix, c, "customer"),
                None => fallback.clone(),
            },
            Self::PerInsight { prefix, fallback } => match insight {
                Some(i) => namespace_name_or(prefix, i, "insight"),
                None => fallback.clone(),
            },
            Self::Mapped { by_customer, by_insight, default } => customer
                .and_then(|c| by_customer.get(c))
                .or_else(|| insight.and_then(|i| by_insight.get(i)))
                .unwrap_or(default)
                .clone(),
        }
    }

    /// The namespaces the runtime may have put Pods in.
    pub fn scope(&self) -> NamespaceScope {
        match self {
            Self::Single(ns) => NamespaceScope::Namespaces(vec![ns.clone()]),
            Self::PerCustomer { prefix, fallback } | Self::PerInsight { prefix, fallback } => {
                NamespaceScope::Prefixed { prefix: prefix.clone(), fallback: fallback.clone() }
            }
            Self::Mapped { by_customer, by_insight, default } => {
                let mut all: Vec<String> =
                    by_customer.values().chain(by_insight.values()).chain([default]).cloned().collect();
                all.sort();
                all.dedup();
                NamespaceScope::Namespaces(all)
            }
        }
    }

    /// Whether [`namespace_for`](Self::namespace_for) can return this namespace (for a valid mode).
    pub fn may_use(&self, namespace: &str) -> bool {
        match self.scope() {
            NamespaceScope::Namespaces(all) => all.iter().any(|n| n == namespace),
            NamespaceScope::Prefixed { prefix, fallback } => namespace == fallback || namespace.starts_with(&prefix),
        }
    }

    /// Every wrong name of the mode, one [`Problem`] each whose field names the entry
    /// (`namespace.by_customer["acme"]`, `namespace.prefix`, ...): `Error::Invalid`, or `Ok`.
    pub fn validate(&self) -> pop_core::Result<()> {
        let mut problems = Vec::new();
        fn name(problems: &mut Vec<Problem>, field: String, what: String, value: &str) {
            if let Err(why) = check_namespace(value) {
                problems
                    .push(Problem::new(format!("{what}: {value:?} is not a valid namespace name: {why}")).field(field));
            }
        }
        match self {
            Self::Single(ns) => name(&mut problems, "namespace".into(), "the namespace".into(), ns),
            Self::PerCustomer { prefix, fallback } | Self::PerInsight { prefix, fallback } => {
                if let Err(why) = check_prefix(prefix) {
                    problems.push(
                        Problem::new(format!("the namespace prefix {prefix:?} cannot start namespace names: {why}"))
                            .field("namespace.prefix"),
                    );
                }
                name(&mut problems, "namespace.fallback".into(), "the fallback namespace".into(), fallback);
            }
            Self::Mapped { by_customer, by_insight, default } => {
                for (kind, map) in [("customer", by_customer), ("insight", by_insight)] {
                    for (id, ns) in map {
                        let field = format!("namespace.by_{kind}[{id:?}]");
                        if id.trim().is_empty() {
                            problems.push(
                                Problem::new(format!("a {kind} entry (namespace {ns:?}) has a blank {kind} id"))
                                    .field(field.clone()),
                            );
                        }
                        name(&mut problems, field, format!("the namespace of {kind} {id:?}"), ns);
                    }
                }
                name(&mut problems, "namespace.default".into(), "the default namespace".into(), default);
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(Error::problems(problems)) }
    }
}

/// Whether `name` is a DNS-1123 label, as Kubernetes requires of a namespace name: `Err` says why not.
pub fn check_namespace(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_LABEL {
        return Err(format!("it has {} characters, at most {MAX_LABEL} are allowed", name.len()));
    }
    check_chars(name)?;
    if name.ends_with('-') {
        return Err("it must end with a letter or digit".into());
    }
    Ok(())
}

/// Whether `prefix` can start namespace names: the characters and start of a DNS-1123 label (it may end
/// with `-`), leaving room for at least one character of the id.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() {
        return Err("it is empty (a prefix keeps POP's namespaces apart from the others)".into());
    }
    if prefix.len() >= MAX_LABEL {
        return Err(format!("it has {} characters, at most {} are allowed", prefix.len(), MAX_LABEL - 1));
    }
    check_chars(prefix)
}

fn check_chars(s: &str) -> Result<(), String> {
    if let Some(bad) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("{bad:?} is not allowed (only lower-case letters, digits and '-')"));
    }
    if s.starts_with('-') {
        return Err("it must start with a letter or digit".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped() -> NamespaceMode {
        NamespaceMode::Mapped {
            by_customer: [("Acme Corp".to_string(), "tenant-acme".to_string())].into(),
            by_insight: [("video".to_string(), "queue-video".to_string()), ("audio".into(), "tenant-acme".into())]
                .into(),
            default: "pop".into(),
        }
    }

    #[test]
    fn mapped_looks_up_the_customer_then_the_insight_then_the_default() {
        let m = mapped();
        assert_eq!(m.namespace_for(Some("Acme Corp"), Some("video")), "tenant-acme", "customer first");
        assert_eq!(m.namespace_for(Some("Other"), Some("video")), "queue-video");
        assert_eq!(m.namespace_for(None, Some("video")), "queue-video");
        assert_eq!(m.namespace_for(Some("Other"), Some("misc")), "pop");
        assert_eq!(m.namespace_for(Some("acme corp"), None), "pop", "ids match exactly");
        assert_eq!(m.namespace_for(Some("  "), Some("")), "pop");
        assert_eq!(
            m.scope(),
            NamespaceScope::Namespaces(vec!["pop".into(), "queue-video".into(), "tenant-acme".into()])
        );
        assert!(m.may_use("queue-video") && m.may_use("pop") && !m.may_use("tenant-other"));
        m.validate().expect("valid");
    }

    #[test]
    fn per_customer_and_per_insight_derive_names_from_the_id() {
        let c = NamespaceMode::PerCustomer { prefix: "pop-".into(), fallback: "pop".into() };
        assert_eq!(c.namespace_for(Some("Acme_Corp"), Some("video")), "pop-acme-corp");
        assert_eq!(c.namespace_for(None, Some("video")), "pop");
        assert_eq!(c.namespace_for(Some("ü"), None), "pop-customer");
        let i = NamespaceMode::PerInsight { prefix: "pop-q-".into(), fallback: "pop".into() };
        assert_eq!(i.namespace_for(Some("Acme"), Some("Video.HD")), "pop-q-video-hd");
        assert_eq!(i.namespace_for(Some("Acme"), None), "pop");
        assert_eq!(i.namespace_for(None, Some("---")), "pop-q-insight");
        assert!(i.may_use("pop-q-anything") && i.may_use("pop") && !i.may_use("pop-other"));
        for id in ["x", "Ü", &"y".repeat(200), "-a-", "A B C"] {
            let ns = c.namespace_for(Some(id), None);
            check_namespace(&ns).unwrap_or_else(|e| panic!("{id:?} gave {ns:?}: {e}"));
            assert!(c.may_use(&ns), "{ns}");
        }
        c.validate().expect("valid");
        i.validate().expect("valid");
    }

    #[test]
    fn wrong_names_are_invalid_and_name_the_entry() {
        let m = NamespaceMode::Mapped {
            by_customer: [("acme".to_string(), "Tenant_Acme".to_string()), (" ".into(), "ok".into())].into(),
            by_insight: [("video".to_string(), "q".repeat(64))].into(),
            default: "-pop".into(),
        };
        let e = m.validate().expect_err("invalid");
        assert!(matches!(e, Error::Invalid(_)));
        let fields: Vec<_> = e.problem_list().iter().filter_map(|p| p.field.clone()).collect();
        assert_eq!(
            fields,
            [
                r#"namespace.by_customer[" "]"#,
                r#"namespace.by_customer["acme"]"#,
                r#"namespace.by_insight["video"]"#,
                "namespace.default"
            ]
        );
        let text = e.to_string();
        assert!(
            text.contains(r#"the namespace of customer "acme": "Tenant_Acme" is not a valid namespace name"#),
            "{text}"
        );
        assert!(text.contains("'T' is not allowed"), "{text}");
        assert!(text.contains("64 characters, at most 63"), "{text}");
        assert!(text.contains("must start with a letter or digit"), "{text}");
        assert!(text.contains("blank customer id"), "{text}");

        let p = NamespaceMode::PerCustomer { prefix: "Pop_".into(), fallback: "pop-".into() };
        let e = p.validate().expect_err("invalid");
        let fields: Vec<_> = e.problem_list().iter().filter_map(|p| p.field.clone()).collect();
        assert_eq!(fields, ["namespace.prefix", "namespace.fallback"]);
        assert!(e.to_string().contains("must end with a letter or digit"), "{e}");
        assert!(NamespaceMode::Single(String::new()).validate().is_err());
        assert!(NamespaceMode::PerInsight { prefix: String::new(), fallback: "pop".into() }.validate().is_err());
        assert!(check_prefix(&"p".repeat(62)).is_ok() && check_prefix(&"p".repeat(63)).is_err());
        assert!(check_namespace("0abc").is_ok() && check_namespace("a").is_ok());
    }
}
