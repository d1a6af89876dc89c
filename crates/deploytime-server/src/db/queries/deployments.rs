//! Deployments: finding the one an event targets, writing it, listing them
//! (filtered, newest first, by keyset), summarising them per component, and
//! removing one.

use chrono::{DateTime, Utc};
use deploytime_core::state::{StartedBound, StoredCondition};
use deploytime_core::time::to_micros;
use deploytime_core::{Component, Deployment, DeploymentState, Environment};
use diesel::prelude::*;
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, Integer, Nullable, SmallInt, Text};

use super::{Backend, Cursor, Listed};
use crate::db::connection::{DbConnection, on_backend};
use crate::db::models::{DeploymentRow, DeploymentSnapshot};
use crate::db::schema::{deletions, deployments, events};

/// The stored deployment with this id, with its revision and creation time (what
/// an update needs).
pub(crate) fn find_deployment_row(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Option<DeploymentRow>> {
    // No LIMIT: the id is unique. A bound LIMIT would make SQLite plan the
    // statement again each time it is run (see `find_latest_running`).
    on_backend!(conn, |c| deployments::table
        .filter(deployments::id.eq(id))
        .select(DeploymentRow::as_select())
        .get_result(c)
        .optional())
}

/// `Target::LatestRunning`: the most recently started running deployment of
/// the component and environment; of two started at once, the one stored last.
pub(crate) fn find_latest_running(
    conn: &mut DbConnection,
    component: &Component,
    environment: &Environment,
) -> QueryResult<Option<DeploymentRow>> {
    macro_rules! query {
        () => {
            deployments::table
                .filter(deployments::component.eq(component.as_str()))
                .filter(deployments::environment.eq(environment.as_str()))
                .filter(deployments::state.eq(RunningState))
                .order((deployments::started_at.desc(), deployments::seq.desc()))
                .select(DeploymentRow::as_select())
        };
    }
    match conn {
        // SQLite plans a statement again whenever a bound LIMIT is bound anew
        // (the limit's value may change its plan), so `.first()` would be
        // parsed and planned on every finish. The index gives the rows in
        // order: the first row stepped is the answer, and no other is read.
        DbConnection::Sqlite(c) => query!()
            .load_iter::<DeploymentRow, diesel::connection::DefaultLoadingMode>(c)?
            .next()
            .transpose(),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => query!().first(c).optional(),
    }
}

/// The state `running` written into a query's SQL as a literal: SQLite reads
/// its partial index `deployments_running` (`WHERE state = 'running'`) only for
/// a query that says so itself; compared with a bound value, it would plan the
/// statement again each time the value is bound.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct RunningState;

impl Expression for RunningState {
    type SqlType = Text;
}

impl<QS> AppearsOnTable<QS> for RunningState {}

impl<GB> diesel::expression::ValidGrouping<GB> for RunningState {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl<DB: diesel::backend::Backend> diesel::query_builder::QueryFragment<DB> for RunningState {
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        out.push_sql("'");
        out.push_sql(DeploymentState::Running.as_str());
        out.push_sql("'");
        Ok(())
    }
}

pub(crate) fn insert_deployment(
    conn: &mut DbConnection,
    row: &DeploymentRow,
) -> QueryResult<usize> {
    // Owned: the state is written through its name (`serialize_as`).
    on_backend!(conn, |c| diesel::insert_into(deployments::table)
        .values(row.clone())
        .execute(c))
}

/// Writes `row` over the stored deployment only if it is still at
/// `expected_revision`; returns the number of rows changed (0 when another
/// writer got there first).
pub(crate) fn update_deployment(
    conn: &mut DbConnection,
    row: &DeploymentRow,
    expected_revision: i32,
) -> QueryResult<usize> {
    let update = UpdateDeployment {
        row,
        expected_revision,
    };
    on_backend!(conn, |c| update.execute(c))
}

/// `UPDATE deployments SET … WHERE id = ? AND revision = ?`, one statement of
/// fixed shape: diesel's own update builder marks every UPDATE as never to be
/// cached, which would make the store path's commonest write (the finish) be
/// parsed and planned again each time.
struct UpdateDeployment<'a> {
    row: &'a DeploymentRow,
    expected_revision: i32,
}

