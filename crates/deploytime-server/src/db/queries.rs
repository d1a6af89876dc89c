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

/// Several events: on MySQL in one statement (one round trip); SQLite runs in
/// the process, where a statement per row costs no round trip.
pub fn insert_events(conn: &mut DbConnection, rows: &[EventRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(mysql) => diesel::insert_into(events::table)
            .values(rows)
            .execute(mysql),
        DbConnection::Sqlite(_) => rows.iter().map(|row| insert_event(conn, row)).sum(),
    }
}

/// A deployment's events, in the order they were stored.
pub fn events_of_deployment(conn: &mut DbConnection, id: &str) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::deployment_id.eq(id))
        .order(events::seq.asc())
        .select(EventRow::as_select())
        .load(conn)
}

/// The backend type every query is written against.
pub type Backend = <DbConnection as Connection>::Backend;

/// A position in a newest-first listing: the sort time and the row's sequence
/// number of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub seq: i64,
}

/// Which deployments a state filter selects. `running` and `abandoned` split the
/// stored `running` state at the abandonment cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    Running,
    Abandoned,
    Final(&'static str),
}

/// Filters of the deployment listing, its CSV export and the statistics.
#[derive(Debug, Clone, Default)]
pub struct DeploymentFilter {
    pub component: Option<String>,
    pub environment: Option<String>,
    pub state: Option<StateFilter>,
    /// `[since, until)` on the start time, or the finish time without a start.
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Running deployments started before this are abandoned.
    pub abandon_cutoff: i64,
}

impl DeploymentFilter {
    /// True when only the time window filters: the listing's order is then an
    /// index's (`anchor_at, seq`), which can tell where a page ends alone.
    pub fn orders_by_index_alone(&self) -> bool {
        self.component.is_none() && self.environment.is_none() && self.state.is_none()
    }
}

fn filtered_deployments(filter: &DeploymentFilter) -> deployments::BoxedQuery<'static, Backend> {
    let mut query = deployments::table.into_boxed();
    if let Some(component) = filter.component.clone() {
        query = query.filter(deployments::component.eq(component));
    }
    if let Some(environment) = filter.environment.clone() {
        query = query.filter(deployments::environment.eq(environment));
    }
    if let Some(since) = filter.since {
        query = query.filter(deployments::anchor_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(deployments::anchor_at.lt(until));
    }
    match filter.state {
        None => {}
        Some(StateFilter::Final(state)) => query = query.filter(deployments::state.eq(state)),
        Some(StateFilter::Running) => {
            query = query
                .filter(deployments::state.eq("running"))
                .filter(deployments::started_at.ge(filter.abandon_cutoff));
        }
        Some(StateFilter::Abandoned) => {
            query = query
                .filter(deployments::state.eq("running"))
                .filter(deployments::started_at.lt(filter.abandon_cutoff));
        }
    }
    query
}

