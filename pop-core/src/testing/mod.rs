//! The conformance suites every [`Store`], [`QueueBackend`] and [`PodRuntime`] runs (feature `testing`).
//!
//! The [`PodRuntime`] suite ([`runtime`]) works through a harness the runtime's tests implement
//! ([`runtime::RuntimeHarness`]); `pop_core::runtime_conformance!(async { Arc::new(MyHarness) })` makes
//! one test per case, in a module `runtime_conformance`. See the [`runtime`] module. The rest of this
//! page is about the store and queue suites.
//!
//! The cases are plain `pub async fn`s in [`store`] and [`queue`] that take `&dyn Store` /
//! `&dyn QueueBackend` (or an `Arc` when they spawn tasks) and panic, with a message naming the backend
//! and what was expected, when the backend breaks the trait's documented contract. They check error
//! meanings (`NotFound`, `Conflict`, `Unsupported`), paging, ordering, atomicity and concurrency (no lost
//! update, no double delivery), not only the happy path.
//!
//! Every case makes its own ids (UUIDs), insights and lease names, so the cases can share one backend
//! (a DynamoDB table) and run in parallel without seeing each other's data. Time is passed in as `now`
//! (around the wall clock), so lease expiry is tested without sleeping.
//!
//! # Running the suite from a backend crate
//!
//! Add `pop-core = { workspace = true, features = ["testing"] }` to the crate's `[dev-dependencies]`
//! and write `tests/conformance.rs`:
//!
//! ```
//! use std::sync::Arc;
//! use pop_core::memory::{MemoryQueue, MemoryStore};
//!
//! // One `#[test]` per case, in a module `store_conformance` (`store_conformance::crud_agenda`, ...).
//! pop_core::store_conformance!(async { Arc::new(MemoryStore::new()) });
//! // One `#[test]` per case, in a module `queue_conformance` (`queue_conformance::lease_expiry_redelivers`, ...).
//! pop_core::queue_conformance!(async { Arc::new(MemoryQueue::new()) });
//! # fn main() {}
//! ```
//!
//! The argument is an expression evaluated once per test, inside that test's multi-thread tokio
//! runtime (so it may `.await`); it must be a future (write `async { ... }`) whose output is a
//! [`StoreFixture`] / [`QueueFixture`]:
//!
//! * `Arc<B>` or `Arc<dyn Store>` / `Arc<dyn QueueBackend>`: run the case on it;
//! * `Result<F, E>` with `E: Display`: `Err` fails the test with the error
//!   (`async { SledStore::temporary().map(Arc::new) }`);
//! * `Option<F>`: `None` **skips** the case, printing `skipping <case>: ...` (the factory should print
//!   why first, e.g. "POP_DYNAMODB_ENDPOINT is not set"). This is how a backend that needs an outside
//!   service runs the suite only when its environment variable is set.
//!
//! They nest: `Result<Option<Arc<B>>, E>` fails on `Err`, skips on `Ok(None)`. For example sled:
//! `pop_core::store_conformance!(async { SledStore::temporary().map(Arc::new) })` and
//! `pop_core::queue_conformance!(async { SledStore::temporary().map(|s| Arc::new(s.queue())) })`;
//! and a backend that needs a server:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use pop_core::memory::MemoryStore as DynamoStore;
//! // A factory that makes a fresh table per test, or None (after saying why) when the env var is unset.
//! async fn fresh_dynamo_store() -> Option<Arc<DynamoStore>> {
//!     if std::env::var_os("POP_DYNAMODB_ENDPOINT").is_none() {
//!         eprintln!("POP_DYNAMODB_ENDPOINT is not set: DynamoDB conformance skipped");
//!         return None;
//!     }
//!     Some(Arc::new(DynamoStore::new()))
//! }
//! pop_core::store_conformance!(fresh_dynamo_store());
//! # fn main() {}
//! ```
//!
//! To run the suite twice in one file (two configurations), put each call in its own module; the
//! generated module does `use super::*`, so names in scope at the call site are in scope for the
//! expression.
//!
//! The generated tests build their own tokio runtime (4 worker threads), so the backend crate needs no
//! tokio dev-dependency for them. A single case can also be called directly from a hand-written test:
//! `pop_core::testing::store::crud_agenda(&store).await`.
//!
//! # What a backend must do that is easy to miss
//!
//! * Queries and ready-set listings see every write that returned `Ok` (read your writes).
//! * `scan` and `query` return ids in ascending order across pages; a cursor continues after the last
//!   item returned even if that item was deleted meanwhile.
//! * A batch longer than [`Store::max_batch`] is `Unsupported`, a batch of exactly `max_batch` writes
//!   succeeds, and a failing batch leaves nothing written (objects and ready set alike).
//! * An update that changes or unsets an indexed value moves or removes the object's index entry.
//! * The phase index ([`Store::query_phase`]) follows every create, update, delete and batch of an
//!   agenda progress, by (time, id) within its time range (end excluded); a failed batch leaves it alone.
//! * `PageRequest { limit: 0, .. }` means pages of 100.
//! * Ready-set priorities may be negative; an agenda has one ready entry, so inserting it for another
//!   insight moves it.
//! * The cases never put two ops on the same key in one batch (DynamoDB transactions refuse that).
//! * Receive order is push order, and a released item keeps its place ahead of later pushes.
//! * Epochs grow with every delivery, and a receipt is dead once its item was acked, released, removed
//!   or delivered again; an expired lease that was not delivered again is still current (its holder
//!   may still ack it).
//!
//! The cases avoid the exact boundary `now == deadline` (whether that instant is expired is left to
//! the backend).

