//! A component's page (duration over time, outcomes per day, durations,
//! failure streaks, its deployments) and a deployment's page (its events,
//! attributes and corrections, its duration against the component's median),
//! with the filter form and the formatting they share.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use deploytime_core::dora::Level;
use deploytime_core::stats::{self, GroupBy, Series, StatsRequest};
use deploytime_core::time::{format_rfc3339, from_micros, to_micros};
use deploytime_core::wire::{DeploymentView, EventView};
use deploytime_core::{Component, Environment};
use uuid::Uuid;

use super::filters::{PageFilters, WINDOWS, ZONES};
use super::frame::{Chrome, message, page, query_pairs};
use super::{charts, session};
use crate::db::queries::{self, Cursor, DeploymentFilter};
use crate::db::{Database, DbErrorClass};
use crate::http::HttpSettings;
use crate::http::error::ApiError;
use crate::http::reports;

/// A duration for people: `3m 12s`, `450ms`, `-` when unknown.
pub(crate) fn duration(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".to_owned(),
        Some(s) if !s.is_finite() || s < 0.0 => "-".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0}ms", s * 1000.0),
        Some(s) => {
            humantime::format_duration(std::time::Duration::from_secs(s.round() as u64)).to_string()
        }
    }
}

/// How many incidents started, and how many of them are still open: `3 (1 open)`.
pub(crate) fn incident_count(g: &stats::GroupStats) -> String {
    match g.incidents.unresolved {
        0 => g.incidents.count.to_string(),
        open => format!("{} ({open} open)", g.incidents.count),
    }
}

pub(crate) fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".to_owned(), |r| format!("{:.0}%", r * 100.0))
}

/// How often, in the unit that keeps a real cadence from reading as zero.
pub(crate) fn per_day(per_day: f64) -> String {
    if per_day >= 1.0 {
        format!("{per_day:.1}/day")
    } else if per_day * 7.0 >= 1.0 {
        format!("{:.1}/week", per_day * 7.0)
    } else if per_day > 0.0 {
        format!("{:.1}/month", per_day * 30.0)
    } else {
        "0".to_owned()
    }
}

/// `3h ago`, from the anchor's microseconds.
pub(crate) fn age(now: DateTime<Utc>, at: i64) -> String {
    if at == 0 {
        return String::new();
    }
    let seconds = (now - from_micros(at)).num_seconds().max(0);
    let rounded = match seconds {
        s if s < 60 => s,
        s if s < 3_600 => s / 60 * 60,
        s if s < 86_400 => s / 3_600 * 3_600,
        s => s / 86_400 * 86_400,
    };
    format!(
        "{} ago",
        humantime::format_duration(std::time::Duration::from_secs(rounded as u64))
    )
}

fn local(at: Option<DateTime<Utc>>, tz: &chrono_tz::Tz) -> String {
    at.map_or_else(
        || "-".to_owned(),
        |at| {
            at.with_timezone(tz)
                .format("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        },
    )
}

/// A failed read, as a page.
pub(crate) fn failed(error: &ApiError) -> HttpResponse {
    match error {
        ApiError::InvalidQuery(errors) => message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "These filters ask for too much",
            &errors.to_string(),
        ),
        ApiError::Database(e) if e.class() == DbErrorClass::Unavailable => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "The database cannot be reached just now; try again in a moment.",
        ),
        other => {
            tracing::warn!(error = %other, "a page's read failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "This page could not be read; the server's log has the cause.",
            )
        }
    }
}

/// The filter form, as the templates show it.
pub(crate) struct FilterForm {
    pub action: &'static str,
    pub component: Option<String>,
    pub window: String,
    pub windows: Vec<(&'static str, &'static str)>,
    pub since_date: String,
    pub until_date: String,
    /// Every environment seen, and whether it is selected.
    pub environments: Vec<(String, bool)>,
    pub tz: String,
    pub zones: Vec<&'static str>,
    /// Every component seen, offered by the overview's component field.
    pub components: Vec<String>,
    pub errors: Vec<(String, String)>,
}

