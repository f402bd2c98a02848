//! Printing results: pretty JSON, YAML, or a table of chosen columns.

use crate::error::CliError;
use serde_json::Value;

/// Prints a value as pretty JSON on stdout.
pub fn print_json(v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_json::to_string_pretty(v).map_err(|e| CliError::context("cannot print the result", e))?;
    println!("{s}");
    Ok(())
}

/// Prints a value as YAML on stdout.
pub fn print_yaml(v: &impl serde::Serialize) -> Result<(), CliError> {
    let s = serde_saphyr::to_string(v).map_err(|e| CliError::context("cannot print the result as YAML", e))?;
    print!("{s}");
    if !s.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// The output of the remote commands (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people (the default of the remote commands).
    Table,
    /// The objects as the API returns them, pretty JSON.
    Json,
    /// The same as YAML.
    Yaml,
}

/// `-o` / `--output`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct OutputArgs {
    /// Output format: table (remote default), json or yaml.
    #[arg(short = 'o', long = "output", value_enum)]
    pub output: Option<Format>,
}

impl OutputArgs {
    /// The chosen format, else `default`.
    pub fn or(self, default: Format) -> Format {
        self.output.unwrap_or(default)
    }
}

/// A table column: its header and where its value is in the object's JSON (a JSON pointer), or a
/// function of the object.
pub struct Column {
    /// The header.
    pub header: &'static str,
    /// How the cell is read.
    pub cell: fn(&Value) -> String,
}

/// The text of a JSON value in a cell: strings bare, arrays joined with `,`, absent as `-`.
pub fn cell_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) if s.is_empty() => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.is_empty() => "-".into(),
        Some(Value::Array(a)) => a.iter().map(|v| cell_text(Some(v))).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

/// Prints rows under headers, each column as wide as its widest cell.
pub fn print_table(columns: &[Column], rows: &[Value]) {
    let cells: Vec<Vec<String>> =
        rows.iter().map(|r| columns.iter().map(|c| one_line((c.cell)(r))).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.header.len()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: Vec<String>| {
        let last = row.len().saturating_sub(1);
        let mut s = String::new();
        for (i, (c, w)) in row.into_iter().zip(&widths).enumerate() {
            if i == last {
                s.push_str(&c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", s.trim_end());
    };
    line(columns.iter().map(|c| c.header.to_owned()).collect());
    for row in cells {
        line(row);
    }
}

fn one_line(s: String) -> String {
    if s.contains('\n') { s.replace('\n', " ") } else { s }
}

/// Prints objects: a table with `columns`, or the list as JSON / YAML.
pub fn print_objects(format: Format, columns: &[Column], rows: &[Value]) -> Result<(), CliError> {
    match format {
        Format::Table => {
            print_table(columns, rows);
            Ok(())
        }
        Format::Json => print_json(&rows),
        Format::Yaml => print_yaml(&rows),
    }
}

/// Prints one object: a table of one row, or the object as JSON / YAML.
pub fn print_object(format: Format, columns: &[Column], row: &Value) -> Result<(), CliError> {
    match format {
        Format::Table => {
            print_table(columns, std::slice::from_ref(row));
            Ok(())
        }
        Format::Json => print_json(row),
        Format::Yaml => print_yaml(row),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_json_values() {
        assert_eq!(cell_text(None), "-");
        assert_eq!(cell_text(Some(&serde_json::json!("a"))), "a");
        assert_eq!(cell_text(Some(&serde_json::json!(["a", "b"]))), "a,b");
        assert_eq!(cell_text(Some(&serde_json::json!(4))), "4");
        assert_eq!(cell_text(Some(&serde_json::json!(""))), "-");
    }

    #[test]
    fn yaml_prints() {
        let v = serde_json::json!({"id": "a", "n": [1, 2]});
        let s = serde_saphyr::to_string(&v).unwrap();
        assert!(s.contains("id: a"), "{s}");
        let back: Value = serde_saphyr::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
