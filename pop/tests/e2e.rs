//! End to end on sled + real child processes: 200 agendas from 5 customers complete, with correct
#![cfg(all(feature = "sled", feature = "process"))]
//! progress rows and summaries; zombie fencing; timed processes.

mod common;

use common::*;
use pop::services::LeaseState;
use pop::timed::{DataReaperConfig, RetryConfig};
use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::Error;
use pop_core::model::{Conclusion, ProcessingState};
use pop_core::registry::HandlerRegistry;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn process_registry(state: &std::path::Path) -> HandlerRegistry {
    let doc = json!({
        "noop": {"process": {"command": "sh", "args": ["-c",
            "echo 'POP_PROGRESS {\"percentComplete\": 50}'; echo \"POP_RESULT {\\\"i\\\": 1, \\\"op\\\": \\\"$OPERATION_NAME\\\"}\""]}},
        "fail": {"process": {"command": "sh", "args": ["-c", "echo boom >&2; exit 4"]}},
        "sleep": {"process": {"command": "sh", "args": ["-c", "echo $$ > \"$STATE/$AGENDA_ID.pid\"; sleep 30; echo 'POP_RESULT {}'"],
            "env": {"STATE": state}}},
        "flaky": {"process": {"command": "sh", "args": ["-c",
            "n=$(cat \"$STATE/$AGENDA_ID\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$STATE/$AGENDA_ID\"; if [ $n -lt 3 ]; then echo \"attempt $n fails\" >&2; exit 1; fi; echo 'POP_RESULT {\"attempt\": 3}'"],
            "env": {"STATE": state}}}
    });
    HandlerRegistry::from_value(doc, "e2e registry").unwrap()
}

fn sled_pop(dir: &std::path::Path, config: PopConfig) -> Pop {
    let runtime = RuntimeRouter::new().with(Arc::new(pop_runtime_process::ProcessRuntime::new(process_registry(dir))));
    Pop::builder().sled_path(dir.join("db")).unwrap().runtime(Arc::new(runtime)).config(config).build().unwrap()
}

