//! `GET /api/v1/stats`: duration statistics and DORA figures per group, and
//! `GET /api/v1/components`: every component and environment seen.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use chrono_tz::Tz;
use deploytime_core::stats::{self, GroupBy, Outcome, Sample, StatsRequest, Target};
use deploytime_core::time::{format_rfc3339, from_micros, micros_to_seconds, to_micros};
use serde::{Deserialize, Serialize};

use crate::db::queries;
use crate::db::{Database, DbError};
use crate::error::ApiError;
use crate::openapi::{AccessProblems, QueryProblems};
use crate::routes::params::ParamErrors;
use crate::routes::views::{DeploymentView, is_abandoned_state};
use crate::startup::Reporting;

/// Connections one statistics request reads on at once.
const STATS_READERS: usize = 2;

/// The window statistics cover when `since` is not given.
pub const DEFAULT_WINDOW_DAYS: i64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    component: Option<String>,
    environment: Option<String>,
    /// RFC 3339, inclusive; default: 30 days before `until`.
    since: Option<String>,
    /// RFC 3339, exclusive; default: now.
    until: Option<String>,
    /// component (default), environment, component,environment or none.
    group_by: Option<String>,
    /// `success`: durations of successful deployments only.
    status: Option<String>,
    /// `day`: add daily buckets.
    interval: Option<String>,
    /// IANA time zone of the daily buckets' boundaries (default UTC).
    tz: Option<String>,
}

/// The window the statistics cover.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Window {
    since: String,
    until: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatsResponse {
    window: Window,
    group_by: String,
    groups: Vec<stats::GroupStats>,
}

/// Duration statistics and DORA figures per group.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "reports",
    params(StatsQuery),
    responses(
        (status = 200, description = "The statistics of each group", body = StatsResponse),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db, reporting))]
pub async fn get_stats(
    query: web::Query<StatsQuery>,
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut errors = ParamErrors::default();
    let now = to_micros(Utc::now());
    let until = errors.instant("until", query.until).unwrap_or(now);
    let since = errors.instant("since", query.since).unwrap_or(
        until
            - Duration::days(DEFAULT_WINDOW_DAYS)
                .num_microseconds()
                .unwrap_or(0),
    );
    if since >= until {
        errors.push("since", "must be earlier than until");
    }
    let group_by_name = query
        .group_by
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "component".into());
    let group_by = GroupBy::parse(&group_by_name).unwrap_or_else(|| {
        errors.push(
            "group_by",
            "must be component, environment, component,environment or none",
        );
        GroupBy::Component
    });
    let success_only = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => false,
        Some("success") => true,
        Some(other) => {
            errors.push(
                "status",
                format!("only status=success is supported (got {other:?})"),
            );
            false
        }
    };
    let tz: Tz = match query.tz.as_deref().filter(|t| !t.is_empty()) {
        None => Tz::UTC,
        Some(name) => name.parse().unwrap_or_else(|_| {
            errors.push(
                "tz",
                format!("must be an IANA time zone such as Europe/Paris (got {name:?})"),
            );
            Tz::UTC
        }),
    };
    let daily = match query.interval.as_deref().filter(|i| !i.is_empty()) {
        None => false,
        Some("day") => true,
        Some(other) => {
            errors.push(
                "interval",
                format!("only interval=day is supported (got {other:?})"),
            );
            false
        }
    };
    let cutoff = reporting.abandon_cutoff();
    let component = errors.component(query.component);
    let environment = errors.environment(query.environment);
    errors.finish()?;

    // One query for the components and environments, then one index range per
    // component and environment: rows arrive already grouped, and carry no
    // names to decode or hash. The ranges are read on STATS_READERS connections
    // at once, so the database produces one share of the rows while the server
    // decodes another.
    let names = db
        .read(move |conn| {
            queries::stats_targets(conn, component.as_deref(), environment.as_deref())
        })
        .await?
        .map_err(DbError::from)?;
    let share = names.len().div_ceil(STATS_READERS).max(1);
    let reads = names.chunks(share).map(|chunk| {
        let chunk = chunk.to_vec();
        db.read(move |conn| {
            chunk
                .into_iter()
                .map(|(component, environment)| {
                    let rows =
                        queries::stats_samples(conn, &component, &environment, since, until)?;
                    Ok(Target {
                        samples: rows.into_iter().map(|row| sample(row, cutoff)).collect(),
                        component,
                        environment,
                    })
                })
                .collect::<diesel::QueryResult<Vec<Target>>>()
        })
    });
    let mut targets = Vec::new();
    for read in futures_util::future::join_all(reads).await {
        targets.extend(read?.map_err(DbError::from)?);
    }
    let request = StatsRequest {
        group_by,
        success_only,
        since,
        until,
        daily_in: daily.then_some(tz),
    };
    Ok(HttpResponse::Ok().json(StatsResponse {
        window: Window {
            since: format_rfc3339(from_micros(since)),
            until: format_rfc3339(from_micros(until)),
        },
        group_by: group_by_name,
        groups: stats::compute(&targets, &request),
    }))
}

/// A stored deployment as the statistics count it.
fn sample(
    (state, started_at, finished_at, duration_us, anchor_at): queries::StatsRow,
    abandon_cutoff: i64,
) -> Sample {
    let outcome = match state.as_str() {
        "succeeded" => Outcome::Succeeded,
        "failed" => Outcome::Failed,
        "cancelled" => Outcome::Cancelled,
        running if is_abandoned_state(running, started_at, abandon_cutoff) => Outcome::Abandoned,
        _ => Outcome::Running,
    };
    Sample {
        outcome,
        finished_at,
        duration_us,
        anchor_at,
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ComponentSummary {
    component: String,
    environment: String,
    deployments: i64,
    mean_duration_seconds: Option<f64>,
    last_deployment: DeploymentView,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ComponentsResponse {
    items: Vec<ComponentSummary>,
}

/// Every component and environment seen, with its latest deployment and its mean
/// duration (over deployments that have both a start and a finish).
#[utoipa::path(
    get,
    path = "/api/v1/components",
    tag = "reports",
    responses(
        (status = 200, description = "Every component and environment seen", body = ComponentsResponse),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db, reporting))]
pub async fn list_components(
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
) -> Result<HttpResponse, ApiError> {
    let cutoff = reporting.abandon_cutoff();
    let rows = db
        .read(queries::component_summaries)
        .await?
        .map_err(DbError::from)?;
    Ok(HttpResponse::Ok().json(ComponentsResponse {
        items: rows
            .into_iter()
            .map(|row| ComponentSummary {
                last_deployment: DeploymentView::of(&row.latest, cutoff),
                component: row.component,
                environment: row.environment,
                deployments: row.deployments,
                // Averages of whole microseconds, shown like every other duration.
                mean_duration_seconds: row
                    .mean_duration_us
                    .map(|m| micros_to_seconds(m.round() as i64)),
            })
            .collect(),
    }))
}
