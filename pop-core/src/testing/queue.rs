//! [`QueueBackend`] conformance cases.
//!
//! Each case uses its own insight ids, so cases may share a backend. Times are passed as `now` around
//! the wall clock; no case sleeps to make a lease expire.

use super::{join, unique, wall_clock};
use crate::error::{Error, Result};
use crate::model::{Millis, ReadyAgenda};
use crate::queue::{Lease, LeaseToken, QueueBackend};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};

fn name(queue: &dyn QueueBackend) -> &'static str {
    queue.backend_name()
}

#[track_caller]
fn ok<T>(queue: &dyn QueueBackend, what: &str, r: Result<T>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("[{}] {what}: unexpected error: {e}", name(queue)),
    }
}

#[track_caller]
fn expect_conflict<T: Debug>(queue: &dyn QueueBackend, what: &str, r: Result<T>) {
    match r {
        Err(Error::Conflict(_)) => {}
        other => {
            panic!("[{}] {what}: expected Error::Conflict (the lease is no longer held), got {other:?}", name(queue))
        }
    }
}

fn item(insight: &str, agenda: &str, added: Millis) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("ready-{agenda}"),
        insight_id: insight.to_owned(),
        agenda_id: agenda.to_owned(),
        customer_id: "cust".to_owned(),
        added,
        priority: 0,
    }
}

async fn push(queue: &dyn QueueBackend, insight: &str, agenda: &str, now: Millis) -> bool {
    ok(queue, &format!("push {agenda}"), queue.push(insight, item(insight, agenda, now), now).await)
}

async fn receive(queue: &dyn QueueBackend, insight: &str, max: usize, ttl: u64, now: Millis) -> Vec<Lease> {
    let leases = ok(queue, "receive", queue.receive(insight, max, ttl, now).await);
    assert!(leases.len() <= max, "[{}] receive of at most {max} returned {}", name(queue), leases.len());
    for l in &leases {
        assert_eq!(l.token.insight_id, insight, "[{}] lease token insight", name(queue));
        assert_eq!(l.token.agenda_id, l.item.agenda_id, "[{}] lease token agenda", name(queue));
        assert!(!l.token.receipt.is_empty(), "[{}] lease receipt must not be empty", name(queue));
        assert!(l.token.epoch >= 1, "[{}] the first delivery has epoch >= 1", name(queue));
        assert_eq!(l.deadline, now + ttl as Millis, "[{}] lease deadline must be now + ttl", name(queue));
    }
    leases
}

fn ids(leases: &[Lease]) -> Vec<String> {
    leases.iter().map(|l| l.token.agenda_id.clone()).collect()
}

async fn len(queue: &dyn QueueBackend, insight: &str) -> usize {
    ok(queue, "len", queue.len(insight).await)
}

/// Push, receive (the lease carries the item as pushed), invisible while leased, ack removes for good.
pub async fn push_receive_ack(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    let pushed = item(&q, &a, t0);
    assert!(
        ok(queue, "push", queue.push(&q, pushed.clone(), t0).await),
        "[{}] push of a new agenda returns true",
        name(queue)
    );
    assert_eq!(len(queue, &q).await, 1, "[{}] len after push", name(queue));
    assert!(ok(queue, "contains", queue.contains(&q, &a).await), "[{}] contains after push", name(queue));

    let leases = receive(queue, &q, 10, 30_000, t0 + 1).await;
    assert_eq!(leases.len(), 1, "[{}] receive returns the pushed item", name(queue));
    assert_eq!(leases[0].item, pushed, "[{}] the lease carries the item as pushed", name(queue));
    assert!(receive(queue, &q, 10, 30_000, t0 + 2).await.is_empty(), "[{}] a leased item is invisible", name(queue));
    assert_eq!(len(queue, &q).await, 1, "[{}] len counts a leased item", name(queue));

    ok(queue, "ack", queue.ack(&leases[0].token).await);
    assert_eq!(len(queue, &q).await, 0, "[{}] len after ack", name(queue));
    assert!(!ok(queue, "contains", queue.contains(&q, &a).await), "[{}] contains after ack", name(queue));
    assert!(
        receive(queue, &q, 10, 30_000, t0 + 3_600_000).await.is_empty(),
        "[{}] an acked item is never delivered again",
        name(queue)
    );
    expect_conflict(queue, "a second ack", queue.ack(&leases[0].token).await);
    expect_conflict(queue, "extend after ack", queue.extend(&leases[0].token, 1000, t0 + 4).await);
    assert!(
        receive(queue, &unique("insight"), 10, 1000, t0).await.is_empty(),
        "[{}] an unknown queue is empty",
        name(queue)
    );
}

