//! What the API shows of stored rows.

use std::collections::BTreeMap;

use deploytime_core::time::{format_rfc3339, from_micros, micros_to_seconds};
use serde::Serialize;

use crate::db::models::{DeploymentRow, EventRow};

#[derive(Debug, Serialize)]
pub struct DeploymentView {
    pub id: String,
    pub component: String,
    pub environment: String,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub state: String,
    pub status: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_seconds: Option<f64>,
}

impl From<&DeploymentRow> for DeploymentView {
    fn from(row: &DeploymentRow) -> Self {
        Self {
            id: row.id.clone(),
            component: row.component.clone(),
            environment: row.environment.clone(),
            version: row.version.clone(),
            owner: row.owner.clone(),
            state: row.state.clone(),
            status: row.status.clone(),
            started_at: row.started_at.map(|t| format_rfc3339(from_micros(t))),
            finished_at: row.finished_at.map(|t| format_rfc3339(from_micros(t))),
            duration_seconds: row.duration_us.map(micros_to_seconds),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EventView {
    pub id: String,
    pub deployment_id: String,
    pub phase: String,
    pub component: String,
    pub environment: String,
    pub status: Option<String>,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub timestamp: String,
    pub received_at: String,
    pub attributes: BTreeMap<String, String>,
}

impl From<&EventRow> for EventView {
    fn from(row: &EventRow) -> Self {
        Self {
            id: row.id.clone(),
            deployment_id: row.deployment_id.clone(),
            phase: row.phase.clone(),
            component: row.component.clone(),
            environment: row.environment.clone(),
            status: row.status.clone(),
            version: row.version.clone(),
            owner: row.owner.clone(),
            timestamp: format_rfc3339(from_micros(row.occurred_at)),
            received_at: format_rfc3339(from_micros(row.received_at)),
            attributes: row.attributes_map(),
        }
    }
}

/// A deployment with the events that made it.
#[derive(Debug, Serialize)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: DeploymentView,
    pub events: Vec<EventView>,
}
