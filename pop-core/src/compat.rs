//! Access to the original POP's JSON documents (the compatibility corpus) for tests.
//!
//! Tests read the corpus from the directory named by `POP_COMPAT_FIXTURES`; when it is unset they skip
//! and say so. The documents are never copied into this repository.

use std::path::PathBuf;

/// The environment variable naming the corpus directory.
pub const ENV: &str = "POP_COMPAT_FIXTURES";

/// The corpus directory, or `None` (after printing why the caller skips) when unset or missing.
pub fn fixtures_dir(test: &str) -> Option<PathBuf> {
    match std::env::var_os(ENV) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_dir() {
                Some(dir)
            } else {
                eprintln!("skipping {test}: {ENV}={} is not a directory", dir.display());
                None
            }
        }
        None => {
            eprintln!("skipping {test}: {ENV} is not set (point it at shared/fixtures/pop-original)");
            None
        }
    }
}

/// Reads a corpus file as JSON; panics with the path on failure (test helper).
pub fn read_json(dir: &std::path::Path, relative: &str) -> serde_json::Value {
    let path = dir.join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}
