//! Combining runtimes: each operation goes to the first runtime that supports its type.

use async_trait::async_trait;
use pop_core::runtime::{LaunchRequest, Launched, LaunchedInfo, PodRuntime};
use pop_core::{Error, Problem, Result};
use std::sync::Arc;

/// Routes operations by type to the first runtime that supports it (e.g. in-process resident
/// handlers first, then local processes). Handles are prefixed with the runtime's index.
#[derive(Clone, Default)]
pub struct RuntimeRouter {
    runtimes: Vec<Arc<dyn PodRuntime>>,
}

impl RuntimeRouter {
    /// An empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a runtime; earlier ones win.
    pub fn with(mut self, runtime: Arc<dyn PodRuntime>) -> Self {
        self.runtimes.push(runtime);
        self
    }

    fn split<'h>(&self, handle: &'h str) -> Option<(&Arc<dyn PodRuntime>, &'h str)> {
        let (idx, rest) = handle.split_once(':')?;
        let idx: usize = idx.parse().ok()?;
        self.runtimes.get(idx).map(|r| (r, rest))
    }
}

#[async_trait]
impl PodRuntime for RuntimeRouter {
    fn name(&self) -> &str {
        "router"
    }

    fn supports(&self, operation_type: &str) -> bool {
        self.runtimes.iter().any(|r| r.supports(operation_type))
    }

    async fn launch(&self, request: LaunchRequest) -> Result<Launched> {
        let Some((idx, runtime)) = self.runtimes.iter().enumerate().find(|(_, r)| r.supports(&request.operation_type))
        else {
            let names: Vec<&str> = self.runtimes.iter().map(|r| r.name()).collect();
            return Err(Error::problems(vec![Problem::in_operation(
                request.operation_name.clone(),
                format!(
                    "no handler for operation type `{}` in the configured runtimes ({}): add it to the handler registry",
                    request.operation_type,
                    names.join(", ")
                ),
            )
            .field("type")]));
        };
        let mut launched = runtime.launch(request).await?;
        launched.handle = format!("{idx}:{}", launched.handle);
        Ok(launched)
    }

    async fn cancel(&self, handle: &str) -> Result<()> {
        match self.split(handle) {
            Some((r, h)) => r.cancel(h).await,
            None => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<LaunchedInfo>> {
        let mut out = Vec::new();
        for (idx, r) in self.runtimes.iter().enumerate() {
            for mut info in r.list().await? {
                info.handle = format!("{idx}:{}", info.handle);
                out.push(info);
            }
        }
        Ok(out)
    }

    async fn cleanup(&self, handle: &str) -> Result<()> {
        match self.split(handle) {
            Some((r, h)) => r.cleanup(h).await,
            None => Ok(()),
        }
    }
}
