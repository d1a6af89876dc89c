//! The statistics, read one way for everyone who shows them: the API's
//! `/api/v1/stats` and the dashboard's pages call these, so a figure on a page
//! is the API's figure for the same filters.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use deploytime_core::incident::IncidentSample;
use deploytime_core::stats::{self, ChangeFailure, Definitions, GroupBy, Series, StatsRequest};
use deploytime_core::time::{format_rfc3339, from_micros, to_micros};
use deploytime_core::wire::{StatsResponse, Window};
use deploytime_core::{AbandonCutoff, Component, Environment, FieldError, ValidationErrors};

use super::error::ApiError;
use crate::db::{Database, queries};

/// Connections one statistics request reads on at once.
const STATS_READERS: usize = 2;

/// What statistics are asked for.
#[derive(Debug, Clone)]
pub(crate) struct StatsAsk {
    pub component: Option<Component>,
    /// Any of these; none: every environment.
    pub environments: Vec<Environment>,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub group_by: GroupBy,
    pub success_only: bool,
    /// Daily buckets in this time zone, when asked for.
    pub daily_in: Option<Tz>,
    pub change_failure: ChangeFailure,
}

/// The deployments anchored in `[since, until)` (microseconds) of every
/// component and environment the filters select, one series each. One query
/// for the names, then one index range per name, read on two connections at
/// once so that the database produces one share while the server decodes the
/// other.
pub(crate) async fn read_series(
    db: &Database,
    component: Option<Component>,
    environments: Vec<Environment>,
    (since, until): (i64, i64),
    cutoff: AbandonCutoff,
) -> Result<Vec<Series>, ApiError> {
    let names = db
        .report(move |conn| queries::stats_targets(conn, component.as_ref(), &environments))
        .await?;
    read_named(db, names, (since, until), cutoff).await
}

/// The incidents started in `[since, until)` (microseconds) of the
/// components and environments the filters select.
pub(crate) async fn read_incidents(
    db: &Database,
    component: Option<Component>,
    environments: Vec<Environment>,
    window: (i64, i64),
) -> Result<Vec<IncidentSample>, ApiError> {
    Ok(db
        .report(move |conn| {
            queries::incident_samples(conn, component.as_ref(), &environments, window)
        })
        .await?)
}

async fn read_named(
    db: &Database,
    names: Vec<(Component, Environment)>,
    window: (i64, i64),
    cutoff: AbandonCutoff,
) -> Result<Vec<Series>, ApiError> {
    // The lead time's query runs only where some deployment carries commits.
    let with_commits = !names.is_empty() && db.report(queries::any_commits).await?;
    let share = names.len().div_ceil(STATS_READERS).max(1);
    let reads = names.chunks(share).map(|chunk| {
        let chunk = chunk.to_vec();
        db.report(move |conn| {
            chunk
                .into_iter()
                .map(|(component, environment)| {
                    Ok(Series {
                        shipped: if with_commits {
                            queries::shipped(conn, &component, &environment, window)?
                        } else {
                            Vec::new()
                        },
                        samples: queries::stats_samples(
                            conn,
                            &component,
                            &environment,
                            window,
                            &cutoff,
                        )?,
                        component: component.to_string(),
                        environment: environment.to_string(),
                    })
                })
                .collect::<diesel::QueryResult<Vec<Series>>>()
        })
    });
    let mut series = Vec::new();
    for read in futures_util::future::join_all(reads).await {
        series.extend(read?);
    }
    Ok(series)
}

/// The statistics of `ask`, as `/api/v1/stats` answers them, and the series
/// they were computed from.
pub(crate) async fn statistics(
    db: &Database,
    ask: &StatsAsk,
    cutoff: AbandonCutoff,
) -> Result<(StatsResponse, Vec<Series>), ApiError> {
    let names = {
        let (component, environments) = (ask.component.clone(), ask.environments.clone());
        db.report(move |conn| queries::stats_targets(conn, component.as_ref(), &environments))
            .await?
    };
    let window = (to_micros(ask.since), to_micros(ask.until));
    let incidents =
        read_incidents(db, ask.component.clone(), ask.environments.clone(), window).await?;
    if let Some(tz) = &ask.daily_in {
        let days = stats::day_count(window.0, window.1, tz);
        // Incidents of a pair without deployments make a group of their own.
        let groups = stats::group_count(
            names.iter().map(|(c, e)| (c.as_str(), e.as_str())).chain(
                incidents
                    .iter()
                    .map(|i| (i.component.as_str(), i.environment.as_str())),
            ),
            ask.group_by,
        );
        if let Err(limit) = stats::check_daily(days, groups) {
            let field = match limit {
                stats::DailyLimit::TooManyDays { .. } => "since",
                stats::DailyLimit::TooManyBuckets { .. } => "interval",
            };
            return Err(ApiError::InvalidQuery(ValidationErrors(vec![
                FieldError::new(field, limit.to_string()),
            ])));
        }
    }
    let series = read_named(db, names, window, cutoff).await?;
    let request = StatsRequest {
        group_by: ask.group_by,
        success_only: ask.success_only,
        since: window.0,
        until: window.1,
        daily_in: ask.daily_in,
        change_failure: ask.change_failure,
    };
    let groups = stats::with_incidents(stats::compute(&series, &request), &incidents, &request);
    let hint = if groups.iter().all(|group| group.deployments == 0) {
        let (component, environments) = (ask.component.clone(), ask.environments.clone());
        let latest = db
            .report(move |conn| queries::latest_anchor(conn, component.as_ref(), &environments))
            .await?;
        latest.filter(|at| *at < window.0).map(|at| {
            format!(
                "no deployment in this window; the latest that matches started at {}: pass an earlier since",
                format_rfc3339(from_micros(at))
            )
        })
    } else {
        None
    };
    let response = StatsResponse {
        window: Window {
            since: ask.since,
            until: ask.until,
        },
        group_by: ask.group_by,
        groups,
        definitions: Definitions::of(ask.change_failure),
        hint,
    };
    Ok((response, series))
}
