//! Label, annotation and name rules: what POP writes on its Pods and how values are made legal.

/// Marks POP's Pods (`app.kubernetes.io/managed-by=<managed_by>`).
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The original's `app=<namePrefix>` label.
pub const APP: &str = "app";
/// The agenda id (sanitized).
pub const AGENDA: &str = "pop/agenda-id";
/// The operation name (sanitized).
pub const OPERATION: &str = "pop/operation-name";
/// The operation type (sanitized).
pub const OPERATION_TYPE: &str = "pop/operation-type";
/// The customer id (sanitized).
pub const CUSTOMER: &str = "pop/customer-id";
/// The insight id (sanitized).
pub const INSIGHT: &str = "pop/insight-id";

/// Annotation keeping the exact agenda id (labels may be shortened).
pub const ANN_AGENDA: &str = "pop/agenda-id";
/// Annotation keeping the exact operation name.
pub const ANN_OPERATION: &str = "pop/operation-name";
/// Annotation keeping the exact operation type.
pub const ANN_OPERATION_TYPE: &str = "pop/operation-type";
/// Annotation keeping the exact customer id.
pub const ANN_CUSTOMER: &str = "pop/customer-id";
/// The original handler protocol: the handler's OperationProgress JSON, patched by the handler.
pub const REPORT_PROGRESS: &str = "pop.report.progress";
/// The original handler protocol: the handler's result JSON, patched by the handler at the end.
pub const REPORT_PAYLOAD: &str = "pop.report.payload";

/// The longest label value, DNS-1123 label or namespace name.
pub const MAX_LABEL: usize = 63;

/// Makes a string a legal label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and ending
/// with an alphanumeric. Other characters become `-`; an empty result is allowed (an empty value).
pub fn label_value(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let cut: String = trimmed.chars().take(MAX_LABEL).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}

/// Makes a string a DNS-1123 label (namespaces, container names): lower case `[a-z0-9-]`, at most
/// `max` characters, starting and ending with an alphanumeric.
pub fn dns_label(raw: &str, max: usize) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let cut: String = trimmed.chars().take(max).collect();
    cut.trim_end_matches('-').to_string()
}

/// The namespace of a customer: `prefix + customer`, made a DNS-1123 label (at most 63 characters).
/// A customer id with no usable character gets `prefix + "customer"`.
pub fn namespace_name(prefix: &str, customer: &str) -> String {
    namespace_name_or(prefix, customer, "customer")
}

/// The namespace of an id: `prefix + id`, made a DNS-1123 label (at most 63 characters). An id with no
/// usable character gets `prefix + placeholder`. With a valid prefix
/// ([`check_prefix`](crate::namespace::check_prefix)) the name always starts with the prefix.
pub fn namespace_name_or(prefix: &str, id: &str, placeholder: &str) -> String {
    let name = dns_label(&format!("{prefix}{id}"), MAX_LABEL);
    if name.is_empty() || name.len() <= prefix.trim_end_matches('-').len() {
        dns_label(&format!("{prefix}{placeholder}"), MAX_LABEL)
    } else {
        name
    }
}

/// A Pod (and container) name: the sanitized `namePrefix` (at most 26 characters, default `pop`) + `-` +
/// the unique suffix, as a DNS-1123 label so it is valid for the container too.
pub fn pod_name(name_prefix: Option<&str>, unique: &str) -> String {
    let prefix = name_prefix.map(|p| dns_label(p, 26)).filter(|p| !p.is_empty()).unwrap_or_else(|| "pop".into());
    let suffix = dns_label(unique, MAX_LABEL.saturating_sub(prefix.len() + 1));
    if suffix.is_empty() { prefix } else { format!("{prefix}-{suffix}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_follow_the_rules() {
        assert_eq!(label_value("agenda-17"), "agenda-17");
        assert_eq!(label_value("Acme Corp/EU"), "Acme-Corp-EU");
        assert_eq!(label_value("--x--"), "x");
        assert_eq!(label_value("ü"), "");
        assert_eq!(label_value(""), "");
        let long = "a".repeat(62) + "-b";
        assert_eq!(label_value(&long), "a".repeat(62));
        assert!(label_value(&"x.".repeat(100)).len() <= 63);
        for raw in ["a b c", "_under_", "x:y@z", &"é".repeat(80)] {
            let v = label_value(raw);
            assert!(v.len() <= 63);
            assert!(v.is_empty() || v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()));
            assert!(v.is_empty() || v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn namespaces_and_pod_names_are_dns_labels() {
        assert_eq!(namespace_name("pop-", "Acme_Corp"), "pop-acme-corp");
        assert_eq!(namespace_name("pop-", "ü"), "pop-customer");
        assert!(namespace_name("pop-", &"x".repeat(100)).len() <= 63);
        assert_eq!(pod_name(Some("pop-samp"), "00000001"), "pop-samp-00000001");
        assert_eq!(pod_name(None, "ABC"), "pop-abc");
        let n = pod_name(Some(&"p".repeat(40)), &uuid_like());
        assert!(n.len() <= 63, "{n}");
    }

    fn uuid_like() -> String {
        "0f8fad5b-d9cb-469f-a165-70867728950e".into()
    }
}