/// Receive hands out visible items oldest push first, at most `max` at a time.
pub async fn receive_order_is_push_order(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let tag = unique("a");
    // Agenda ids in descending order, so push order differs from id order.
    let order: Vec<String> = (0..10).rev().map(|i| format!("{tag}-{i:02}")).collect();
    for (i, a) in order.iter().enumerate() {
        assert!(push(queue, &q, a, t0 + i as Millis).await, "[{}] push {a}", name(queue));
    }
    let now = t0 + 100;
    assert!(receive(queue, &q, 0, 1000, now).await.is_empty(), "[{}] receive of 0 items", name(queue));
    let first = receive(queue, &q, 3, 60_000, now).await;
    assert_eq!(ids(&first), order[..3].to_vec(), "[{}] the first 3 received are the first 3 pushed", name(queue));
    let rest = receive(queue, &q, 100, 60_000, now).await;
    assert_eq!(ids(&rest), order[3..].to_vec(), "[{}] the rest come in push order", name(queue));
    // Released items keep their place before later pushes.
    let late = format!("{tag}-late");
    assert!(push(queue, &q, &late, now + 1).await);
    ok(queue, "release", queue.release(&first[1].token, now + 2).await);
    let again = receive(queue, &q, 10, 60_000, now + 3).await;
    assert_eq!(
        ids(&again),
        vec![order[1].clone(), late],
        "[{}] a released item comes before a later push",
        name(queue)
    );
}

/// A received item stays invisible until its lease expires, then is delivered again with a higher
/// epoch and a new receipt; the old token then fails ack, extend and release with `Conflict`.
pub async fn lease_expiry_redelivers(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    assert!(push(queue, &q, &a, t0).await);
    let first = receive(queue, &q, 1, 1000, t0).await;
    assert_eq!(first.len(), 1, "[{}] first delivery", name(queue));
    assert!(receive(queue, &q, 1, 1000, t0 + 999).await.is_empty(), "[{}] invisible before its deadline", name(queue));
    let second = receive(queue, &q, 1, 1000, t0 + 1001).await;
    assert_eq!(ids(&second), vec![a.clone()], "[{}] delivered again after the lease expired", name(queue));
    let (old, new) = (&first[0].token, &second[0].token);
    assert!(new.epoch > old.epoch, "[{}] redelivery epoch {} must exceed {}", name(queue), new.epoch, old.epoch);
    assert_ne!(new.receipt, old.receipt, "[{}] redelivery must have a new receipt", name(queue));
    assert_eq!(len(queue, &q).await, 1, "[{}] len after redelivery", name(queue));

    expect_conflict(queue, "ack with the old receipt", queue.ack(old).await);
    expect_conflict(queue, "extend with the old receipt", queue.extend(old, 1000, t0 + 1002).await);
    expect_conflict(queue, "release with the old receipt", queue.release(old, t0 + 1002).await);
    let forged = LeaseToken { epoch: new.epoch, ..old.clone() };
    expect_conflict(queue, "ack with the old receipt and the new epoch", queue.ack(&forged).await);
    assert!(
        receive(queue, &q, 1, 1000, t0 + 1500).await.is_empty(),
        "[{}] a failed release with the old receipt must not make the item visible",
        name(queue)
    );
    let third = receive(queue, &q, 1, 1000, t0 + 2002).await;
    assert_eq!(third.len(), 1, "[{}] third delivery", name(queue));
    assert!(third[0].token.epoch > new.epoch, "[{}] epochs grow with every delivery", name(queue));
    expect_conflict(queue, "ack with the second receipt", queue.ack(new).await);
    ok(queue, "ack with the current receipt", queue.ack(&third[0].token).await);
    assert_eq!(len(queue, &q).await, 0, "[{}] len after ack", name(queue));
}

