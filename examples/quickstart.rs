//! Quickstart (placeholder until the engine lands): parses and validates an agenda.
fn main() {
    println!("POP quickstart: the engine lands with issue 7");
}
