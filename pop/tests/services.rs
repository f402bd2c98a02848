//! Service-level tests on the in-memory backends: the authorization matrix and bad input.

mod common;

use common::*;
use pop::RuntimeRouter;
use pop::services::RerunOptions;
use pop_core::Error;
use pop_core::authz::Principal;
use pop_core::model::{AgendaTemplate, Customer, Insight, ResourcePool};
use pop_core::store::{IndexField, Kind, PageRequest, StoreExt};
use serde_json::json;
use std::sync::Arc;

fn pop() -> pop::Pop {
    memory_pop(Arc::new(RuntimeRouter::new()), Default::default())
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Out {
    Ok,
    Denied,
}

fn out<T>(r: pop_core::Result<T>) -> Out {
    match r {
        Ok(_) => Out::Ok,
        Err(Error::Forbidden(_) | Error::NotFound { .. } | Error::Unauthorized(_)) => Out::Denied,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn principals() -> Vec<(&'static str, Principal)> {
    vec![
        ("owner", customer("acme")),
        ("other", customer("globex")),
        ("allowed", customer("initech")),
        ("superuser", admin()),
        ("anonymous", Principal::anonymous()),
    ]
}

/// Every service call × {owner, other, allowed, superuser, anonymous}; objects owned by `acme`,
/// shared objects (insight, template) list `initech` in allowedCustomerIds.
#[tokio::test]
async fn authorization_matrix() {
    let pop = pop();
    setup(&pop, &["acme", "globex", "initech"], None, 10).await;
    let su = admin();
    let o = pop.objects();
    // acme-owned shared objects
    o.create(
        &su,
        Insight {
            id: Some("acme-insight".into()),
            customer_id: Some("acme".into()),
            title: Some("acme's".into()),
            resource_pool_id: Some("other-pool".into()),
            allowed_customer_ids: vec!["INITECH".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    o.create(&su, AgendaTemplate {
        id: Some("tpl".into()),
        customer_id: Some("acme".into()),
        title: Some("tpl".into()),
        allowed_customer_ids: vec!["initech".into()],
        agenda: json!({"customerId": "acme", "operations": [{"name": "a", "type": "noop", "payload": {"x": "@<pop.payload::/x>"}}]}),
        ..Default::default()
    })
    .await
    .unwrap();

    // (call, owner, other, allowed, superuser, anonymous)
    use Out::*;
    let expected: Vec<(&str, [Out; 5])> = vec![
        ("submit", [Ok, Denied, Denied, Ok, Denied]),
        ("get agenda", [Ok, Denied, Denied, Ok, Denied]),
        ("query agenda", [Ok, Denied, Denied, Ok, Denied]),
        ("progress", [Ok, Denied, Denied, Ok, Denied]),
        ("summary", [Ok, Denied, Denied, Ok, Denied]),
        ("explain", [Ok, Denied, Denied, Ok, Denied]),
        ("rerun", [Ok, Denied, Denied, Ok, Denied]),
        ("cancel", [Ok, Denied, Denied, Ok, Denied]),
        ("run template", [Ok, Denied, Denied, Ok, Denied]),
        ("get customer", [Ok, Denied, Denied, Ok, Denied]),
        ("update customer", [Ok, Denied, Denied, Ok, Denied]),
        ("get insight", [Ok, Denied, Ok, Ok, Denied]),
        ("update insight", [Ok, Denied, Denied, Ok, Denied]),
        ("get template", [Ok, Denied, Ok, Ok, Denied]),
        ("update template", [Ok, Denied, Denied, Ok, Denied]),
        ("create pool", [Ok, Denied, Denied, Ok, Denied]),
        ("delete template", [Ok, Denied, Denied, Ok, Denied]),
        ("pull (insight owned by ops)", [Denied, Denied, Denied, Ok, Denied]),
    ];
    for (i, (who, p)) in principals().into_iter().enumerate() {
        let agenda = pop.agendas().submit(&su, chain("acme", "noop", 1)).await.unwrap();
        let id = agenda.id.clone().unwrap();
        let mut got: Vec<(&str, Out)> = Vec::new();
        got.push(("submit", out(pop.agendas().submit(&p, chain("acme", "noop", 1)).await)));
        got.push(("get agenda", out(pop.agendas().get(&p, &id).await)));
        let q = pop.agendas().query(&p, IndexField::LinkId, "link-acme", PageRequest::first(100)).await.unwrap();
        got.push(("query agenda", if q.items.is_empty() { Denied } else { Ok }));
        got.push(("progress", out(pop.progress().agenda_progress(&p, &id).await)));
        let s = pop.progress().summary(&p, "link-acme").await.unwrap();
        got.push(("summary", if s.progress_list.is_empty() { Denied } else { Ok }));
        got.push(("explain", out(pop.progress().explain(&p, &id).await)));
        got.push(("rerun", out(pop.agendas().rerun(&p, &id, RerunOptions::default()).await)));
        got.push(("cancel", out(pop.agendas().cancel(&p, &id).await)));
        got.push(("run template", out(pop.agendas().run_template(&p, "tpl", &json!({"x": 1})).await)));
        got.push(("get customer", out(o.get::<Customer>(&p, "acme").await)));
        let c: Customer = o.get(&su, "acme").await.unwrap();
        got.push(("update customer", out(o.update(&p, Customer { version: 0, ..c }).await)));
        got.push(("get insight", out(o.get::<Insight>(&p, "acme-insight").await)));
        let ins: Insight = o.get(&su, "acme-insight").await.unwrap();
        got.push(("update insight", out(o.update(&p, Insight { version: 0, ..ins }).await)));
        got.push(("get template", out(o.get::<AgendaTemplate>(&p, "tpl").await)));
        let t: AgendaTemplate = o.get(&su, "tpl").await.unwrap();
        got.push(("update template", out(o.update(&p, AgendaTemplate { version: 0, ..t.clone() }).await)));
        got.push((
            "create pool",
            out(o
                .create(
                    &p,
                    ResourcePool {
                        customer_id: Some("acme".into()),
                        title: Some(format!("p{i}")),
                        ..Default::default()
                    },
                )
                .await),
        ));
        let deleted = out(o.delete::<AgendaTemplate>(&p, "tpl").await);
        if deleted == Ok {
            o.create(&su, AgendaTemplate { version: 0, ..t }).await.unwrap();
        }
        got.push(("delete template", deleted));
        got.push(("pull (insight owned by ops)", out(pop.pool().get_agendas(&p, "insight", 1).await)));
        for ((name, want), (gname, g)) in expected.iter().zip(&got) {
            assert_eq!(name, gname);
            assert_eq!(*g, want[i], "{who}: {name}");
        }
    }
}

async fn count(pop: &pop::Pop, kind: Kind) -> usize {
    pop.store().scan(kind, PageRequest::first(10_000)).await.unwrap().items.len()
}

#[tokio::test]
async fn bad_input_is_a_typed_error_and_writes_nothing() {
    let pop = pop();
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    let before = (
        count(&pop, Kind::Agenda).await,
        count(&pop, Kind::AgendaProgress).await,
        count(&pop, Kind::OperationProgress).await,
    );

    // invalid agenda: cycle and unknown reference, all problems listed
    let bad = agenda(
        "acme",
        json!([
            {"name": "a", "type": "noop", "payload": {"x": "@<b.out>"}},
            {"name": "b", "type": "noop", "payload": {"x": "@<a.out>", "y": "@<zzz.out>"}}
        ]),
    );
    let e = pop.agendas().submit(&su, bad).await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    assert!(text.contains("zzz"), "{text}");
    assert!(text.contains('→'), "cycle named: {text}");

    // unknown customer
    let e = pop.agendas().submit(&su, chain("nobody", "noop", 1)).await.unwrap_err();
    assert!(e.is_not_found() && e.to_string().contains("nobody"), "{e}");

    // no matching insight
    let e = pop.agendas().submit(&su, chain("acme", "unroutable", 1)).await.unwrap_err();
    assert!(e.to_string().contains("acme"), "{e}");

    // missing customerId
    let mut a = chain("acme", "noop", 1);
    a.customer_id = None;
    let e = pop.agendas().submit(&su, a).await.unwrap_err();
    assert!(e.to_string().contains("customerId"), "{e}");

    // template payload that does not fit
    pop.objects()
        .create(
            &su,
            AgendaTemplate {
                id: Some("t".into()),
                customer_id: Some("acme".into()),
                title: Some("t".into()),
                agenda: json!({"customerId": "acme", "operations": "@<pop.payload::/ops>"}),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let e = pop.agendas().run_template(&su, "t", &json!({"ops": 5})).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");

    let after = (
        count(&pop, Kind::Agenda).await,
        count(&pop, Kind::AgendaProgress).await,
        count(&pop, Kind::OperationProgress).await,
    );
    assert_eq!(before, after, "nothing half-written");

    // rerun of an unknown operation
    let ok = pop.agendas().submit(&su, chain("acme", "noop", 2)).await.unwrap();
    let e = pop
        .agendas()
        .rerun(&su, ok.id.as_deref().unwrap(), RerunOptions::parse(&["operationsToReset=op1,ghost"]).unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("ghost") && e.to_string().contains("op1"), "{e}");
    let e = RerunOptions::parse(&["sometimes"]).unwrap_err();
    assert!(e.to_string().contains("sometimes"), "{e}");

    // invalid insight: unknown algorithm
    let e = pop
        .objects()
        .create(
            &su,
            Insight {
                customer_id: Some("ops".into()),
                title: Some("x".into()),
                scheduling_algorithm: Some("Lottery".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("Lottery"), "{e}");
}

#[tokio::test]
async fn submit_writes_everything_and_cancel_dequeues() {
    let pop = pop();
    setup(&pop, &["acme"], None, 10).await;
    let su = admin();
    let a = pop.agendas().submit(&su, chain("acme", "noop", 3)).await.unwrap();
    let id = a.id.clone().unwrap();
    let p = pop.progress().agenda_progress(&su, &id).await.unwrap();
    assert_eq!(p.operation_progress.len(), 3);
    assert_eq!(p.processing_state_message.as_deref(), Some("pending"));
    assert!(pop.store().ready_get(&id).await.unwrap().is_some());
    assert_eq!(pop.schedule_once().await.unwrap(), 1);
    assert!(pop.store().ready_get(&id).await.unwrap().is_none());
    assert!(pop.queue().contains("insight", &id).await.unwrap());
    let e = pop.progress().explain(&su, &id).await.unwrap();
    assert_eq!(e.stage, "queued");
    let c = pop.agendas().cancel(&su, &id).await.unwrap();
    assert_eq!(c.processing_state_message.as_deref(), Some("cancelled"));
    assert!(!pop.queue().contains("insight", &id).await.unwrap());
    let stored: pop_core::model::Agenda = pop.store().fetch(&id).await.unwrap();
    assert_eq!(stored.insight_id(), Some("insight"));
}
