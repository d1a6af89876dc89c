//! Incidents: opening one (or finding a retried opening again), changing one,
//! reading and listing them (filtered, newest start first, by keyset), and
//! what the statistics read of them. The rules are the domain's
//! (`deploytime_core::incident`); each write here is one transaction that
//! persists what it decides.

use chrono::{DateTime, Utc};
use deploytime_core::incident::{
    ChangeRefused, Incident, IncidentChange, IncidentSample, IncidentState, NewIncident,
    check_cause,
};
use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::{Component, Environment, ValidationErrors};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::{Backend, Cursor, Listed};
use crate::db::connection::DbConnection;
use crate::db::models::CorruptRow;
use crate::db::schema::{deployments, incidents};

/// A stored incident row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = incidents)]
struct IncidentRow {
    seq: i64,
    id: String,
    component: String,
    environment: String,
    title: Option<String>,
    summary: Option<String>,
    cause_deployment_id: Option<String>,
    started_at: i64,
    resolved_at: Option<i64>,
    fingerprint: String,
}

impl IncidentRow {
    fn into_incident(self) -> Result<Incident, CorruptRow> {
        let corrupt = |reason: String| CorruptRow {
            what: "incident",
            id: self.id.clone(),
            reason,
        };
        Ok(Incident {
            id: Uuid::parse_str(&self.id).map_err(|e| corrupt(format!("id: {e}")))?,
            component: Component::try_from(self.component.clone()).map_err(corrupt)?,
            environment: Environment::try_from(self.environment.clone()).map_err(corrupt)?,
            cause_deployment_id: self
                .cause_deployment_id
                .as_deref()
                .map(Uuid::parse_str)
                .transpose()
                .map_err(|e| corrupt(format!("cause deployment id: {e}")))?,
            started_at: from_micros(self.started_at),
            resolved_at: self.resolved_at.map(from_micros),
            title: self.title,
            summary: self.summary,
        })
    }
}

fn find_row(conn: &mut DbConnection, id: &str) -> QueryResult<Option<IncidentRow>> {
    incidents::table
        .filter(incidents::id.eq(id))
        .select(IncidentRow::as_select())
        .first(conn)
        .optional()
}

/// The incident with this id.
pub(crate) fn find_incident(conn: &mut DbConnection, id: Uuid) -> QueryResult<Option<Incident>> {
    Ok(find_row(conn, &id.to_string())?
        .map(IncidentRow::into_incident)
        .transpose()?)
}

/// Whether `cause` is a recorded deployment of the incident's component and
/// environment, by the domain's rule.
fn cause_fits(
    conn: &mut DbConnection,
    component: &Component,
    environment: &Environment,
    cause: Uuid,
) -> QueryResult<Result<(), ValidationErrors>> {
    let found: Option<(String, String)> = deployments::table
        .filter(deployments::id.eq(cause.to_string()))
        .select((deployments::component, deployments::environment))
        .first(conn)
        .optional()?;
    Ok(check_cause(
        component,
        environment,
        cause,
        found.as_ref().map(|(c, e)| (c.as_str(), e.as_str())),
    ))
}

/// What became of an opening call.
#[derive(Debug)]
pub(crate) enum Opened {
    Created(Incident),
    /// The same call again (same id, same content): the incident as it is.
    Replayed(Incident),
    /// Another incident is stored under this id.
    Conflict(Uuid),
    /// The cause deployment is missing or of another component or environment.
    Refused(ValidationErrors),
}

/// Opens the incident `new` asks for, under its own id or `drawn`.
pub(crate) fn open_incident(
    conn: &mut DbConnection,
    new: &NewIncident,
    drawn: Uuid,
    created_by: &str,
    now: DateTime<Utc>,
) -> QueryResult<Opened> {
    let id = new.incident_id.unwrap_or(drawn);
    let key = id.to_string();
    let known = |row: IncidentRow| -> QueryResult<Opened> {
        if row.fingerprint == new.fingerprint {
            Ok(Opened::Replayed(row.into_incident()?))
        } else {
            Ok(Opened::Conflict(id))
        }
    };
    let inserted = conn.transaction(|conn| {
        if let Some(row) = find_row(conn, &key)? {
            return known(row);
        }
        if let Some(cause) = new.cause_deployment_id
            && let Err(refused) = cause_fits(conn, &new.component, &new.environment, cause)?
        {
            return Ok(Opened::Refused(refused));
        }
        let at = to_micros(now);
        diesel::insert_into(incidents::table)
            .values((
                incidents::id.eq(&key),
                incidents::component.eq(new.component.as_str()),
                incidents::environment.eq(new.environment.as_str()),
                incidents::title.eq(&new.title),
                incidents::summary.eq(&new.summary),
                incidents::cause_deployment_id.eq(new.cause_deployment_id.map(|c| c.to_string())),
                incidents::started_at.eq(to_micros(new.started_at)),
                incidents::resolved_at.eq(new.resolved_at.map(to_micros)),
                incidents::fingerprint.eq(&new.fingerprint),
                incidents::created_by.eq(created_by),
                incidents::created_at.eq(at),
                incidents::updated_at.eq(at),
            ))
            .execute(conn)?;
        Ok(Opened::Created(new.clone().into_incident(id)))
    });
    match inserted {
        // Opened meanwhile by a retry that raced this one.
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            find_row(conn, &key)?
                .ok_or(DieselError::NotFound)
                .and_then(known)
        }
        other => other,
    }
}