/// One page of deployments, newest first (by start, or finish when the start is
/// unknown), after `cursor` and, with `down_to`, not past it. Each row comes
/// with its sequence number.
pub fn list_deployments(
    conn: &mut DbConnection,
    filter: &DeploymentFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<(i64, DeploymentRow)>> {
    keyset_deployments(filter, cursor, down_to)
        .limit(limit)
        .select((deployments::seq, DeploymentRow::as_select()))
        .load(conn)
}

/// Where the page of `limit` deployments after `cursor` ends: the cursor of its
/// last row, or `None` when fewer are left. Reads the order's two columns only,
/// so without a filter the `anchor_at` index answers it alone.
pub fn deployments_page_end(
    conn: &mut DbConnection,
    filter: &DeploymentFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Option<Cursor>> {
    keyset_deployments(filter, cursor, None)
        .offset(limit - 1)
        .limit(1)
        .select((deployments::anchor_at, deployments::seq))
        .first::<(i64, i64)>(conn)
        .optional()
        .map(|end| end.map(|(at, seq)| Cursor { at, seq }))
}

/// The filtered deployments after `cursor` and not past `down_to`, in the
/// listing's order.
fn keyset_deployments(
    filter: &DeploymentFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
) -> deployments::BoxedQuery<'static, Backend> {
    let mut query = filtered_deployments(filter);
    if let Some(Cursor { at, seq }) = cursor {
        // "(anchor_at, seq) before the cursor", written as a range on anchor_at
        // and a filter: SQLite ranges over the index with this form, but scans it
        // from the top for `anchor_at < ? OR (anchor_at = ? AND seq < ?)`, which
        // made every page of a long export slower than the one before.
        query = query
            .filter(deployments::anchor_at.le(at))
            .filter(deployments::anchor_at.lt(at).or(deployments::seq.lt(seq)));
    }
    if let Some(Cursor { at, seq }) = down_to {
        query = query
            .filter(deployments::anchor_at.ge(at))
            .filter(deployments::anchor_at.gt(at).or(deployments::seq.ge(seq)));
    }
    query.order((deployments::anchor_at.desc(), deployments::seq.desc()))
}

/// What the statistics need of a deployment: (state, started_at, finished_at,
/// duration_us, anchor_at).
pub type StatsRow = (String, Option<i64>, Option<i64>, Option<i64>, i64);

/// Every component and environment seen (only `component`'s, only in
/// `environment`, when given), in order.
pub fn stats_targets(
    conn: &mut DbConnection,
    component: Option<&str>,
    environment: Option<&str>,
) -> QueryResult<Vec<(String, String)>> {
    let mut query = deployments::table
        .select((deployments::component, deployments::environment))
        .distinct()
        .order((deployments::component.asc(), deployments::environment.asc()))
        .into_boxed();
    if let Some(component) = component {
        query = query.filter(deployments::component.eq(component.to_owned()));
    }
    if let Some(environment) = environment {
        query = query.filter(deployments::environment.eq(environment.to_owned()));
    }
    query.load(conn)
}

/// What the statistics need of each deployment of one component in one
/// environment in `[since, until)`. One range of the
/// `deployments_component_anchor` index, which holds every column read here, so
/// no table row is visited.
pub fn stats_samples(
    conn: &mut DbConnection,
    component: &str,
    environment: &str,
    since: i64,
    until: i64,
) -> QueryResult<Vec<StatsRow>> {
    deployments::table
        .filter(deployments::component.eq(component))
        .filter(deployments::environment.eq(environment))
        .filter(deployments::anchor_at.ge(since))
        .filter(deployments::anchor_at.lt(until))
        .select((
            // The stored name, not a CASE mapping it to a number: an SQL literal
            // makes the statement uncacheable (prepared again for every component
            // of every request), and diesel's case_when with bound values makes
            // MariaDB report the column's type as NULL on first use.
            deployments::state,
            deployments::started_at,
            deployments::finished_at,
            deployments::duration_us,
            deployments::anchor_at,
        ))
        .load(conn)
}

/// Filters of the event ledger listing.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub component: Option<String>,
    pub environment: Option<String>,
    pub phase: Option<String>,
    /// `[since, until)` on the event's own time.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl EventFilter {
    /// As [`DeploymentFilter::orders_by_index_alone`], on `occurred_at, seq`.
    pub fn orders_by_index_alone(&self) -> bool {
        self.component.is_none() && self.environment.is_none() && self.phase.is_none()
    }
}