/// `ack_many` acks each current lease and refuses a stale one (`Conflict`) for that item alone, in
/// the order given, across queues.
pub async fn ack_many_fails_a_stale_lease_alone(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let (q, r) = (unique("insight"), unique("insight"));
    let (a, b, c) = (unique("agenda"), unique("agenda"), unique("agenda"));
    assert!(push(queue, &q, &a, t0).await);
    assert!(push(queue, &q, &b, t0 + 1).await);
    assert!(push(queue, &r, &c, t0).await);
    let first = receive(queue, &q, 2, 1000, t0 + 2).await;
    assert_eq!(ids(&first), vec![a.clone(), b.clone()], "[{}] first deliveries", name(queue));
    let other = receive(queue, &r, 1, 1000, t0 + 2).await;
    assert_eq!(other.len(), 1, "[{}] delivery in the second queue", name(queue));
    // b's lease lapses and b is delivered again: the first token of b is stale
    let again = receive(queue, &q, 2, 1000, t0 + 1003).await;
    let b_again = again.iter().find(|l| l.token.agenda_id == b).expect("b delivered again").clone();
    // (a's lease lapsed too: it was delivered again, so its first token is stale as well)
    let a_now = again.iter().find(|l| l.token.agenda_id == a).expect("a delivered again").clone();
    let tokens = vec![first[1].token.clone(), a_now.token.clone(), other[0].token.clone(), first[0].token.clone()];
    let results = queue.ack_many(&tokens).await;
    assert_eq!(results.len(), 4, "[{}] one outcome per token", name(queue));
    expect_conflict(queue, "ack_many: b's stale token", results[0].as_ref().map(|_| ()).map_err(Error::copied));
    ok(queue, "ack_many: a's current token", results[1].as_ref().map(|_| ()).map_err(Error::copied));
    ok(queue, "ack_many: c's token (another queue)", results[2].as_ref().map(|_| ()).map_err(Error::copied));
    expect_conflict(queue, "ack_many: a's first token", results[3].as_ref().map(|_| ()).map_err(Error::copied));
    assert_eq!(len(queue, &q).await, 1, "[{}] only b is left in its queue", name(queue));
    assert_eq!(len(queue, &r).await, 0, "[{}] the second queue is empty", name(queue));
    assert!(ok(queue, "contains b", queue.contains(&q, &b).await), "[{}] b stays queued", name(queue));
    ok(queue, "ack b's current lease", queue.ack(&b_again.token).await);
    assert!(queue.ack_many(&[]).await.is_empty(), "[{}] no tokens, no outcomes", name(queue));
}

/// `extend` moves the deadline to `now + ttl` (returned) and keeps the item invisible until then.
pub async fn extend_postpones(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    assert!(push(queue, &q, &a, t0).await);
    let lease = receive(queue, &q, 1, 1000, t0).await;
    assert_eq!(lease.len(), 1);
    let until = ok(queue, "extend", queue.extend(&lease[0].token, 5000, t0 + 500).await);
    assert_eq!(until, t0 + 5500, "[{}] extend returns now + ttl", name(queue));
    assert!(
        receive(queue, &q, 1, 1000, t0 + 2000).await.is_empty(),
        "[{}] invisible past the old deadline",
        name(queue)
    );
    assert!(
        ok(queue, "expired", queue.expired(&q, t0 + 2000, 10).await).is_empty(),
        "[{}] not expired past the old deadline",
        name(queue)
    );
    let until = ok(queue, "extend again", queue.extend(&lease[0].token, 1000, t0 + 3000).await);
    assert_eq!(until, t0 + 4000, "[{}] extend may also shorten the lease", name(queue));
    let again = receive(queue, &q, 1, 1000, t0 + 4001).await;
    assert_eq!(ids(&again), vec![a], "[{}] delivered again after the extended deadline", name(queue));
    expect_conflict(queue, "extend of the superseded lease", queue.extend(&lease[0].token, 1000, t0 + 4002).await);
    ok(queue, "ack", queue.ack(&again[0].token).await);
}

/// `release` makes the item visible at once; the released lease is dead.
pub async fn release_returns_at_once(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    assert!(push(queue, &q, &a, t0).await);
    let first = receive(queue, &q, 1, 3_600_000, t0).await;
    assert_eq!(first.len(), 1);
    ok(queue, "release", queue.release(&first[0].token, t0 + 1).await);
    assert_eq!(len(queue, &q).await, 1, "[{}] a released item stays queued", name(queue));
    expect_conflict(queue, "ack of a released lease", queue.ack(&first[0].token).await);
    expect_conflict(queue, "second release", queue.release(&first[0].token, t0 + 1).await);
    let second = receive(queue, &q, 1, 3_600_000, t0 + 2).await;
    assert_eq!(ids(&second), vec![a], "[{}] a released item is visible at once", name(queue));
    assert!(second[0].token.epoch > first[0].token.epoch, "[{}] epoch after release", name(queue));
    assert_ne!(second[0].token.receipt, first[0].token.receipt, "[{}] receipt after release", name(queue));
    ok(queue, "ack", queue.ack(&second[0].token).await);
}