/// One shape whatever the values: diesel caches the prepared statement by this
/// type.
impl diesel::query_builder::QueryId for UpdateDeployment<'_> {
    type QueryId = UpdateDeployment<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB> diesel::query_builder::QueryFragment<DB> for UpdateDeployment<'_>
where
    DB: diesel::backend::Backend
        + diesel::sql_types::HasSqlType<Text>
        + diesel::sql_types::HasSqlType<BigInt>
        + diesel::sql_types::HasSqlType<Integer>
        + diesel::sql_types::HasSqlType<SmallInt>,
    str: ToSql<Text, DB>,
    String: ToSql<Text, DB>,
    i64: ToSql<BigInt, DB>,
    i32: ToSql<Integer, DB>,
    i16: ToSql<SmallInt, DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> QueryResult<()> {
        let row = self.row;
        out.push_sql("UPDATE ");
        out.push_identifier("deployments")?;
        let column = |out: &mut diesel::query_builder::AstPass<'_, 'b, DB>,
                      name: &str,
                      first: bool|
         -> QueryResult<()> {
            out.push_sql(if first { " SET " } else { ", " });
            out.push_identifier(name)?;
            out.push_sql(" = ");
            Ok(())
        };
        column(&mut out, "version", true)?;
        out.push_bind_param::<Nullable<Text>, _>(&row.version)?;
        column(&mut out, "owner", false)?;
        out.push_bind_param::<Nullable<Text>, _>(&row.owner)?;
        column(&mut out, "state", false)?;
        out.push_bind_param::<Text, _>(row.state.as_str())?;
        column(&mut out, "status", false)?;
        out.push_bind_param::<Nullable<Text>, _>(&row.status)?;
        column(&mut out, "started_at", false)?;
        out.push_bind_param::<Nullable<BigInt>, _>(&row.started_at)?;
        column(&mut out, "finished_at", false)?;
        out.push_bind_param::<Nullable<BigInt>, _>(&row.finished_at)?;
        column(&mut out, "duration_us", false)?;
        out.push_bind_param::<Nullable<BigInt>, _>(&row.duration_us)?;
        column(&mut out, "anchor_at", false)?;
        out.push_bind_param::<BigInt, _>(&row.anchor_at)?;
        column(&mut out, "revision", false)?;
        out.push_bind_param::<Integer, _>(&row.revision)?;
        column(&mut out, "updated_at", false)?;
        out.push_bind_param::<BigInt, _>(&row.updated_at)?;
        column(&mut out, "rollback", false)?;
        out.push_bind_param::<SmallInt, _>(&row.rollback)?;
        out.push_sql(" WHERE ");
        out.push_identifier("id")?;
        out.push_sql(" = ");
        out.push_bind_param::<Text, _>(&row.id)?;
        out.push_sql(" AND ");
        out.push_identifier("revision")?;
        out.push_sql(" = ");
        out.push_bind_param::<Integer, _>(&self.expected_revision)?;
        Ok(())
    }
}

impl<Conn> RunQueryDsl<Conn> for UpdateDeployment<'_> {}

/// Filters of the deployment listing and its CSV export.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeploymentFilter {
    pub component: Option<Component>,
    /// Any of these; none: every environment.
    pub environments: Vec<Environment>,
    /// What the reported state asked for means for stored rows (the domain's
    /// `AbandonCutoff::selects`).
    pub state: Option<StoredCondition>,
    /// `[since, until)` on the anchor: the start, or the finish without a start.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl DeploymentFilter {
    /// True when only the time window filters: the listing's order is then an
    /// index's (`anchor_at, seq`), which can tell where a page ends alone.
    pub fn orders_by_index_alone(&self) -> bool {
        self.component.is_none() && self.environments.is_empty() && self.state.is_none()
    }
}

