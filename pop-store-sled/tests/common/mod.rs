//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different subset")]

use pop_core::model::{Agenda, AgendaProgress, Millis, OperationProgress, ReadyAgenda};
use pop_core::store::{WriteOp, create_op};

/// The wall clock in epoch ms.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// The id of an agenda's progress.
pub fn progress_id(agenda: &str) -> String {
    format!("{agenda}.p")
}

/// The submit batch of one agenda: the agenda, its progress, `ops` operation progresses and its ready
/// entry, as one atomic write (what the submit service writes).
pub fn submit_ops(agenda_id: &str, customer: &str, insight: &str, ops: usize, now: Millis) -> Vec<WriteOp> {
    let mut out = Vec::with_capacity(ops + 3);
    let mut agenda = Agenda {
        id: Some(agenda_id.to_owned()),
        customer_id: Some(customer.to_owned()),
        title: Some(format!("title of {agenda_id}")),
        link_id: Some(format!("link-{customer}")),
        ..Default::default()
    };
    out.push(create_op(&mut agenda).expect("agenda has an id"));
    let pid = progress_id(agenda_id);
    let mut progress = AgendaProgress {
        id: Some(pid.clone()),
        customer_id: Some(customer.to_owned()),
        agenda_id: Some(agenda_id.to_owned()),
        link_id: Some(format!("link-{customer}")),
        added_time: Some(now),
        ..Default::default()
    };
    out.push(create_op(&mut progress).expect("progress has an id"));
    for i in 0..ops {
        let mut op = OperationProgress {
            id: Some(format!("{agenda_id}.op{i}")),
            customer_id: Some(customer.to_owned()),
            agenda_progress_id: Some(pid.clone()),
            operation: Some(format!("op{i}")),
            ..Default::default()
        };
        out.push(create_op(&mut op).expect("operation progress has an id"));
    }
    out.push(WriteOp::ReadyInsert(ready(agenda_id, customer, insight, now)));
    out
}

/// A ready entry.
pub fn ready(agenda_id: &str, customer: &str, insight: &str, now: Millis) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("{agenda_id}.r"),
        insight_id: insight.to_owned(),
        agenda_id: agenda_id.to_owned(),
        customer_id: customer.to_owned(),
        added: now,
        priority: 0,
    }
}
