//! One operation type, three ways to run it: an in-process Rust handler, a local process, a Pod.
//!
//! The handler registry (the original POP's `registry.json`, a superset) describes the type
//! `thumbnail` twice: as a local process (`process`: `examples/handlers/thumbnail.sh`) and as a
//! Kubernetes Pod (`podConfig`: image, resources). Which one runs is the runtime's choice: a
//! [`pop::RuntimeRouter`] asks its runtimes in order and the first that supports the
//! type wins.
//!
//! 1. In-process first: a Rust closure registered for `thumbnail` runs it (no process at all).
//! 2. Without that closure, the process runtime built from the registry runs the shell script, which
//!    speaks the handler protocol (`$PAYLOAD` in, `POP_PROGRESS` / `POP_RESULT` lines out).
//! 3. The Kubernetes runtime would run the same registry entry as a Pod; there is no cluster here, so
//!    the example prints the Pod it would create (with `--features k8s`; without it, the registry's
//!    `podConfig`).
//!
//! Run: `cargo run -p pop-examples --features k8s --example handlers`

use pop::core::authz::Principal;
use pop::core::model::{Agenda, Conclusion};
use pop::core::registry::HandlerRegistry;
use pop::core::runtime::PodRuntime;
use pop::{Pop, RuntimeRouter};
use pop_examples::{BoxError, Out};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The registry: `thumbnail` as a local process and as a Pod.
pub fn registry() -> Result<HandlerRegistry, BoxError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers").join("thumbnail.sh");
    let doc = json!({
        "thumbnail": {
            "process": {"command": "sh", "args": [script], "timeoutMs": 10000},
            "podConfig": {"imageName": "registry.example/thumbnail:1.0", "cpuMinRequestCount": "250m",
                          "cpuMaxRequestCount": "1", "memoryRequestCount": "256Mi"}
        }
    });
    Ok(HandlerRegistry::from_value(doc, "handlers example registry")?)
}

/// Runs one `thumbnail` agenda on a fresh embedded instance with `runtime`; returns its result.
async fn run_once(runtime: RuntimeRouter) -> Result<String, BoxError> {
    let data = tempfile::tempdir()?;
    let pop = Pop::builder().sled_path(data.path())?.runtime(Arc::new(runtime)).build()?;
    let agenda: Agenda = serde_json::from_value(json!({"customerId": "acme", "operations": [
        {"name": "thumb", "type": "thumbnail", "payload": {"in": "cat.jpg"}}]}))?;
    pop::embedded::prepare(&pop, std::slice::from_ref(&agenda)).await?;
    let admin = Principal::superuser("example");
    let id = pop.agendas().submit(&admin, agenda).await?.id.unwrap_or_default();
    pop.start_all(pop::embedded::worker());
    let progress = pop::embedded::wait_all(&pop, &[id], Duration::from_millis(50), |_| {}).await?.remove(0);
    pop.shutdown().await;
    let op = progress.operation_progress.first().ok_or("no operation progress")?;
    if progress.conclusion() != Some(Conclusion::Succeeded) {
        return Err(format!("thumbnail failed: {:?}", op.diagnostic_events).into());
    }
    Ok(op.result_payload.clone().unwrap_or_default())
}

/// Runs the example.
pub async fn run(mut out: Out) -> Result<Out, BoxError> {
    let registry = registry()?;

    // 1. A resident Rust handler, asked first.
    let resident = pop::exec::inprocess::InProcessRuntime::new();
    resident.register("thumbnail", |ctx| async move {
        let input = ctx.payload()["in"].as_str().unwrap_or("?").to_owned();
        Ok(json!({"runtime": "in-process", "file": input.replace(".jpg", ".png")}))
    });
    let process = pop::process::ProcessRuntime::new(registry.clone());
    out.say(format!("1. in-process handler registered: {}", resident.supports("thumbnail")));
    let router = RuntimeRouter::new().with(Arc::new(resident)).with(Arc::new(process.clone()));
    out.say(format!("   result: {}", run_once(router).await?));

    // 2. The same type from the registry's `process` entry: the shell script runs.
    let resident = pop::exec::inprocess::InProcessRuntime::new(); // logMessages, updateAgenda only
    out.say(format!(
        "2. in-process handler registered: {}; the registry's process entry runs",
        resident.supports("thumbnail")
    ));
    let router = RuntimeRouter::new().with(Arc::new(resident)).with(Arc::new(process));
    out.say(format!("   result: {}", run_once(router).await?));

    // 3. The registry's `podConfig`: the Pod the Kubernetes runtime would create (not run).
    out.say("3. as a Kubernetes Pod (not run: no cluster):");
    out.say(pod_spec(&registry)?);
    Ok(out)
}

/// The Pod the Kubernetes runtime builds for one `thumbnail` operation.
#[cfg(feature = "k8s")]
fn pod_spec(registry: &HandlerRegistry) -> Result<String, BoxError> {
    use pop::core::runtime::LaunchRequest;
    let request = LaunchRequest {
        agenda_id: "agenda-1".into(),
        customer_id: Some("acme".into()),
        operation_name: "thumb".into(),
        operation_type: "thumbnail".into(),
        payload: json!({"in": "cat.jpg"}),
        ..Default::default()
    };
    let config = pop::k8s::KubeConfig::single_namespace("pop");
    let pod = pop::k8s::podspec::build_pod(registry.handler("thumbnail")?, &request, &config, "example", "pop")?;
    Ok(serde_json::to_string_pretty(&pod)?)
}

/// Without the `k8s` feature: the registry's Pod config, which the Kubernetes runtime would turn into
/// a Pod.
#[cfg(not(feature = "k8s"))]
fn pod_spec(registry: &HandlerRegistry) -> Result<String, BoxError> {
    let config = serde_json::to_string_pretty(&registry.handler("thumbnail")?.pod_config)?;
    Ok(format!("podConfig (build with --features k8s to print the whole Pod):\n{config}"))
}

/// Runs the example on stdout.
pub fn main() -> std::process::ExitCode {
    pop_examples::main_with("handlers", run)
}