pub mod crash;
pub mod fuzz;
pub mod queue;
pub mod runtime;
pub mod store;
pub mod tmpfs;

use crate::model::Millis;
use crate::queue::QueueBackend;
#[cfg(doc)]
use crate::runtime::PodRuntime;
use crate::store::Store;
use runtime::RuntimeHarness;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;

/// What a [`store_conformance!`](crate::store_conformance) factory may produce: a store to test, an
/// error (the test fails) or nothing (the test is skipped).
pub trait StoreFixture {
    /// The store, `None` to skip; panics (failing the test) on a factory error.
    fn into_store(self) -> Option<Arc<dyn Store>>;
}

impl StoreFixture for Arc<dyn Store> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        Some(self)
    }
}

impl<S: Store> StoreFixture for Arc<S> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        Some(self)
    }
}

impl<T: StoreFixture> StoreFixture for Option<T> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        self.and_then(StoreFixture::into_store)
    }
}

impl<T: StoreFixture, E: Display> StoreFixture for Result<T, E> {
    fn into_store(self) -> Option<Arc<dyn Store>> {
        match self {
            Ok(f) => f.into_store(),
            Err(e) => panic!("the store factory failed: {e}"),
        }
    }
}

/// What a [`queue_conformance!`](crate::queue_conformance) factory may produce: a queue backend to
/// test, an error (the test fails) or nothing (the test is skipped).
pub trait QueueFixture {
    /// The queue backend, `None` to skip; panics (failing the test) on a factory error.
    fn into_queue(self) -> Option<Arc<dyn QueueBackend>>;
}

impl QueueFixture for Arc<dyn QueueBackend> {
    fn into_queue(self) -> Option<Arc<dyn QueueBackend>> {
        Some(self)
    }
}

impl<Q: QueueBackend> QueueFixture for Arc<Q> {
    fn into_queue(self) -> Option<Arc<dyn QueueBackend>> {
        Some(self)
    }
}

impl<T: QueueFixture> QueueFixture for Option<T> {
    fn into_queue(self) -> Option<Arc<dyn QueueBackend>> {
        self.and_then(QueueFixture::into_queue)
    }
}

impl<T: QueueFixture, E: Display> QueueFixture for Result<T, E> {
    fn into_queue(self) -> Option<Arc<dyn QueueBackend>> {
        match self {
            Ok(f) => f.into_queue(),
            Err(e) => panic!("the queue factory failed: {e}"),
        }
    }
}

/// What a [`runtime_conformance!`](crate::runtime_conformance) factory may produce: a harness, an error
/// (the test fails) or nothing (the test is skipped).
pub trait RuntimeFixture {
    /// The harness, `None` to skip; panics (failing the test) on a factory error.
    fn into_harness(self) -> Option<Arc<dyn RuntimeHarness>>;
}

impl RuntimeFixture for Arc<dyn RuntimeHarness> {
    fn into_harness(self) -> Option<Arc<dyn RuntimeHarness>> {
        Some(self)
    }
}

impl<H: RuntimeHarness> RuntimeFixture for Arc<H> {
    fn into_harness(self) -> Option<Arc<dyn RuntimeHarness>> {
        Some(self)
    }
}

impl<T: RuntimeFixture> RuntimeFixture for Option<T> {
    fn into_harness(self) -> Option<Arc<dyn RuntimeHarness>> {
        self.and_then(RuntimeFixture::into_harness)
    }
}

impl<T: RuntimeFixture, E: Display> RuntimeFixture for Result<T, E> {
    fn into_harness(self) -> Option<Arc<dyn RuntimeHarness>> {
        match self {
            Ok(f) => f.into_harness(),
            Err(e) => panic!("the runtime harness factory failed: {e}"),
        }
    }
}

