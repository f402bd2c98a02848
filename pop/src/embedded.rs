//! A ready-made embedded instance: sled in a directory, resident handlers in process, every other
//! handler as a local process from a registry. What the `pop` CLI and the quickstart use.

use crate::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
use pop_core::authz::Principal;
use pop_core::model::{Agenda, AgendaProgress, Customer, Insight, ProcessingState, ResourcePool};
use pop_core::registry::HandlerRegistry;
use pop_core::store::StoreExt;
use pop_core::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The pool the embedded helpers create.
pub const POOL: &str = "local";
/// The insight the embedded helpers create.
pub const INSIGHT: &str = "local";
/// The owner of the embedded pool and insight.
pub const OPERATOR: &str = "local-operator";

/// Resident (in-process) handlers first, then local processes from `registry`.
pub fn runtime(registry: HandlerRegistry) -> RuntimeRouter {
    RuntimeRouter::new()
        .with(Arc::new(pop_exec::inprocess::InProcessRuntime::new()))
        .with(Arc::new(pop_runtime_process::ProcessRuntime::new(registry)))
}

/// Opens an embedded instance on `data_dir` with `registry`.
pub fn open(data_dir: &Path, registry: HandlerRegistry, config: PopConfig) -> Result<Pop> {
    Pop::builder().sled_path(data_dir)?.runtime(Arc::new(runtime(registry))).config(config).build()
}

/// Creates (if missing) the local pool, a global insight that takes every operation type of
/// `agendas`, and a self-owned customer for every customerId they name.
pub async fn prepare(pop: &Pop, agendas: &[Agenda]) -> Result<()> {
    let su = Principal::superuser("pop-cli");
    let objects = pop.objects();
    if pop.store().get_obj::<ResourcePool>(POOL).await?.is_none() {
        objects
            .create(
                &su,
                ResourcePool {
                    id: Some(POOL.into()),
                    customer_id: Some(OPERATOR.into()),
                    title: Some(POOL.into()),
                    ..Default::default()
                },
            )
            .await?;
    }
    let types: BTreeSet<String> = agendas.iter().flat_map(|a| a.operations.iter().map(|o| o.op_type.clone())).collect();
    let mut insight = pop.store().get_obj::<Insight>(INSIGHT).await?.unwrap_or_else(|| Insight {
        id: Some(INSIGHT.into()),
        customer_id: Some(OPERATOR.into()),
        title: Some(INSIGHT.into()),
        resource_pool_id: Some(POOL.into()),
        is_global: true,
        queue_size: Some(100),
        ..Default::default()
    });
    let known: BTreeSet<String> = insight.mappers.get("operationType").into_iter().flatten().cloned().collect();
    if insight.version == 0 || !types.is_subset(&known) {
        insight.mappers.insert("operationType".into(), known.union(&types).cloned().collect());
        if insight.version == 0 {
            objects.create(&su, insight).await?;
        } else {
            objects.update(&su, insight).await?;
        }
    }
    for a in agendas {
        let Some(c) = a.customer_id.as_deref() else { continue };
        if pop.store().get_obj::<Customer>(c).await?.is_none() {
            objects
                .create(
                    &su,
                    Customer {
                        id: Some(c.into()),
                        customer_id: Some(c.into()),
                        title: Some(c.into()),
                        resource_pool_id: Some(POOL.into()),
                        ..Default::default()
                    },
                )
                .await?;
        }
    }
    Ok(())
}

/// The worker configuration of the embedded instance.
pub fn worker() -> WorkerConfig {
    WorkerConfig::for_insights([INSIGHT])
}

/// Waits until every agenda is COMPLETE, calling `on_tick` with the current progress about every
/// `tick`; returns the final progress (with operation progress) in the order given.
pub async fn wait_all(
    pop: &Pop,
    agenda_ids: &[String],
    tick: Duration,
    mut on_tick: impl FnMut(&[AgendaProgress]),
) -> Result<Vec<AgendaProgress>> {
    let su = Principal::superuser("pop-cli");
    loop {
        let mut all = Vec::with_capacity(agenda_ids.len());
        for id in agenda_ids {
            all.push(pop.progress().agenda_progress(&su, id).await?);
        }
        on_tick(&all);
        if all.iter().all(|p| p.processing_state == ProcessingState::Complete) {
            return Ok(all);
        }
        tokio::time::sleep(tick).await;
    }
}

/// Reads an agenda file, naming the file in errors.
pub fn read_agenda(path: &Path) -> Result<Agenda> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::invalid(format!("{}: cannot read: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::invalid(format!("{}: not an agenda: {e}", path.display())))
}
