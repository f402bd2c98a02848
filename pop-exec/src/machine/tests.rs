use super::*;
use proptest::prelude::*;
use serde_json::json;
use std::collections::HashSet;

fn agenda(ops: Value) -> Agenda {
    serde_json::from_value(json!({"id": "ag", "progressId": "pg", "params": {"k": "v"}, "operations": ops}))
        .expect("test agenda")
}

fn op(name: &str, payload: Value) -> Value {
    json!({"name": name, "type": "t", "payload": payload})
}

fn op_p(name: &str, payload: Value, params: Value) -> Value {
    json!({"name": name, "type": "t", "payload": payload, "params": params})
}

fn launches(actions: &[Action]) -> Vec<Launch> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Launch(l) => Some(l.clone()),
            _ => None,
        })
        .collect()
}

fn names(ls: &[Launch]) -> Vec<String> {
    let mut n: Vec<String> = ls.iter().map(|l| l.name.clone()).collect();
    n.sort();
    n
}

fn finished(actions: &[Action]) -> Option<Outcome> {
    actions.iter().find_map(|a| match a {
        Action::Finished(o) => Some(o.clone()),
        _ => None,
    })
}

/// Runs to the end, every launched attempt answered by `answer(name, attempt)`, in launch order.
fn run_all(m: &mut Machine, mut answer: impl FnMut(&Launch) -> OpEvent) -> (Vec<Launch>, Outcome) {
    let mut all = Vec::new();
    let mut queue: VecDeque<Launch> = VecDeque::new();
    let mut now = 0;
    loop {
        let actions = m.poll(now);
        if let Some(o) = finished(&actions) {
            return (all, o);
        }
        let ls = launches(&actions);
        all.extend(ls.iter().cloned());
        queue.extend(ls);
        now += 1;
        match queue.pop_front() {
            Some(l) => {
                let e = answer(&l);
                m.on_event(l.key, e, now);
            }
            None => {
                let Some(at) = m.next_wakeup() else { panic!("stuck without finishing: {m:?}") };
                now = now.max(at);
            }
        }
    }
}

#[test]
fn percent_vectors_of_the_original() {
    assert_eq!(percent_complete(5, 10, 50.0), 55.0);
    assert_eq!(percent_complete(5, 10, 0.0), 50.0);
    assert_eq!(percent_complete(5, 10, 100.0), 60.0);
    assert_eq!(percent_complete(1, 0, 100.0), 0.0);
}