fn runtime(case: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{case}: cannot start a tokio runtime: {e}"))
}

/// Runs one store case in a fresh multi-thread runtime (used by [`store_conformance!`](crate::store_conformance)).
#[doc(hidden)]
pub fn run_store_case<M, F, C, Fut>(case: &str, make: M, run: C)
where
    M: Future<Output = F>,
    F: StoreFixture,
    C: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    runtime(case).block_on(async move {
        match make.await.into_store() {
            Some(store) => run(store).await,
            None => eprintln!("skipping {case}: the store factory returned None"),
        }
    });
}

/// Runs one queue case in a fresh multi-thread runtime (used by [`queue_conformance!`](crate::queue_conformance)).
#[doc(hidden)]
pub fn run_queue_case<M, F, C, Fut>(case: &str, make: M, run: C)
where
    M: Future<Output = F>,
    F: QueueFixture,
    C: FnOnce(Arc<dyn QueueBackend>) -> Fut,
    Fut: Future<Output = ()>,
{
    runtime(case).block_on(async move {
        match make.await.into_queue() {
            Some(queue) => run(queue).await,
            None => eprintln!("skipping {case}: the queue factory returned None"),
        }
    });
}

/// Runs one runtime case in a fresh multi-thread runtime (used by
/// [`runtime_conformance!`](crate::runtime_conformance)); a case the runtime cannot run is reported as
/// skipped, with the harness's reason.
#[doc(hidden)]
pub fn run_runtime_case<M, F, C, Fut>(case: &str, make: M, run: C)
where
    M: Future<Output = F>,
    F: RuntimeFixture,
    C: FnOnce(Arc<dyn RuntimeHarness>) -> Fut,
    Fut: Future<Output = runtime::CaseResult>,
{
    runtime(case).block_on(async move {
        match make.await.into_harness() {
            Some(harness) => {
                if let Err(skip) = run(harness).await {
                    eprintln!("skipping {case}: {skip}");
                }
            }
            None => eprintln!("skipping {case}: the runtime harness factory returned None"),
        }
    });
}

/// A fresh id with a readable prefix, unique across processes (so cases can share a backend).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The wall clock in epoch milliseconds (the cases pass times around it as `now`).
pub fn wall_clock() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| Millis::try_from(d.as_millis()).unwrap_or(Millis::MAX))
}

/// Awaits a spawned task, re-raising its panic (so the case's own assertion message is what fails).
pub(crate) async fn join<T>(handle: tokio::task::JoinHandle<T>) -> T {
    match handle.await {
        Ok(v) => v,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("a conformance task was cancelled: {e}"),
        },
    }
}

/// Expands to one `#[test]` per [`Store`] conformance case, in a module `store_conformance`.
///
/// The argument is a future (`async { ... }`, or a call of an `async fn`) producing a
/// [`StoreFixture`]; it is evaluated afresh for every case. See the [module docs](crate::testing).
///
/// ```
/// pop_core::store_conformance!(async { std::sync::Arc::new(pop_core::memory::MemoryStore::new()) });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($make:expr $(,)?) => {
        mod store_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases! {
                run_store_case, store, $make;
                ref: [
                    crud_agenda,
                    crud_agenda_progress,
                    crud_operation_progress,
                    crud_customer,
                    crud_resource_pool,
                    crud_insight,
                    crud_agenda_template,
                    crud_insight_schedule_record,
                    cas_conflict_on_stale_version,
                    duplicate_create_conflicts,
                    missing_is_not_found,
                    conditional_delete,
                    query_agenda_by_customer_id,
                    query_agenda_by_link_id,
                    query_agenda_by_title,
                    query_agenda_progress_by_customer_id,
                    query_agenda_progress_by_link_id,
                    query_agenda_progress_by_agenda_id,
                    query_agenda_progress_by_title,
                    query_operation_progress_by_customer_id,
                    query_operation_progress_by_agenda_progress_id,
                    query_customer_by_customer_id,
                    query_customer_by_resource_pool_id,
                    query_customer_by_title,
                    query_resource_pool_by_customer_id,
                    query_resource_pool_by_title,
                    query_insight_by_customer_id,
                    query_insight_by_resource_pool_id,
                    query_insight_by_title,
                    query_agenda_template_by_customer_id,
                    query_agenda_template_by_title,
                    scan_pages_in_id_order,
                    batch_is_atomic,
                    batch_applies_every_op,
                    put_upserts_and_follows_its_batch,
                    batch_over_max_batch_is_unsupported,
                    phase_index_follows_state_changes,
                    phase_index_follows_batches,
                    phase_index_pages_in_time_order,
                    phase_query_needs_a_phase_index,
                    ready_set_order,
                    ready_set_paging,
                    ready_set_heads,
                    ready_insert_replaces_and_remove_is_idempotent,
                    named_leases,
                ];
                arc: [
                    concurrent_cas_updates_lose_nothing,
                    concurrent_creates_one_winner,
                    concurrent_lease_acquire_one_winner,
                ];
            }
        }
    };
}

