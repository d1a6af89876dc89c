//! `GET /api/v1/stats`: duration statistics and DORA figures per group, and
//! `GET /api/v1/components`: every component and environment seen.

use actix_web::{HttpResponse, web};
use chrono::{Duration, Utc};
use chrono_tz::Tz;
use deploytime_core::stats::{ChangeFailure, GroupBy};
use deploytime_core::time::micros_to_seconds;
use deploytime_core::wire::{ComponentSummary, ComponentsResponse, DeploymentView, StatsResponse};
use serde::Deserialize;

use super::params::ParamErrors;
use super::query_schemas;
use crate::db::Database;
use crate::db::queries;
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::reports::{self, StatsAsk};

/// The window statistics cover when `since` is not given.
pub(crate) const DEFAULT_WINDOW_DAYS: i64 = 30;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    #[param(schema_with = query_schemas::environments)]
    environment: Option<String>,
    /// Inclusive; default: 30 days before `until`. Must be earlier than `until`.
    #[param(schema_with = query_schemas::instant)]
    since: Option<String>,
    /// Exclusive; default: now.
    #[param(schema_with = query_schemas::instant)]
    until: Option<String>,
    #[param(schema_with = query_schemas::group_by)]
    group_by: Option<String>,
    #[param(schema_with = query_schemas::status)]
    status: Option<String>,
    /// With `day`: at most 3,660 days per request and 200,000 buckets (groups × days) per answer.
    #[param(schema_with = query_schemas::interval)]
    interval: Option<String>,
    /// IANA time zone of the daily buckets' boundaries (default UTC).
    tz: Option<String>,
    /// What the change failure rate counts as a failure: `failed` (default)
    /// or `failed_or_rolled_back` (also a deployment the next one rolled back).
    #[param(schema_with = query_schemas::change_failure)]
    change_failure: Option<String>,
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
#[tracing::instrument(skip(db, settings))]
pub(crate) async fn get_stats(
    query: web::Query<StatsQuery>,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut errors = ParamErrors::default();
    let now = Utc::now();
    let until = errors.instant("until", query.until).unwrap_or(now);
    let since = errors.instant("since", query.since).unwrap_or_else(|| {
        until
            .checked_sub_signed(Duration::days(DEFAULT_WINDOW_DAYS))
            .unwrap_or(until)
    });
    if since >= until {
        errors.push("since", "must be earlier than until");
    }
    let group_by = match query.group_by.as_deref().filter(|g| !g.is_empty()) {
        None => GroupBy::Component,
        Some(name) => GroupBy::parse(name).unwrap_or_else(|| {
            errors.push(
                "group_by",
                "must be component, environment, component,environment or none",
            );
            GroupBy::Component
        }),
    };
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
    let change_failure = match query.change_failure.as_deref().filter(|c| !c.is_empty()) {
        None => ChangeFailure::default(),
        Some(name) => ChangeFailure::parse(name).unwrap_or_else(|| {
            errors.push(
                "change_failure",
                format!("must be failed or failed_or_rolled_back (got {name:?})"),
            );
            ChangeFailure::default()
        }),
    };
    let cutoff = settings.abandon.cutoff(now);
    let ask = StatsAsk {
        component: errors.component(query.component),
        environments: errors.environments(query.environment),
        since,
        until,
        group_by,
        success_only,
        daily_in: daily.then_some(tz),
        change_failure,
    };
    errors.finish()?;
    let (response, _) = reports::statistics(&db, &ask, cutoff).await?;
    Ok(HttpResponse::Ok().json(response))
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
#[tracing::instrument(skip(db, settings))]
pub(crate) async fn list_components(
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let cutoff = settings.abandon.cutoff(Utc::now());
    let rows = db.read(queries::component_summaries).await?;
    Ok(HttpResponse::Ok().json(ComponentsResponse {
        items: rows
            .into_iter()
            .map(|row| ComponentSummary {
                last_deployment: DeploymentView::new(row.latest, &cutoff),
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
