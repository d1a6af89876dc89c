//! What the statistics read: the components and environments seen, and for each
//! the samples of one window, from one index range.

use deploytime_core::AbandonCutoff;
use deploytime_core::stats::Sample;
use deploytime_core::time::from_micros;
use deploytime_core::{Component, DeploymentState, Environment};
use diesel::prelude::*;

use crate::db::connection::DbConnection;
use crate::db::schema::deployments;

/// Every component and environment seen (only `component`'s, only in
/// `environments`, when given), in order.
pub(crate) fn stats_targets(
    conn: &mut DbConnection,
    component: Option<&Component>,
    environments: &[Environment],
) -> QueryResult<Vec<(Component, Environment)>> {
    // Written as SQL of its own, one per backend (BENCHMARKS.md, "The
    // dashboard"). MariaDB reads the index's distinct prefixes for a DISTINCT
    // (600 rows, a few ms), but only in a statement prepared anew: diesel keeps
    // the statements it builds prepared, and a re-executed one scanned all the
    // rows (a million, 0.4 s); an SQL query is prepared each time. SQLite has
    // no such scan and reads the whole index (90 ms), so there the pairs are
    // found by seeking from one to the next (3 ms).
    let sqlite = matches!(conn, DbConnection::Sqlite(_));
    let mut sql = if sqlite {
        let components = if component.is_some() {
            "comps(c) AS (SELECT MIN(component) FROM deployments WHERE component = ?)"
        } else {
            "comps(c) AS (SELECT MIN(component) FROM deployments \
             UNION ALL SELECT (SELECT MIN(component) FROM deployments WHERE component > comps.c) \
             FROM comps WHERE comps.c IS NOT NULL)"
        };
        format!(
            "WITH RECURSIVE {components}, \
             pairs(component, environment) AS ( \
               SELECT c, (SELECT MIN(environment) FROM deployments WHERE component = comps.c) \
               FROM comps WHERE c IS NOT NULL \
               UNION ALL SELECT component, (SELECT MIN(environment) FROM deployments d \
                 WHERE d.component = pairs.component AND d.environment > pairs.environment) \
               FROM pairs WHERE environment IS NOT NULL) \
             SELECT component, environment FROM pairs WHERE environment IS NOT NULL"
        )
    } else {
        String::from("SELECT DISTINCT component, environment FROM deployments WHERE 1 = 1")
    };
    if component.is_some() && !sqlite {
        sql.push_str(" AND component = ?");
    }
    if !environments.is_empty() {
        sql.push_str(&format!(
            " AND environment IN ({})",
            vec!["?"; environments.len()].join(", ")
        ));
    }
    sql.push_str(" ORDER BY component, environment");
    let mut query = diesel::sql_query(sql).into_boxed();
    if let Some(component) = component {
        query = query.bind::<diesel::sql_types::Text, _>(component.as_str().to_owned());
    }
    for environment in environments {
        query = query.bind::<diesel::sql_types::Text, _>(environment.as_str().to_owned());
    }
    query
        .load::<TargetRow>(conn)?
        .into_iter()
        .map(
            |TargetRow {
                 component,
                 environment,
             }| {
                let unreadable = |e: String| {
                    diesel::result::Error::DeserializationError(
                        format!("a stored name is unreadable: {e}").into(),
                    )
                };
                Ok((
                    Component::try_from(component).map_err(unreadable)?,
                    Environment::try_from(environment).map_err(unreadable)?,
                ))
            },
        )
        .collect()
}

/// A component and environment seen.
#[derive(QueryableByName)]
struct TargetRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    component: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    environment: String,
}

/// A deployment as the statistics read it.
#[derive(Queryable)]
struct SampleRow {
    #[diesel(deserialize_as = String)]
    state: DeploymentState,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    duration_us: Option<i64>,
    anchor_at: i64,
    rollback: i16,
}

/// The samples of each deployment of one component in one environment in
/// `[since, until)` (microseconds), reported at `cutoff`. One range of the
/// `deployments_component_anchor` index, which holds every column read here, so
/// no table row is visited.
pub(crate) fn stats_samples(
    conn: &mut DbConnection,
    component: &Component,
    environment: &Environment,
    (since, until): (i64, i64),
    cutoff: &AbandonCutoff,
) -> QueryResult<Vec<Sample>> {
    let rows: Vec<SampleRow> = deployments::table
        .filter(deployments::component.eq(component.as_str()))
        .filter(deployments::environment.eq(environment.as_str()))
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
            deployments::rollback,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|row| Sample {
            outcome: cutoff.report(row.state, row.started_at.map(from_micros)),
            finished_at: row.finished_at,
            duration_us: row.duration_us,
            anchor_at: row.anchor_at,
            rollback: row.rollback != 0,
        })
        .collect())
}

/// When the latest deployment of `component` in `environments` (each when
/// given) is anchored, microseconds; `None` when there is none.
pub(crate) fn latest_anchor(
    conn: &mut DbConnection,
    component: Option<&Component>,
    environments: &[Environment],
) -> QueryResult<Option<i64>> {
    let mut query = deployments::table
        .select(diesel::dsl::max(deployments::anchor_at))
        .into_boxed();
    if let Some(component) = component {
        query = query.filter(deployments::component.eq(component.as_str().to_owned()));
    }
    if !environments.is_empty() {
        let names: Vec<String> = environments.iter().map(|e| e.as_str().to_owned()).collect();
        query = query.filter(deployments::environment.eq_any(names));
    }
    query.first(conn)
}