/// Expands to one `#[test]` per [`QueueBackend`] conformance case, in a module `queue_conformance`.
///
/// The argument is a future (`async { ... }`, or a call of an `async fn`) producing a
/// [`QueueFixture`]; it is evaluated afresh for every case. See the [module docs](crate::testing).
///
/// ```
/// pop_core::queue_conformance!(async { std::sync::Arc::new(pop_core::memory::MemoryQueue::new()) });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! queue_conformance {
    ($make:expr $(,)?) => {
        mod queue_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__conformance_cases! {
                run_queue_case, queue, $make;
                ref: [
                    push_receive_ack,
                    ack_many_fails_a_stale_lease_alone,
                    receive_order_is_push_order,
                    lease_expiry_redelivers,
                    extend_postpones,
                    release_returns_at_once,
                    push_of_queued_agenda_is_noop,
                    push_many_in_order_with_dedup,
                    len_counts_visible_and_leased,
                    leased_and_waiting_split_the_queue,
                    count_by_customer_counts_queued_and_leased,
                    expired_lists_lapsed_leases,
                    contains_and_remove,
                    queues_are_per_insight,
                ];
                arc: [
                    concurrent_receivers_never_share_an_item,
                    concurrent_receivers_with_expiring_leases_ack_each_item_once,
                    concurrent_push_dedups,
                ];
            }
        }
    };
}

/// Expands to one `#[test]` per [`PodRuntime`] conformance case, in a module `runtime_conformance`.
///
/// The argument is a future (`async { ... }`, or a call of an `async fn`) producing a
/// [`RuntimeFixture`] (an `Arc` of a [`RuntimeHarness`], possibly in an `Option` or a `Result`); it is
/// evaluated afresh for every case. See [`runtime`](crate::testing::runtime).
///
/// ```
/// use std::sync::Arc;
/// use pop_core::runtime::PodRuntime;
/// use pop_core::testing::runtime::{Capabilities, HandlerDef, RuntimeHarness, Skip};
///
/// /// A harness for a runtime that cannot run anything: every case is skipped, saying why.
/// struct Nothing;
///
/// #[async_trait::async_trait]
/// impl RuntimeHarness for Nothing {
///     async fn runtime(&self, _: &[HandlerDef]) -> Result<Arc<dyn PodRuntime>, Skip> {
///         Err(Skip::because("this example runs no handlers"))
///     }
///     fn capabilities(&self) -> Capabilities {
///         Capabilities { compressed_payload_above: Err(Skip::because("none")), exit_codes: Ok(()) }
///     }
/// }
///
/// pop_core::runtime_conformance!(async { Arc::new(Nothing) });
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! runtime_conformance {
    ($make:expr $(,)?) => {
        mod runtime_conformance {
            #[allow(unused_imports)]
            use super::*;
            $crate::__runtime_conformance_cases! {
                $make;
                launch_to_result,
                progress_in_order,
                failure_exits_with_diagnostics,
                cancel_stops_a_running_handler,
                payload_inline_reaches_the_handler,
                payload_compressed_reaches_the_handler,
                env_reaches_the_handler,
                list_shows_the_launch_and_cleanup_removes_it,
                unsupported_type_is_a_typed_error,
                many_concurrent_launches,
            }
        }
    };
}

/// Implementation detail of [`runtime_conformance!`](crate::runtime_conformance).
#[doc(hidden)]
#[macro_export]
macro_rules! __runtime_conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::run_runtime_case(
                    concat!(module_path!(), "::", stringify!($case)),
                    $make,
                    |harness| async move { $crate::testing::runtime::$case(&*harness).await },
                );
            }
        )*
    };
}

/// Implementation detail of the conformance macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($runner:ident, $module:ident, $make:expr; ref: [$($case:ident),* $(,)?]; arc: [$($arc_case:ident),* $(,)?];) => {
        $(
            #[test]
            fn $case() {
                $crate::testing::$runner(
                    concat!(module_path!(), "::", stringify!($case)),
                    $make,
                    |backend| async move { $crate::testing::$module::$case(&*backend).await },
                );
            }
        )*
        $(
            #[test]
            fn $arc_case() {
                $crate::testing::$runner(
                    concat!(module_path!(), "::", stringify!($arc_case)),
                    $make,
                    |backend| async move { $crate::testing::$module::$arc_case(backend).await },
                );
            }
        )*
    };
}