fn fast() -> PopConfig {
    PopConfig {
        scheduler_interval: Duration::from_millis(20),
        heartbeat: Duration::from_millis(500),
        reclaim_interval: Duration::from_millis(200),
        ..PopConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_agendas_from_five_customers_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = sled_pop(tmp.path(), fast());
    let customers = ["c1", "c2", "c3", "c4", "c5"];
    setup(&pop, &customers, Some("Fairness"), 20).await;
    let su = admin();
    let mut ids = Vec::new();
    for i in 0..200 {
        let c = customers[i % 5];
        let a = pop.agendas().submit(&customer(c), chain(c, "noop", 3)).await.unwrap();
        ids.push(a.id.unwrap());
    }
    pop.start_all(WorkerConfig { max_running: 8, ..WorkerConfig::for_insights(["insight"]) });
    let finals = tokio::time::timeout(
        Duration::from_secs(240),
        pop::embedded::wait_all(&pop, &ids, Duration::from_millis(200), |_| {}),
    )
    .await
    .expect("200 agendas did not complete in time")
    .unwrap();
    for p in &finals {
        assert_eq!(p.conclusion(), Some(Conclusion::Succeeded), "{p:#?}");
        assert_eq!(p.percent_complete, 100.0);
        assert_eq!(p.attempts_completed, 1);
        assert_eq!(p.operation_progress.len(), 3);
        for op in &p.operation_progress {
            assert!(op.succeeded(), "{op:#?}");
            let out: serde_json::Value = serde_json::from_str(op.result_payload.as_deref().unwrap()).unwrap();
            assert_eq!(out["op"], json!(op.operation.clone().unwrap()));
        }
        assert!(p.started_time.unwrap() >= p.added_time.unwrap());
        assert!(p.completed_time.unwrap() >= p.started_time.unwrap());
    }
    for c in customers {
        let s = pop.progress().summary(&customer(c), &format!("link-{c}")).await.unwrap();
        assert_eq!(s.progress_list.len(), 40);
        assert_eq!(s.processing_state, ProcessingState::Complete);
        assert_eq!(s.processing_percent, Some(100.0));
        // another customer sees none of them
        let other = pop.progress().summary(&customer("zz"), &format!("link-{c}")).await.unwrap();
        assert!(other.progress_list.is_empty());
    }
    let _ = su;
    pop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zombie_worker_cannot_write_or_ack_after_another_took_over() {
    let tmp = tempfile::tempdir().unwrap();
    let config = PopConfig { lease_ttl: Duration::from_millis(300), ..fast() };
    let pop = sled_pop(tmp.path(), config);
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    let a = pop.agendas().submit(&su, chain("acme", "noop", 1)).await.unwrap();
    pop.schedule_once().await.unwrap();
    let ops_principal = ops();
    let first = pop.pool().get_agendas(&ops_principal, "insight", 1).await.unwrap().remove(0);
    // the first worker pauses past its lease; a second worker receives the agenda
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = pop.pool().get_agendas(&ops_principal, "insight", 1).await.unwrap().remove(0);
    assert_eq!(second.agenda.id, a.id);
    assert!(second.lease.token.epoch > first.lease.token.epoch);
    let mut p = first.progress.clone();
    p.percent_complete = 42.0;
    let mut state = LeaseState::default();
    let e = pop.pool().update_progress(&ops_principal, &first.lease.token, &mut state, &p, &[]).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert!(pop.pool().heartbeat(&ops_principal, &first.lease.token).await.is_err());
    p.processing_state = ProcessingState::Complete;
    p.processing_state_message = Some("succeeded".into());
    let e = pop.pool().complete(&ops_principal, &first.lease.token, &mut state, &p, &[]).await.unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    // the new holder writes fine
    let mut p2 = second.progress.clone();
    p2.percent_complete = 10.0;
    let mut state = LeaseState::default();
    pop.pool().update_progress(&ops_principal, &second.lease.token, &mut state, &p2, &[]).await.unwrap();
    let stored = pop.progress().agenda_progress(&su, a.id.as_deref().unwrap()).await.unwrap();
    assert_eq!(stored.percent_complete, 10.0);
    assert_eq!(stored.lease_epoch, Some(second.lease.token.epoch));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_retry_reaches_success_on_the_third_attempt_and_stops_at_the_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = sled_pop(tmp.path(), fast());
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    // flaky succeeds on its third run; `fail` never does (maximumAttempts 2)
    let mut flaky = chain("acme", "noop", 1);
    flaky.operations[0].op_type = "flaky".into();
    flaky.params = Some(serde_json::from_value(json!({"maximumAttempts": 5})).unwrap());
    let mut hopeless = chain("acme", "noop", 1);
    hopeless.operations[0].op_type = "fail".into();
    hopeless.params = Some(serde_json::from_value(json!({"maximumAttempts": 2})).unwrap());
    // the insight's mappers route flaky too
    let mut ins: pop_core::model::Insight = pop.objects().get(&su, "insight").await.unwrap();
    ins.mappers.get_mut("operationType").unwrap().push("flaky".into());
    pop.objects().update(&su, ins).await.unwrap();
    let f = pop.agendas().submit(&su, flaky).await.unwrap().id.unwrap();
    let h = pop.agendas().submit(&su, hopeless).await.unwrap().id.unwrap();
    pop.start_all(WorkerConfig::for_insights(["insight"]));
    let retry = RetryConfig { backoff: Duration::from_millis(10), ..RetryConfig::default() };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        pop.retry_once(&retry).await.unwrap();
        let pf = pop.progress().agenda_progress(&su, &f).await.unwrap();
        let ph = pop.progress().agenda_progress(&su, &h).await.unwrap();
        if pf.conclusion() == Some(Conclusion::Succeeded)
            && ph.conclusion() == Some(Conclusion::Failed)
            && ph.attempts_completed >= 2
        {
            assert_eq!(pf.attempts_completed, 3, "{pf:#?}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{pf:#?}\n{ph:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // at the cap: no more retries
    let before = pop.progress().agenda_progress(&su, &h).await.unwrap();
    let report = pop.retry_once(&retry).await.unwrap();
    assert!(!report.ids.contains(&h));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = pop.progress().agenda_progress(&su, &h).await.unwrap();
    assert_eq!(before.attempts_completed, after.attempts_completed);
    assert_eq!(after.attempts_completed, 2);
    pop.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_reaper_deletes_only_old_finished_agendas_and_dry_run_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(pop::ManualClock::default());
    let runtime =
        RuntimeRouter::new().with(Arc::new(pop_runtime_process::ProcessRuntime::new(process_registry(tmp.path()))));
    let pop = Pop::builder()
        .sled_path(tmp.path().join("db"))
        .unwrap()
        .runtime(Arc::new(runtime))
        .config(fast())
        .clock(clock.clone())
        .build()
        .unwrap();
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    let old = pop.agendas().submit(&su, chain("acme", "noop", 2)).await.unwrap().id.unwrap();
    pop.start_all(WorkerConfig::for_insights(["insight"]));
    pop::embedded::wait_all(&pop, std::slice::from_ref(&old), Duration::from_millis(100), |_| {}).await.unwrap();
    pop.shutdown().await;
    // four days later: one new waiting agenda, one old finished
    clock.advance(4 * 24 * 3600 * 1000);
    let fresh = pop.agendas().submit(&su, chain("acme", "noop", 1)).await.unwrap().id.unwrap();
    let config = DataReaperConfig::default();
    let mut dry = config.clone();
    dry.timing.dry_run = true;
    let r = pop.reap_data_once(&dry, &RetryConfig::default()).await.unwrap();
    assert_eq!(r.ids, vec![old.clone()]);
    assert!(pop.agendas().get(&su, &old).await.is_ok(), "dry run changed nothing");
    let r = pop.reap_data_once(&config, &RetryConfig::default()).await.unwrap();
    assert_eq!(r.ids, vec![old.clone()]);
    assert!(pop.agendas().get(&su, &old).await.unwrap_err().is_not_found());
    assert!(pop.agendas().get(&su, &fresh).await.is_ok());
    let (_, reaped, _) = pop.timed_stats().snapshot();
    assert_eq!((reaped.would_act, reaped.acted, reaped.runs), (1, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_modes_and_cancel_of_a_running_agenda() {
    let tmp = tempfile::tempdir().unwrap();
    let pop = sled_pop(tmp.path(), fast());
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    pop.start_all(WorkerConfig::for_insights(["insight"]));
    let id = pop.agendas().submit(&su, chain("acme", "noop", 3)).await.unwrap().id.unwrap();
    let wait = |id: String| {
        let pop = pop.clone();
        async move { pop::embedded::wait_all(&pop, &[id], Duration::from_millis(50), |_| {}).await.unwrap().remove(0) }
    };
    let first = wait(id.clone()).await;
    assert_eq!(first.conclusion(), Some(Conclusion::Succeeded));
    let completed = |p: &pop_core::model::AgendaProgress, name: &str| {
        p.operation_progress.iter().find(|o| o.operation.as_deref() == Some(name)).unwrap().completed_time.unwrap()
    };
    // operationsToReset=op1 resets op1 and its dependent op2, not op0
    let reset = pop
        .agendas()
        .rerun(&su, &id, pop::services::RerunOptions::parse(&["operationsToReset=op1"]).unwrap())
        .await
        .unwrap();
    assert_eq!(reset.processing_state, ProcessingState::Waiting);
    let second = wait(id.clone()).await;
    assert_eq!(second.conclusion(), Some(Conclusion::Succeeded));
    assert_eq!(second.attempts_completed, 2);
    assert_eq!(completed(&second, "op0"), completed(&first, "op0"), "op0 was not run again");
    assert!(completed(&second, "op1") > completed(&first, "op1"));
    assert!(completed(&second, "op2") > completed(&first, "op2"));
    // resetAll runs everything again
    pop.agendas().rerun(&su, &id, Default::default()).await.unwrap();
    let third = wait(id.clone()).await;
    assert!(completed(&third, "op0") > completed(&second, "op0"));
    assert_eq!(third.attempts_completed, 3);

    // cancel while a handler runs: the handler process dies, the agenda ends cancelled
    let mut slow = chain("acme", "noop", 1);
    slow.operations[0].op_type = "sleep".into();
    let mut ins: pop_core::model::Insight = pop.objects().get(&su, "insight").await.unwrap();
    ins.mappers.get_mut("operationType").unwrap().push("sleep".into());
    pop.objects().update(&su, ins).await.unwrap();
    let sid = pop.agendas().submit(&su, slow).await.unwrap().id.unwrap();
    let pid_file = tmp.path().join(format!("{sid}.pid"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !pid_file.exists() {
        assert!(std::time::Instant::now() < deadline, "the sleep handler never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let c = pop.agendas().cancel(&su, &sid).await.unwrap();
    assert_eq!(c.conclusion(), Some(Conclusion::Cancelled));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z")
    {
        assert!(std::time::Instant::now() < deadline, "handler {pid} still runs after cancel");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pop.shutdown().await;
}