/// `push_many` enqueues in order, skips agendas already queued (in the queue or earlier in the batch),
/// and an empty batch changes nothing.
pub async fn push_many_in_order_with_dedup(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let (a, b, c) = (unique("agenda"), unique("agenda"), unique("agenda"));
    assert!(push(queue, &q, &a, t0).await, "[{}] first push", name(queue));
    assert_eq!(
        ok(queue, "push_many of nothing", queue.push_many(&q, Vec::new(), t0).await),
        Vec::<bool>::new(),
        "[{}] push_many of nothing",
        name(queue)
    );
    let batch = vec![item(&q, &b, t0 + 1), item(&q, &a, t0 + 1), item(&q, &c, t0 + 1), item(&q, &b, t0 + 2)];
    let pushed = ok(queue, "push_many", queue.push_many(&q, batch, t0 + 1).await);
    assert_eq!(
        pushed,
        vec![true, false, true, false],
        "[{}] push_many reports each item: new, already queued, new, duplicate within the batch",
        name(queue)
    );
    assert_eq!(len(queue, &q).await, 3, "[{}] len after push_many", name(queue));
    let leases = receive(queue, &q, 10, 60_000, t0 + 3).await;
    assert_eq!(ids(&leases), vec![a.clone(), b.clone(), c.clone()], "[{}] receive order after push_many", name(queue));
    let b_item = leases.iter().find(|l| l.token.agenda_id == b).map(|l| l.item.clone());
    assert_eq!(b_item, Some(item(&q, &b, t0 + 1)), "[{}] the first item of an agenda in a batch wins", name(queue));
}

/// Pushing an agenda already queued, visible or leased, is a no-op returning `false`; after ack it can
/// be pushed again.
pub async fn push_of_queued_agenda_is_noop(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    assert!(push(queue, &q, &a, t0).await, "[{}] first push", name(queue));
    let mut changed = item(&q, &a, t0 + 1);
    changed.priority = 9;
    assert!(
        !ok(queue, "push again", queue.push(&q, changed, t0 + 1).await),
        "[{}] push of a visible queued agenda returns false",
        name(queue)
    );
    assert_eq!(len(queue, &q).await, 1, "[{}] len after a duplicate push", name(queue));
    let lease = receive(queue, &q, 10, 60_000, t0 + 2).await;
    assert_eq!(lease.len(), 1, "[{}] one item after a duplicate push", name(queue));
    assert_eq!(lease[0].item, item(&q, &a, t0), "[{}] a duplicate push does not replace the item", name(queue));
    assert!(!push(queue, &q, &a, t0 + 3).await, "[{}] push of a leased agenda returns false", name(queue));
    assert!(
        receive(queue, &q, 10, 60_000, t0 + 4).await.is_empty(),
        "[{}] a duplicate push does not make a leased item visible",
        name(queue)
    );
    ok(queue, "ack", queue.ack(&lease[0].token).await);
    assert!(push(queue, &q, &a, t0 + 5).await, "[{}] push after ack", name(queue));
    let again = receive(queue, &q, 10, 60_000, t0 + 6).await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].token.receipt, lease[0].token.receipt, "[{}] a new push gets a new receipt", name(queue));
    expect_conflict(queue, "the first lease's token after a new push", queue.ack(&lease[0].token).await);
    ok(queue, "ack", queue.ack(&again[0].token).await);
}

/// `len` counts visible and leased items and drops acked and removed ones.
pub async fn len_counts_visible_and_leased(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    assert_eq!(len(queue, &q).await, 0, "[{}] len of an unknown queue", name(queue));
    let agendas: Vec<String> = (0..5).map(|_| unique("agenda")).collect();
    for (i, a) in agendas.iter().enumerate() {
        assert!(push(queue, &q, a, t0 + i as Millis).await);
    }
    assert_eq!(len(queue, &q).await, 5);
    let leases = receive(queue, &q, 2, 60_000, t0 + 10).await;
    assert_eq!(leases.len(), 2);
    assert_eq!(len(queue, &q).await, 5, "[{}] len counts leased items", name(queue));
    ok(queue, "ack", queue.ack(&leases[0].token).await);
    assert_eq!(len(queue, &q).await, 4, "[{}] len after ack", name(queue));
    assert!(ok(queue, "remove", queue.remove(&q, &agendas[4]).await));
    assert_eq!(len(queue, &q).await, 3, "[{}] len after remove", name(queue));
    let other = unique("insight");
    assert!(push(queue, &other, &agendas[0], t0).await);
    assert_eq!(len(queue, &q).await, 3, "[{}] len counts one queue only", name(queue));
}

