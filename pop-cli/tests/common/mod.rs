//! What the process-level tests share: the `pop` binary, children killed on drop and started up to
//! their ready line, the `step` shell handler that logs its runs, provisioning over HTTP, and the
//! set of operations that succeeded durably.
#![allow(dead_code)] // each test file uses its own part

use pop::core::model::{Agenda, AgendaProgress, Customer, Insight, ResourcePool};
use pop::http::Client;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN: &str = "admin-token-0123456789abcdef";
pub const POOL: &str = "pool-token-0123456789abcdef";
pub const ACME: &str = "acme-token-0123456789abcdef";

/// The `pop` binary, with no `POP_SERVER`/`POP_TOKEN` from the caller's environment.
pub fn pop() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pop"));
    c.env_remove("POP_SERVER").env_remove("POP_TOKEN");
    c
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// SIGKILL, without waiting (the workspace forbids unsafe code, `libc::kill` included).
    pub fn sigkill(&self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.id().to_string()]).status();
    }
}

/// Starts `cmd` and reads its stdout until the line starting with `ready` (60 s at most); returns the
/// child and that line. The child's stderr is the test's unless `cmd` says otherwise.
pub fn start(mut cmd: Command, ready: &str) -> (Proc, String) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn pop");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let ready = ready.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(&ready) {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("the process did not get ready in 60 s");
    (Proc(child), line)
}

/// The URL a `pop serve ready … http://…` line names.
pub fn url_of(ready_line: &str) -> String {
    ready_line.split_whitespace().find(|w| w.starts_with("http://")).expect("the ready line names the URL").to_owned()
}

pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a test file");
}

/// `auth.toml` in `dir`: the superuser `ADMIN`, `POOL` for customer `ops` (the pools' owner) and
/// `ACME` for customer `acme`.
pub fn auth_file(dir: &Path) -> PathBuf {
    let auth = dir.join("auth.toml");
    write(
        &auth,
        &format!(
            r#"anonymous = "deny"
[[tokens]]
token = "{ADMIN}"
user = "admin"
superuser = true
[[tokens]]
token = "{POOL}"
user = "pool"
accounts = ["ops"]
[[tokens]]
token = "{ACME}"
user = "alice"
accounts = ["acme"]
"#
        ),
    );
    auth
}

/// The `step` handler in `dir` and a registry naming it; returns the registry. The handler appends
/// `start`/`end <agenda> <operation> $POOL_NAME` to `$STEP_LOG`, sleeps the payload's `ms` and
/// returns `{"done": <operation>}`.
pub fn step_registry(dir: &Path) -> PathBuf {
    let handler = dir.join("step.sh");
    write(
        &handler,
        r#"#!/bin/sh
ms=$(printf '%s' "$PAYLOAD" | sed -n 's/.*"ms" *: *\([0-9]*\).*/\1/p')
echo "start $AGENDA_ID $OPERATION_NAME $POOL_NAME" >> "$STEP_LOG"
sleep $(awk "BEGIN{print ${ms:-100}/1000}")
echo "end $AGENDA_ID $OPERATION_NAME $POOL_NAME" >> "$STEP_LOG"
echo "POP_RESULT {\"done\": \"$OPERATION_NAME\"}"
"#,
    );
    let mut perms = std::fs::metadata(&handler).expect("handler").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&handler, perms).expect("chmod");
    let registry = dir.join("registry.json");
    write(&registry, &serde_json::json!({"step": {"process": {"command": handler}}}).to_string());
    registry
}

/// A diamond of four `step` operations (a; b and c after a; d after both) for customer `c<i % 3>`,
/// sleeping `ms[k]` each, with 20 attempts.
pub fn diamond(i: usize, link: &str, ms: [u64; 4]) -> Agenda {
    serde_json::from_value(serde_json::json!({
        "customerId": format!("c{}", i % 3),
        "linkId": link,
        "params": {"maximumAttempts": 20},
        "operations": [
            {"name": "a", "type": "step", "payload": {"ms": ms[0]}},
            {"name": "b", "type": "step", "payload": {"ms": ms[1], "in": "@<a.out::/done>"}},
            {"name": "c", "type": "step", "payload": {"ms": ms[2], "in": "@<a.out::/done>"}},
            {"name": "d", "type": "step", "payload": {"ms": ms[3], "x": "@<b.out>", "y": "@<c.out>"}}
        ]
    }))
    .expect("agenda")
}

/// Creates resource pool `pool` (owned by `ops`) with the global Fairness insight `insight` for
/// operations of type `step`, at most `queue_size` queued, and the customers in it.
pub async fn provision(admin: &Client, pool: &str, insight: &str, customers: &[&str], queue_size: u32) {
    let p = ResourcePool {
        id: Some(pool.into()),
        customer_id: Some("ops".into()),
        title: Some(pool.into()),
        ..Default::default()
    };
    admin.create(&p).await.expect("pool");
    let i = Insight {
        id: Some(insight.into()),
        customer_id: Some("ops".into()),
        title: Some(insight.into()),
        resource_pool_id: Some(pool.into()),
        is_global: true,
        queue_size: Some(queue_size),
        scheduling_algorithm: Some("Fairness".into()),
        mappers: [("operationType".to_string(), vec!["step".to_string()])].into(),
        ..Default::default()
    };
    admin.create(&i).await.expect("insight");
    for c in customers {
        let customer = Customer {
            id: Some((*c).into()),
            customer_id: Some((*c).into()),
            title: Some((*c).into()),
            resource_pool_id: Some(pool.into()),
            ..Default::default()
        };
        admin.create(&customer).await.expect("customer");
    }
}

/// (agenda, operation) of every operation that succeeded, as the progress says.
pub fn succeeded(progress: &[AgendaProgress]) -> HashSet<(String, String)> {
    progress
        .iter()
        .flat_map(|p| {
            let agenda = p.agenda_id.clone().unwrap_or_default();
            p.operation_progress
                .iter()
                .filter(|o| o.succeeded())
                .map(move |o| (agenda.clone(), o.operation.clone().unwrap_or_default()))
        })
        .collect()
}
