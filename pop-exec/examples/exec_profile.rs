//! One run of the executor bench's workload, for profilers (callgrind counts instructions repeatably on a
//! loaded machine): `cargo run --release -p pop-exec --example exec_profile -- <build|machine|executor> <n>`.
//!
//! The agenda is the bench's layered DAG (width 100, fan-in/out 10, no-op operations). The measured work is
//! in the `#[inline(never)]` function `measured_*`, so that
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured_*'` counts only it.

use pop_core::model::{Agenda, Conclusion, Operation};
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions, NullSink};
use pop_exec::inprocess::InProcessRuntime;
use pop_exec::machine::{Action, Machine, MachineOptions, OpEvent};
use serde_json::{Value, json};
use std::sync::Arc;

const WIDTH: usize = 100;
const FAN: usize = 10;

fn layered(n: usize) -> Agenda {
    let mut operations = Vec::with_capacity(n);
    for i in 0..n {
        let (layer, j) = (i / WIDTH, i % WIDTH);
        let params = if layer == 0 {
            None
        } else {
            let deps: Vec<Value> =
                (0..FAN).map(|t| Value::String(format!("n{}", (layer - 1) * WIDTH + (j + t) % WIDTH))).collect();
            Some(json!({"dependsOn": deps}).as_object().cloned().unwrap_or_default())
        };
        operations.push(Operation {
            name: format!("n{i}"),
            op_type: "noop".into(),
            payload: json!({}),
            params,
            ..Operation::default()
        });
    }
    Agenda { id: Some("bench".into()), progress_id: Some("bench-p".into()), operations, ..Agenda::default() }
}

#[inline(never)]
fn measured_build(agenda: Agenda) {
    std::hint::black_box(Machine::new(agenda, None, MachineOptions::default(), 0));
}

#[inline(never)]
fn measured_machine(agenda: Agenda) -> usize {
    let mut m = Machine::new(agenda, None, MachineOptions::default(), 0);
    let mut now = 0;
    let mut launched = Vec::new();
    let mut count = 0;
    loop {
        for a in m.poll(now) {
            match a {
                Action::Launch(l) => launched.push(l.key),
                Action::Finished(o) => {
                    assert_eq!(o.conclusion, Conclusion::Succeeded);
                    return count;
                }
                _ => {}
            }
        }
        now += 1;
        for key in launched.drain(..) {
            m.on_event(key, OpEvent::Started, now);
            m.on_event(key, OpEvent::Succeeded(Value::Null), now);
            count += 1;
            if count % 1000 == 0 {
                // A publish every 1,000 completed operations, as the executor does now and then (every
                // operation is exported about once whatever the agenda's size).
                std::hint::black_box(m.take_snapshot(now));
            }
        }
    }
}

#[inline(never)]
fn measured_executor(rt: &tokio::runtime::Runtime, exec: &Executor, agenda: Agenda) {
    match rt.block_on(exec.run(agenda, None, CancelToken::new())) {
        Ok(p) => assert_eq!(p.conclusion(), Some(Conclusion::Succeeded)),
        Err(e) => panic!("executor failed: {e}"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("executor", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let agenda = layered(n);
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    };
    let runtime = InProcessRuntime::new();
    runtime.register("noop", |_| async { Ok(Value::Null) });
    let exec = Executor::new(Arc::new(runtime), Arc::new(NullSink), ExecutorOptions::default());
    let start = std::time::Instant::now();
    match mode {
        "build" => measured_build(agenda),
        "machine" => {
            measured_machine(agenda);
        }
        "executor" => measured_executor(&rt, &exec, agenda),
        other => panic!("unknown mode {other}: use build, machine or executor"),
    }
    println!("{mode} {n}: {:?}", start.elapsed());
}
