//! The `PodRuntime` conformance suite (`pop_core::testing::runtime`) against the in-process runtime:
//! each behaviour is a closure. In-process handlers get the payload as a value (there is no compressed
//! form) and fail with an error, not an exit code: the suite is told so and skips what depends on it.

use pop_core::runtime::PodRuntime;
use pop_core::testing::runtime::{Behaviour, Capabilities, HandlerDef, RuntimeHarness, Skip};
use pop_exec::inprocess::{HandlerContext, HandlerResult, InProcessRuntime};
use serde_json::{Value, json};
use std::sync::Arc;

struct InProcessHarness;

/// What an in-process handler knows of its launch, in the shape of `Behaviour::EchoEnv`.
fn launch_info(ctx: &HandlerContext) -> Result<Value, serde_json::Error> {
    let r = ctx.request();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    Ok(json!({
        "agendaId": r.agenda_id,
        "cid": text(&r.cid),
        "customerId": text(&r.customer_id),
        "operationName": r.operation_name,
        "operationId": text(&r.operation_id),
        "lastProgress": match &r.last_progress {
            Some(p) => serde_json::to_value(p)?,
            None => Value::Null,
        },
    }))
}

async fn behave(ctx: HandlerContext, behaviour: Behaviour) -> HandlerResult {
    match behaviour {
        Behaviour::Succeed(output) => Ok(output),
        Behaviour::ProgressThenSucceed { percents, output } => {
            for p in percents {
                ctx.progress(p);
                tokio::task::yield_now().await;
            }
            Ok(output)
        }
        Behaviour::Fail { diagnostic, .. } => {
            ctx.log(diagnostic.clone());
            Err(diagnostic.into())
        }
        Behaviour::HangUntilCancelled => std::future::pending().await,
        Behaviour::EchoPayload => Ok(ctx.payload().clone()),
        Behaviour::EchoEnv => Ok(launch_info(&ctx)?),
        other => Err(format!("the in-process harness does not know behaviour {other:?}").into()),
    }
}

#[async_trait::async_trait]
impl RuntimeHarness for InProcessHarness {
    async fn runtime(&self, handlers: &[HandlerDef]) -> Result<Arc<dyn PodRuntime>, Skip> {
        let rt = InProcessRuntime::empty();
        for def in handlers {
            let behaviour = def.behaviour.clone();
            rt.register(def.operation_type.clone(), move |ctx| behave(ctx, behaviour.clone()));
        }
        Ok(Arc::new(rt))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            compressed_payload_above: Err(Skip::because(
                "in-process handlers get the payload as a value: there is no compressed form",
            )),
            exit_codes: Err(Skip::because("in-process handlers fail with an error, not an exit code")),
        }
    }
}

pop_core::runtime_conformance!(async { Arc::new(InProcessHarness) });
