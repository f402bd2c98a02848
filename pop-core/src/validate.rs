//! Validation of a submitted agenda: every problem, each naming the operation and the offending reference or field.
