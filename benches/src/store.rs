//! The store benches' records: the submit batch of a 10-operation agenda and a customer record.

use pop_core::model::{Agenda, AgendaProgress, Customer, Millis, OperationProgress, ReadyAgenda};
use pop_core::store::{Record, WriteOp, create_op, to_record};

/// Now, epoch ms.
pub fn now() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as Millis)
}

/// The ready entry of `agenda_id` (customer `acme`) in `insight`, added now.
pub fn ready(insight: &str, agenda_id: &str) -> ReadyAgenda {
    ReadyAgenda {
        id: format!("{agenda_id}.r"),
        insight_id: insight.into(),
        agenda_id: agenda_id.into(),
        customer_id: "acme".into(),
        added: now(),
        priority: 0,
    }
}

/// The submit batch of an agenda with 10 operations (customer `acme`): agenda, its progress, 10
/// operation progresses and the ready entry (13 writes, one transaction); also the progress and
/// operation progresses as written, for benches that go on updating them.
pub fn submit_batch(agenda_id: &str, insight: &str) -> (Vec<WriteOp>, AgendaProgress, Vec<OperationProgress>) {
    let customer = "acme".to_owned();
    let mut ops = Vec::with_capacity(13);
    let mut a = Agenda {
        id: Some(agenda_id.into()),
        customer_id: Some(customer.clone()),
        title: Some("bench".into()),
        ..Default::default()
    };
    ops.push(create_op(&mut a).expect("agenda"));
    let pid = format!("{agenda_id}.p");
    let mut p = AgendaProgress {
        id: Some(pid.clone()),
        customer_id: Some(customer.clone()),
        agenda_id: Some(agenda_id.into()),
        ..Default::default()
    };
    ops.push(create_op(&mut p).expect("progress"));
    let mut op_progress = Vec::new();
    for i in 0..10 {
        let mut op = OperationProgress {
            id: Some(format!("{agenda_id}.op{i}")),
            customer_id: Some(customer.clone()),
            agenda_progress_id: Some(pid.clone()),
            ..Default::default()
        };
        ops.push(create_op(&mut op).expect("operation progress"));
        op_progress.push(op);
    }
    ops.push(WriteOp::ReadyInsert(ready(insight, agenda_id)));
    (ops, p, op_progress)
}

/// A customer record (version 1) to create.
pub fn customer_record(id: &str) -> Record {
    let c = Customer {
        id: Some(id.into()),
        customer_id: Some(id.into()),
        title: Some("bench".into()),
        ..Default::default()
    };
    let mut r = to_record(&c).expect("customer");
    r.version = 1;
    r
}
