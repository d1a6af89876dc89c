//! Rows as stored, and their conversion to and from the domain's values: the
//! database edge. Nothing above the data layer sees a row.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::{
    Component, Deployment, DeploymentState, Ends, Environment, EventKind, Phase, RecordedEvent,
    Status,
};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{deployments, events};

// `treat_none_as_default_value = false`: an absent value is written as NULL,
// so an insert has one shape whatever is absent and is prepared once per
// connection (with DEFAULT for absent values, diesel prepares each insert anew).
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = deployments, treat_none_as_default_value = false)]
pub(crate) struct DeploymentRow {
    pub id: String,
    pub component: String,
    pub environment: String,
    pub version: Option<String>,
    pub owner: Option<String>,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub state: DeploymentState,
    pub status: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_us: Option<i64>,
    pub anchor_at: i64,
    pub revision: i32,
    pub created_at: i64,
    pub updated_at: i64,
    /// 1: a rollback.
    pub rollback: i16,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = events, treat_none_as_default_value = false)]
pub(crate) struct EventRow {
    pub id: String,
    pub deployment_id: String,
    pub phase: String,
    pub component: String,
    pub environment: String,
    pub status: Option<String>,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub occurred_at: i64,
    pub received_at: i64,
    /// A JSON object of strings.
    pub attributes: String,
    pub fingerprint: String,
}

/// A stored row that does not describe a valid value: only possible if the
/// database was edited by hand, and reported as such rather than guessed at.
#[derive(Debug, thiserror::Error)]
#[error("stored {what} {id} is unreadable: {reason}")]
pub(crate) struct CorruptRow {
    pub what: &'static str,
    pub id: String,
    pub reason: String,
}

impl From<CorruptRow> for diesel::result::Error {
    fn from(corrupt: CorruptRow) -> Self {
        diesel::result::Error::DeserializationError(Box::new(corrupt))
    }
}

impl DeploymentRow {
    /// The row for a deployment, at the given revision. Its anchor and duration
    /// are the domain's, stored so that the database can sort and sum by them.
    pub fn from_deployment(
        d: &Deployment,
        revision: i32,
        created_at: i64,
        updated_at: i64,
    ) -> Self {
        Self {
            id: d.id.to_string(),
            component: d.component.to_string(),
            environment: d.environment.to_string(),
            version: d.version.clone(),
            owner: d.owner.clone(),
            state: d.state,
            status: d.status.as_ref().map(|s| s.as_str().to_owned()),
            started_at: d.started_at().map(to_micros),
            finished_at: d.finished_at().map(to_micros),
            duration_us: d.duration().and_then(|d| d.num_microseconds()),
            anchor_at: to_micros(d.anchor_at()),
            revision,
            created_at,
            updated_at,
            rollback: i16::from(d.rollback),
        }
    }

    pub fn into_deployment(self) -> Result<Deployment, CorruptRow> {
        let DeploymentRow {
            id,
            component,
            environment,
            version,
            owner,
            state,
            status,
            started_at,
            finished_at,
            rollback,
            ..
        } = self;
        let corrupt = |reason: String| CorruptRow {
            what: "deployment",
            id: id.clone(),
            reason,
        };
        let ends = Ends::from_parts(started_at.map(from_micros), finished_at.map(from_micros))
            .ok_or_else(|| corrupt("neither a start nor a finish".into()))?;
        Ok(Deployment {
            id: Uuid::parse_str(&id).map_err(|e| corrupt(format!("id: {e}")))?,
            component: Component::try_from(component).map_err(&corrupt)?,
            environment: Environment::try_from(environment).map_err(&corrupt)?,
            status: status
                .as_deref()
                .map(Status::parse)
                .transpose()
                .map_err(&corrupt)?,
            state,
            ends,
            version,
            owner,
            rollback: rollback != 0,
        })
    }
}

impl EventRow {
    /// The row of an event applied to `deployment`.
    pub fn new(
        id: Uuid,
        event: &deploytime_core::NewEvent,
        deployment: &Deployment,
        received_at: DateTime<Utc>,
    ) -> Self {
        EventRow {
            id: id.to_string(),
            deployment_id: deployment.id.to_string(),
            phase: event.kind.phase().as_str().to_owned(),
            component: event.component.to_string(),
            environment: event.environment.to_string(),
            status: event.kind.status().map(|s| s.as_str().to_owned()),
            version: event.version.clone(),
            owner: event.owner.clone(),
            occurred_at: to_micros(event.occurred_at),
            received_at: to_micros(received_at),
            // A map of strings always serialises.
            attributes: serde_json::to_string(&event.attributes).unwrap_or_else(|_| "{}".into()),
            fingerprint: event.fingerprint.clone(),
        }
    }

    pub fn into_recorded(self) -> Result<RecordedEvent, CorruptRow> {
        let EventRow {
            id,
            deployment_id,
            phase,
            component,
            environment,
            status,
            version,
            owner,
            occurred_at,
            received_at,
            attributes,
            ..
        } = self;
        let corrupt = |reason: String| CorruptRow {
            what: "event",
            id: id.clone(),
            reason,
        };
        let kind = match (Phase::parse(&phase), status) {
            (Some(Phase::Start), None) => EventKind::Start,
            (Some(Phase::Finish), Some(status)) => {
                EventKind::Finish(Status::parse(&status).map_err(&corrupt)?)
            }
            (_, status) => {
                return Err(corrupt(format!("phase {phase:?} with status {status:?}")));
            }
        };
        // Written by the server from a map of strings; an unreadable value (a
        // hand edit) is shown as no attributes rather than failing the whole read.
        let attributes: BTreeMap<String, String> =
            serde_json::from_str(&attributes).unwrap_or_default();
        Ok(RecordedEvent {
            id: Uuid::parse_str(&id).map_err(|e| corrupt(format!("id: {e}")))?,
            deployment_id: Uuid::parse_str(&deployment_id)
                .map_err(|e| corrupt(format!("deployment id: {e}")))?,
            kind,
            component: Component::try_from(component).map_err(&corrupt)?,
            environment: Environment::try_from(environment).map_err(&corrupt)?,
            version,
            owner,
            occurred_at: from_micros(occurred_at),
            received_at: from_micros(received_at),
            attributes,
        })
    }
}

/// What is kept of a deleted deployment in the corrections log.
#[derive(Debug, serde::Serialize)]
pub(crate) struct DeploymentSnapshot<'a> {
    pub id: &'a str,
    pub component: &'a str,
    pub environment: &'a str,
    pub version: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub state: &'a str,
    pub status: Option<&'a str>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl<'a> From<&'a DeploymentRow> for DeploymentSnapshot<'a> {
    fn from(row: &'a DeploymentRow) -> Self {
        Self {
            id: &row.id,
            component: &row.component,
            environment: &row.environment,
            version: row.version.as_deref(),
            owner: row.owner.as_deref(),
            state: row.state.as_str(),
            status: row.status.as_deref(),
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}
