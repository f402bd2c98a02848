//! The scheduling benches' workload: 1,000,000 ready agendas of 10,000 customers with uuid-shaped ids.

use pop_core::model::{Insight, ReadyAgenda};
use pop_core::sched::{CustomerKeys, CustomerReady, ReadyRuns, ReadyView};

/// Customers with ready work.
pub const CUSTOMERS: usize = 10_000;
/// Ready agendas per customer.
pub const PER_CUSTOMER: usize = 100;

/// A deterministic uuid-shaped id (36 characters, as the store's ids).
pub fn uuid_like(n: u64, salt: u64) -> String {
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt;
    let y = x.rotate_left(17).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (x >> 32) as u32,
        (x >> 16) as u16,
        (x & 0xfff) as u16,
        (y >> 52) as u16,
        y & 0xffff_ffff_ffff
    )
}

/// The ready set: customer id → entries sorted (priority desc, added asc), and each customer's priority
/// runs (found once, as the scheduler does when it reads the ready set).
pub struct Dataset {
    /// Customer id → its entries.
    pub customers: Vec<(String, Vec<ReadyAgenda>)>,
    /// The priority runs of each customer's entries.
    pub runs: ReadyRuns,
    /// The customers' keys (interned in id order, as a caller interning its ready set would).
    pub keys: CustomerKeys,
    /// Each customer's key, in `customers` order.
    pub key_of: Vec<u32>,
}

impl std::ops::Deref for Dataset {
    type Target = [(String, Vec<ReadyAgenda>)];
    fn deref(&self) -> &Self::Target {
        &self.customers
    }
}

/// 1,000,000 ready agendas of 10,000 customers; `mixed`: priorities 0..=3.
///
/// Each customer's id is allocated just before its 100 agendas (about one 4 KiB page apart): an
/// algorithm that reads every customer's id (the ones keeping per-customer state) misses the cache
/// and the TLB once per customer. [`dataset_ids_together`] allocates them one after another.
pub fn dataset(mixed: bool) -> Dataset {
    dataset_with(mixed, false)
}

/// [`dataset`] with the 10,000 customer ids allocated one after another before the agendas (as a
/// scheduler that groups a ready set by customer lays them out): the same view, the ids in a few
/// dozen pages.
pub fn dataset_ids_together(mixed: bool) -> Dataset {
    dataset_with(mixed, true)
}

fn dataset_with(mixed: bool, ids_together: bool) -> Dataset {
    let customers = entries(mixed, ids_together);
    let runs = ReadyRuns::new(customers.iter().map(|(_, e)| e.as_slice()));
    let mut keys = CustomerKeys::new();
    let key_of = customers.iter().map(|(c, _)| keys.key(c)).collect();
    Dataset { customers, runs, keys, key_of }
}

fn entries(mixed: bool, ids_together: bool) -> Vec<(String, Vec<ReadyAgenda>)> {
    let mut n = 0u64;
    let mut ids: Vec<String> =
        if ids_together { (0..CUSTOMERS).map(|c| format!("customer-{c:05}")).collect() } else { Vec::new() };
    (0..CUSTOMERS)
        .map(|c| {
            let customer = match ids.get_mut(c) {
                Some(id) => std::mem::take(id),
                None => format!("customer-{c:05}"),
            };
            let mut entries: Vec<ReadyAgenda> = (0..PER_CUSTOMER)
                .map(|k| {
                    n += 1;
                    ReadyAgenda {
                        id: uuid_like(n, 1),
                        insight_id: "insight-1".to_owned(),
                        agenda_id: uuid_like(n, 2),
                        customer_id: customer.clone(),
                        // Interleaved arrivals across customers.
                        added: 1_700_000_000_000 + (k * CUSTOMERS + c) as i64,
                        priority: if mixed { ((n * 7) % 4) as i32 } else { 0 },
                    }
                })
                .collect();
            entries.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
            (customer, entries)
        })
        .collect()
}

/// The view the scheduler loop would build over `data` (weights 1–3), with each customer's runs.
pub fn view<'a>(insight: &'a Insight, data: &'a Dataset, now: i64) -> ReadyView<'a> {
    build_view(insight, data, now, true, false)
}

/// [`view`] with the customers' keys ([`ReadyView::keys`]): an algorithm keeping per-customer state
/// finds it without reading the ids.
pub fn view_keyed<'a>(insight: &'a Insight, data: &'a Dataset, now: i64) -> ReadyView<'a> {
    build_view(insight, data, now, true, true)
}

/// [`view`] without the runs: the algorithms search them (what a caller that does not keep them gets).
pub fn view_searching<'a>(insight: &'a Insight, data: &'a Dataset, now: i64) -> ReadyView<'a> {
    build_view(insight, data, now, false, false)
}

fn build_view<'a>(insight: &'a Insight, data: &'a Dataset, now: i64, with_runs: bool, keyed: bool) -> ReadyView<'a> {
    ReadyView {
        insight,
        customers: data
            .customers
            .iter()
            .enumerate()
            .map(|(i, (c, e))| CustomerReady {
                customer_id: c,
                weight: 1 + (c.len() as u32 % 3),
                entries: e,
                runs: if with_runs { data.runs.get(i) } else { &[] },
                key: if keyed { data.key_of[i] } else { 0 },
            })
            .collect(),
        costs: None,
        now,
        keys: keyed.then(|| data.keys.space()),
    }
}