/// `leased` counts live leases only; `waiting` counts what a pool could receive now: never
/// delivered, released, or whose lease expired.
pub async fn leased_and_waiting_split_the_queue(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let count = |what: &'static str, r: Result<usize>| ok(queue, what, r);
    assert_eq!(count("leased", queue.leased(&q, t0).await), 0, "[{}] leased of an unknown queue", name(queue));
    assert_eq!(count("waiting", queue.waiting(&q, t0).await), 0);
    for i in 0..6 {
        assert!(push(queue, &q, &unique("agenda"), t0 + i).await);
    }
    let short = receive(queue, &q, 1, 1_000, t0 + 10).await;
    let long = receive(queue, &q, 2, 60_000, t0 + 10).await;
    assert_eq!((short.len(), long.len()), (1, 2));
    assert_eq!(count("leased", queue.leased(&q, t0 + 20).await), 3, "[{}] three live leases", name(queue));
    assert_eq!(count("waiting", queue.waiting(&q, t0 + 20).await), 3, "[{}] three never delivered", name(queue));
    // the short lease lapses: its item waits again, without any write
    assert_eq!(
        count("leased", queue.leased(&q, t0 + 2_000).await),
        2,
        "[{}] an expired lease is not live",
        name(queue)
    );
    assert_eq!(count("waiting", queue.waiting(&q, t0 + 2_000).await), 4, "[{}] an expired lease waits", name(queue));
    ok(queue, "release", queue.release(&long[0].token, t0 + 30).await);
    ok(queue, "ack", queue.ack(&long[1].token).await);
    assert_eq!(count("leased", queue.leased(&q, t0 + 40).await), 1, "[{}] after release and ack", name(queue));
    assert_eq!(count("waiting", queue.waiting(&q, t0 + 40).await), 4, "[{}] after release and ack", name(queue));
    let other = unique("insight");
    assert!(push(queue, &other, &unique("agenda"), t0).await);
    assert_eq!(count("waiting", queue.waiting(&q, t0 + 40).await), 4, "[{}] one queue only", name(queue));
}

/// `count_by_customer` counts each customer's items, visible or leased, in one queue; ack and
/// remove take them off.
pub async fn count_by_customer_counts_queued_and_leased(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let counts = |r: Result<std::collections::BTreeMap<String, usize>>| ok(queue, "count_by_customer", r);
    assert!(counts(queue.count_by_customer(&q).await).is_empty(), "[{}] an unknown queue", name(queue));
    let mut agendas = Vec::new();
    for (i, c) in ["acme", "acme", "bolt", "acme", "cyan"].iter().enumerate() {
        let a = unique("agenda");
        let item = ReadyAgenda { customer_id: (*c).to_owned(), ..item(&q, &a, t0 + i as Millis) };
        assert!(ok(queue, "push", queue.push(&q, item, t0).await));
        agendas.push(a);
    }
    let leases = receive(queue, &q, 2, 60_000, t0 + 10).await;
    assert_eq!(leases.len(), 2);
    let got = counts(queue.count_by_customer(&q).await);
    let want: std::collections::BTreeMap<String, usize> =
        [("acme".to_owned(), 3), ("bolt".to_owned(), 1), ("cyan".to_owned(), 1)].into();
    assert_eq!(got, want, "[{}] leased items count too", name(queue));
    ok(queue, "ack", queue.ack(&leases[0].token).await);
    assert!(ok(queue, "remove", queue.remove(&q, &agendas[4]).await));
    let got = counts(queue.count_by_customer(&q).await);
    let want: std::collections::BTreeMap<String, usize> = [("acme".to_owned(), 2), ("bolt".to_owned(), 1)].into();
    assert_eq!(got, want, "[{}] after ack and remove", name(queue));
    let other = unique("insight");
    assert!(push(queue, &other, &unique("agenda"), t0).await);
    assert_eq!(counts(queue.count_by_customer(&q).await), want, "[{}] one queue only", name(queue));
}