impl FilterForm {
    pub(crate) async fn new(db: &Database, filters: &PageFilters, action: &'static str) -> Self {
        let targets = db
            .report(|conn| queries::stats_targets(conn, None, &[]))
            .await
            .unwrap_or_default();
        let known: BTreeSet<String> = targets.iter().map(|(_, e)| e.to_string()).collect();
        let components: BTreeSet<String> = targets.iter().map(|(c, _)| c.to_string()).collect();
        let selected: BTreeSet<String> = filters
            .environments
            .iter()
            .map(ToString::to_string)
            .collect();
        FilterForm {
            action,
            component: filters.component.as_ref().map(ToString::to_string),
            window: filters.window.clone(),
            windows: WINDOWS.to_vec(),
            since_date: filters.since_date(),
            until_date: filters.until_date(),
            environments: known
                .union(&selected)
                .map(|e| (e.clone(), selected.contains(e)))
                .collect(),
            tz: filters.tz.name().to_owned(),
            zones: ZONES.to_vec(),
            components: components.into_iter().collect(),
            errors: filters.errors.clone(),
        }
    }
}

pub(crate) struct Card {
    pub name: &'static str,
    pub value: String,
    pub level: Option<&'static str>,
}

pub(crate) struct Summary {
    pub cards: Vec<Card>,
}

pub(crate) struct DayRow {
    pub date: String,
    pub deployments: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub median: String,
    pub p90: String,
    pub p95: String,
}

pub(crate) struct StreakRow {
    pub environment: String,
    pub first: String,
    pub failures: usize,
    pub restored: String,
    pub restore: String,
}

/// One incident of the component, as its page lists it.
pub(crate) struct IncidentRow {
    pub environment: String,
    pub started: String,
    pub resolved: String,
    pub restore: String,
}

pub(crate) struct DeploymentRow {
    pub link: String,
    pub started: String,
    pub environment: String,
    pub version: String,
    pub state: &'static str,
    pub status: String,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "component.html")]
struct ComponentPage {
    chrome: Chrome,
    filters: FilterForm,
    component: String,
    window: String,
    summary: Option<Summary>,
    percentiles_chart: String,
    outcomes_chart: String,
    histogram_chart: String,
    days: Vec<DayRow>,
    histogram: Vec<(String, String, usize)>,
    streaks: Vec<StreakRow>,
    streaks_left_out: usize,
    incidents: Vec<IncidentRow>,
    incidents_left_out: usize,
    deployments: Vec<DeploymentRow>,
    first_page: String,
    next_page: Option<String>,
}

/// Deployments listed per page on a component's page.
const PAGE: i64 = 50;
/// Failure streaks listed on a component's page, the most recent first.
const STREAKS: usize = 25;
/// Incidents listed on a component's page, the most recent first.
const INCIDENTS: usize = 25;

