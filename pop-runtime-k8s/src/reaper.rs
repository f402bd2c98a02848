//! Pod reaper support: listing POP's Pods with their age and phase, and deleting them in batches.

use crate::config::NamespaceScope;
use crate::follow::now_ms;
use crate::labels;
use crate::runtime::KubeRuntime;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use pop_core::Result;
use pop_core::runtime::{LaunchedInfo, LaunchedState};
use std::time::Duration;

/// Namespaces listed at once.
const LIST_CONCURRENCY: usize = 4;

/// What the reaper removes (the original: finished Pods older than `pod.reap.age.minutes`, 1440, in
/// batches of `pod.reap.batch.size`, 50).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReapPolicy {
    /// Finished Pods whose end (or start, when no end is known) is at least this old.
    pub finished_older_than: Duration,
    /// Running or pending Pods started at least this long ago (stuck); `None` leaves them alone.
    pub running_older_than: Option<Duration>,
    /// Deletions issued at once.
    pub batch_size: usize,
}

impl Default for ReapPolicy {
    fn default() -> Self {
        Self { finished_older_than: Duration::from_secs(1440 * 60), running_older_than: None, batch_size: 50 }
    }
}

/// What one reaper pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReapReport {
    /// POP Pods seen.
    pub examined: usize,
    /// Handles deleted (or already gone).
    pub deleted: Vec<String>,
    /// Handles that could not be deleted, with the error.
    pub failed: Vec<(String, String)>,
    /// Where POP's Pods could not be listed (`namespace NS`, `all namespaces`), with the error; their
    /// Pods were not examined.
    pub unlisted: Vec<(String, String)>,
}

fn ms(t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> i64 {
    t.0.as_millisecond()
}

/// A POP Pod as the reaper sees it; `None` for a Pod without name or namespace.
pub fn launched_info(pod: &Pod) -> Option<LaunchedInfo> {
    let name = pod.metadata.name.clone()?;
    let namespace = pod.metadata.namespace.clone()?;
    let text = |ann: &str, label: &str| {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ann))
            .or_else(|| pod.metadata.labels.as_ref().and_then(|l| l.get(label)))
            .cloned()
            .unwrap_or_default()
    };
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    let state = if matches!(phase, "Succeeded" | "Failed") { LaunchedState::Finished } else { LaunchedState::Running };
    let started = status
        .and_then(|s| s.start_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(ms)
        .unwrap_or_default();
    let finished = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref().map(ms))
        .max();
    Some(LaunchedInfo {
        handle: format!("{namespace}/{name}"),
        agenda_id: text(labels::ANN_AGENDA, labels::AGENDA),
        operation_name: text(labels::ANN_OPERATION, labels::OPERATION),
        operation_type: text(labels::ANN_OPERATION_TYPE, labels::OPERATION_TYPE),
        state,
        started,
        finished: if state == LaunchedState::Finished { finished } else { None },
    })
}

impl KubeRuntime {
    /// The label selector of POP's Pods.
    pub fn selector(&self) -> String {
        format!("{}={}", labels::MANAGED_BY, labels::label_value(&self.config.managed_by))
    }

    /// POP's Pods in every namespace the runtime may use ([`NamespaceMode::scope`]): a list in each
    /// configured namespace, or for the prefix modes one cluster-wide list kept to the namespaces the
    /// mode could have chosen; page by page.
    ///
    /// A namespace that cannot be listed (after the retries) is logged at warn and left out, so that one
    /// namespace with broken RBAC does not hide every other namespace's Pods from the reaper; when no
    /// namespace can be listed, the (first) error is returned.
    ///
    /// [`NamespaceMode::scope`]: crate::NamespaceMode::scope
    pub async fn list_pods(&self) -> Result<Vec<Pod>> {
        let (pods, unlisted) = self.list_everywhere().await?;
        for (scope, e) in &unlisted {
            tracing::warn!(scope = %scope, error = %e, "could not list POP's pods there; they are left out");
        }
        Ok(pods)
    }

