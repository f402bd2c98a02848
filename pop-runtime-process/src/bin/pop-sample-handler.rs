//! The `sample` handler: runs the original POP's sample payload (see `pop_runtime_process::sample`).
//!
//! Register it for the `sample` type:
//! `{"sample": {"process": {"command": "pop-sample-handler"}}}`.

use pop_runtime_process::handler::{self, HandlerInput};
use std::process::ExitCode;

fn main() -> ExitCode {
    let input = match HandlerInput::from_env() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pop-sample-handler: {e}");
            return ExitCode::from(2);
        }
    };
    match pop_runtime_process::sample::run(&input) {
        Ok(output) => match output.map(|o| handler::emit_result(&o)) {
            Some(Err(e)) => {
                eprintln!("pop-sample-handler: {e}");
                ExitCode::FAILURE
            }
            _ => ExitCode::SUCCESS,
        },
        Err(message) => {
            eprintln!("pop-sample-handler: operation {} failed: {message}", input.operation_name);
            ExitCode::FAILURE
        }
    }
}
