//! Hostile handlers, as real child processes: floods of output without newlines, a swarm of
//! grandchildren that outlive the handler, SIGTERM ignored, stdout closed early, invalid UTF-8, a
//! 50 MB `POP_RESULT`, and the registry's per-type limits (rlimits, environment allow-list, working
//! directory). Each case ends with a typed outcome and a clear message; the test process's peak
//! memory stays bounded (its `VmHWM`, reset through `/proc/self/clear_refs` before each case); no
//! process of the handler's process group survives, nor one that left it (checked in `/proc`).
//!
//! The cases run one at a time (they measure this process's memory): `cargo test -p pop-runtime-process
//! --test hostile`.

use futures_util::StreamExt;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{Exit, LaunchRequest, LogStream, PodRuntime, RuntimeEvent};
use pop_runtime_process::{ProcessRuntime, ProcessRuntimeConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The cases measure this process's memory: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sh(script: &str) -> Value {
    json!({"command": "/bin/sh", "args": ["-c", script]})
}

fn runtime(process: Value, config: ProcessRuntimeConfig) -> ProcessRuntime {
    let registry = HandlerRegistry::from_value(json!({"t": {"process": process}}), "hostile").unwrap();
    ProcessRuntime::with_config(registry, config)
}

fn fast() -> ProcessRuntimeConfig {
    ProcessRuntimeConfig::default().kill_grace(Duration::from_millis(300)).drain_timeout(Duration::from_millis(500))
}

fn request() -> LaunchRequest {
    LaunchRequest {
        agenda_id: "agenda-1".into(),
        operation_name: "hostile.1".into(),
        operation_type: "t".into(),
        payload: json!({}),
        ..LaunchRequest::default()
    }
}

/// What one run gave: its events, its exit, the handler's pid (= its process group) and how long it took.
struct Run {
    events: Vec<RuntimeEvent>,
    exit: Exit,
    pgid: u32,
    took: Duration,
}

async fn run(rt: &ProcessRuntime) -> Run {
    let started = Instant::now();
    let mut launched = rt.launch(request()).await.unwrap();
    let mut events = Vec::new();
    let mut pgid = None;
    let deadline = tokio::time::sleep(Duration::from_secs(90));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            e = launched.events.next() => match e {
                Some(e) => {
                    if pgid.is_none() {
                        pgid = rt.pid(&launched.handle);
                    }
                    events.push(e);
                }
                None => break,
            },
            _ = &mut deadline => panic!("the operation did not end within 90 s: hang"),
        }
    }
    let took = started.elapsed();
    eprintln!("{} events in {took:?}", events.len());
    let exit = match events.last() {
        Some(RuntimeEvent::Exited(exit)) => exit.clone(),
        other => panic!("last event is not Exited: {other:?}"),
    };
    assert_eq!(events.iter().filter(|e| matches!(e, RuntimeEvent::Exited(_))).count(), 1);
    let pgid = pgid.or_else(|| rt.pid(&launched.handle)).unwrap_or(0);
    Run { events, exit, pgid, took }
}

fn status_code(exit: &Exit) -> Option<String> {
    exit.diagnostic.as_ref().and_then(|d| d.status_code.clone())
}

fn logs(events: &[RuntimeEvent], stream: LogStream) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Log(s, l) if *s == stream => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn outputs(events: &[RuntimeEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            RuntimeEvent::Output(v) => Some(v.clone()),
            _ => None,
        })
        .collect()
}

/// `/proc/<pid>/stat` fields after the command name: state, ppid, pgrp, session.
fn stat(pid: u32) -> Option<(char, u32, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    let pgrp = f.next()?.parse().ok()?;
    let session = f.next()?.parse().ok()?;
    Some((state, ppid, pgrp, session))
}

/// The live (not zombie) processes of process group `pgid`, from `/proc`.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| matches!(stat(*pid), Some((state, _, pgrp, _)) if pgrp == pgid && state != 'Z' && state != 'X'))
        .collect()
}

