use super::{Millis, is_zero_i32, null_default};
use serde::{Deserialize, Serialize};

/// Work waiting to be queued (`ReadyAgenda`): one entry per agenda at most.
///
/// The original's SQS message body is exactly this JSON; `priority` is our extension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadyAgenda {
    /// Entry id.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub id: String,
    /// The insight whose ready set holds it.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub insight_id: String,
    /// The agenda.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub agenda_id: String,
    /// The agenda's customer.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub customer_id: String,
    /// When it became ready, epoch ms.
    #[serde(deserialize_with = "null_default")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub added: Millis,
    /// The agenda's priority (extension).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "is_zero_i32")]
    #[cfg_attr(feature = "openapi", schema(nullable))]
    pub priority: i32,
}

impl ReadyAgenda {
    /// The order of a customer's ready list: priority descending, then added ascending, then agenda id.
    pub fn order_key(&self) -> (std::cmp::Reverse<i32>, Millis, &str) {
        (std::cmp::Reverse(self.priority), self.added, &self.agenda_id)
    }
}