/// What became of a change.
#[derive(Debug)]
pub(crate) enum Changed {
    /// Applied (or nothing to apply: a retry): the incident as it now is.
    Applied(Incident),
    NotFound,
    /// Refused by the domain for this incident.
    Refused(ChangeRefused),
    /// The new cause deployment is missing or of another component or environment.
    CauseRefused(ValidationErrors),
}

/// Applies `change` to the incident `id`, all in one transaction. The row is
/// touched first, so that changes of one incident are taken one at a time
/// (two resolutions racing: the second sees the first and is a retry or a
/// conflict), and then read again under that lock.
pub(crate) fn change_incident(
    conn: &mut DbConnection,
    id: Uuid,
    change: &IncidentChange,
    now: DateTime<Utc>,
) -> QueryResult<Changed> {
    let key = id.to_string();
    conn.transaction(|conn| {
        diesel::update(incidents::table.filter(incidents::id.eq(&key)))
            .set(incidents::updated_at.eq(incidents::updated_at))
            .execute(conn)?;
        let Some(row) = find_row(conn, &key)? else {
            return Ok(Changed::NotFound);
        };
        let before = row.into_incident()?;
        let after = match change.apply(&before) {
            Ok(after) => after,
            Err(refused) => return Ok(Changed::Refused(refused)),
        };
        if let Some(cause) = change.new_cause()
            && let Err(refused) = cause_fits(conn, &before.component, &before.environment, cause)?
        {
            return Ok(Changed::CauseRefused(refused));
        }
        if after != before {
            diesel::update(incidents::table.filter(incidents::id.eq(&key)))
                .set((
                    incidents::resolved_at.eq(after.resolved_at.map(to_micros)),
                    incidents::title.eq(&after.title),
                    incidents::summary.eq(&after.summary),
                    incidents::cause_deployment_id
                        .eq(after.cause_deployment_id.map(|c| c.to_string())),
                    incidents::updated_at.eq(to_micros(now)),
                ))
                .execute(conn)?;
        }
        Ok(Changed::Applied(after))
    })
}

/// What a listing of incidents asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct IncidentFilter {
    pub component: Option<Component>,
    /// Any of these; none: every environment.
    pub environments: Vec<Environment>,
    pub state: Option<IncidentState>,
    /// On `started_at`: inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
}

/// One page of incidents, newest start first (of two started at once, the one
/// stored last), after `cursor`.
pub(crate) fn list_incidents(
    conn: &mut DbConnection,
    filter: &IncidentFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<Listed<Incident>>> {
    let mut query: incidents::BoxedQuery<'static, Backend> = incidents::table.into_boxed();
    if let Some(component) = &filter.component {
        query = query.filter(incidents::component.eq(component.as_str().to_owned()));
    }
    if !filter.environments.is_empty() {
        let names: Vec<String> = filter
            .environments
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect();
        query = query.filter(incidents::environment.eq_any(names));
    }
    match filter.state {
        None => {}
        Some(IncidentState::Open) => query = query.filter(incidents::resolved_at.is_null()),
        Some(IncidentState::Resolved) => query = query.filter(incidents::resolved_at.is_not_null()),
    }
    if let Some(since) = filter.since {
        query = query.filter(incidents::started_at.ge(to_micros(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(incidents::started_at.lt(to_micros(until)));
    }
    if let Some(Cursor { at, seq }) = cursor {
        // "(started_at, seq) before the cursor", as a range and a filter so
        // that SQLite ranges over the index (docs/architecture.md).
        query = query
            .filter(incidents::started_at.le(at))
            .filter(incidents::started_at.lt(at).or(incidents::seq.lt(seq)));
    }
    query
        .order((incidents::started_at.desc(), incidents::seq.desc()))
        .limit(limit)
        .select(IncidentRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|row| {
            let cursor = Cursor {
                at: row.started_at,
                seq: row.seq,
            };
            Ok(Listed {
                item: row.into_incident()?,
                cursor,
            })
        })
        .collect()
}

/// The incidents the statistics count: those of `component` (when given) in
/// `environments` (any, when empty) that started in `[since, until)`
/// (microseconds). One range of the `(component, environment, started_at,
/// resolved_at)` index per pair, or of `started_at` alone without a component.
pub(crate) fn incident_samples(
    conn: &mut DbConnection,
    component: Option<&Component>,
    environments: &[Environment],
    (since, until): (i64, i64),
) -> QueryResult<Vec<IncidentSample>> {
    let mut query = incidents::table
        .filter(incidents::started_at.ge(since))
        .filter(incidents::started_at.lt(until))
        .into_boxed();
    if let Some(component) = component {
        query = query.filter(incidents::component.eq(component.as_str().to_owned()));
    }
    if !environments.is_empty() {
        let names: Vec<String> = environments.iter().map(|e| e.as_str().to_owned()).collect();
        query = query.filter(incidents::environment.eq_any(names));
    }
    let rows: Vec<(String, String, i64, Option<i64>)> = query
        .select((
            incidents::component,
            incidents::environment,
            incidents::started_at,
            incidents::resolved_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(
            |(component, environment, started_at, resolved_at)| IncidentSample {
                component,
                environment,
                started_at,
                resolved_at,
            },
        )
        .collect())
}

/// How many incidents are open now, for the metrics.
pub(crate) fn count_open_incidents(conn: &mut DbConnection) -> QueryResult<i64> {
    incidents::table
        .filter(incidents::resolved_at.is_null())
        .count()
        .get_result(conn)
}