/// `expired` lists leases past their deadline that were not delivered again, up to `limit`; such a
/// lease is still current (its holder may ack it).
pub async fn expired_lists_lapsed_leases(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let agendas: Vec<String> = (0..4).map(|i| format!("{}-{i}", unique("agenda"))).collect();
    for (i, a) in agendas.iter().enumerate() {
        assert!(push(queue, &q, a, t0 + i as Millis).await);
    }
    let leases = receive(queue, &q, 3, 1000, t0 + 10).await;
    assert_eq!(ids(&leases), agendas[..3].to_vec());
    ok(queue, "extend", queue.extend(&leases[2].token, 60_000, t0 + 20).await);
    assert!(
        ok(queue, "expired", queue.expired(&q, t0 + 500, 10).await).is_empty(),
        "[{}] nothing expired yet",
        name(queue)
    );

    let now = t0 + 1500;
    let expired = ok(queue, "expired", queue.expired(&q, now, 10).await);
    let got: BTreeSet<String> = ids(&expired).into_iter().collect();
    let want: BTreeSet<String> = agendas[..2].iter().cloned().collect();
    assert_eq!(
        got,
        want,
        "[{}] expired lists the lapsed leases only (not the extended one, not the never-leased one)",
        name(queue)
    );
    for e in &expired {
        let original = leases.iter().find(|l| l.token.agenda_id == e.token.agenda_id);
        assert_eq!(
            Some(&e.token),
            original.map(|l| &l.token),
            "[{}] expired returns the lapsed lease's token",
            name(queue)
        );
        assert_eq!(e.deadline, t0 + 1010, "[{}] expired returns the lapsed deadline", name(queue));
    }
    assert_eq!(
        ok(queue, "expired limit 1", queue.expired(&q, now, 1).await).len(),
        1,
        "[{}] expired honours limit",
        name(queue)
    );

    // A lapsed lease not delivered again is still current.
    ok(queue, "ack a lapsed lease", queue.ack(&leases[0].token).await);
    // Delivering a lapsed item again takes it off the expired list.
    let again = receive(queue, &q, 10, 1000, now).await;
    let again_ids: BTreeSet<String> = ids(&again).into_iter().collect();
    let want: BTreeSet<String> = [agendas[1].clone(), agendas[3].clone()].into_iter().collect();
    assert_eq!(again_ids, want, "[{}] receive after expiry: the lapsed and the never-leased item", name(queue));
    assert!(
        ok(queue, "expired", queue.expired(&q, now, 10).await).is_empty(),
        "[{}] redelivered leases are not expired",
        name(queue)
    );
}

/// `contains` and `remove` (whatever the lease): `remove` says whether the agenda was there and kills
/// its lease.
pub async fn contains_and_remove(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    let b = unique("agenda");
    assert!(push(queue, &q, &a, t0).await);
    assert!(push(queue, &q, &b, t0 + 1).await);
    assert!(ok(queue, "contains", queue.contains(&q, &a).await));
    assert!(
        !ok(queue, "contains", queue.contains(&q, &unique("agenda")).await),
        "[{}] contains of an unknown agenda",
        name(queue)
    );
    assert!(
        !ok(queue, "contains", queue.contains(&unique("insight"), &a).await),
        "[{}] contains in another insight",
        name(queue)
    );
    assert!(ok(queue, "remove", queue.remove(&q, &a).await), "[{}] remove of a visible item returns true", name(queue));
    assert!(
        !ok(queue, "remove", queue.remove(&q, &a).await),
        "[{}] remove of a removed item returns false",
        name(queue)
    );
    assert!(!ok(queue, "contains", queue.contains(&q, &a).await), "[{}] contains after remove", name(queue));
    let lease = receive(queue, &q, 10, 60_000, t0 + 2).await;
    assert_eq!(ids(&lease), vec![b.clone()], "[{}] a removed item is not delivered", name(queue));
    assert!(ok(queue, "contains", queue.contains(&q, &b).await), "[{}] contains a leased item", name(queue));
    assert!(ok(queue, "remove", queue.remove(&q, &b).await), "[{}] remove of a leased item returns true", name(queue));
    expect_conflict(queue, "ack after remove", queue.ack(&lease[0].token).await);
    expect_conflict(queue, "extend after remove", queue.extend(&lease[0].token, 1000, t0 + 3).await);
    assert_eq!(len(queue, &q).await, 0);
    assert!(
        !ok(queue, "remove", queue.remove(&unique("insight"), &b).await),
        "[{}] remove from an unknown queue",
        name(queue)
    );
}

