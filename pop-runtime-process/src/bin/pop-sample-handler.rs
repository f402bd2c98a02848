//! The `sample` handler: runs the original POP's sample payload (see `pop_runtime_process::sample`).
//!
//! Register it for the `sample` type:
//! `{"sample": {"process": {"command": "pop-sample-handler"}}}`.

fn main() -> std::process::ExitCode {
    pop_runtime_process::sample::main()
}
