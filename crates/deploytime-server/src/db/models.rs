//! Rows as stored, and their conversion to and from the domain's types.

use std::collections::BTreeMap;

use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::{Component, Deployment, DeploymentState, Environment, Status};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{deployments, events};

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = deployments)]
pub struct DeploymentRow {
    pub id: String,
    pub component: String,
    pub environment: String,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub state: String,
    pub status: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub duration_us: Option<i64>,
    pub anchor_at: i64,
    pub revision: i32,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = events)]
pub struct EventRow {
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

/// A stored row that does not describe a valid deployment: only possible if the
/// database was edited by hand, and reported as such rather than guessed at.
#[derive(Debug, thiserror::Error)]
#[error("stored deployment {id} is unreadable: {reason}")]
pub struct CorruptRow {
    pub id: String,
    pub reason: String,
}

impl DeploymentRow {
    /// The row for a deployment, at the given revision.
    pub fn from_deployment(
        d: &Deployment,
        revision: i32,
        created_at: i64,
        updated_at: i64,
    ) -> Self {
        let started_at = d.started_at.map(to_micros);
        let finished_at = d.finished_at.map(to_micros);
        Self {
            id: d.id.to_string(),
            component: d.component.to_string(),
            environment: d.environment.to_string(),
            version: d.version.clone(),
            owner: d.owner.clone(),
            state: d.state.as_str().to_owned(),
            status: d.status.as_ref().map(|s| s.as_str().to_owned()),
            started_at,
            finished_at,
            duration_us: started_at.zip(finished_at).map(|(s, f)| f - s),
            anchor_at: started_at.or(finished_at).unwrap_or(updated_at),
            revision,
            created_at,
            updated_at,
        }
    }

    pub fn to_deployment(&self) -> Result<Deployment, CorruptRow> {
        let corrupt = |reason: String| CorruptRow {
            id: self.id.clone(),
            reason,
        };
        Ok(Deployment {
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt(e.to_string()))?,
            component: Component::parse(&self.component).map_err(corrupt)?,
            environment: Environment::parse(&self.environment).map_err(corrupt)?,
            version: self.version.clone(),
            owner: self.owner.clone(),
            state: DeploymentState::parse(&self.state)
                .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?,
            status: self
                .status
                .as_deref()
                .map(Status::parse)
                .transpose()
                .map_err(corrupt)?,
            started_at: self.started_at.map(from_micros),
            finished_at: self.finished_at.map(from_micros),
        })
    }
}

impl EventRow {
    pub fn attributes_map(&self) -> BTreeMap<String, String> {
        // Written by the server from a map of strings; an unreadable value (a hand
        // edit) is shown as no attributes rather than failing the whole read.
        serde_json::from_str(&self.attributes).unwrap_or_default()
    }
}

/// What is kept of a deleted deployment in the corrections log.
#[derive(Debug, serde::Serialize)]
pub struct DeploymentSnapshot<'a> {
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
            state: &row.state,
            status: row.status.as_deref(),
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}
