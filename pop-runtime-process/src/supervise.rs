//! The supervisor of one launched operation: wait for a slot, spawn the handler in its own process
//! group, follow it (timeout, cancel, over-long lines), stop it (SIGTERM, SIGKILL after the grace
//! period), drain its output, kill what it left behind, and hand the facts to the
//! [exit classifier](crate::exit).

use crate::exit::{Ending, Status, Stop, classify, failure_exit};
use crate::group::{MARK_VAR, group_alive, kill_marked, signal_group};
use crate::output::{Notice, PipeReader, SharedParser, lock};
use crate::runtime::{Inner, now_millis};
use nix::sys::signal::Signal;
use pop_core::registry::ProcessSpec;
use pop_core::runtime::{Exit, LaunchRequest, LogStream, RuntimeEvent};
use pop_handler_protocol::OutputParser;
use pop_handler_protocol::env::{LOG_LEVEL, is_protocol_var};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tracing::Instrument;

/// One launched operation, run by its supervisor task.
pub(crate) struct Operation {
    pub(crate) inner: Arc<Inner>,
    pub(crate) handle: String,
    pub(crate) request: LaunchRequest,
    pub(crate) spec: ProcessSpec,
    /// The protocol's variables (they win over `process.env`).
    pub(crate) env: Vec<(String, String)>,
    pub(crate) tx: mpsc::Sender<RuntimeEvent>,
}

impl Operation {
    pub(crate) fn label(&self) -> String {
        format!(
            "operation {} (type {}, handle {})",
            self.request.operation_name, self.request.operation_type, self.handle
        )
    }

    /// The diagnostic payload: the operation, then `details`.
    fn details(&self, details: Value) -> Value {
        let mut payload = json!({
            "handle": self.handle,
            "operationType": self.request.operation_type,
            "command": self.spec.command,
        });
        if let (Value::Object(p), Value::Object(d)) = (&mut payload, details) {
            p.extend(d);
        }
        payload
    }

    fn failure(&self, status_code: &str, message: String, details: Value) -> Exit {
        failure_exit(status_code, message, self.details(details), now_millis())
    }

    /// Runs the handler to its end; the result is the operation's `Exited`.
    pub(crate) async fn run(&self, mut cancel: watch::Receiver<bool>) -> Exit {
        // Per-type cap: wait for a slot (or a cancel).
        let _permit = match self.inner.limits.get(&self.request.operation_type) {
            None => None,
            Some(sem) => {
                tokio::select! {
                    permit = sem.clone().acquire_owned() => match permit {
                        Ok(p) => Some(p),
                        Err(_) => return self.failure("NOT_STARTED", format!("{}: the runtime is closing", self.label()), json!({})),
                    },
                    _ = cancel.wait_for(|c| *c) => {
                        return self.failure(
                            "CANCELLED",
                            format!("{} was cancelled before it started (it waited for a free slot)", self.label()),
                            json!({}),
                        );
                    }
                }
            }
        };
        if *cancel.borrow() {
            return self.failure("CANCELLED", format!("{} was cancelled before it started", self.label()), json!({}));
        }
        let mark = uuid::Uuid::new_v4().simple().to_string();
        let mut child = match self.spawn(&mark) {
            Ok(c) => c,
            Err(exit) => return *exit,
        };
        let pid = child.id().unwrap_or(0);
        self.inner.set_pid(&self.handle, Some(pid));
        let _ = self.tx.send(RuntimeEvent::Started).await;
        tracing::debug!(handle = %self.handle, pid, "handler started");

        let cfg = &self.inner.config;
        let parser: SharedParser = Arc::new(Mutex::new(OutputParser::new(cfg.output_limits())));
        let (notice_tx, mut notices) = mpsc::unbounded_channel();
        let reader = || PipeReader {
            events: self.tx.clone(),
            notices: notice_tx.clone(),
            parser: parser.clone(),
            operation: self.request.operation_name.clone(),
        };
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(reader().read(out, LogStream::Stdout).in_current_span()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(reader().read(err, LogStream::Stderr).in_current_span()));
        }
        drop(notice_tx);

        let time_limit = self.spec.timeout_ms.map(Duration::from_millis).or(cfg.default_timeout);
        let deadline = time_limit.map(|t| Instant::now() + t);
        let mut stop: Option<Stop> = None;
        let mut kill_at: Option<Instant> = None;
        let mut killed = false;
        let mut status: Option<std::io::Result<std::process::ExitStatus>> = None;
        let mut read_error: Option<String> = None;
        let mut cancel_open = true;
        let mut notices_open = true;

