//! The original POP's `sample` handler, run by the `pop-sample-handler` binary.
//!
//! Payload: `{"actions": [{"action": "...", "paramsMap": {...}}, ...], "resultPayload": {...}}`. The actions
//! run in order, each followed by a `POP_PROGRESS` line; the output (`POP_RESULT`) is `resultPayload`.
//!
//! | action | paramsMap | does |
//! |---|---|---|
//! | `log` | `sleepMilliseconds`, `logMessage` | sleeps, then logs the message |
//! | `externalExecute` | `externalArgs: [program, args...]` | runs the program and fails if it fails; its stdout goes to the handler's stderr (so it cannot forge protocol lines); `ash` falls back to `sh` where there is no `ash` |
//! | `exception` | `exceptionMessage` (optional) | fails the operation with the message |

use crate::handler::{self, HandlerInput};
use serde_json::Value;
use std::os::fd::AsFd;
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

/// The whole `sample` handler: reads the input from the environment, runs it, emits the result.
/// Exit code 0 on success, 1 when an action fails, 2 when the input cannot be read. Any binary can
/// become the sample handler by calling this from `main` (the `pop-sample-handler` binary does).
pub fn main() -> ExitCode {
    let input = match HandlerInput::from_env() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("pop-sample-handler: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&input) {
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

/// Runs the sample payload's actions, reporting progress; returns the output (`resultPayload`).
pub fn run(input: &HandlerInput) -> Result<Option<Value>, String> {
    if let Some(last) = &input.last_progress {
        eprintln!("sample: re-run; last progress: {}", serde_json::to_string(last).unwrap_or_default());
    }
    let actions = match input.payload.get("actions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => return Err(format!("payload.actions must be an array, found {other}")),
    };
    let total = actions.len();
    for (i, action) in actions.iter().enumerate() {
        let name = action.get("action").and_then(Value::as_str).unwrap_or("");
        let params = action.get("paramsMap").cloned().unwrap_or(Value::Null);
        let at = format!("payload.actions[{i}] ({name})");
        match name {
            "log" => {
                let ms = match params.get("sleepMilliseconds") {
                    None | Some(Value::Null) => 0,
                    Some(Value::Number(n)) => n.as_u64().ok_or(format!("{at}: sleepMilliseconds must be >= 0"))?,
                    Some(Value::String(s)) => {
                        s.trim().parse().map_err(|e| format!("{at}: sleepMilliseconds {s:?}: {e}"))?
                    }
                    Some(other) => return Err(format!("{at}: sleepMilliseconds must be a number, found {other}")),
                };
                std::thread::sleep(Duration::from_millis(ms));
                let message = params.get("logMessage").and_then(Value::as_str).unwrap_or("");
                println!("{message}");
            }
            "externalExecute" => external_execute(&at, &params)?,
            "exception" => {
                let message = params
                    .get("exceptionMessage")
                    .and_then(Value::as_str)
                    .unwrap_or("the exception action was requested");
                return Err(format!("{at}: {message}"));
            }
            "" => return Err(format!("{at}: the \"action\" field is missing")),
            other => {
                return Err(format!("{at}: unknown action {other:?} (known: log, externalExecute, exception)"));
            }
        }
        let percent = (i + 1) as f64 * 100.0 / total as f64;
        handler::report_percent(percent, format!("action {}/{total}: {name} done", i + 1))
            .map_err(|e| e.to_string())?;
    }
    Ok(input.payload.get("resultPayload").cloned())
}

fn external_execute(at: &str, params: &Value) -> Result<(), String> {
    let args: Vec<String> = match params.get("externalArgs") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => return Err(format!("{at}: paramsMap.externalArgs must be an array [program, args...]")),
    };
    let Some((program, rest)) = args.split_first() else {
        return Err(format!("{at}: paramsMap.externalArgs is empty"));
    };
    let run = |program: &str| {
        let stdout =
            std::io::stderr().as_fd().try_clone_to_owned().map(Stdio::from).unwrap_or_else(|_| Stdio::inherit());
        Command::new(program).args(rest).stdin(Stdio::null()).stdout(stdout).status()
    };
    let status = match run(program) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && program == "ash" => {
            eprintln!("sample: {at}: ash is not installed here; running the command with sh");
            run("sh")
        }
        other => other,
    }
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            format!("{at}: program {program:?} not found (is it installed and on PATH?)")
        } else {
            format!("{at}: cannot run {program:?}: {e}")
        }
    })?;
    if status.success() { Ok(()) } else { Err(format!("{at}: {program:?} failed with {status}")) }
}