#[test]
fn percent_rolls_up_in_flight_progress_and_completions() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({})), op("c", json!({"x": "@<a.out>"}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let ls = launches(&m.poll(0));
    assert_eq!(names(&ls), ["a", "b"]);
    let progress = |p| OpEvent::Progress(ProgressUpdate { percent_complete: Some(p), ..Default::default() });
    m.on_event(ls[0].key, progress(50.0), 1);
    assert_eq!(m.percent_complete(), 50.0 / 3.0);
    m.on_event(ls[0].key, progress(80.0), 2);
    m.on_event(ls[1].key, progress(250.0), 2); // clamped to 100
    assert_eq!(m.percent_complete(), 60.0);
    m.on_event(ls[0].key, OpEvent::Succeeded(json!({})), 3);
    assert_eq!(m.percent_complete(), 200.0 / 3.0);
}

#[test]
fn dependencies_gate_launches_and_outputs_resolve() {
    let mut m = Machine::new(
        agenda(json!([
            op("a", json!({"id": "@<pop.agendaId>", "me": "@<pop.operationName>", "k": "@<pop.params::/k>"})),
            op("b", json!({"w": "@<a.out::/width>", "s": "w=@<a.out::/width>px", "miss": "@<a.out::/nope?dflt>"})),
            op_p("c", json!({}), json!({"dependsOn": "b"})),
        ])),
        None,
        MachineOptions::default(),
        0,
    );
    let ls = launches(&m.poll(0));
    assert_eq!(names(&ls), ["a"]);
    assert_eq!(ls[0].payload, json!({"id": "ag", "me": "a", "k": "v"}));
    assert!(launches(&m.poll(1)).is_empty(), "b must wait for a");
    m.on_event(ls[0].key, OpEvent::Succeeded(json!({"width": 720})), 2);
    let ls = launches(&m.poll(2));
    assert_eq!(names(&ls), ["b"]);
    assert_eq!(ls[0].payload, json!({"w": 720, "s": "w=720px", "miss": "dflt"}));
    m.on_event(ls[0].key, OpEvent::Succeeded(Value::Null), 3);
    let ls = launches(&m.poll(3));
    assert_eq!(names(&ls), ["c"]);
    assert_eq!(m.output(m.op_id("b").unwrap()), Some(&json!({})), "null output is stored as {{}}");
}

#[test]
fn parallelism_cap_is_respected() {
    let ops: Vec<Value> = (0..10).map(|i| op(&format!("o{i}"), json!({}))).collect();
    let mut m = Machine::new(agenda(Value::Array(ops)), None, MachineOptions { parallelism: 3, fail_fast: false }, 0);
    let ls = launches(&m.poll(0));
    assert_eq!(ls.len(), 3);
    assert!(launches(&m.poll(0)).is_empty());
    m.on_event(ls[0].key, OpEvent::Succeeded(json!({})), 1);
    assert_eq!(launches(&m.poll(1)).len(), 1);
}

#[test]
fn failure_stops_new_launches_running_ones_finish_and_agenda_fails() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({})), op("c", json!({"x": "@<a.out>"})), op("d", json!({}))])),
        None,
        MachineOptions { parallelism: 2, fail_fast: false },
        0,
    );
    let ls = launches(&m.poll(0));
    assert_eq!(names(&ls), ["a", "b"]);
    m.on_event(ls[1].key, OpEvent::Failed(DiagnosticEvent::new("boom", 1)), 1);
    let actions = m.poll(1);
    assert!(launches(&actions).is_empty(), "nothing new starts after a failure");
    assert!(finished(&actions).is_none(), "a is still running");
    assert!(!actions.iter().any(|a| matches!(a, Action::Cancel { .. })), "not fail-fast: a runs on");
    m.on_event(ls[0].key, OpEvent::Succeeded(json!({})), 2);
    let actions = m.poll(2);
    assert!(launches(&actions).is_empty(), "c became ready but must not start");
    let o = finished(&actions).expect("finished");
    assert_eq!(o.conclusion, Conclusion::Failed);
    assert_eq!(o.diagnostics.len(), 1);
    assert_eq!(o.diagnostics[0].message.as_deref(), Some("operation b failed: boom"));
    let p = m.full_progress(3);
    assert_eq!(p.processing_state, ProcessingState::Complete);
    assert_eq!(p.processing_state_message.as_deref(), Some("failed"));
    let by_name: HashMap<_, _> = p.operation_progress.iter().map(|o| (o.operation.clone().unwrap(), o)).collect();
    assert!(by_name["a"].succeeded());
    assert_eq!(by_name["b"].conclusion(), Some(Conclusion::Failed));
    assert_eq!(by_name["c"].processing_state, ProcessingState::Waiting);
    assert_eq!(by_name["d"].processing_state, ProcessingState::Waiting);
    // completed = a + b of 4
    assert_eq!(p.percent_complete, 50.0);
}

#[test]
fn fail_fast_cancels_running_operations() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({}))])),
        None,
        MachineOptions { parallelism: 5, fail_fast: true },
        0,
    );
    let ls = launches(&m.poll(0));
    m.on_event(ls[0].key, OpEvent::Failed(DiagnosticEvent::new("boom", 1)), 1);
    let actions = m.poll(1);
    let cancels: Vec<AttemptKey> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Cancel { key, .. } => Some(*key),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![ls[1].key]);
    assert!(finished(&actions).is_none());
    // The runtime reports the killed handler as a failure: it counts as cancelled.
    m.on_event(ls[1].key, OpEvent::Failed(DiagnosticEvent::new("killed", 2)), 2);
    let o = finished(&m.poll(2)).expect("finished");
    assert_eq!(o.conclusion, Conclusion::Failed);
    assert_eq!(m.status(ls[1].key.op), Some(OpStatus::Cancelled));
}

#[test]
fn retry_policy_with_backoff() {
    let mut m = Machine::new(
        agenda(json!([op_p(
            "a",
            json!({}),
            json!({"retry": {"maxAttempts": 3, "backoffMs": 100, "backoffMultiplier": 2.0}})
        )])),
        None,
        MachineOptions::default(),
        0,
    );
    let l1 = launches(&m.poll(0)).remove(0);
    assert_eq!(l1.key.attempt, 1);
    assert!(l1.last_progress.is_none());
    m.on_event(l1.key, OpEvent::Failed(DiagnosticEvent::new("flaky", 10)), 10);
    let actions = m.poll(10);
    assert!(actions.contains(&Action::RetryAt { key: AttemptKey { op: l1.key.op, attempt: 2 }, at: 110 }));
    assert_eq!(m.next_wakeup(), Some(110));
    assert!(launches(&m.poll(109)).is_empty(), "not before its time");
    let l2 = launches(&m.poll(110)).remove(0);
    assert_eq!(l2.key.attempt, 2);
    assert_eq!(l2.last_progress.as_ref().map(|p| p.diagnostic_events.len()), Some(1));
    // A late event of attempt 1 is stale.
    assert!(!m.on_event(l1.key, OpEvent::Succeeded(json!({})), 111));
    m.on_event(l2.key, OpEvent::Failed(DiagnosticEvent::new("flaky", 120)), 120);
    m.poll(120);
    assert_eq!(m.next_wakeup(), Some(320), "backoff doubles");
    let l3 = launches(&m.poll(320)).remove(0);
    m.on_event(l3.key, OpEvent::Failed(DiagnosticEvent::new("flaky", 330)), 330);
    let o = finished(&m.poll(330)).expect("three attempts, then failed");
    assert_eq!(o.conclusion, Conclusion::Failed);
    assert_eq!(m.operation_progress(l1.key.op).unwrap().attempt_count, 3);
}

