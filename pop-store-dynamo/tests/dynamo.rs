//! DynamoDB-specific behaviour beyond the conformance suite: 1 MB pages, the transaction limit,
//! concurrent CAS, error meanings, table management and request counts. Needs
//! `POP_DYNAMODB_ENDPOINT`; every test skips, saying why, when it is unset.

mod common;

use pop_core::queue::QueueBackend;

fn now() -> i64 {
    pop_core::testing::wall_clock()
}

fn ready(insight: &str, agenda: &str, added: i64) -> pop_core::model::ReadyAgenda {
    pop_core::model::ReadyAgenda {
        id: agenda.to_owned(),
        insight_id: insight.to_owned(),
        agenda_id: agenda.to_owned(),
        customer_id: "c".to_owned(),
        added,
        priority: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn receive_pages_past_leased_items() {
    let Some(b) = common::backend("receive_pages_past_leased_items").await.unwrap() else { return };
    let q = b.queue();
    let t0 = now();
    let insight = pop_core::testing::unique("insight");
    for i in 0..30 {
        assert!(q.push(&insight, ready(&insight, &format!("a{i:02}"), t0), t0).await.unwrap());
    }
    let first = q.receive(&insight, 20, 60_000, t0 + 1).await.unwrap();
    assert_eq!(first.len(), 20);
    let before = b.request_counts();
    let next = q.receive(&insight, 4, 60_000, t0 + 2).await.unwrap();
    let ids: Vec<&str> = next.iter().map(|l| l.token.agenda_id.as_str()).collect();
    assert_eq!(ids, ["a20", "a21", "a22", "a23"]);
    eprintln!("{:?}", b.request_counts().since(&before));
}
