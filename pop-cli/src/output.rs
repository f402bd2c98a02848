//! Printing results.

use crate::error::CliError;

/// Prints a value as pretty JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::context("cannot print the result", e))?;
    println!("{s}");
    Ok(())
}
