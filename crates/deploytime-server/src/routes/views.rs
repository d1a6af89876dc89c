//! What the API shows of stored rows.

use std::collections::BTreeMap;

use deploytime_core::time::{format_rfc3339, from_micros, micros_to_seconds};
use serde::Serialize;

use crate::db::models::{DeploymentRow, EventRow};

/// A deployment: a start and a finish paired, or one of them so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentView {
    pub id: String,
    pub component: String,
    pub environment: String,
    pub version: Option<String>,
    pub owner: Option<String>,
    /// running, succeeded, failed, cancelled or abandoned.
    pub state: String,
    /// The finish's status: success, cancelled or an error code.
    pub status: Option<String>,
    /// RFC 3339, microseconds.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Present once both ends are known.
    pub duration_seconds: Option<f64>,
}

impl DeploymentView {
    /// The deployment as reported: a `running` deployment started before
    /// `abandon_cutoff` (microseconds) is shown as `abandoned`.
    pub fn of(row: &DeploymentRow, abandon_cutoff: i64) -> Self {
        Self {
            id: row.id.clone(),
            component: row.component.clone(),
            environment: row.environment.clone(),
            version: row.version.clone(),
            owner: row.owner.clone(),
            state: if is_abandoned(row, abandon_cutoff) {
                "abandoned".to_owned()
            } else {
                row.state.clone()
            },
            status: row.status.clone(),
            started_at: row.started_at.map(|t| format_rfc3339(from_micros(t))),
            finished_at: row.finished_at.map(|t| format_rfc3339(from_micros(t))),
            duration_seconds: row.duration_us.map(micros_to_seconds),
        }
    }
}

/// Whether a stored deployment counts as abandoned at this cut-off.
pub fn is_abandoned(row: &DeploymentRow, abandon_cutoff: i64) -> bool {
    is_abandoned_state(&row.state, row.started_at, abandon_cutoff)
}

/// The same rule on a stored state and start: still running, and started
/// before the cut-off.
pub fn is_abandoned_state(state: &str, started_at: Option<i64>, abandon_cutoff: i64) -> bool {
    state == "running" && started_at.is_some_and(|s| s < abandon_cutoff)
}

/// The CSV columns of a deployment, in the order [`DeploymentView::csv_record`] writes.
pub const DEPLOYMENT_CSV_HEADER: &[&str] = &deploytime_core::export::DEPLOYMENT_COLUMNS;

impl DeploymentView {
    pub fn csv_record(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.component.clone(),
            self.environment.clone(),
            self.version.clone().unwrap_or_default(),
            self.owner.clone().unwrap_or_default(),
            self.state.clone(),
            self.status.clone().unwrap_or_default(),
            self.started_at.clone().unwrap_or_default(),
            self.finished_at.clone().unwrap_or_default(),
            self.duration_seconds
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ]
    }
}

pub const EVENT_CSV_HEADER: &[&str] = &deploytime_core::export::EVENT_COLUMNS;

impl EventView {
    pub fn csv_record(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.deployment_id.clone(),
            self.phase.clone(),
            self.component.clone(),
            self.environment.clone(),
            self.status.clone().unwrap_or_default(),
            self.version.clone().unwrap_or_default(),
            self.owner.clone().unwrap_or_default(),
            self.timestamp.clone(),
            self.received_at.clone(),
            serde_json::to_string(&self.attributes).unwrap_or_default(),
        ]
    }
}

/// An event as stored in the ledger.
#[derive(Debug, Serialize, utoipa::ToSchema)]
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
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: DeploymentView,
    pub events: Vec<EventView>,
}