/// Waits up to 3 s for the group to be empty; the survivors if it is not.
async fn survivors(pgid: u32) -> Vec<u32> {
    assert!(pgid > 1, "no handler pid");
    for _ in 0..150 {
        let left = group_members(pgid);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    group_members(pgid)
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}

/// Peak memory of this process over `f`: resets the high-water mark, runs, reads it. Returns the growth
/// of the peak over the resident size before, in MiB.
async fn peak_growth_mib<T>(f: impl std::future::Future<Output = T>) -> (T, u64) {
    // "5" resets VmHWM to the current RSS (Linux ≥ 4.0).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:");
    let out = f.await;
    let peak = if reset { status_kib("VmHWM:") } else { status_kib("VmRSS:") };
    let growth = peak.saturating_sub(before) / 1024;
    eprintln!("peak memory: {} MiB before, {} MiB peak, growth {growth} MiB", before / 1024, peak / 1024);
    (out, growth)
}

/// Megabytes on stdout without a newline: the line bound (here 1 MiB) fails the operation as soon as
/// it is crossed; nothing close to the output's size is held in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_without_newline() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(sh("head -c 100000000 /dev/zero | tr '\\0' x; sleep 30"), fast().max_line_bytes(1 << 20));
    let (r, growth) = peak_growth_mib(run(&rt)).await;
    assert!(!r.exit.success);
    assert_eq!(status_code(&r.exit).as_deref(), Some("LINE_TOO_LONG"), "{}", r.exit.message);
    assert!(r.exit.message.contains("stdout line longer than the limit of 1048576 bytes"), "{}", r.exit.message);
    assert!(r.took < Duration::from_secs(20), "stopped as soon as the bound was crossed, took {:?}", r.took);
    assert!(growth < 32, "peak memory grew by {growth} MiB for a 100 MB line");
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new(), "the writer pipeline survived");
}

/// The same with the default 16 MiB line bound and 40 MB of output: bounded by the line limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_without_newline_default_bound() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(sh("head -c 40000000 /dev/zero | tr '\\0' y"), fast());
    let (r, growth) = peak_growth_mib(run(&rt)).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("LINE_TOO_LONG"), "{}", r.exit.message);
    assert!(growth < 64, "peak memory grew by {growth} MiB (line bound 16 MiB)");
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new());
}

/// 50 grandchildren that outlive their handler (which succeeds): the operation still succeeds, and
/// none of them survives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_grandchildren_outliving_the_handler_are_killed() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(
        sh(r#"i=0; while [ $i -lt 50 ]; do sleep 1000 >/dev/null 2>&1 & i=$((i+1)); done
              echo "spawned 50"; echo 'POP_RESULT {"ok": true}'"#),
        fast(),
    );
    let r = run(&rt).await;
    assert!(r.exit.success, "{:?}", r.exit);
    assert_eq!(outputs(&r.events), vec![json!({"ok": true})]);
    assert_eq!(logs(&r.events, LogStream::Stdout), vec!["spawned 50"]);
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new(), "grandchildren outlived the operation");
}

/// Descendants that leave the handler's process group (`setsid`, and a double fork that orphans
/// them to init) are found by the launch's mark in their environment and killed with the operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn descendants_that_left_the_group_are_killed_too() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let rt = runtime(
        sh(&format!(
            r#"setsid sh -c 'echo $$ >> {p}; exec sleep 1000' >/dev/null 2>&1 &
               (setsid sh -c 'echo $$ >> {p}; exec sleep 1000' >/dev/null 2>&1 &) 
               i=0; while [ $(wc -l < {p} 2>/dev/null || echo 0) -lt 2 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
               echo 'POP_RESULT {{"ok": true}}'"#,
            p = pids.display()
        )),
        fast(),
    );
    let r = run(&rt).await;
    assert!(r.exit.success, "{:?}", r.exit);
    let escaped: Vec<u32> =
        std::fs::read_to_string(&pids).unwrap().lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert_eq!(escaped.len(), 2, "the handler did not start its two escapees");
    for pid in &escaped {
        assert_ne!(stat(*pid).map(|s| s.2), Some(r.pgid), "{pid} did not leave the handler's group");
    }
    let mut alive = escaped.clone();
    for _ in 0..150 {
        alive.retain(|pid| matches!(stat(*pid), Some((state, ..)) if state != 'Z' && state != 'X'));
        if alive.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alive, Vec::<u32>::new(), "processes that left the group outlived the operation");
}