        let terminate = |kill_at: &mut Option<Instant>, killed: &mut bool| {
            if cfg.kill_grace.is_zero() {
                signal_group(pid, Some(Signal::SIGKILL));
                *killed = true;
            } else {
                signal_group(pid, Some(Signal::SIGTERM));
            }
            *kill_at = Some(Instant::now() + cfg.kill_grace);
        };

        loop {
            if status.is_some() {
                // The leader is gone. After a stop, the rest of the group gets the grace period, then SIGKILL.
                match kill_at {
                    Some(at) if !killed && group_alive(pid) => {
                        tokio::select! {
                            _ = sleep_until(at) => { signal_group(pid, Some(Signal::SIGKILL)); killed = true; }
                            _ = sleep(Duration::from_millis(10)) => {}
                        }
                        continue;
                    }
                    _ => break,
                }
            }
            tokio::select! {
                s = child.wait() => { status = Some(s); }
                _ = async { match deadline { Some(d) => sleep_until(d).await, None => std::future::pending().await } },
                    if stop.is_none() && deadline.is_some() => {
                    stop = time_limit.map(Stop::Timeout);
                    terminate(&mut kill_at, &mut killed);
                }
                ok = async { cancel.wait_for(|c| *c).await.is_ok() }, if cancel_open && stop.is_none() => {
                    if ok {
                        stop = Some(Stop::Cancelled);
                        terminate(&mut kill_at, &mut killed);
                    } else {
                        cancel_open = false;
                    }
                }
                notice = notices.recv(), if notices_open => match notice {
                    None => notices_open = false,
                    Some(Notice::TooLong(s)) => if stop.is_none() {
                        stop = Some(Stop::LineTooLong(s));
                        terminate(&mut kill_at, &mut killed);
                    },
                    Some(Notice::ReadError(m)) => { read_error.get_or_insert(m); }
                },
                _ = async { match kill_at { Some(d) => sleep_until(d).await, None => std::future::pending().await } },
                    if kill_at.is_some() && !killed => {
                    signal_group(pid, Some(Signal::SIGKILL));
                    killed = true;
                }
            }
        }

        // Let the readers finish; a leftover grandchild holding the pipes is killed after drain_timeout.
        let aborts: Vec<_> = readers.iter().map(|r| r.abort_handle()).collect();
        let mut all_read = Box::pin(async move {
            for r in readers {
                let _ = r.await;
            }
        });
        if timeout(cfg.drain_timeout, &mut all_read).await.is_err() {
            tracing::warn!(handle = %self.handle, "output still open {:?} after the handler exited: killing its process group", cfg.drain_timeout);
            signal_group(pid, Some(Signal::SIGKILL));
            if timeout(Duration::from_secs(1), &mut all_read).await.is_err() {
                aborts.iter().for_each(|a| a.abort());
            }
        }
        // Like the containers of a Pod, nothing of the operation outlives its handler: processes it left
        // behind in its group (daemons with their output redirected) are killed now.
        if status.as_ref().is_some_and(|s| s.is_ok()) && group_alive(pid) {
            tracing::warn!(handle = %self.handle, "the handler left processes behind in its group: killing them");
            signal_group(pid, Some(Signal::SIGKILL));
        }
        // ... and so are those that left the group (setsid, a double fork), found by the mark in their
        // environment (only one that clears its environment, or runs as another user, escapes).
        let swept = tokio::task::spawn_blocking(move || kill_marked(&mark)).await.unwrap_or(0);
        if swept > 0 {
            tracing::warn!(handle = %self.handle, swept, "the handler left processes behind outside its group: killed them");
        }
        while let Ok(notice) = notices.try_recv() {
            match notice {
                Notice::TooLong(s) => {
                    stop.get_or_insert(Stop::LineTooLong(s));
                }
                Notice::ReadError(m) => {
                    read_error.get_or_insert(m);
                }
            }
        }