#[test]
fn timeout_cancels_the_attempt_and_retries() {
    let mut m = Machine::new(
        agenda(json!([op_p("a", json!({}), json!({"timeoutMs": 50, "retry": {"maxAttempts": 2, "backoffMs": 0}}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let l1 = launches(&m.poll(0)).remove(0);
    assert_eq!(l1.deadline, Some(50));
    assert_eq!(m.next_wakeup(), Some(50));
    let actions = m.poll(50);
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { key, .. } if *key == l1.key)));
    // backoff 0: the retry is due at once and launched by the same poll
    let l2 = launches(&actions).remove(0);
    assert_eq!(l2.key.attempt, 2);
    assert_eq!(l2.deadline, Some(100));
    m.on_event(l2.key, OpEvent::TimedOut, 70);
    let actions = m.poll(70);
    let o = finished(&actions).expect("finished");
    assert!(o.diagnostics[0].message.as_deref().unwrap().contains("timed out after 50 ms"));
}

#[test]
fn cancel_kills_running_and_ends_cancelled() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({"x": "@<a.out>"}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let l = launches(&m.poll(0)).remove(0);
    m.cancel("user request", 1);
    let actions = m.poll(1);
    assert!(actions.iter().any(|a| matches!(a, Action::Cancel { key, .. } if *key == l.key)));
    assert!(finished(&actions).is_none());
    m.on_event(l.key, OpEvent::Cancelled, 2);
    let o = finished(&m.poll(2)).expect("finished");
    assert_eq!(o.conclusion, Conclusion::Cancelled);
    assert_eq!(m.agenda_progress(3).processing_state_message.as_deref(), Some("cancelled"));
}

#[test]
fn deadlock_is_reported_with_names() {
    let mut m = Machine::new(
        agenda(json!([
            op("a", json!({})),
            op_p("b", json!({}), json!({"dependsOn": "c"})),
            op_p("c", json!({}), json!({"dependsOn": ["b"]})),
            op("d", json!({"x": "@<ghost.out>"})),
        ])),
        None,
        MachineOptions::default(),
        0,
    );
    let (ls, o) = run_all(&mut m, |_| OpEvent::Succeeded(json!({})));
    assert_eq!(names(&ls), ["a"]);
    assert_eq!(o.conclusion, Conclusion::Failed);
    let msg = o.diagnostics[0].message.clone().unwrap();
    assert!(msg.contains("deadlock"), "{msg}");
    assert!(msg.contains("b, c, d"), "{msg}");
    assert!(msg.contains("ghost"), "{msg}");
}

#[test]
fn invalid_reference_at_launch_fails_the_operation() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({"x": "@<a.out::/missing>"}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let (ls, o) = run_all(&mut m, |_| OpEvent::Succeeded(json!({"y": 1})));
    assert_eq!(names(&ls), ["a"]);
    assert_eq!(o.conclusion, Conclusion::Failed);
    assert!(o.diagnostics[0].message.as_deref().unwrap().contains("operation b has invalid references"));
}

#[test]
fn bad_agendas_fail_without_running() {
    for (ops, expect) in [
        (json!([]), "no operations"),
        (json!([op("a", json!({})), op("A", json!({}))]), "used more than once"),
        (json!([op_p("a", json!({}), json!({"timeoutMs": -4}))]), "timeoutMs"),
        (json!([op_p("a", json!({}), json!({"retry": "often"}))]), "params.retry"),
    ] {
        let mut m = Machine::new(agenda(ops), None, MachineOptions::default(), 0);
        let actions = m.poll(0);
        assert!(launches(&actions).is_empty());
        let o = finished(&actions).expect("finished at once");
        assert_eq!(o.conclusion, Conclusion::Failed);
        assert!(o.diagnostics.iter().any(|d| d.message.as_deref().unwrap().contains(expect)), "{expect}: {o:?}");
    }
}

fn prior_of(m: &Machine) -> AgendaProgress {
    m.full_progress(100)
}

#[test]
fn resume_skips_succeeded_restores_outputs_and_hands_last_progress() {
    let ops = json!([
        op("a", json!({})),
        op("b", json!({"in": "@<a.out::/file>"})),
        op("c", json!({"in": "@<b.out::/file>"})),
        op("d", json!({})),
        op_p("e", json!({}), json!({"dependsOn": "c"})),
    ]);
    let mut m = Machine::new(agenda(ops.clone()), None, MachineOptions { parallelism: 1, fail_fast: false }, 0);
    let (first, o) = run_all(&mut m, |l| match l.name.as_str() {
        "a" => OpEvent::Succeeded(json!({"file": "a.mp4"})),
        "b" => OpEvent::Failed(DiagnosticEvent::new("disk full", 0)),
        _ => OpEvent::Succeeded(json!({})),
    });
    assert_eq!(names(&first), ["a", "b", "d"]);
    assert_eq!(o.conclusion, Conclusion::Failed);
    // The prior as stored (JSON round trip).
    let prior: AgendaProgress = serde_json::from_value(serde_json::to_value(prior_of(&m)).unwrap()).unwrap();
    let mut m2 = Machine::new(agenda(ops), Some(&prior), MachineOptions::default(), 200);
    assert_eq!(m2.counts().completed, 2);
    assert_eq!(m2.percent_complete(), 40.0);
    let ls = launches(&m2.poll(200));
    assert_eq!(names(&ls), ["b"], "a and d are not re-run");
    assert_eq!(ls[0].payload, json!({"in": "a.mp4"}), "a's output restored from resultPayload");
    let lp = ls[0].last_progress.as_ref().expect("LAST_PROGRESS for the re-run");
    assert_eq!(lp.conclusion(), Some(Conclusion::Failed));
    assert_eq!(lp.diagnostic_events[0].message.as_deref(), Some("disk full"));
    m2.on_event(ls[0].key, OpEvent::Succeeded(json!({"file": "b.mp4"})), 201);
    let ls = launches(&m2.poll(201));
    assert_eq!(names(&ls), ["c"]);
    assert_eq!(ls[0].last_progress, None, "c was WAITING");
    assert_eq!(ls[0].payload, json!({"in": "b.mp4"}));
}

#[test]
fn generator_adds_operations_and_they_run() {
    let gen_params =
        json!({"agenda.operation.generator": {"operationsJsonPointer": "/operations", "paramsJsonPointer": "/params"}});
    let mut m = Machine::new(
        agenda(json!([op_p("gen", json!({}), gen_params), op("after", json!({"g": "@<gen.out::/params/added>"}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let l = launches(&m.poll(0)).remove(0);
    let output = json!({
        "operations": [
            {"name": "g1", "type": "t", "payload": {"p": "@<pop.params::/added>"}},
            {"name": "g2", "type": "t", "payload": {"from": "@<g1.out::/v>"}}
        ],
        "params": {"added": "yes"}
    });
    m.on_event(l.key, OpEvent::Succeeded(output), 1);
    assert_eq!(m.len(), 4);
    let actions = m.poll(1);
    let generated = actions
        .iter()
        .find_map(|a| match a {
            Action::Generated { parent, operations, params } => {
                Some((parent.clone(), operations.clone(), params.clone()))
            }
            _ => None,
        })
        .expect("generated action");
    assert_eq!(generated.0, "gen");
    assert_eq!(generated.1.len(), 2);
    assert!(generated.1.iter().all(|o| o.generated_parent() == Some("gen")));
    assert_eq!(generated.2.unwrap()["added"], "yes");
    let ls = launches(&actions);
    assert_eq!(names(&ls), ["after", "g1"]);
    assert_eq!(ls.iter().find(|l| l.name == "g1").unwrap().payload, json!({"p": "yes"}));
    assert_eq!(ls.iter().find(|l| l.name == "after").unwrap().payload, json!({"g": "yes"}));
    assert_eq!(m.percent_complete(), 25.0, "the generated operations count in the total");
    for l in &ls {
        m.on_event(l.key, OpEvent::Succeeded(json!({"v": 7})), 2);
    }
    let ls = launches(&m.poll(2));
    assert_eq!(names(&ls), ["g2"]);
    assert_eq!(ls[0].payload, json!({"from": 7}));
    assert_eq!(m.agenda_progress(3).params.unwrap()["added"], "yes");
}

#[test]
fn bad_generated_set_fails_the_generator_with_a_clear_diagnostic() {
    let gen_params = json!({"agenda.operation.generator": {"operationsJsonPointer": "/operations"}});
    for (output, expect) in [
        (
            json!({"operations": [{"name": "x", "type": "t", "payload": {"a": "@<nobody.out>"}}]}),
            "`nobody` is neither in the agenda",
        ),
        (json!({"operations": [{"name": "GEN", "type": "t", "payload": {}}]}), "has the name of an existing operation"),
        (json!({"nothing": 1}), "no operations at operationsJsonPointer"),
        (json!({"operations": {"name": "x"}}), "must point to an array"),
        (
            json!({"operations": [
                {"name": "x", "type": "t", "payload": {"a": "@<y.out>"}},
                {"name": "y", "type": "t", "payload": {"a": "@<x.out>"}}
            ]}),
            "circular dependency: x → y → x",
        ),
    ] {
        let mut m = Machine::new(
            agenda(json!([op_p("gen", json!({}), gen_params.clone())])),
            None,
            MachineOptions::default(),
            0,
        );
        let l = launches(&m.poll(0)).remove(0);
        m.on_event(l.key, OpEvent::Succeeded(output), 1);
        let o = finished(&m.poll(1)).expect("finished");
        assert_eq!(o.conclusion, Conclusion::Failed);
        assert_eq!(m.status(l.key.op), Some(OpStatus::Failed));
        let msg = o.diagnostics[0].message.clone().unwrap();
        assert!(msg.contains("generator gen") && msg.contains(expect), "{expect}: {msg}");
        assert_eq!(m.len(), 1, "nothing added");
    }
}

#[test]
fn resumed_generator_does_not_duplicate_operations() {
    let gen_params = json!({"agenda.operation.generator": {"operationsJsonPointer": "/operations"}});
    let output = json!({"operations": [{"name": "g1", "type": "t", "payload": {}}]});
    let mut m =
        Machine::new(agenda(json!([op_p("gen", json!({}), gen_params.clone())])), None, MachineOptions::default(), 0);
    let l = launches(&m.poll(0)).remove(0);
    m.on_event(l.key, OpEvent::Succeeded(output.clone()), 1);
    let g1 = launches(&m.poll(1)).remove(0);
    m.on_event(g1.key, OpEvent::Failed(DiagnosticEvent::new("x", 2)), 2);
    assert_eq!(finished(&m.poll(2)).unwrap().conclusion, Conclusion::Failed);
    let prior = prior_of(&m);
    // The persisted agenda now holds g1, stamped with its parent.
    let mut g1_op: Value =
        json!({"name": "g1", "type": "t", "payload": {}, "params": {"generatedOperationParent": "gen"}});
    let ops = json!([op_p("gen", json!({}), gen_params.clone()), g1_op.take()]);
    let mut m2 = Machine::new(agenda(ops), Some(&prior), MachineOptions::default(), 10);
    assert_eq!(m2.len(), 2, "g1 not added again");
    let actions = m2.poll(10);
    assert!(!actions.iter().any(|a| matches!(a, Action::Generated { .. })));
    assert_eq!(names(&launches(&actions)), ["g1"]);
    // If the agenda does not hold them (the append was lost), the restored generator adds them.
    let mut m3 =
        Machine::new(agenda(json!([op_p("gen", json!({}), gen_params)])), Some(&prior), MachineOptions::default(), 10);
    assert_eq!(m3.len(), 2);
    let actions = m3.poll(10);
    assert!(actions.iter().any(|a| matches!(a, Action::Generated { .. })));
    assert_eq!(names(&launches(&actions)), ["g1"]);
}

#[test]
fn snapshots_carry_only_changed_operations() {
    let ops: Vec<Value> = (0..5).map(|i| op(&format!("o{i}"), json!({}))).collect();
    let mut m = Machine::new(agenda(Value::Array(ops)), None, MachineOptions { parallelism: 1, fail_fast: false }, 0);
    let s = m.take_snapshot(0);
    assert_eq!(s.changed.len(), 5, "the first snapshot has every operation");
    assert_eq!(s.agenda.id.as_deref(), Some("pg"));
    assert_eq!(s.changed[0].id.as_deref(), Some("pg-o0"));
    assert!(!m.has_changes());
    let l = launches(&m.poll(1)).remove(0);
    let s = m.take_snapshot(1);
    assert_eq!(s.changed.len(), 1);
    assert_eq!(s.changed[0].processing_state, ProcessingState::Executing);
    m.on_event(l.key, OpEvent::Succeeded(json!({"r": 1})), 2);
    let s = m.take_snapshot(2);
    assert_eq!(s.changed.len(), 1);
    assert_eq!(s.changed[0].result_payload.as_deref(), Some(r#"{"r":1}"#));
    assert_eq!(s.changed[0].percent_complete, 100.0);
    assert_eq!(s.agenda.percent_complete, 20.0);
    assert_eq!(s.agenda.processing_state, ProcessingState::Executing);
}

// ---- properties ----

#[derive(Debug, Clone)]
struct Dag {
    /// deps[i] ⊂ 0..i
    deps: Vec<Vec<usize>>,
    /// Whether each op fails (for good) when run.
    fails: Vec<bool>,
    /// Via reference (true) or dependsOn (false).
    by_ref: Vec<bool>,
}

fn dag_strategy(max: usize, fail_rate: f64) -> impl Strategy<Value = Dag> {
    (1..=max).prop_flat_map(move |n| {
        let deps = (0..n)
            .map(|i| {
                if i == 0 { Just(Vec::new()).boxed() } else { proptest::collection::vec(0..i, 0..4.min(i + 1)).boxed() }
            })
            .collect::<Vec<_>>();
        (
            deps,
            proptest::collection::vec(proptest::bool::weighted(fail_rate), n),
            proptest::collection::vec(any::<bool>(), n),
        )
            .prop_map(|(mut deps, fails, by_ref)| {
                for d in &mut deps {
                    d.sort_unstable();
                    d.dedup();
                }
                Dag { deps, fails, by_ref }
            })
    })
}

fn dag_agenda(d: &Dag) -> Agenda {
    let ops: Vec<Value> = d
        .deps
        .iter()
        .enumerate()
        .map(|(i, deps)| {
            if d.by_ref[i] {
                let refs: Vec<Value> = deps.iter().map(|j| json!(format!("@<n{j}.out::/v>"))).collect();
                op(&format!("n{i}"), json!({"refs": refs}))
            } else {
                let names: Vec<String> = deps.iter().map(|j| format!("n{j}")).collect();
                op_p(&format!("n{i}"), json!({}), json!({"dependsOn": names.join(",")}))
            }
        })
        .collect();
    agenda(Value::Array(ops))
}

struct Sim {
    launched: Vec<usize>,
    launch_count: HashMap<(usize, u32), usize>,
    succeeded: HashSet<usize>,
    first_failure_at: Option<usize>,
    max_running: usize,
    outcome: Outcome,
}

/// Drives a machine with random completion order; `fails(i)` decides an op's outcome.
fn simulate(
    m: &mut Machine,
    d: &Dag,
    cap: usize,
    order_seed: u64,
    already: HashSet<usize>,
    fails: impl Fn(usize) -> bool,
) -> Sim {
    let mut rng = order_seed | 1;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut sim = Sim {
        launched: Vec::new(),
        launch_count: HashMap::new(),
        succeeded: already,
        first_failure_at: None,
        max_running: 0,
        outcome: Outcome { conclusion: Conclusion::Succeeded, diagnostics: vec![] },
    };
    let mut running: Vec<Launch> = Vec::new();
    let mut now = 0;
    loop {
        let actions = m.poll(now);
        for a in &actions {
            if let Action::Launch(l) = a {
                let i = l.key.op.0;
                assert!(sim.first_failure_at.is_none(), "n{i} launched after a failure");
                for &dep in &d.deps[i] {
                    assert!(sim.succeeded.contains(&dep), "n{i} launched before its dependency n{dep} succeeded");
                    if d.by_ref[i] {
                        assert_eq!(l.payload["refs"].as_array().map(Vec::len), Some(d.deps[i].len()));
                    }
                }
                *sim.launch_count.entry((i, l.key.attempt)).or_default() += 1;
                sim.launched.push(i);
                running.push(l.clone());
            }
        }
        sim.max_running = sim.max_running.max(running.len());
        assert!(running.len() <= cap, "cap {cap} exceeded: {}", running.len());
        if let Some(o) = finished(&actions) {
            assert!(running.is_empty(), "finished with operations running");
            sim.outcome = o;
            return sim;
        }
        now += 1;
        assert!(!running.is_empty(), "not finished but nothing runs: {m:?}");
        let l = running.swap_remove(next(running.len()));
        let i = l.key.op.0;
        if fails(i) {
            sim.first_failure_at.get_or_insert(sim.launched.len());
            m.on_event(l.key, OpEvent::Failed(DiagnosticEvent::new("random failure", now)), now);
        } else {
            sim.succeeded.insert(i);
            m.on_event(l.key, OpEvent::Succeeded(json!({"v": i})), now);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_respect_order_cap_and_failure_rules(
        d in dag_strategy(500, 0.01),
        cap in 1usize..20,
        seed in any::<u64>(),
    ) {
        let mut m = Machine::new(dag_agenda(&d), None, MachineOptions { parallelism: cap, fail_fast: false }, 0);
        let sim = simulate(&mut m, &d, cap, seed, HashSet::new(), |i| d.fails[i]);
        for ((i, attempt), n) in &sim.launch_count {
            prop_assert_eq!(*n, 1, "n{} attempt {} launched {} times", i, attempt, n);
        }
        let any_failed = sim.launched.iter().any(|&i| d.fails[i]);
        if any_failed {
            prop_assert_eq!(sim.outcome.conclusion, Conclusion::Failed);
        } else {
            prop_assert_eq!(sim.outcome.conclusion, Conclusion::Succeeded);
            prop_assert_eq!(sim.launched.len(), d.deps.len(), "all run when none fails");
        }
        prop_assert!(sim.max_running <= cap);
    }

    #[test]
    fn resumed_run_reruns_exactly_what_had_not_succeeded(
        d in dag_strategy(300, 0.03),
        cap in 1usize..10,
        seed in any::<u64>(),
    ) {
        let mut m = Machine::new(dag_agenda(&d), None, MachineOptions { parallelism: cap, fail_fast: false }, 0);
        let first = simulate(&mut m, &d, cap, seed, HashSet::new(), |i| d.fails[i]);
        let prior: AgendaProgress = serde_json::from_value(serde_json::to_value(m.full_progress(0)).unwrap()).unwrap();
        let mut m2 = Machine::new(dag_agenda(&d), Some(&prior), MachineOptions { parallelism: cap, fail_fast: false }, 0);
        let second = simulate(&mut m2, &d, cap, seed ^ 0x5555, first.succeeded.clone(), |_| false);
        prop_assert_eq!(second.outcome.conclusion, Conclusion::Succeeded);
        let rerun: HashSet<usize> = second.launched.iter().copied().collect();
        let expected: HashSet<usize> = (0..d.deps.len()).filter(|i| !first.succeeded.contains(i)).collect();
        prop_assert_eq!(rerun.len(), second.launched.len(), "each op once");
        for &i in &second.launched {
            prop_assert_eq!(m2.operation_progress(OpId(i)).unwrap().attempt_count, 1);
        }
        prop_assert_eq!(rerun, expected);
        prop_assert_eq!(m2.percent_complete(), 100.0);
    }
}

#[test]
fn generator_payload_operations_are_templates_not_dependencies() {
    let gen_params = json!({"agenda.operation.generator": {"operationsJsonPointer": "/operations"}});
    let ops_template = json!([
        {"name": "g1", "type": "t", "payload": {}},
        {"name": "g2", "type": "t", "payload": {"v": "@<g1.out::/v>"}}
    ]);
    let mut m = Machine::new(
        agenda(json!([op_p("gen", json!({"operations": ops_template, "who": "@<pop.operationName>"}), gen_params)])),
        None,
        MachineOptions::default(),
        0,
    );
    let l = launches(&m.poll(0)).remove(0);
    assert_eq!(l.payload, json!({"operations": ops_template, "who": "gen"}), "the template is passed verbatim");
    m.on_event(l.key, OpEvent::Succeeded(json!({"operations": ops_template})), 1);
    assert_eq!(names(&launches(&m.poll(1))), ["g1"]);
}

#[test]
fn reference_precheck_agrees_with_the_parser() {
    let docs = [
        json!({}),
        json!({"a": "plain", "b": [1, "x@y", {"c": "<@"}]}),
        json!({"a": "@<x.out>"}),
        json!({"a": ["text @<x.out::/p> more"]}),
        json!({"@<x.out>": "keys are never references"}),
        json!("@<pop.agendaId>"),
        json!({"a": "@<"}),
    ];
    for d in docs {
        let parsed = ParsedDocument::parse(d.clone());
        if parsed.has_references() || !parsed.malformed().is_empty() {
            assert!(may_hold_references(&d), "{d}");
        }
        if !may_hold_references(&d) {
            assert!(!parsed.has_references(), "{d}");
        }
    }
    assert!(!may_hold_references(&json!({"@<x.out>": 1})));
    assert_eq!(lowercase("abc"), Cow::Borrowed("abc"));
    assert_eq!(lowercase("aBc"), "abc");
    assert_eq!(lowercase("ÄB"), "äb");
}

#[test]
fn into_full_progress_moves_what_full_progress_copies() {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({"x": "@<a.out::/v>"})), op("c", json!({}))])),
        None,
        MachineOptions::default(),
        0,
    );
    let ls = launches(&m.poll(1));
    m.on_event(ls[0].key, OpEvent::Succeeded(json!({"v": 1})), 2);
    m.poll(3);
    let copied = m.full_progress(4);
    assert_eq!(copied.operation_progress.len(), 3);
    assert_eq!(m.into_full_progress(4), copied);
}

/// Runs `a` then `b` to success; with `mid_snapshot`, a snapshot is taken between the two.
fn two_step_run(mid_snapshot: bool) -> Machine {
    let mut m = Machine::new(
        agenda(json!([op("a", json!({})), op("b", json!({"x": "@<a.out>"}))])),
        None,
        MachineOptions::default(),
        0,
    );
    for t in 1..4 {
        for l in launches(&m.poll(t)) {
            m.on_event(l.key, OpEvent::Succeeded(json!({"t": t})), t);
        }
        if mid_snapshot && t == 1 {
            m.take_snapshot(t);
        }
    }
    assert!(m.is_finished());
    m
}

#[test]
fn finish_publishes_what_changed_and_returns_the_full_progress() {
    for mid in [false, true] {
        let mut reference = two_step_run(mid);
        let snapshot = reference.take_snapshot(9);
        let full = reference.full_progress(9);
        let mut m = two_step_run(mid);
        // A buffer with stale rows: emptied first.
        let mut published = vec![junk_row(); 3];
        let (agenda, n, all) = m.finish(9, &mut published);
        assert_eq!(agenda, snapshot.agenda);
        assert_eq!(all, !mid);
        let mut rows = published[..n].to_vec();
        let got_full = m.final_progress(agenda, published, all);
        assert_eq!(got_full, full);
        let mut expected = snapshot.changed;
        rows.sort_by(|x, y| x.id.cmp(&y.id));
        expected.sort_by(|x, y| x.id.cmp(&y.id));
        assert_eq!(rows, expected, "mid-run snapshot: {mid}");
        assert_eq!(rows.len(), if mid { 1 } else { 2 });
        assert!(!m.has_changes());
    }
}

/// A row with every field set, as a stale row of an earlier publish in a reused buffer.
fn junk_row() -> OperationProgress {
    OperationProgress {
        id: Some("stale-id".into()),
        cid: Some("stale-cid".into()),
        customer_id: Some("stale-customer".into()),
        title: Some("stale title".into()),
        updated_time: Some(-1),
        added_time: Some(-2),
        agenda_progress_id: Some("stale-p".into()),
        processing_state: ProcessingState::Complete,
        processing_state_message: Some("stale message".into()),
        operation: Some("stale-op".into()),
        diagnostic_events: vec![DiagnosticEvent::new("stale", 0); 3],
        percent_complete: 42.0,
        attempt_count: 7,
        attempt_time: Some(-3),
        started_time: Some(-4),
        completed_time: Some(-5),
        result_payload: Some("{\"stale\":true}".into()),
        params: Some(Params::from_iter([("stale".to_owned(), json!(1))])),
        version: 9,
    }
}

#[test]
fn rows_written_over_a_reused_buffer_equal_fresh_exports() {
    // With and without a progress id, cid and customer; rows restored with their own fields.
    for (progress_id, owner) in [(Some("p1"), true), (Some("p1"), false), (None, false)] {
        let mut a = agenda(json!([op("a", json!({})), op("b", json!({"x": "@<a.out>"})), op("c", json!({}))]));
        a.progress_id = progress_id.map(str::to_owned);
        a.id = progress_id.map(|_| "ag".to_owned());
        if owner {
            a.cid = Some("cid-1".into());
            a.customer_id = Some("cust-1".into());
        }
        let mut prior = AgendaProgress::default();
        let mut restored = junk_row();
        restored.operation = Some("c".into());
        restored.processing_state = ProcessingState::Executing;
        restored.cid = None;
        prior.operation_progress = vec![restored];
        let mut m = Machine::new(a, Some(&prior), MachineOptions::default(), 0);
        for t in 1..3 {
            for l in launches(&m.poll(t)) {
                m.on_event(l.key, OpEvent::Succeeded(json!({"t": t})), t);
            }
        }
        let fresh = m.full_progress(5);
        for i in 0..m.len() {
            let mut row = junk_row();
            m.export_into(i, &mut row);
            assert_eq!(row, fresh.operation_progress[i], "row {i}, progress id {progress_id:?}, owner {owner}");
            let mut row = OperationProgress::default();
            m.export_into(i, &mut row);
            assert_eq!(row, fresh.operation_progress[i]);
        }
        // The final drain over stale rows, fewer than the operations.
        let mut rows = vec![junk_row(); 2];
        m.drain_rows_into(&mut rows);
        assert_eq!(rows, fresh.operation_progress, "progress id {progress_id:?}, owner {owner}");
    }
}