fn filtered_deployments(filter: &DeploymentFilter) -> deployments::BoxedQuery<'static, Backend> {
    let mut query = deployments::table.into_boxed();
    if let Some(component) = &filter.component {
        query = query.filter(deployments::component.eq(component.as_str().to_owned()));
    }
    if !filter.environments.is_empty() {
        let names: Vec<String> = filter
            .environments
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect();
        query = query.filter(deployments::environment.eq_any(names));
    }
    if let Some(since) = filter.since {
        query = query.filter(deployments::anchor_at.ge(to_micros(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(deployments::anchor_at.lt(to_micros(until)));
    }
    if let Some(condition) = filter.state {
        query = query.filter(deployments::state.eq(condition.state.as_str()));
        match condition.started {
            None => {}
            Some(StartedBound::Before(at)) => {
                query = query.filter(deployments::started_at.lt(to_micros(at)));
            }
            Some(StartedBound::AtOrAfter(at)) => {
                query = query.filter(deployments::started_at.ge(to_micros(at)));
            }
        }
    }
    query
}

fn listed(seq: i64, row: DeploymentRow) -> QueryResult<Listed<Deployment>> {
    let cursor = Cursor {
        at: row.anchor_at,
        seq,
    };
    Ok(Listed {
        item: row.into_deployment()?,
        cursor,
    })
}

/// One page of deployments, newest first (by start, or finish when the start is
/// unknown), after `cursor` and, with `down_to`, not past it.
pub(crate) fn list_deployments(
    conn: &mut DbConnection,
    filter: &DeploymentFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<Listed<Deployment>>> {
    keyset_deployments(filter, cursor, down_to)
        .limit(limit)
        .select((deployments::seq, DeploymentRow::as_select()))
        .load::<(i64, DeploymentRow)>(conn)?
        .into_iter()
        .map(|(seq, row)| listed(seq, row))
        .collect()
}

/// Where the page of `limit` deployments after `cursor` ends: the cursor of its
/// last row, or `None` when fewer are left. Reads the order's two columns only,
/// so without a filter the `anchor_at` index answers it alone.
pub(crate) fn deployments_page_end(
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
        // "(anchor_at, seq) before the cursor", written as a range and a filter
        // so that SQLite ranges over the index (docs/architecture.md).
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

/// One component in one environment, as the components listing shows it.
#[derive(Debug, Clone)]
pub(crate) struct ComponentSummary {
    pub component: Component,
    pub environment: Environment,
    pub deployments: u64,
    /// Mean duration in microseconds of the deployments with both ends.
    pub mean_duration_us: Option<f64>,
    pub latest: Deployment,
}

/// Every component and environment seen: how many deployments, their mean
/// duration, and the latest one.
pub(crate) fn component_summaries(conn: &mut DbConnection) -> QueryResult<Vec<ComponentSummary>> {
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
            .first(conn)?
            .into_deployment()?;
        summaries.push(ComponentSummary {
            component: latest.component.clone(),
            environment: latest.environment.clone(),
            deployments: u64::try_from(count).unwrap_or(0),
            mean_duration_us: mean,
            latest,
        });
    }
    Ok(summaries)
}

/// Removes a deployment and its events, and records the removal. Returns the
/// removed deployment and how many events it had, or `None` when absent.
pub(crate) fn delete_deployment(
    conn: &mut DbConnection,
    id: &str,
    deleted_at: i64,
) -> QueryResult<Option<(Deployment, usize)>> {
    conn.transaction(|conn| {
        let Some(row) = find_deployment_row(conn, id)? else {
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
                deletions::snapshot.eq(serde_json::to_string(&DeploymentSnapshot::from(&row))
                    .unwrap_or_else(|_| "{}".into())),
                deletions::deleted_at.eq(deleted_at),
            ))
            .execute(conn)?;
        Ok(Some((row.into_deployment()?, removed_events)))
    })
}
