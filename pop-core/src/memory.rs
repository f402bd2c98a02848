//! Thread-safe in-memory reference implementations of the backend traits.