    /// The Pods of every scope, and each scope that failed with its error; `Err` when all failed.
    async fn list_everywhere(&self) -> Result<(Vec<Pod>, Vec<(String, String)>)> {
        use futures_util::StreamExt;
        self.check_namespaces()?;
        let scopes: Vec<(Api<Pod>, String)> = match self.config.namespace.scope() {
            NamespaceScope::Namespaces(all) => {
                all.into_iter().map(|ns| (self.pods(&ns), format!("namespace {ns}"))).collect()
            }
            NamespaceScope::Prefixed { .. } => vec![(Api::all(self.client.clone()), "all namespaces".to_string())],
        };
        let count = scopes.len();
        let results: Vec<(String, Result<Vec<Pod>>)> = futures_util::stream::iter(scopes)
            .map(|(api, scope)| async move {
                let r = self.list_in(api, &scope).await;
                (scope, r)
            })
            .buffer_unordered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut pods = Vec::new();
        let mut failed = Vec::new();
        let mut first_error = None;
        for (scope, result) in results {
            match result {
                Ok(found) => {
                    pods.extend(found.into_iter().filter(|p| {
                        p.metadata.namespace.as_deref().is_some_and(|ns| self.config.namespace.may_use(ns))
                    }))
                }
                Err(e) => {
                    failed.push((scope, e.to_string()));
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) if failed.len() == count => Err(e),
            _ => Ok((pods, failed)),
        }
    }

    /// POP's Pods that one Api (a namespace, or the cluster) lists, page by page.
    async fn list_in(&self, api: Api<Pod>, scope: &str) -> Result<Vec<Pod>> {
        let selector = self.selector();
        let mut pods = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut params = ListParams::default().labels(&selector).limit(500);
            if let Some(t) = &token {
                params = params.continue_token(t);
            }
            let action = format!("list pods {selector} in {scope}");
            let page = crate::retry::with_retry(&self.config.retry, &action, |_| {
                let api = api.clone();
                let params = params.clone();
                async move { api.list(&params).await }
            })
            .await?;
            token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
            pods.extend(page.items);
            if token.is_none() {
                return Ok(pods);
            }
        }
    }

    /// Deletes these Pods, `batch_size` at a time; returns what was deleted and what failed.
    pub async fn delete_in_batches(&self, handles: &[String], batch_size: usize) -> ReapReport {
        let mut report = ReapReport::default();
        for batch in handles.chunks(batch_size.max(1)) {
            let results = futures_util::future::join_all(batch.iter().map(|h| self.delete_pod(h))).await;
            for (handle, result) in batch.iter().zip(results) {
                match result {
                    Ok(()) => report.deleted.push(handle.clone()),
                    Err(e) => report.failed.push((handle.clone(), e.to_string())),
                }
            }
        }
        report
    }

    /// One reaper pass: lists POP's Pods in every namespace the runtime may use and deletes those the
    /// policy selects. Namespaces that could not be listed are in the report's `unlisted` (and logged);
    /// when none could be, the pass fails.
    pub async fn reap(&self, policy: ReapPolicy) -> Result<ReapReport> {
        let (pods, unlisted) = self.list_everywhere().await?;
        for (scope, e) in &unlisted {
            tracing::warn!(scope = %scope, error = %e, "pod reaper: could not list POP's pods there");
        }
        let infos: Vec<LaunchedInfo> = pods.iter().filter_map(launched_info).collect();
        let now = now_ms();
        let age = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let doomed: Vec<String> = infos
            .iter()
            .filter(|i| match i.state {
                LaunchedState::Finished => now - i.finished.unwrap_or(i.started) >= age(policy.finished_older_than),
                LaunchedState::Running => policy.running_older_than.is_some_and(|d| now - i.started >= age(d)),
            })
            .map(|i| i.handle.clone())
            .collect();
        let mut report = self.delete_in_batches(&doomed, policy.batch_size).await;
        report.examined = infos.len();
        report.unlisted = unlisted;
        Ok(report)
    }
}
