//! Two POP instances in one process sharing DynamoDB: one state, one scheduler per insight, work on
//! both.
//!
//! Both instances are built on the same tables (same endpoint and table prefix) and both run the
//! scheduler, the reclaimer and a pool worker for the insights `red` and `blue`. The scheduler of each
//! insight is held by a named store lease, so exactly one instance schedules it at a time; the pool
//! workers of both instances lease agendas from the shared queues, so agendas finish on both. Each
//! instance's handler reports which instance ran it.
//!
//! Needs a DynamoDB-compatible server: `eval "$(bash .ci/dynamo.sh)"` starts one on loopback (moto)
//! and sets `POP_DYNAMODB_ENDPOINT`; unset, the example says so and exits 0. Against AWS, build the
//! instances with `DynamoConfig::aws()` instead.
//!
//! Run: `cargo run -p pop-examples --features dynamo --example multi_instance`

use pop_examples::{BoxError, Out};

/// The environment variable naming the DynamoDB endpoint.
pub const ENDPOINT_VAR: &str = "POP_DYNAMODB_ENDPOINT";

/// Runs the example (or explains why it cannot).
pub async fn run(mut out: Out) -> Result<Out, BoxError> {
    let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.trim().is_empty()) else {
        out.say(format!(
            "skipped: {ENDPOINT_VAR} is unset; `eval \"$(bash .ci/dynamo.sh)\"` starts a local DynamoDB-compatible server"
        ));
        return Ok(out);
    };
    shared::run(out, &endpoint).await
}

#[cfg(not(feature = "dynamo"))]
mod shared {
    use super::*;

    pub(super) async fn run(mut out: Out, _endpoint: &str) -> Result<Out, BoxError> {
        out.say("skipped: build with `--features dynamo` (cargo run -p pop-examples --features dynamo --example multi_instance)");
        Ok(out)
    }
}

#[cfg(feature = "dynamo")]
mod shared {
    use super::*;
    use pop::core::authz::Principal;
    use pop::core::model::{Agenda, Conclusion, Customer, Insight, Operation, ResourcePool};
    use pop::dynamo::DynamoConfig;
    use pop::{Pop, PopConfig, RuntimeRouter, WorkerConfig};
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    const INSIGHTS: [&str; 2] = ["red", "blue"];
    const PER_INSIGHT: usize = 8;

    /// One instance on the shared tables; its handlers say which instance ran them.
    async fn instance(config: DynamoConfig, name: &'static str) -> Result<Pop, BoxError> {
        let handlers = pop::exec::inprocess::InProcessRuntime::new();
        for insight in INSIGHTS {
            handlers.register(insight, move |_ctx| async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(json!({"ranOn": name}))
            });
        }
        let config_ = PopConfig {
            instance_id: name.into(),
            scheduler_interval: Duration::from_millis(100),
            ..PopConfig::default()
        };
        // `dynamo` creates the tables where missing: safe from both instances.
        Ok(Pop::builder()
            .dynamo(config)
            .await?
            .runtime(Arc::new(RuntimeRouter::new().with(Arc::new(handlers))))
            .config(config_)
            .build()?)
    }

    pub(super) async fn run(mut out: Out, endpoint: &str) -> Result<Out, BoxError> {
        // A fresh table prefix per run, so that runs never see each other's data.
        let prefix = format!("example{}_", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let config = DynamoConfig::local(endpoint).table_prefix(prefix.clone());
        let a = instance(config.clone(), "a").await?;
        let b = instance(config, "b").await?;
        out.say(format!("two instances on DynamoDB at {endpoint}, tables {prefix}*"));

        // The setup goes through instance a; b sees it at once (one state).
        let admin = Principal::superuser("example");
        let owner = Some("operator".to_owned());
        let pool = ResourcePool {
            id: Some("pool".into()),
            title: Some("pool".into()),
            customer_id: owner.clone(),
            ..Default::default()
        };
        a.objects().create(&admin, pool).await?;
        for insight in INSIGHTS {
            let i = Insight {
                id: Some(insight.into()),
                title: Some(insight.into()),
                customer_id: owner.clone(),
                resource_pool_id: Some("pool".into()),
                is_global: true,
                mappers: [("operationType".to_owned(), vec![insight.to_owned()])].into(),
                ..Default::default()
            };
            a.objects().create(&admin, i).await?;
        }
        let customer = Customer {
            id: Some("acme".into()),
            title: Some("acme".into()),
            customer_id: Some("acme".into()),
            resource_pool_id: Some("pool".into()),
            ..Default::default()
        };
        a.objects().create(&admin, customer).await?;

        // Submissions through either instance.
        let mut ids = Vec::new();
        for n in 0..PER_INSIGHT {
            for (insight, via) in INSIGHTS.iter().zip([&a, &b]) {
                let agenda = Agenda {
                    customer_id: Some("acme".into()),
                    operations: vec![Operation {
                        name: "step".into(),
                        op_type: (*insight).into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                ids.push(via.agendas().submit(&admin, agenda).await?.id.unwrap_or_default());
            }
            let _ = n;
        }
        // Both instances run a scheduler, a reclaimer and a worker for both insights.
        let worker = WorkerConfig { max_running: 2, pull_count: 2, ..WorkerConfig::for_insights(INSIGHTS) };
        a.start_all(worker.clone());
        b.start_all(worker);
        let finals = pop::embedded::wait_all(&a, &ids, Duration::from_millis(200), |_| {}).await?;

        // Who scheduled each insight: the holder of its scheduler lease (acquiring a lease one already
        // holds only renews it, so asking as each holder in turn changes nothing).
        for insight in INSIGHTS {
            let name = format!("scheduler/{insight}");
            let now = a.clock().now();
            let mut holder = "nobody";
            for (candidate, pop) in [("a", &a), ("b", &b)] {
                if pop.store().lease_acquire(&name, candidate, 30_000, now).await? {
                    holder = candidate;
                    break;
                }
            }
            out.say(format!("scheduler of insight {insight}: instance {holder}"));
        }
        a.shutdown().await;
        b.shutdown().await;

        let mut ran_on: BTreeMap<String, usize> = BTreeMap::new();
        for p in &finals {
            if p.conclusion() != Some(Conclusion::Succeeded) {
                return Err(format!("agenda {:?} did not succeed", p.agenda_id).into());
            }
            let result = p.operation_progress.first().and_then(|o| o.result_payload.as_deref()).unwrap_or("{}");
            let v: serde_json::Value = serde_json::from_str(result)?;
            *ran_on.entry(v["ranOn"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        out.say(format!("{} of {} agendas succeeded", finals.len(), ids.len()));
        for (instance, n) in &ran_on {
            out.say(format!("agendas run by instance {instance}: {n}"));
        }
        Ok(out)
    }
}

/// Runs the example on stdout.
pub fn main() -> std::process::ExitCode {
    pop_examples::main_with("multi_instance", run)
}
