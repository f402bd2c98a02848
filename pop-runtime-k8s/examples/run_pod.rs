//! Runs one operation as a Kubernetes Pod, straight through `pop-runtime-k8s` (no POP instance).
//!
//! ```text
//! cargo run -p pop-runtime-k8s --example run_pod -- <registry.json> <operation type> [payload JSON] [namespace]
//! # e.g. with kind or minikube and the deploy/k8s material applied:
//! kubectl apply -f deploy/k8s/rbac.yaml
//! cargo run -p pop-runtime-k8s --example run_pod -- registry.json sample '{"hello": "world"}' pop
//! ```
//!
//! The registry is the original POP's `registry.json` format (`basePodConfig` + one entry per operation
//! type, see `pop_core::registry`). The client is configured from `KUBECONFIG` / `~/.kube/config`, or the
//! in-cluster service account. Every runtime event is printed; the exit status is 0 when the handler
//! succeeded. Ctrl-C cancels the operation (its Pod is deleted).

use futures_util::StreamExt;
use pop_core::registry::HandlerRegistry;
use pop_core::runtime::{LaunchRequest, PodRuntime, RuntimeEvent};
use pop_runtime_k8s::{KubeConfig, KubeRuntime};
use std::process::ExitCode;
use std::sync::Arc;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(registry_path), Some(operation_type)) = (args.first(), args.get(1)) else {
        return Err("usage: k8s <registry.json> <operation type> [payload JSON] [namespace]".into());
    };
    let payload: serde_json::Value = match args.get(2) {
        Some(p) => serde_json::from_str(p).map_err(|e| format!("payload is not JSON: {e}"))?,
        None => serde_json::json!({}),
    };
    let namespace = args.get(3).cloned().unwrap_or_else(|| "pop".into());

    let registry = Arc::new(HandlerRegistry::from_path(registry_path)?);
    let runtime = KubeRuntime::connect(registry, KubeConfig::single_namespace(namespace)).await?;
    let request = LaunchRequest {
        agenda_id: format!("example-{}", uuid::Uuid::new_v4()),
        operation_name: "example".into(),
        operation_type: operation_type.clone(),
        payload,
        ..LaunchRequest::default()
    };
    let launched = runtime.launch(request).await?;
    println!("launched pod {}", launched.handle);
    let mut events = launched.events;
    let mut success = false;
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(RuntimeEvent::Exited(exit)) => {
                    println!("exited: success={} code={:?} {}", exit.success, exit.code, exit.message);
                    if let Some(d) = exit.diagnostic {
                        println!("diagnostic: {}", serde_json::to_string_pretty(&d)?);
                    }
                    success = exit.success;
                }
                Some(RuntimeEvent::Log(stream, line)) => println!("[{stream:?}] {line}"),
                Some(other) => println!("{other:?}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => {
                println!("cancelling {}", launched.handle);
                runtime.cancel(&launched.handle).await?;
            }
        }
    }
    Ok(success)
}