/// 50 grandchildren holding the output pipes open, the handler exits 0 without a result: the drain
/// timeout ends the wait, the group is killed, the operation succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grandchildren_holding_the_pipes_do_not_hang_the_operation() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(
        sh(r#"i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done; echo 'POP_RESULT {}'; exit 0"#),
        fast(),
    );
    let r = run(&rt).await;
    assert!(r.exit.success, "{:?}", r.exit);
    assert!(r.took < Duration::from_secs(10), "the drain timeout (500 ms) should end it, took {:?}", r.took);
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new());
}

/// A handler and its children ignoring SIGTERM, cancelled: SIGKILL after the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignored_on_cancel() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(
        sh(r#"trap '' TERM; for i in 1 2 3 4 5; do (trap '' TERM; sleep 1000) & done; echo ready; wait"#),
        fast(),
    );
    let mut launched = rt.launch(request()).await.unwrap();
    let mut events = Vec::new();
    while let Some(e) = launched.events.next().await {
        let ready = matches!(&e, RuntimeEvent::Log(_, l) if l == "ready");
        events.push(e);
        if ready {
            break;
        }
    }
    let pgid = rt.pid(&launched.handle).unwrap();
    assert!(group_members(pgid).len() >= 6, "handler and 5 children up: {:?}", group_members(pgid));
    let started = Instant::now();
    rt.cancel(&launched.handle).await.unwrap();
    let rest: Vec<RuntimeEvent> =
        tokio::time::timeout(Duration::from_secs(30), launched.events.collect()).await.unwrap();
    let Some(RuntimeEvent::Exited(exit)) = rest.last() else { panic!("{rest:?}") };
    assert_eq!(status_code(exit).as_deref(), Some("CANCELLED"), "{}", exit.message);
    assert_eq!(exit.signal, Some(9), "SIGTERM was ignored, SIGKILL ended it: {exit:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(survivors(pgid).await, Vec::<u32>::new());
}

/// Closing stdout and stderr early, then running on: the runtime keeps waiting for the process (not
/// for the pipes) and takes the result written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_stdout_early_then_running_on() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(sh(r#"echo 'POP_RESULT {"early": 1}'; exec >&- 2>&-; sleep 1; exit 0"#), fast());
    let r = run(&rt).await;
    assert!(r.exit.success, "{:?}", r.exit);
    assert_eq!(outputs(&r.events), vec![json!({"early": 1})]);
    assert!(r.took >= Duration::from_millis(900), "it waited for the process, not the pipe: {:?}", r.took);
    // ... and with the output closed it still cannot outrun its timeout.
    let mut p = sh("exec >&- 2>&-; sleep 1000");
    p["timeoutMs"] = json!(500);
    let rt = runtime(p, fast());
    let r = run(&rt).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("TIMEOUT"), "{}", r.exit.message);
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new());
}

