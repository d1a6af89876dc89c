//! The commits deployments ship: written with the event that carries them,
//! read back with a deployment, as the latest shipped commit of a component,
//! and as the lead time's samples.

use deploytime_core::commits::{Commit, Shipped};
use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::{Component, DeploymentState, Environment};
use diesel::prelude::*;
use uuid::Uuid;

use crate::db::connection::DbConnection;
use crate::db::schema::{deployment_commits, deployments};

/// Records the commits an event of deployment `deployment_id` carries, beside
/// those an earlier event of it carried: a commit already recorded keeps its
/// place, a new one is listed after them.
pub(crate) fn record_commits(
    conn: &mut DbConnection,
    deployment_id: &str,
    commits: &[Commit],
) -> QueryResult<()> {
    if commits.is_empty() {
        return Ok(());
    }
    let seq: i64 = deployments::table
        .filter(deployments::id.eq(deployment_id))
        .select(deployments::seq)
        // The id is unique: no LIMIT, which SQLite would plan again on each
        // run (a bound LIMIT may change its plan).
        .get_result(conn)?;
    let known: Vec<String> = deployment_commits::table
        .filter(deployment_commits::deployment_seq.eq(seq))
        .select(deployment_commits::sha)
        .load(conn)?;
    let first_position = i32::try_from(known.len()).unwrap_or(i32::MAX);
    let rows: Vec<_> = commits
        .iter()
        .filter(|c| !known.contains(&c.sha))
        .zip(first_position..)
        .map(|(commit, position)| {
            (
                deployment_commits::deployment_seq.eq(seq),
                deployment_commits::sha.eq(commit.sha.clone()),
                deployment_commits::committed_at.eq(to_micros(commit.committed_at)),
                deployment_commits::position.eq(position),
            )
        })
        .collect();
    match conn {
        // One statement for them all where the backend takes a multi-row insert.
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(mysql) if !rows.is_empty() => {
            diesel::insert_into(deployment_commits::table)
                .values(rows)
                .execute(mysql)?;
        }
        _ => {
            for row in rows {
                diesel::insert_into(deployment_commits::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

fn commit_of((sha, committed_at): (String, i64)) -> Commit {
    Commit {
        sha,
        committed_at: from_micros(committed_at),
    }
}

/// The commits of one deployment, the deployed one first.
pub(crate) fn commits_of(conn: &mut DbConnection, deployment_id: &str) -> QueryResult<Vec<Commit>> {
    let rows: Vec<(String, i64)> = deployment_commits::table
        .inner_join(deployments::table)
        .filter(deployments::id.eq(deployment_id))
        .order(deployment_commits::position.asc())
        .select((deployment_commits::sha, deployment_commits::committed_at))
        .load(conn)?;
    Ok(rows.into_iter().map(commit_of).collect())
}

/// The latest successful deployment of a component in an environment, by the
/// time it is anchored at, with the commit it deployed (`None` when it
/// carried no commits); `None` when it never succeeded there.
pub(crate) fn latest_shipped(
    conn: &mut DbConnection,
    component: &Component,
    environment: &Environment,
) -> QueryResult<Option<(Uuid, i64, Option<Commit>)>> {
    let latest: Option<(i64, String, Option<i64>)> = deployments::table
        .filter(deployments::component.eq(component.as_str()))
        .filter(deployments::environment.eq(environment.as_str()))
        .filter(deployments::state.eq(DeploymentState::Succeeded.as_str()))
        .order((deployments::anchor_at.desc(), deployments::seq.desc()))
        .select((deployments::seq, deployments::id, deployments::finished_at))
        .first(conn)
        .optional()?;
    let Some((seq, id, finished_at)) = latest else {
        return Ok(None);
    };
    let corrupt = |reason: String| {
        diesel::result::Error::DeserializationError(
            format!("stored deployment {id} is unreadable: {reason}").into(),
        )
    };
    let finished_at = finished_at.ok_or_else(|| corrupt("succeeded without a finish".into()))?;
    let id = Uuid::parse_str(&id).map_err(|e| corrupt(e.to_string()))?;
    let deployed: Option<(String, i64)> = deployment_commits::table
        .filter(deployment_commits::deployment_seq.eq(seq))
        .order(deployment_commits::position.asc())
        .select((deployment_commits::sha, deployment_commits::committed_at))
        .first(conn)
        .optional()?;
    Ok(Some((id, finished_at, deployed.map(commit_of))))
}

/// Whether any deployment carries commits: statistics skip the lead time's
/// query where none ever did.
pub(crate) fn any_commits(conn: &mut DbConnection) -> QueryResult<bool> {
    deployment_commits::table
        .select(deployment_commits::deployment_seq)
        .first::<i64>(conn)
        .optional()
        .map(|found| found.is_some())
}

/// The commits shipped by the successful deployments of one component in one
/// environment anchored in `[since, until)` (microseconds): the deployments
/// from one range of the covering index, their commits by primary key.
pub(crate) fn shipped(
    conn: &mut DbConnection,
    component: &Component,
    environment: &Environment,
    (since, until): (i64, i64),
) -> QueryResult<Vec<Shipped>> {
    let rows: Vec<ShippedRow> = deployments::table
        .inner_join(deployment_commits::table)
        .filter(deployments::component.eq(component.as_str()))
        .filter(deployments::environment.eq(environment.as_str()))
        .filter(deployments::anchor_at.ge(since))
        .filter(deployments::anchor_at.lt(until))
        .filter(deployments::state.eq(DeploymentState::Succeeded.as_str()))
        .select((
            deployment_commits::sha,
            deployment_commits::committed_at,
            deployments::started_at,
            deployments::finished_at,
            deployments::anchor_at,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            Some(Shipped {
                sha: row.sha,
                committed_at: row.committed_at,
                started_at: row.started_at,
                finished_at: row.finished_at?,
                anchor_at: row.anchor_at,
            })
        })
        .collect())
}

/// A commit and the deployment that shipped it, as [`shipped`] reads them.
#[derive(Queryable)]
struct ShippedRow {
    sha: String,
    committed_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    anchor_at: i64,
}