        let status = match status {
            Some(Ok(s)) => Status::from_exit_status(s),
            Some(Err(e)) => Status::WaitFailed(e.to_string()),
            None => Status::Unknown,
        };
        let parser = lock(&parser);
        let label = self.label();
        let verdict = classify(&Ending {
            label: &label,
            pid,
            status: &status,
            stop,
            violation: parser.violation(),
            read_error: read_error.as_deref(),
            max_line_bytes: cfg.max_line_bytes,
        });
        let details = match &status {
            Status::Exited { code, signal } => json!({
                "pid": pid,
                "exitCode": code,
                "signal": signal,
                "signalName": signal.map(crate::exit::signal_name),
                "lastLines": parser.tail().to_json(),
            }),
            _ => json!({"pid": pid, "lastLines": parser.tail().to_json()}),
        };
        verdict.into_exit(&status, self.details(details), now_millis())
    }

    /// Starts the handler in its own process group, with the protocol's environment, the type's
    /// environment allow-list (`process.inheritEnv`), working directory and rlimits (`process.limits`).
    ///
    /// The limits are set by util-linux's `prlimit` (`prlimit --cpu=… --as=… -- command args`), which
    /// sets them on itself and then `exec`s the handler: same pid, same process group, the limits in
    /// force before the handler's first instruction. (The workspace forbids `unsafe`, so no
    /// `setrlimit` in `Command::pre_exec`; `prlimit(2)` on the pid after spawn would leave a window in
    /// which the handler runs unlimited.)
    fn spawn(&self, mark: &str) -> Result<tokio::process::Child, Box<Exit>> {
        let cfg = &self.inner.config;
        let limit_args = self.spec.limits.filter(|l| l.any()).map(|l| {
            let mut args = Vec::new();
            if let Some(cpu) = l.cpu_seconds {
                args.push(format!("--cpu={cpu}:{}", cpu.saturating_add(1)));
            }
            if let Some(bytes) = l.memory_bytes {
                args.push(format!("--as={bytes}"));
            }
            if let Some(n) = l.open_files {
                args.push(format!("--nofile={n}"));
            }
            if let Some(bytes) = l.file_size_bytes {
                args.push(format!("--fsize={bytes}"));
            }
            args
        });
        if let Some(dir) = &self.spec.working_dir {
            if !Path::new(dir).is_dir() {
                return Err(Box::new(self.failure(
                    "SPAWN_FAILED",
                    format!(
                        "{}: cannot start handler {:?}: its working directory {dir:?} (process.workingDir) is not \
                         a directory",
                        self.label(),
                        self.spec.command
                    ),
                    json!({"workingDir": dir}),
                )));
            }
        }
        let mut command = match &limit_args {
            None => {
                let mut c = Command::new(&self.spec.command);
                c.args(&self.spec.args);
                c
            }
            Some(limits) => {
                let mut c = Command::new(&cfg.prlimit_program);
                c.args(limits).arg("--").arg(&self.spec.command).args(&self.spec.args);
                c
            }
        };
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
        match &self.spec.inherit_env {
            // Only the allowed variables of the runtime's environment.
            Some(allowed) => {
                command.env_clear();
                for (name, value) in std::env::vars_os() {
                    let Some(n) = name.to_str() else { continue };
                    if !is_protocol_var(n) && env_allowed(allowed, n) {
                        command.env(&name, value);
                    }
                }
            }
            // A stale protocol variable of the runtime's own environment never reaches a handler.
            None => {
                for (name, _) in std::env::vars_os() {
                    if let Some(name) = name.to_str().filter(|n| is_protocol_var(n)) {
                        command.env_remove(name);
                    }
                }
            }
        }
        command.env(LOG_LEVEL, "INFO");
        command.envs(&self.spec.env);
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        // last: neither the registry's env nor the request's can take the mark away
        command.env(MARK_VAR, mark);
        if let Some(dir) = &self.spec.working_dir {
            command.current_dir(dir);
        }
        command.spawn().map_err(|e| {
            let hint = match e.raw_os_error() {
                Some(code) if code == nix::errno::Errno::E2BIG as i32 => {
                    " (the environment is too large: lower compress_threshold)"
                }
                _ if e.kind() == std::io::ErrorKind::NotFound && limit_args.is_some() => {
                    " (process.limits needs util-linux's prlimit: install it, or set \
                     ProcessRuntimeConfig::prlimit_program)"
                }
                _ if e.kind() == std::io::ErrorKind::NotFound => " (is it installed and on PATH?)",
                _ => "",
            };
            Box::new(self.failure(
                "SPAWN_FAILED",
                format!(
                    "{}: cannot start handler {:?}{}: {e}{hint}",
                    self.label(),
                    self.spec.command,
                    if limit_args.is_some() { format!(" through {:?}", cfg.prlimit_program) } else { String::new() }
                ),
                json!({"workingDir": self.spec.working_dir}),
            ))
        })
    }
}

/// Whether `name` is in the allow-list (`NAME`, or a prefix written `PREFIX*`).
fn env_allowed(allowed: &[String], name: &str) -> bool {
    allowed.iter().any(|a| match a.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => a == name,
    })
}

#[cfg(test)]
mod tests {
    use super::env_allowed;

    #[test]
    fn allow_list_matches_names_and_prefixes() {
        let allowed = vec!["PATH".to_owned(), "LC_*".to_owned()];
        assert!(env_allowed(&allowed, "PATH"));
        assert!(env_allowed(&allowed, "LC_ALL"));
        assert!(!env_allowed(&allowed, "PATHX"));
        assert!(!env_allowed(&allowed, "HOME"));
        assert!(!env_allowed(&[], "PATH"));
    }
}
