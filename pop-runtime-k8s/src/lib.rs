//! # pop-runtime-k8s: handlers as Kubernetes Pods
//!
//! [`KubeRuntime`] implements POP's [`PodRuntime`](pop_core::runtime::PodRuntime): each operation runs in a
//! Pod whose image and resources come from the handler registry (`registry.json`, layered as in the
//! original POP: CORE defaults ⊕ `basePodConfig` ⊕ the type's `podConfig`; the registry keeps the Pod
//! config as JSON and [`PodConfig`] gives it its type here).
//!
//! | ability | how |
//! |---|---|
//! | Pod spec | image, args, env, CPU request/limit, memory request/limit, config-map and NFS volumes, `log` emptyDir, service account, labels, `imagePullPolicy: Always`, privileged, tainted-node affinity + toleration, zone node selector, exec liveness probe, `restartPolicy: Never` ([`podspec`]) |
//! | labels | `app.kubernetes.io/managed-by=pop`, `app=<namePrefix>`, `pop/agenda-id`, `pop/operation-name`, `pop/operation-type`, `pop/customer-id`, `pop/insight-id` (values sanitized to label rules; the exact values are kept in annotations of the same names) |
//! | input | the [handler protocol](pop_handler_protocol): `PAYLOAD` or zlib+base64 `POP_COMPRESSED_PAYLOAD_0..N` with `POP_PAYLOAD_TYPE`, `AGENDA_ID`, `CID`, `CUSTOMER_ID`, `PROGRESS_ID`, `OPERATION_NAME`, `OPERATION_ID` (ids the request lacks are left out, as the original did), `LOG_LEVEL`, `LAST_PROGRESS`; and from the downward API `MY_POD_NAME`, `MY_POD_NAMESPACE` (and `MY_POD_IP` for the liveness probe) |
//! | output | `POP_PROGRESS {json}` / `POP_RESULT {json}` log lines (bounded by [`KubeConfig::max_line_bytes`] / [`KubeConfig::max_result_bytes`]), and the original's annotations `pop.report.progress` / `pop.report.payload` ([`annotations`]) |
//! | following | a watch of the Pod (no polling) and a followed log stream with timestamps (reconnects without repeating lines) |
//! | failures | scheduling timeout (with the `PodScheduled` condition's reason or the waiting container's), log-silence timeout, phase `Failed` (last log lines as the diagnostic), deletion by someone else, API errors retried with bounded backoff |
//! | cleanup | deletion when finished if `reapCompletedPods`; cancel deletes the Pod; [`KubeRuntime::reap`] lists POP's Pods by label and deletes in batches |
//! | namespaces | one for all, one per customer or per insight, or explicit customer / insight maps with a default ([`NamespaceMode`]; names checked as DNS-1123 labels); listing and the reaper look in every namespace the mode may use ([`namespace`]) |
//!
//! ## Outcome rules
//!
//! * A handler's `pop.report.progress` annotation that says `COMPLETE` decides the outcome, as in the
//!   original (`succeeded` → success, anything else → failure with its last diagnostic), even when the
//!   Pod's phase says otherwise or its log went silent after it.
//! * Otherwise a broken output rule fails the operation, as it does for a local process: a malformed or
//!   oversized `POP_RESULT` line, or a log line over [`KubeConfig::max_line_bytes`] (the first one seen
//!   is the message). A malformed `POP_PROGRESS` line is logged and ignored.
//! * Otherwise the Pod's phase decides: `Succeeded` → success; `Failed` → failure "Kubernetes pod failed:
//!   ns/name (exit code N, reason)" with the last [`KubeConfig::log_tail_lines`] log lines (not the
//!   protocol's lines; each cut to 2 048 bytes) as the diagnostic's payload.
//! * Output: every `POP_RESULT` line becomes an `Output` event; a `pop.report.payload` annotation is read
//!   at the end and emitted last, so **the annotation wins** when both are present (it is the value the
//!   handler stored deliberately through the API, and logs can be cut by log rotation).
//! * Every `pop.report.progress` change seen by the watch becomes a `Progress` event.
//! * The original's end-of-log marker (`HandlerComplete`) is not waited for: the followed log stream ends
//!   when the container ends, and a bounded drain ([`KubeConfig::log_drain_timeout`]) collects the rest.
//! * Config-map volume entries without a config map name (the CORE entry of a type without
//!   `configMapName`) are left out instead of producing a Pod the API would reject.
//!
//! * Registry fields read but not acted on: `podRetryCount` / `retryDelayMilliSecs` (a failed Pod is not
//!   relaunched here; operation retries belong to the executor), `logLineExpectation`,
//!   `enableOutputScraping`, `endOfLogIdentifier`, `logback`.
//! * A Pod stopped by someone else's graceful deletion (it has a `deletionTimestamp` when it ends) fails
//!   with a message that says so, besides its exit code.
//!
//! ## Permissions
//!
//! The worker's service account needs `pods` create/get/list/watch/delete and `pods/log` get in the
//! handler namespace(s) (see `deploy/k8s/`: `rbac-handler-namespace.yaml` is the Role + RoleBinding to
//! apply in each namespace). With one namespace (`Single`) or explicit maps (`Mapped`) the namespaces are
//! known and each is listed on its own, so Roles suffice. With one namespace per customer or per insight
//! the names come from ids seen at run time and listing for the reaper spans the cluster: it needs
//! `list` on pods in a ClusterRole (`rbac-cluster-list.yaml`).
//!
//! ```no_run
//! use pop_core::registry::HandlerRegistry;
//! use pop_core::runtime::{LaunchRequest, PodRuntime, RuntimeEvent};
//! use pop_runtime_k8s::{KubeConfig, KubeRuntime};
//! use futures_util::StreamExt;
//! use std::sync::Arc;
//!
//! # async fn run() -> pop_core::Result<()> {
//! let registry = Arc::new(HandlerRegistry::from_path("registry.json")?);
//! let runtime = KubeRuntime::connect(registry, KubeConfig::single_namespace("pop")).await?;
//! let launched = runtime
//!     .launch(LaunchRequest {
//!         agenda_id: "a-1".into(),
//!         operation_name: "probe".into(),
//!         operation_type: "sample".into(),
//!         payload: serde_json::json!({"actions": []}),
//!         ..LaunchRequest::default()
//!     })
//!     .await?;
//! let mut events = launched.events;
//! while let Some(event) = events.next().await {
//!     if let RuntimeEvent::Exited(exit) = event {
//!         println!("{}: {}", launched.handle, exit.message);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

pub mod annotations;
pub mod config;
pub mod error;
mod follow;
pub mod labels;
pub mod namespace;
pub mod podconfig;
pub mod podspec;
pub mod reaper;
mod retry;
mod runtime;

pub use config::{KubeConfig, NameGenerator, PayloadMode, RetryPolicy, sequential_names, uuid_names};
pub use error::KubeError;
pub use namespace::{NamespaceMode, NamespaceScope};
pub use podconfig::PodConfig;
pub use reaper::{ReapPolicy, ReapReport, launched_info};
pub use runtime::{KubeRuntime, split_handle};

/// Installs rustls' `ring` crypto provider as the process default, unless one is installed already.
///
/// kube's client uses rustls. When another crate in the same build enables a second rustls provider
/// (the AWS SDK of `pop-store-dynamo` enables `aws-lc-rs`), rustls cannot pick one by itself and a
/// client built without a default panics. [`KubeRuntime::connect`] calls this; call it yourself
/// before building a `kube::Client` of your own.
pub fn ensure_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
