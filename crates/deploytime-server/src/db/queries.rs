//! Queries, written once for every backend: plain synchronous functions that
//! return diesel's `QueryResult`, to be run on a blocking thread.

use diesel::prelude::*;

use super::DbConnection;
use super::models::{DeploymentRow, EventRow};
use super::schema::{deployments, events};

pub fn find_event(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EventRow>> {
    events::table
        .filter(events::id.eq(id))
        .select(EventRow::as_select())
        .first(conn)
        .optional()
}

pub fn find_deployment(conn: &mut DbConnection, id: &str) -> QueryResult<Option<DeploymentRow>> {
    deployments::table
        .filter(deployments::id.eq(id))
        .select(DeploymentRow::as_select())
        .first(conn)
        .optional()
}

/// The deployment a `finish` without an id closes: the most recently started
/// running deployment of the component and environment (ties: the latest stored).
pub fn find_latest_running(
    conn: &mut DbConnection,
    component: &str,
    environment: &str,
) -> QueryResult<Option<DeploymentRow>> {
    deployments::table
        .filter(deployments::component.eq(component))
        .filter(deployments::environment.eq(environment))
        .filter(deployments::state.eq("running"))
        .order((deployments::started_at.desc(), deployments::seq.desc()))
        .select(DeploymentRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_deployment(conn: &mut DbConnection, row: &DeploymentRow) -> QueryResult<usize> {
    diesel::insert_into(deployments::table)
        .values(row)
        .execute(conn)
}

/// Writes `row` over the stored deployment only if it is still at
/// `expected_revision`; returns the number of rows changed (0 when another
/// writer got there first).
pub fn update_deployment(
    conn: &mut DbConnection,
    row: &DeploymentRow,
    expected_revision: i32,
) -> QueryResult<usize> {
    diesel::update(
        deployments::table
            .filter(deployments::id.eq(&row.id))
            .filter(deployments::revision.eq(expected_revision)),
    )
    .set((
        deployments::version.eq(&row.version),
        deployments::owner.eq(&row.owner),
        deployments::state.eq(&row.state),
        deployments::status.eq(&row.status),
        deployments::started_at.eq(row.started_at),
        deployments::finished_at.eq(row.finished_at),
        deployments::duration_us.eq(row.duration_us),
        deployments::anchor_at.eq(row.anchor_at),
        deployments::revision.eq(row.revision),
        deployments::updated_at.eq(row.updated_at),
    ))
    .execute(conn)
}

pub fn insert_event(conn: &mut DbConnection, row: &EventRow) -> QueryResult<usize> {
    diesel::insert_into(events::table).values(row).execute(conn)
}

/// A deployment's events, in the order they were stored.
pub fn events_of_deployment(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::deployment_id.eq(id))
        .order(events::seq.asc())
        .select(EventRow::as_select())
        .load(conn)
}

/// Filters of the deployment listing.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFilter {
    pub component: Option<String>,
    pub environment: Option<String>,
    pub limit: i64,
}

/// Deployments, newest first (by start, or finish when the start is unknown).
pub fn list_deployments(
    conn: &mut DbConnection,
    filter: &DeploymentFilter,
) -> QueryResult<Vec<DeploymentRow>> {
    let mut query = deployments::table.into_boxed();
    if let Some(component) = &filter.component {
        query = query.filter(deployments::component.eq(component));
    }
    if let Some(environment) = &filter.environment {
        query = query.filter(deployments::environment.eq(environment));
    }
    query
        .order((deployments::anchor_at.desc(), deployments::seq.desc()))
        .limit(filter.limit)
        .select(DeploymentRow::as_select())
        .load(conn)
}

/// A trivial round trip, to tell whether the database answers.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
}