/// Invalid UTF-8: log lines arrive with U+FFFD; a `POP_RESULT` whose bytes are not UTF-8 is still JSON
/// once decoded lossily, so it succeeds with the replacement character.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_output() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(
        sh(r#"printf 'bad \377\376 bytes\n'; printf 'err \300\n' >&2; printf 'POP_RESULT {"v": "\377"}\n'"#),
        fast(),
    );
    let r = run(&rt).await;
    eprintln!("invalid UTF-8 in a result: {:?} {}", status_code(&r.exit), r.exit.message);
    let stdout = logs(&r.events, LogStream::Stdout);
    assert!(stdout.iter().any(|l| l.starts_with("bad ") && l.contains('\u{fffd}')), "{stdout:?}");
    assert!(logs(&r.events, LogStream::Stderr).iter().any(|l| l.contains('\u{fffd}')));
    if r.exit.success {
        assert_eq!(outputs(&r.events), vec![json!({"v": "\u{fffd}"})]);
    } else {
        assert_eq!(status_code(&r.exit).as_deref(), Some("MALFORMED_RESULT"), "{}", r.exit.message);
    }
    // Invalid UTF-8 only inside a malformed result: a typed failure naming the result.
    let rt = runtime(sh(r#"printf 'POP_RESULT {\377\n'"#), fast());
    let r = run(&rt).await;
    assert!(!r.exit.success);
    assert_eq!(status_code(&r.exit).as_deref(), Some("MALFORMED_RESULT"), "{}", r.exit.message);
    assert!(r.exit.message.contains("POP_RESULT"), "{}", r.exit.message);
}

/// A 50 MB `POP_RESULT` line: refused at the line bound (16 MiB by default) without holding it, the
/// handler stopped, memory bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabyte_result() {
    let _serial = SERIAL.lock().await;
    let script = r#"printf 'POP_RESULT {"x": "'; head -c 50000000 /dev/zero | tr '\0' a; printf '"}\n'"#;
    let rt = runtime(sh(script), fast());
    let (r, growth) = peak_growth_mib(run(&rt)).await;
    assert!(!r.exit.success);
    let code = status_code(&r.exit);
    assert!(matches!(code.as_deref(), Some("LINE_TOO_LONG" | "RESULT_TOO_LARGE")), "{code:?}: {}", r.exit.message);
    assert!(growth < 64, "peak memory grew by {growth} MiB for a 50 MB result");
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new());
    // With a line bound above the result, the result bound (1 MiB here) refuses it by its size.
    let rt = runtime(sh(script), fast().max_line_bytes(64 << 20).max_result_bytes(1 << 20));
    let r = run(&rt).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("RESULT_TOO_LARGE"), "{}", r.exit.message);
    assert!(outputs(&r.events).is_empty());
}

fn python() -> Option<&'static str> {
    std::process::Command::new("python3").arg("-c").arg("").status().ok().filter(|s| s.success()).map(|_| "python3")
}

/// Whether util-linux's `prlimit` (which applies `process.limits`) is installed.
fn prlimit_installed(test: &str) -> bool {
    let ok = std::process::Command::new("prlimit").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipping {test}: prlimit (util-linux) is not installed");
    }
    ok
}

/// `limits.cpuSeconds`: a busy loop gets SIGXCPU after one second of CPU: `CPU_LIMIT`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit() {
    let _serial = SERIAL.lock().await;
    if !prlimit_installed("cpu_limit") {
        return;
    }
    let mut p = sh("while :; do :; done");
    p["limits"] = json!({"cpuSeconds": 1});
    p["timeoutMs"] = json!(60000);
    let r = run(&runtime(p, fast())).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("CPU_LIMIT"), "{}", r.exit.message);
    assert!(r.exit.message.contains("process.limits.cpuSeconds"), "{}", r.exit.message);
    assert!(r.took < Duration::from_secs(30), "{:?}", r.took);
    assert_eq!(survivors(r.pgid).await, Vec::<u32>::new());
}

/// `limits.memoryBytes` and `limits.openFiles`: allocations and opens past them fail inside the
/// handler, which reports it (here Python's `MemoryError` and `Too many open files`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_and_open_files_limits() {
    let _serial = SERIAL.lock().await;
    if !prlimit_installed("memory_and_open_files_limits") {
        return;
    }
    let Some(py) = python() else {
        eprintln!("skipping memory_and_open_files_limits: python3 is not installed");
        return;
    };
    let mem = json!({"command": py, "args": ["-c", "x = bytearray(400_000_000); print('POP_RESULT {}')"],
                     "limits": {"memoryBytes": 200_000_000u64}});
    let r = run(&runtime(mem, fast())).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("EXIT_CODE"), "{:?}", r.exit);
    let last = logs(&r.events, LogStream::Stderr).join("\n");
    assert!(last.contains("MemoryError"), "{last}");
    // Without the limit the same handler succeeds (the limit, not the machine, refused it).
    let unlimited = json!({"command": py, "args": ["-c", "x = bytearray(100_000_000); print('POP_RESULT {}')"]});
    assert!(run(&runtime(unlimited, fast())).await.exit.success);

    let files = json!({"command": py,
                       "args": ["-c", "import os\nfds = [os.open('/dev/null', os.O_RDONLY) for _ in range(64)]\nprint('POP_RESULT {}')"],
                       "limits": {"openFiles": 16}});
    let r = run(&runtime(files, fast())).await;
    assert!(!r.exit.success);
    let last = logs(&r.events, LogStream::Stderr).join("\n");
    assert!(last.contains("Too many open files"), "{last}");
}

