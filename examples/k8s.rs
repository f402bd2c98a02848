//! A POP instance whose handlers run as Kubernetes Pods.
//!
//! ```text
//! cargo run -p pop-examples --features k8s --example k8s -- <registry.json> <agenda.json>... [--namespace NS]
//! # e.g. with kind or minikube:
//! kind create cluster
//! kubectl apply -f deploy/k8s/rbac.yaml          # namespace `pop`, service accounts, roles
//! kubectl get configmap -n pop pop-registry -o jsonpath='{.data.registry\.json}' > /tmp/registry.json
//! cargo run -p pop-examples --features k8s --example k8s -- /tmp/registry.json examples/agendas/k8s-sample.json
//! ```
//!
//! The instance is embedded: its state is in a temporary sled directory, with one resource pool and one
//! insight that takes the agendas' operation types (`pop::embedded::prepare`). What differs from the
//! quickstart is the runtime: [`PopBuilder::k8s_runtime`](pop::PopBuilder::k8s_runtime) wires a
//! `KubeRuntime` for the registry's operation types (the original POP's `registry.json`: image, args,
//! env, resources, volumes, service account per type), so each operation runs in a Pod of the
//! namespace, with the payload in env vars and its progress and result read from the Pod's log
//! (`POP_PROGRESS` / `POP_RESULT` lines) or its annotations.
//!
//! The Kubernetes client is configured from the environment: `KUBECONFIG` / `~/.kube/config`, or the
//! in-cluster service account. Without a cluster the example stops at once with one line saying so.
//! The progress of every agenda is printed as it changes; the exit status is 0 when all succeeded.
//!
//! To share the state between several workers (e.g. the Deployment in `deploy/k8s/`), use the
//! DynamoDB store instead of sled: `PopBuilder::dynamo` (feature `dynamo`), or `pop worker`.

use pop::core::authz::Principal;
use pop::core::model::{Conclusion, ProcessingState};
use pop::core::registry::HandlerRegistry;
use pop::k8s::KubeConfig;
use std::process::ExitCode;
use std::time::Duration;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("k8s example: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let mut args = std::env::args().skip(1);
    let mut namespace = "pop".to_owned();
    let mut files = Vec::new();
    while let Some(a) = args.next() {
        if a == "--namespace" {
            namespace = args.next().ok_or("--namespace needs a value")?;
        } else {
            files.push(std::path::PathBuf::from(a));
        }
    }
    if files.len() < 2 {
        return Err("usage: k8s <registry.json> <agenda.json>... [--namespace NS]".into());
    }
    let registry_path = files.remove(0);
    let registry =
        HandlerRegistry::from_path(&registry_path).map_err(|e| format!("{}: {e}", registry_path.display()))?;
    let mut agendas = Vec::new();
    for f in &files {
        let mut a = pop::embedded::read_agenda(f).map_err(|e| e.to_string())?;
        if a.customer_id.as_deref().is_none_or(str::is_empty) {
            a.customer_id = Some("k8s-example".into());
        }
        agendas.push(a);
    }

    let data = tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    // Pods for the registry's types; without a cluster this is the one error line.
    let pop = pop::Pop::builder()
        .sled_path(data.path().join("db"))
        .map_err(|e| e.to_string())?
        .k8s_runtime(registry, KubeConfig::single_namespace(namespace.clone()), None)
        .await
        .map_err(|e| format!("no Kubernetes cluster to run Pods on: {e}"))?
        .build()
        .map_err(|e| e.to_string())?;
    pop::embedded::prepare(&pop, &agendas).await.map_err(|e| e.to_string())?;

    let su = Principal::superuser("k8s-example");
    let mut ids = Vec::new();
    for (file, a) in files.iter().zip(agendas) {
        let stored = pop.agendas().submit(&su, a).await.map_err(|e| format!("{}: {e}", file.display()))?;
        let id = stored.id.unwrap_or_default();
        println!("submitted {} as agenda {id}; its operations run as Pods in namespace {namespace}", file.display());
        ids.push(id);
    }
    pop.start_all(pop::embedded::worker());

    let mut last: Vec<Option<(ProcessingState, i64)>> = vec![None; ids.len()];
    let finals = pop::embedded::wait_all(&pop, &ids, Duration::from_millis(500), |all| {
        for (i, p) in all.iter().enumerate() {
            let now = (p.processing_state, p.percent_complete.round() as i64);
            if last[i] != Some(now) {
                println!(
                    "{} {} {}% {}",
                    ids[i],
                    p.processing_state,
                    now.1,
                    p.processing_state_message.as_deref().unwrap_or("")
                );
                last[i] = Some(now);
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    pop.shutdown().await;
    for p in &finals {
        for op in &p.operation_progress {
            println!(
                "  {} {}: {} {}",
                p.agenda_id.as_deref().unwrap_or(""),
                op.operation.as_deref().unwrap_or(""),
                op.processing_state,
                op.processing_state_message.as_deref().unwrap_or("")
            );
        }
    }
    Ok(finals.iter().all(|p| p.conclusion() == Some(Conclusion::Succeeded)))
}
