//! What every handler shares.

use crate::config::ApiConfig;
use pop_engine::Engine;
use std::sync::Arc;

/// The engine behind the API and the API's settings.
#[derive(Clone)]
pub(crate) struct AppState {
    pub engine: Engine,
    pub config: Arc<ApiConfig>,
}