/// One page of the ledger, newest event time first, after `cursor` and, with
/// `down_to`, not past it.
pub fn list_events(
    conn: &mut DbConnection,
    filter: &EventFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<(i64, EventRow)>> {
    keyset_events(filter, cursor, down_to)
        .limit(limit)
        .select((events::seq, EventRow::as_select()))
        .load(conn)
}

/// As [`deployments_page_end`], for the ledger.
pub fn events_page_end(
    conn: &mut DbConnection,
    filter: &EventFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Option<Cursor>> {
    keyset_events(filter, cursor, None)
        .offset(limit - 1)
        .limit(1)
        .select((events::occurred_at, events::seq))
        .first::<(i64, i64)>(conn)
        .optional()
        .map(|end| end.map(|(at, seq)| Cursor { at, seq }))
}

fn keyset_events(
    filter: &EventFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
) -> events::BoxedQuery<'static, Backend> {
    let mut query = events::table.into_boxed();
    if let Some(component) = filter.component.clone() {
        query = query.filter(events::component.eq(component));
    }
    if let Some(environment) = filter.environment.clone() {
        query = query.filter(events::environment.eq(environment));
    }
    if let Some(phase) = filter.phase.clone() {
        query = query.filter(events::phase.eq(phase));
    }
    if let Some(since) = filter.since {
        query = query.filter(events::occurred_at.ge(since));
    }
    if let Some(until) = filter.until {
        query = query.filter(events::occurred_at.lt(until));
    }
    if let Some(Cursor { at, seq }) = cursor {
        // As in keyset_deployments: a range on the time, then a filter.
        query = query
            .filter(events::occurred_at.le(at))
            .filter(events::occurred_at.lt(at).or(events::seq.lt(seq)));
    }
    if let Some(Cursor { at, seq }) = down_to {
        query = query
            .filter(events::occurred_at.ge(at))
            .filter(events::occurred_at.gt(at).or(events::seq.ge(seq)));
    }
    query.order((events::occurred_at.desc(), events::seq.desc()))
}

/// One component in one environment, as the components listing shows it.
#[derive(Debug, Clone)]
pub struct ComponentSummary {
    pub component: String,
    pub environment: String,
    pub deployments: i64,
    /// Mean duration in microseconds of the deployments with both ends.
    pub mean_duration_us: Option<f64>,
    pub latest: DeploymentRow,
}

/// Every component and environment seen: how many deployments, their mean
/// duration, and the latest one.
pub fn component_summaries(conn: &mut DbConnection) -> QueryResult<Vec<ComponentSummary>> {
    use diesel::dsl::{count_star, sql};
    use diesel::sql_types::{Double, Nullable};
    let groups: Vec<(String, String, i64, Option<f64>)> = deployments::table
        .group_by((deployments::component, deployments::environment))
        .select((
            deployments::component,
            deployments::environment,
            count_star(),
            // AVG over BIGINT is REAL on SQLite and DECIMAL on MySQL; both read as f64.
            sql::<Nullable<Double>>("AVG(duration_us)"),
        ))
        .order((deployments::component.asc(), deployments::environment.asc()))
        .load(conn)?;
    let mut summaries = Vec::with_capacity(groups.len());
    for (component, environment, count, mean) in groups {
        let latest = deployments::table
            .filter(deployments::component.eq(&component))
            .filter(deployments::environment.eq(&environment))
            .order((deployments::anchor_at.desc(), deployments::seq.desc()))
            .select(DeploymentRow::as_select())
            .first(conn)?;
        summaries.push(ComponentSummary {
            component,
            environment,
            deployments: count,
            mean_duration_us: mean,
            latest,
        });
    }
    Ok(summaries)
}

/// Removes a deployment and its events, and records the removal. Returns the
/// removed deployment and how many events it had, or `None` when absent.
pub fn delete_deployment(
    conn: &mut DbConnection,
    id: &str,
    deleted_at: i64,
) -> QueryResult<Option<(DeploymentRow, usize)>> {
    use super::schema::deletions;
    conn.transaction(|conn| {
        let Some(row) = find_deployment(conn, id)? else {
            return Ok(None);
        };
        let removed_events =
            diesel::delete(events::table.filter(events::deployment_id.eq(id))).execute(conn)?;
        diesel::delete(deployments::table.filter(deployments::id.eq(id))).execute(conn)?;
        diesel::insert_into(deletions::table)
            .values((
                deletions::deployment_id.eq(id),
                deletions::component.eq(&row.component),
                deletions::environment.eq(&row.environment),
                deletions::events_removed.eq(i64::try_from(removed_events).unwrap_or(i64::MAX)),
                deletions::snapshot.eq(serde_json::to_string(
                    &super::models::DeploymentSnapshot::from(&row),
                )
                .unwrap_or_else(|_| "{}".into())),
                deletions::deleted_at.eq(deleted_at),
            ))
            .execute(conn)?;
        Ok(Some((row, removed_events)))
    })
}

/// A trivial round trip, to tell whether the database answers.
pub fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
}
