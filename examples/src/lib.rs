//! Examples for POP for Rust.
//!
//! Each example is a file beside this crate's manifest (`examples/<name>.rs`) that `cargo run -p
//! pop-examples --example <name>` runs. The same files are modules of this library too (through
//! `#[path]`), so that `tests/run_examples.rs` calls each example's `run` in-process and checks what it
//! printed, and also runs the real example binaries.
//!
//! | example | shows |
//! |---|---|
//! | `quickstart` | a whole embedded instance: insights, customers, fairness, generators, retries |
//! | `custom_scheduler` | a `SchedulingAlgorithm` plugin replayed through the simulator, then live |
//! | `host_app` | an axum application mounting POP's API under its own routes, one runtime, graceful shutdown |
//! | `multi_instance` | two instances in one process sharing DynamoDB |
//! | `handlers` | one operation type as an in-process handler, a local process and a Pod spec |
//! | `generator` | dynamic fan-out from a handler's result, and the resulting DAG as DOT |
//! | `soak` | mixed load for minutes with RSS, open files and the sled directory sampled (`-- --minutes 30`) |
//! | `k8s` | handlers as Kubernetes Pods (feature `k8s`, needs a cluster) |

// The example files say `use pop_examples::...` as any user of this crate would.
extern crate self as pop_examples;

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

#[path = "../custom_scheduler.rs"]
pub mod custom_scheduler;
#[path = "../generator.rs"]
pub mod generator;
#[path = "../handlers.rs"]
pub mod handlers;
#[path = "../host_app.rs"]
pub mod host_app;
#[path = "../multi_instance.rs"]
pub mod multi_instance;
pub mod soak;

/// The error type of the examples: anything, with its message.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where an example writes its lines: stdout (the binary) and/or a buffer (the tests).
#[derive(Debug, Default)]
pub struct Out {
    echo: bool,
    lines: Vec<String>,
}

impl Out {
    /// Prints every line on stdout (and keeps it).
    pub fn stdout() -> Self {
        Self { echo: true, lines: Vec::new() }
    }

    /// Keeps the lines without printing them.
    pub fn capture() -> Self {
        Self::default()
    }

    /// Writes one line (or several, separated by `\n`).
    pub fn say(&mut self, text: impl Display) {
        for line in text.to_string().lines() {
            if self.echo {
                println!("{line}");
            }
            self.lines.push(line.to_owned());
        }
    }

    /// Every line written so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Every line written so far, joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// The `main` of every example: runs `run` on a multi-threaded tokio runtime, printing to stdout;
/// an error is printed on stderr (prefixed with the example's name) and exits 1.
pub fn main_with<F, Fut>(name: &str, run: F) -> ExitCode
where
    F: FnOnce(Out) -> Fut,
    Fut: Future<Output = Result<Out, BoxError>>,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(Out::stdout())) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
