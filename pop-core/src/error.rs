//! The one error type of POP's core API.

use std::fmt;

/// A `Result` with POP's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One thing wrong with an input, named precisely enough to fix it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// The operation concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The field, reference or path concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl Problem {
    /// A problem of the whole input.
    pub fn new(message: impl Into<String>) -> Self {
        Self { operation: None, field: None, message: message.into() }
    }

    /// A problem of one operation.
    pub fn in_operation(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self { operation: Some(operation.into()), field: None, message: message.into() }
    }

    /// Names the field or reference concerned.
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(op) = &self.operation {
            write!(f, "operation {op}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in an input; displays one per line.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// POP's error: the variants a caller branches on, and `Backend` for the rest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object does not exist (or is not visible to the caller).
    #[error("{kind} {id} not found")]
    NotFound {
        /// The object kind.
        kind: String,
        /// The id looked up.
        id: String,
    },
    /// A compare-and-swap on a stale version, a duplicate create, a lost lease.
    #[error("conflict: {0}")]
    Conflict(String),
    /// No or unknown credentials.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Credentials known, action not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Bad input; every problem listed.
    #[error("invalid: {0}")]
    Invalid(Problems),
    /// The backend or configuration cannot do this.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A stored value could not be decoded: the kind and key say where.
    #[error("corrupt {kind} {id}: {reason}")]
    Corrupt {
        /// The object kind (or tree) holding the value.
        kind: String,
        /// The key of the value.
        id: String,
        /// What failed to decode.
        reason: String,
    },
    /// A backend failed (disk, network).
    #[error("{backend}: {source}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What went wrong there.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// `NotFound` for an object kind and id.
    pub fn not_found(kind: impl fmt::Display, id: impl Into<String>) -> Self {
        Self::NotFound { kind: kind.to_string(), id: id.into() }
    }

    /// `Invalid` with a single problem.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(Problems(vec![Problem::new(message)]))
    }

    /// `Invalid` with these problems.
    pub fn problems(problems: Vec<Problem>) -> Self {
        Self::Invalid(Problems(problems))
    }

    /// A copy of this error, for reporting one failure to several callers (a batch's members):
    /// every variant is kept but `Backend`, whose source becomes its message.
    pub fn copied(&self) -> Self {
        match self {
            Self::NotFound { kind, id } => Self::NotFound { kind: kind.clone(), id: id.clone() },
            Self::Conflict(m) => Self::Conflict(m.clone()),
            Self::Unauthorized(m) => Self::Unauthorized(m.clone()),
            Self::Forbidden(m) => Self::Forbidden(m.clone()),
            Self::Invalid(p) => Self::Invalid(p.clone()),
            Self::Unsupported(m) => Self::Unsupported(m.clone()),
            Self::Corrupt { kind, id, reason } => {
                Self::Corrupt { kind: kind.clone(), id: id.clone(), reason: reason.clone() }
            }
            Self::Backend { backend, source } => Self::backend(backend, source.to_string()),
        }
    }

    /// `Backend` from any error.
    pub fn backend(backend: &'static str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Backend { backend, source: source.into() }
    }

    /// Whether this is `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Whether this is `Conflict`.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict(_))
    }

    /// The problems, when `Invalid`.
    pub fn problem_list(&self) -> &[Problem] {
        match self {
            Self::Invalid(p) => &p.0,
            _ => &[],
        }
    }
}