#[tracing::instrument(skip_all)]
pub(crate) async fn component(
    req: HttpRequest,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> HttpResponse {
    let caller = match session::admit(&req).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let now = Utc::now();
    let mut filters = PageFilters::parse(&query_pairs(&req), now);
    let Some(component) = filters.component.clone() else {
        if filters.errors.is_empty() {
            filters.errors.push((
                "component".into(),
                "is required: pick one on the overview".into(),
            ));
        }
        let form = FilterForm::new(&db, &filters, "/component").await;
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "No component",
            &form
                .errors
                .iter()
                .map(|(f, m)| format!("{f}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
        );
    };
    let form = FilterForm::new(&db, &filters, "/component").await;
    let component_query =
        serde_urlencoded::to_string([("component", component.as_str())]).unwrap_or_default();
    let base = format!("/component?{component_query}&{}", filters.query());
    let mut view = ComponentPage {
        chrome: Chrome::new(filters.query(), caller.signed_in),
        filters: form,
        component: component.to_string(),
        window: filters.describe(),
        summary: None,
        percentiles_chart: String::new(),
        outcomes_chart: String::new(),
        histogram_chart: String::new(),
        days: Vec::new(),
        histogram: Vec::new(),
        streaks: Vec::new(),
        streaks_left_out: 0,
        incidents: Vec::new(),
        incidents_left_out: 0,
        deployments: Vec::new(),
        first_page: base.clone(),
        next_page: None,
    };
    if !view.filters.errors.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, &view);
    }
    let cutoff = settings.abandon.cutoff(now);
    let (since, until) = (to_micros(filters.since), to_micros(filters.until));
    let days = stats::day_count(since, until, &filters.tz);
    if let Err(limit) = stats::check_daily(days, 1) {
        view.filters
            .errors
            .push(("window".into(), limit.to_string()));
        return page(StatusCode::UNPROCESSABLE_ENTITY, &view);
    }
    let series = match reports::read_series(
        &db,
        Some(component.clone()),
        filters.environments.clone(),
        (since, until),
        cutoff,
    )
    .await
    {
        Ok(series) => series,
        Err(e) => return failed(&e),
    };
    let mut incidents = match reports::read_incidents(
        &db,
        Some(component.clone()),
        filters.environments.clone(),
        (since, until),
    )
    .await
    {
        Ok(incidents) => incidents,
        Err(e) => return failed(&e),
    };
    let request = StatsRequest {
        group_by: GroupBy::None,
        success_only: false,
        since,
        until,
        daily_in: Some(filters.tz),
        change_failure: Default::default(),
    };
    let group = stats::with_incidents(stats::compute(&series, &request), &incidents, &request)
        .into_iter()
        .next();
    if let Some(g) = &group {
        let level = |l: Option<Level>| l.map(Level::as_str);
        view.summary = Some(Summary {
            cards: vec![
                Card {
                    name: "Deployments",
                    value: g.deployments.to_string(),
                    level: None,
                },
                Card {
                    name: "Median duration",
                    value: duration(g.duration_seconds.median),
                    level: None,
                },
                Card {
                    name: "p95 duration",
                    value: duration(g.duration_seconds.p95),
                    level: None,
                },
                Card {
                    name: "Deployment frequency",
                    value: per_day(g.deploys_per_day),
                    level: Some(g.levels.deploy_frequency.as_str()),
                },
                Card {
                    name: "Change failure rate",
                    value: percent(g.change_failure_rate),
                    level: level(g.levels.change_failure_rate),
                },
                Card {
                    name: "Time to restore",
                    value: duration(g.mean_time_to_restore_seconds),
                    level: level(g.levels.time_to_restore),
                },
                Card {
                    name: "Incidents",
                    value: incident_count(g),
                    level: None,
                },
                Card {
                    name: "Time to restore, by incidents",
                    value: duration(g.incidents.mean_time_to_restore_seconds),
                    level: level(g.incidents.level),
                },
            ],
        });
        let daily = g.daily.clone().unwrap_or_default();
        let dates: Vec<_> = daily.iter().map(|d| d.date).collect();
        let p50: Vec<_> = daily.iter().map(|d| d.median_duration_seconds).collect();
        let p90: Vec<_> = daily.iter().map(|d| d.p90_duration_seconds).collect();
        let p95: Vec<_> = daily.iter().map(|d| d.p95_duration_seconds).collect();
        let outcomes: Vec<[usize; 3]> = daily
            .iter()
            .map(|d| [d.succeeded, d.failed, d.cancelled])
            .collect();
        view.percentiles_chart = charts::percentiles(&dates, [&p50, &p90, &p95]);
        view.outcomes_chart = charts::outcomes(&dates, &outcomes);
        view.days = daily
            .iter()
            .map(|d| DayRow {
                date: d.date.to_string(),
                deployments: d.deployments,
                succeeded: d.succeeded,
                failed: d.failed,
                cancelled: d.cancelled,
                median: duration(d.median_duration_seconds),
                p90: duration(d.p90_duration_seconds),
                p95: duration(d.p95_duration_seconds),
            })
            .collect();
    }
    let inside = |s: &Series| -> Vec<stats::Sample> {
        s.samples
            .iter()
            .filter(|x| x.anchor_at >= since && x.anchor_at < until)
            .copied()
            .collect()
    };
    let samples: Vec<stats::Sample> = series.iter().flat_map(inside).collect();
    let buckets = stats::duration_histogram(&stats::counted_durations(&samples, false));
    view.histogram_chart = charts::histogram(&buckets);
    view.histogram = buckets
        .iter()
        .map(|(lower, n)| {
            let upper = if *lower == 0.0 { 1.0 } else { lower * 2.0 };
            (duration(Some(*lower)), duration(Some(upper)), *n)
        })
        .collect();
    let mut streaks: Vec<(String, stats::Streak)> = series
        .iter()
        .flat_map(|s| {
            let mine = inside(s);
            let refs: Vec<&stats::Sample> = mine.iter().collect();
            stats::failure_streaks(&refs)
                .into_iter()
                .map(|streak| (s.environment.clone(), streak))
                .collect::<Vec<_>>()
        })
        .collect();
    // Newest first; the most recent ones are what a reader acts on.
    streaks.sort_by_key(|(_, streak)| std::cmp::Reverse(streak.first_failure_at));
    view.streaks_left_out = streaks.len().saturating_sub(STREAKS);
    view.streaks = streaks
        .into_iter()
        .take(STREAKS)
        .map(|(environment, streak)| StreakRow {
            environment,
            first: local(Some(from_micros(streak.first_failure_at)), &filters.tz),
            failures: streak.failures,
            restored: streak.restored_at.map_or_else(
                || "not yet".to_owned(),
                |at| local(Some(from_micros(at)), &filters.tz),
            ),
            restore: duration(streak.restore_time().map(|us| us as f64 / 1e6)),
        })
        .collect();
    // Newest first, as the streaks.
    incidents.sort_by_key(|incident| std::cmp::Reverse(incident.started_at));
    view.incidents_left_out = incidents.len().saturating_sub(INCIDENTS);
    view.incidents = incidents
        .into_iter()
        .take(INCIDENTS)
        .map(|incident| IncidentRow {
            started: local(Some(from_micros(incident.started_at)), &filters.tz),
            resolved: incident.resolved_at.map_or_else(
                || "not yet".to_owned(),
                |at| local(Some(from_micros(at)), &filters.tz),
            ),
            restore: duration(
                incident
                    .resolved_at
                    .map(|at| (at - incident.started_at) as f64 / 1e6),
            ),
            environment: incident.environment,
        })
        .collect();
    // Its deployments, newest first, a page at a time (the API's listing).
    let cursor = filters.extra("cursor").and_then(|c| {
        let (at, seq) = c.split_once('_')?;
        Some(Cursor {
            at: at.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    });
    let filter = DeploymentFilter {
        component: Some(component.clone()),
        environments: filters.environments.clone(),
        state: None,
        since: Some(filters.since),
        until: Some(filters.until),
    };
    let listed = match db
        .report(move |conn| queries::list_deployments(conn, &filter, cursor, None, PAGE + 1))
        .await
    {
        Ok(listed) => listed,
        Err(e) => return failed(&ApiError::from(e)),
    };
    let more = listed.len() as i64 > PAGE;
    let last = listed.get(PAGE as usize - 1).map(|l| l.cursor);
    view.next_page = last
        .filter(|_| more)
        .map(|c| format!("{base}&cursor={}_{}", c.at, c.seq));
    view.deployments = listed
        .into_iter()
        .take(PAGE as usize)
        .map(|listed| {
            let d = DeploymentView::new(listed.item, &cutoff);
            DeploymentRow {
                link: format!("/deployments/{}?{}", d.id, filters.query()),
                started: local(d.started_at.or(d.finished_at), &filters.tz),
                environment: d.environment.to_string(),
                version: d.version.clone().unwrap_or_else(|| "-".into()),
                state: d.state.as_str(),
                status: d
                    .status
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
                duration: duration(d.duration_seconds),
            }
        })
        .collect();
    page(StatusCode::OK, &view)
}

pub(crate) struct EventRow {
    pub phase: &'static str,
    pub at: String,
    pub received: String,
    pub status: String,
    pub version: String,
    pub owner: String,
}

#[derive(Template)]
#[template(path = "deployment.html")]
struct DeploymentPage {
    chrome: Chrome,
    id: Uuid,
    component: String,
    component_link: String,
    environment: String,
    state: &'static str,
    duration: String,
    against_median: String,
    version: String,
    started: String,
    finished: String,
    events: Vec<EventRow>,
    /// (key, value, whether the value is a web address to link)
    attributes: Vec<(String, String, bool)>,
    /// (when, by, why, what)
    corrections: Vec<(String, String, String, String)>,
}

#[tracing::instrument(skip_all)]
pub(crate) async fn deployment(
    req: HttpRequest,
    id: web::Path<String>,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> HttpResponse {
    let caller = match session::admit(&req).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let Ok(id) = Uuid::parse_str(&id) else {
        return message(
            StatusCode::BAD_REQUEST,
            "No such deployment",
            "A deployment's id is a UUID.",
        );
    };
    let now = Utc::now();
    let filters = PageFilters::parse(&query_pairs(&req), now);
    let key = id.to_string();
    let read = move |conn: &mut crate::db::DbConnection| {
        let Some(row) = queries::find_deployment_row(conn, &key)? else {
            return Ok(None);
        };
        let deployment = row.into_deployment()?;
        let events = queries::events_of_deployment(conn, &key)?;
        let corrections = queries::corrections_of(conn, &key)?;
        Ok(Some((deployment, events, corrections)))
    };
    // A page of the dashboard reads the replica; a deployment it does not
    // have yet (one stored a moment ago, its link followed at once) is looked
    // for on the primary before the page says there is none.
    let found = match db.report(read.clone()).await {
        Ok(None) if db.has_replica() => db.read(read).await,
        found => found,
    };
    let (deployment, events, corrections) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "No such deployment",
                &format!("No deployment has the id {id}."),
            );
        }
        Err(e) => return failed(&ApiError::from(e)),
    };
    let cutoff = settings.abandon.cutoff(now);
    let component: Component = deployment.component.clone();
    let environment: Environment = deployment.environment.clone();
    // The component's median over the page's window, in this environment.
    let (since, until) = (to_micros(filters.since), to_micros(filters.until));
    let median = match reports::read_series(
        &db,
        Some(component.clone()),
        vec![environment.clone()],
        (since, until),
        cutoff,
    )
    .await
    {
        Ok(series) => stats::compute(
            &series,
            &StatsRequest {
                group_by: GroupBy::None,
                success_only: false,
                since,
                until,
                daily_in: None::<chrono_tz::Tz>,
                change_failure: Default::default(),
            },
        )
        .first()
        .and_then(|g| g.duration_seconds.median),
        Err(e) => return failed(&e),
    };
    let view = DeploymentView::new(deployment, &cutoff);
    let against_median = match (view.duration_seconds, median) {
        (Some(d), Some(m)) if m > 0.0 => format!(
            "{:+.0}% against the median of {} in {} ({})",
            (d / m - 1.0) * 100.0,
            component,
            environment,
            duration(Some(m))
        ),
        _ => "no median to compare with in this window".to_owned(),
    };
    let tz = filters.tz;
    let attributes = events
        .iter()
        .flat_map(|e| e.attributes.clone())
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .map(|(k, v)| {
            let link = v.starts_with("https://") || v.starts_with("http://");
            (k, v, link)
        })
        .collect();
    let page_view = DeploymentPage {
        chrome: Chrome::new(filters.query(), caller.signed_in),
        id,
        component_link: format!(
            "/component?{}&{}",
            serde_urlencoded::to_string([("component", component.as_str())]).unwrap_or_default(),
            filters.query()
        ),
        component: component.to_string(),
        environment: environment.to_string(),
        state: view.state.as_str(),
        duration: duration(view.duration_seconds),
        against_median,
        version: view.version.clone().unwrap_or_else(|| "-".into()),
        started: local(view.started_at, &tz),
        finished: local(view.finished_at, &tz),
        events: events
            .into_iter()
            .map(EventView::from)
            .map(|e| EventRow {
                phase: e.phase.as_str(),
                at: local(Some(e.timestamp), &tz),
                received: local(Some(e.received_at), &tz),
                status: e.status.map_or_else(|| "-".into(), |s| s.to_string()),
                version: e.version.unwrap_or_else(|| "-".into()),
                owner: e.owner.unwrap_or_else(|| "-".into()),
            })
            .collect(),
        attributes,
        corrections: corrections
            .into_iter()
            .map(|c| {
                let what = c
                    .changes
                    .iter()
                    .map(|(field, change)| {
                        format!(
                            "{field}: {} → {}",
                            change.before.as_deref().unwrap_or("-"),
                            change.after.as_deref().unwrap_or("-")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                (
                    format_rfc3339(c.corrected_at),
                    c.corrected_by,
                    c.reason,
                    what,
                )
            })
            .collect(),
    };
    page(StatusCode::OK, &page_view)
}