/// Queues of different insights are independent, even for the same agenda id.
pub async fn queues_are_per_insight(queue: &dyn QueueBackend) {
    let t0 = wall_clock();
    let q1 = unique("insight");
    let q2 = unique("insight");
    let a = unique("agenda");
    assert!(push(queue, &q1, &a, t0).await);
    assert!(push(queue, &q2, &a, t0).await, "[{}] the same agenda in another insight's queue", name(queue));
    let l1 = receive(queue, &q1, 10, 60_000, t0 + 1).await;
    assert_eq!(ids(&l1), vec![a.clone()]);
    assert_eq!(len(queue, &q2).await, 1);
    ok(queue, "ack in q1", queue.ack(&l1[0].token).await);
    assert!(
        ok(queue, "contains", queue.contains(&q2, &a).await),
        "[{}] ack in one queue leaves the other",
        name(queue)
    );
    let l2 = receive(queue, &q2, 10, 60_000, t0 + 2).await;
    assert_eq!(ids(&l2), vec![a]);
    let wrong = LeaseToken { insight_id: q1.clone(), ..l2[0].token.clone() };
    expect_conflict(queue, "ack with another insight's token", queue.ack(&wrong).await);
    ok(queue, "ack in q2", queue.ack(&l2[0].token).await);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// 8 receivers drain one queue of 200 items: no two ever hold the same item at once, every item is
/// delivered exactly once (leases never expire here), and the total acked equals the total pushed.
pub async fn concurrent_receivers_never_share_an_item(queue: Arc<dyn QueueBackend>) {
    const ITEMS: usize = 200;
    const RECEIVERS: usize = 8;
    let t0 = wall_clock();
    let q = unique("insight");
    let tag = unique("a");
    for i in 0..ITEMS {
        assert!(push(&*queue, &q, &format!("{tag}-{i:03}"), t0).await);
    }
    let held: Arc<Mutex<HashSet<String>>> = Arc::default();
    let delivered: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut handles = Vec::new();
    for r in 0..RECEIVERS {
        let (queue, q, held, delivered) = (queue.clone(), q.clone(), held.clone(), delivered.clone());
        handles.push(tokio::spawn(async move {
            let mut acked = 0usize;
            let mut idle = 0usize;
            loop {
                let leases = ok(&*queue, "receive", queue.receive(&q, 4, 3_600_000, t0 + 1).await);
                if leases.is_empty() {
                    if lock(&delivered).values().sum::<usize>() >= ITEMS || len(&*queue, &q).await == 0 {
                        return acked;
                    }
                    idle += 1;
                    assert!(idle < 100_000, "[{}] receiver {r}: items left but none visible", name(&*queue));
                    tokio::task::yield_now().await;
                    continue;
                }
                for l in &leases {
                    let a = l.token.agenda_id.clone();
                    assert!(
                        lock(&held).insert(a.clone()),
                        "[{}] receiver {r} got {a} while another receiver held it",
                        name(&*queue)
                    );
                    *lock(&delivered).entry(a).or_default() += 1;
                }
                tokio::task::yield_now().await;
                for l in leases {
                    ok(&*queue, "ack", queue.ack(&l.token).await);
                    lock(&held).remove(&l.token.agenda_id);
                    acked += 1;
                }
            }
        }));
    }
    let mut acked = 0;
    for h in handles {
        acked += join(h).await;
    }
    assert_eq!(acked, ITEMS, "[{}] total acked by {RECEIVERS} receivers", name(&*queue));
    let delivered = lock(&delivered).clone();
    assert_eq!(delivered.len(), ITEMS, "[{}] every pushed item was delivered", name(&*queue));
    let twice: Vec<&String> = delivered.iter().filter(|(_, n)| **n != 1).map(|(a, _)| a).collect();
    assert!(twice.is_empty(), "[{}] items delivered more than once: {twice:?}", name(&*queue));
    assert_eq!(len(&*queue, &q).await, 0, "[{}] len after acking everything", name(&*queue));
}

/// 16 tasks push the same agenda at once: exactly one push returns `true`, and it is queued once.
pub async fn concurrent_push_dedups(queue: Arc<dyn QueueBackend>) {
    let t0 = wall_clock();
    let q = unique("insight");
    let a = unique("agenda");
    let mut handles = Vec::new();
    for i in 0..16 {
        let (queue, q, a) = (queue.clone(), q.clone(), a.clone());
        handles.push(tokio::spawn(async move { push(&*queue, &q, &a, t0 + i).await }));
    }
    let mut firsts = 0;
    for h in handles {
        firsts += usize::from(join(h).await);
    }
    assert_eq!(firsts, 1, "[{}] concurrent pushes of one agenda: {firsts} returned true", name(&*queue));
    assert_eq!(len(&*queue, &q).await, 1, "[{}] len after concurrent pushes of one agenda", name(&*queue));
    let leases = receive(&*queue, &q, 10, 1000, t0 + 100).await;
    assert_eq!(leases.len(), 1, "[{}] one delivery after concurrent pushes", name(&*queue));
}

/// 8 receivers drain one queue of 100 items. Half of them are slow: their leases are 1 ms long and
/// lapse before they ack, so the fast receivers (who look at the queue 1 s later) get those items again
/// while the slow holder still works. Every item is acked successfully exactly once, by its latest
/// delivery; every slow holder's stale ack is refused with `Conflict`.
pub async fn concurrent_receivers_with_expiring_leases_ack_each_item_once(queue: Arc<dyn QueueBackend>) {
    const ITEMS: usize = 100;
    const RECEIVERS: usize = 8;
    let t0 = wall_clock();
    let q = unique("insight");
    let tag = unique("a");
    for i in 0..ITEMS {
        assert!(push(&*queue, &q, &format!("{tag}-{i:03}"), t0).await);
    }
    // agenda → (highest epoch delivered, epochs acked successfully)
    type Seen = BTreeMap<String, (u64, Vec<u64>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    // agenda → the highest epoch whose ack was attempted
    let attempted: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    // The fast receivers start once every slow one holds an item.
    let start = Arc::new(tokio::sync::Barrier::new(RECEIVERS));
    let mut handles = Vec::new();
    for r in 0..RECEIVERS {
        let (queue, q, seen, attempted, start) =
            (queue.clone(), q.clone(), seen.clone(), attempted.clone(), start.clone());
        handles.push(tokio::spawn(async move {
            let slow = r % 2 == 1;
            // Slow: 1 item, a 1 ms lease, at t0 (their own lapsed leases stay invisible to them).
            // Fast: 2 items, an hour's lease, at t0 + 1 s (slow leases have lapsed, fast ones never do).
            let (max, ttl, now) = if slow { (1, 1, t0) } else { (2, 3_600_000, t0 + 1000) };
            let mut conflicts = 0usize;
            let mut started = false;
            if !slow {
                start.wait().await;
                started = true;
            }
            for _ in 0..20_000 {
                let leases = ok(&*queue, "receive", queue.receive(&q, max, ttl, now).await);
                if !started {
                    assert!(!leases.is_empty(), "[{}] slow receiver {r} got nothing from a full queue", name(&*queue));
                    start.wait().await;
                    started = true;
                }
                if leases.is_empty() {
                    if len(&*queue, &q).await == 0 {
                        return conflicts;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
                // Items delivered before, with the epoch of the previous delivery.
                let mut again = Vec::new();
                for l in &leases {
                    let mut seen = lock(&seen);
                    let e = seen.entry(l.token.agenda_id.clone()).or_default();
                    if e.0 > 0 && e.0 < l.token.epoch {
                        again.push((l.token.agenda_id.clone(), e.0));
                    }
                    e.0 = e.0.max(l.token.epoch);
                }
                // Let the previous holder of a redelivered item try its stale ack first (up to 5 s).
                for (agenda, previous) in again {
                    for _ in 0..5000 {
                        if lock(&attempted).get(&agenda).is_some_and(|e| *e >= previous) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                // A slow receiver works until its item was delivered to someone else (up to 5 s).
                if let Some(l) = leases.first().filter(|_| slow) {
                    for _ in 0..5000 {
                        if lock(&seen).get(&l.token.agenda_id).is_some_and(|e| e.0 > l.token.epoch) {
                            break;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    }
                }
                for l in leases {
                    let acked = queue.ack(&l.token).await;
                    let mut tried = lock(&attempted);
                    let e = tried.entry(l.token.agenda_id.clone()).or_default();
                    *e = (*e).max(l.token.epoch);
                    drop(tried);
                    match acked {
                        Ok(()) => lock(&seen).entry(l.token.agenda_id.clone()).or_default().1.push(l.token.epoch),
                        Err(Error::Conflict(_)) => conflicts += 1,
                        Err(e) => panic!("[{}] receiver {r}: ack: {e}", name(&*queue)),
                    }
                }
                tokio::task::yield_now().await;
            }
            panic!("[{}] receiver {r}: the queue did not drain", name(&*queue));
        }));
    }
    let mut conflicts = 0;
    for h in handles {
        conflicts += join(h).await;
    }
    let seen = lock(&seen).clone();
    assert_eq!(seen.len(), ITEMS, "[{}] every pushed item was delivered", name(&*queue));
    assert!(
        conflicts >= RECEIVERS / 2,
        "[{}] every slow receiver's item was delivered again, yet only {conflicts} stale acks were refused",
        name(&*queue)
    );
    for (agenda, (max_epoch, acks)) in &seen {
        assert_eq!(
            acks.len(),
            1,
            "[{}] {agenda} was acked successfully {} times (epochs {acks:?}; {conflicts} stale acks refused in all)",
            name(&*queue),
            acks.len()
        );
        assert_eq!(
            acks[0],
            *max_epoch,
            "[{}] {agenda}: the ack that succeeded (epoch {}) was not of the latest delivery (epoch {max_epoch})",
            name(&*queue),
            acks[0]
        );
    }
    assert_eq!(len(&*queue, &q).await, 0, "[{}] len after draining", name(&*queue));
}
