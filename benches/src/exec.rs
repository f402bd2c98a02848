//! The executor benches' workload: layered DAGs of no-op operations and a driver for the machine alone.

use pop_core::model::{Agenda, Conclusion, Operation};
use pop_exec::CancelToken;
use pop_exec::executor::{Executor, ExecutorOptions, NullSink};
use pop_exec::inprocess::InProcessRuntime;
use pop_exec::machine::{Action, Machine, MachineOptions, OpEvent};
use serde_json::{Value, json};
use std::sync::Arc;

/// Operations per layer.
pub const WIDTH: usize = 100;
/// Fan-in and fan-out of every operation between layers.
pub const FAN: usize = 10;

/// `n` no-op operations in layers of [`WIDTH`]; each depends on [`FAN`] operations of the layer before
/// (fan-in 10) and is depended on by [`FAN`] of the layer after (fan-out 10).
pub fn layered(n: usize) -> Agenda {
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

/// [`layered`] with each dependency written as a reference in the payload (`@<n17.out::/file>`)
/// instead of `dependsOn`, plus a `pop.agendaId` token: the machine parses and resolves every payload.
pub fn layered_refs(n: usize) -> Agenda {
    let mut agenda = layered(n);
    for op in &mut agenda.operations {
        let inputs: Vec<String> = op.depends_on().iter().map(|d| format!("@<{d}.out::/file>")).collect();
        op.payload = json!({"inputs": inputs, "label": "run @<pop.agendaId>", "preset": "hd"});
        op.params = None;
    }
    agenda
}

/// Drives the machine alone: every launched operation succeeds at once. Returns the operations run.
pub fn run_machine(agenda: Agenda) -> usize {
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

/// An executor over the in-process runtime with a `noop` handler, publishing nowhere.
pub fn executor() -> Executor {
    let runtime = InProcessRuntime::new();
    runtime.register("noop", |_| async { Ok(Value::Null) });
    Executor::new(Arc::new(runtime), Arc::new(NullSink), ExecutorOptions::default())
}

/// [`executor`] with the `noop` handler registered with [`InProcessRuntime::register_inline`]: each launch
/// ends at its first poll, without a tokio task of its own.
pub fn executor_inline() -> Executor {
    let runtime = InProcessRuntime::new();
    runtime.register_inline("noop", |_| async { Ok(Value::Null) });
    Executor::new(Arc::new(runtime), Arc::new(NullSink), ExecutorOptions::default())
}

/// A tokio runtime on the calling thread only (the executor on one core).
pub fn one_core() -> tokio::runtime::Runtime {
    match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build a tokio runtime: {e}"),
    }
}

/// Runs `agenda` to the end with `exec` on `rt`; it must succeed.
pub fn run_executor(rt: &tokio::runtime::Runtime, exec: &Executor, agenda: Agenda) {
    match rt.block_on(exec.run(agenda, None, CancelToken::new())) {
        Ok(p) => assert_eq!(p.conclusion(), Some(Conclusion::Succeeded)),
        Err(e) => panic!("executor failed: {e}"),
    }
}