/// `inheritEnv`: the handler sees only the allowed variables of the runtime's environment, plus `env`
/// and the protocol's; without it, everything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_allow_list() {
    let _serial = SERIAL.lock().await;
    // cargo sets CARGO_PKG_NAME for the test process; PATH is always there.
    assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
    let mut p = sh("env | cut -d= -f1 | sort");
    p["env"] = json!({"EXTRA": "1"});
    p["inheritEnv"] = json!(["PATH", "LC_*"]);
    let r = run(&runtime(p.clone(), fast())).await;
    assert!(r.exit.success, "{:?}", r.exit);
    let names = logs(&r.events, LogStream::Stdout);
    for want in ["PATH", "EXTRA", "AGENDA_ID", "PAYLOAD", "OPERATION_NAME"] {
        assert!(names.iter().any(|n| n == want), "{want} missing from {names:?}");
    }
    for unwanted in ["CARGO_PKG_NAME", "HOME", "RUST_BACKTRACE", "CARGO_MANIFEST_DIR"] {
        assert!(!names.iter().any(|n| n == unwanted), "{unwanted} leaked into {names:?}");
    }
    p.as_object_mut().unwrap().remove("inheritEnv");
    let r = run(&runtime(p, fast())).await;
    assert!(logs(&r.events, LogStream::Stdout).iter().any(|n| n == "CARGO_PKG_NAME"));
    // An empty allow-list: only env and the protocol's variables.
    let mut p = sh("env | cut -d= -f1");
    p["inheritEnv"] = json!([]);
    let r = run(&runtime(p, fast())).await;
    assert!(!logs(&r.events, LogStream::Stdout).iter().any(|n| n == "PATH"));
}

/// `workingDir`: the handler runs there; a missing directory is a `SPAWN_FAILED` naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_directory() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let canonical = dir.path().canonicalize().unwrap();
    let mut p = sh("pwd -P; echo 'POP_RESULT {}'");
    p["workingDir"] = json!(dir.path());
    let r = run(&runtime(p.clone(), fast())).await;
    assert!(r.exit.success);
    assert_eq!(logs(&r.events, LogStream::Stdout), vec![canonical.display().to_string()]);
    p["workingDir"] = json!("/nonexistent/pop-hostile");
    let r = run(&runtime(p, fast())).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("SPAWN_FAILED"), "{}", r.exit.message);
    assert!(
        r.exit.message.contains("/nonexistent/pop-hostile") && r.exit.message.contains("workingDir"),
        "{}",
        r.exit.message
    );
}

/// Limits without the `prlimit` program: a clear `SPAWN_FAILED` that says what to install.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_without_prlimit_say_so() {
    let _serial = SERIAL.lock().await;
    let mut p = sh("echo 'POP_RESULT {}'");
    p["limits"] = json!({"openFiles": 64});
    let r = run(&runtime(p.clone(), fast().prlimit_program("/nonexistent/prlimit"))).await;
    assert_eq!(status_code(&r.exit).as_deref(), Some("SPAWN_FAILED"), "{}", r.exit.message);
    assert!(r.exit.message.contains("prlimit"), "{}", r.exit.message);
    // With it, the limited handler runs normally.
    if prlimit_installed("limits_without_prlimit_say_so (second half)") {
        assert!(run(&runtime(p, fast())).await.exit.success);
    }
}

/// Bad limits and allow-lists are refused when the registry loads, naming the field.
#[test]
fn registry_refuses_bad_limits() {
    for (process, field) in [
        (json!({"command": "x", "limits": {"cpuSeconds": 0}}), "t.process.limits"),
        (json!({"command": "x", "limits": {"memory": 5}}), "t.process"),
        (json!({"command": "x", "limits": {"openFiles": -1}}), "t.process"),
        (json!({"command": "x", "inheritEnv": ["A=B"]}), "t.process.inheritEnv"),
        (json!({"command": "x", "inheritEnv": "PATH"}), "t.process"),
    ] {
        let e = HandlerRegistry::from_value(json!({"t": {"process": process}}), "r").unwrap_err();
        let p = &e.problem_list()[0];
        assert_eq!(p.field.as_deref(), Some(field), "{process}: {e}");
    }
}
