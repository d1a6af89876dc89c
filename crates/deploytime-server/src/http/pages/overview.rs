//! The overview: one row per component and environment, the DORA figures of
//! everything with their levels, and the previous period of the same length
//! beside them. Read through `http::reports` and computed by the domain's
//! statistics, like `/api/v1/stats`.

use std::cmp::Ordering;
use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use deploytime_core::dora::{self, Level};
use deploytime_core::stats::{self, GroupBy, GroupStats, Series, StatsRequest};
use deploytime_core::time::to_micros;

use super::filters::PageFilters;
use super::frame::{Chrome, page, query_pairs};
use super::views::{FilterForm, age, duration, per_day, percent};
use super::{charts, session};
use crate::db::Database;
use crate::http::HttpSettings;
use crate::http::reports;

pub(crate) struct Card {
    pub name: &'static str,
    pub value: String,
    pub level: Option<&'static str>,
    pub previous: String,
}

pub(crate) struct Total {
    pub cards: Vec<Card>,
}

pub(crate) struct Row {
    pub component: String,
    pub environment: String,
    pub link: String,
    pub deployments: usize,
    pub success_rate: String,
    pub median: String,
    pub p95: String,
    pub frequency: String,
    pub frequency_level: &'static str,
    pub failure_rate: String,
    pub failure_rate_level: Option<&'static str>,
    pub restore: String,
    pub restore_level: Option<&'static str>,
    pub last_state: &'static str,
    pub last_age: String,
    pub sparkline: String,
}

pub(crate) struct Column {
    pub name: &'static str,
    pub numeric: bool,
    pub link: String,
    pub sorted: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    filters: FilterForm,
    window: String,
    total: Option<Total>,
    thresholds: [(&'static str, [&'static str; 4]); 3],
    columns: Vec<Column>,
    rows: Vec<Row>,
    hint: Option<String>,
    sparkline_note: Option<String>,
}

/// The sortable columns: (key in the URL, heading, numeric).
const COLUMNS: [(&str, &str, bool); 10] = [
    ("component", "Component", false),
    ("environment", "Environment", false),
    ("deployments", "Deployments", true),
    ("success", "Success", true),
    ("median", "Median", true),
    ("p95", "p95", true),
    ("frequency", "Frequency", true),
    ("failure", "Change failure rate", true),
    ("restore", "Time to restore", true),
    ("last", "Last deployment", false),
];

fn level(level: Option<Level>) -> Option<&'static str> {
    level.map(Level::as_str)
}

fn cards(now: &GroupStats, before: Option<&GroupStats>) -> Vec<Card> {
    let previous = |f: &dyn Fn(&GroupStats) -> String| before.map_or_else(|| "-".into(), f);
    vec![
        Card {
            name: "Deployments",
            value: now.deployments.to_string(),
            level: None,
            previous: previous(&|g| g.deployments.to_string()),
        },
        Card {
            name: "Deployment frequency",
            value: per_day(now.deploys_per_day),
            level: Some(now.levels.deploy_frequency.as_str()),
            previous: previous(&|g| per_day(g.deploys_per_day)),
        },
        Card {
            name: "Change failure rate",
            value: percent(now.change_failure_rate),
            level: level(now.levels.change_failure_rate),
            previous: previous(&|g| percent(g.change_failure_rate)),
        },
        Card {
            name: "Time to restore",
            value: duration(now.mean_time_to_restore_seconds),
            level: level(now.levels.time_to_restore),
            previous: previous(&|g| duration(g.mean_time_to_restore_seconds)),
        },
        Card {
            name: "Median duration",
            value: duration(now.duration_seconds.median),
            level: None,
            previous: previous(&|g| duration(g.duration_seconds.median)),
        },
        Card {
            name: "Success rate",
            value: percent(now.success_rate),
            level: None,
            previous: previous(&|g| percent(g.success_rate)),
        },
    ]
}

/// The latest deployment of each series in the window: its state and start.
fn latest(
    series: &[Series],
    since: i64,
    until: i64,
) -> HashMap<(String, String), (&'static str, i64)> {
    series
        .iter()
        .filter_map(|s| {
            s.samples
                .iter()
                .filter(|x| x.anchor_at >= since && x.anchor_at < until)
                .max_by_key(|x| x.anchor_at)
                .map(|x| {
                    (
                        (s.component.clone(), s.environment.clone()),
                        (x.outcome.as_str(), x.anchor_at),
                    )
                })
        })
        .collect()
}

fn compare(a: &GroupStats, b: &GroupStats, key: &str) -> Ordering {
    let number = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (None, None) => Ordering::Equal,
    };
    match key {
        "environment" => a.environment.cmp(&b.environment),
        "deployments" => a.deployments.cmp(&b.deployments),
        "success" => number(a.success_rate, b.success_rate),
        "median" => number(a.duration_seconds.median, b.duration_seconds.median),
        "p95" => number(a.duration_seconds.p95, b.duration_seconds.p95),
        "frequency" => a.deploys_per_day.total_cmp(&b.deploys_per_day),
        "failure" => number(a.change_failure_rate, b.change_failure_rate),
        "restore" => number(
            a.mean_time_to_restore_seconds,
            b.mean_time_to_restore_seconds,
        ),
        _ => a.component.cmp(&b.component),
    }
}

#[tracing::instrument(skip_all)]
pub(crate) async fn overview(
    req: HttpRequest,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> HttpResponse {
    let caller = match session::admit(&req).await {
        Ok(caller) => caller,
        Err(answer) => return answer,
    };
    let now = Utc::now();
    let filters = PageFilters::parse(&query_pairs(&req), now);
    let form = FilterForm::new(&db, &filters, "/").await;
    let chrome = Chrome::new(filters.query(), caller.signed_in);
    let sort = filters.extra("sort").unwrap_or("component").to_owned();
    let descending = filters.extra("order") == Some("desc");
    let columns = COLUMNS
        .iter()
        .map(|(key, name, numeric)| {
            let current = *key == sort;
            let order = if current && !descending {
                "desc"
            } else {
                "asc"
            };
            Column {
                name,
                numeric: *numeric,
                link: format!("/?{}&sort={key}&order={order}", filters.query()),
                sorted: current.then_some(if descending {
                    "descending"
                } else {
                    "ascending"
                }),
            }
        })
        .collect();
    let mut view = OverviewPage {
        chrome,
        window: filters.describe(),
        filters: form,
        total: None,
        thresholds: dora::THRESHOLDS,
        columns,
        rows: Vec::new(),
        hint: None,
        sparkline_note: None,
    };
    if !view.filters.errors.is_empty() {
        return page(StatusCode::UNPROCESSABLE_ENTITY, &view);
    }
    let cutoff = settings.abandon.cutoff(now);
    let (since, until) = (to_micros(filters.since), to_micros(filters.until));
    let previous_since = since.saturating_sub(until - since);
    // One read of both periods: the previous one is compared with this one.
    let series = match reports::read_series(
        &db,
        None,
        filters.environments.clone(),
        (previous_since, until),
        cutoff,
    )
    .await
    {
        Ok(series) => series,
        Err(e) => return super::views::failed(&e),
    };
    let days = stats::day_count(since, until, &filters.tz);
    let daily = match stats::check_daily(days, series.len()) {
        Ok(()) => Some(filters.tz),
        Err(limit) => {
            view.sparkline_note = Some(format!("Medians per day are left out: {limit}."));
            None
        }
    };
    let ask = |group_by, since, until, daily_in| StatsRequest {
        group_by,
        success_only: false,
        since,
        until,
        daily_in,
    };
    let mut groups = stats::compute(
        &series,
        &ask(GroupBy::ComponentEnvironment, since, until, daily),
    );
    let total = stats::compute(&series, &ask(GroupBy::None, since, until, None));
    let before = stats::compute(&series, &ask(GroupBy::None, previous_since, since, None));
    if let Some(total) = total.first().filter(|t| t.deployments > 0) {
        view.total = Some(Total {
            cards: cards(total, before.first().filter(|b| b.deployments > 0)),
        });
    }
    groups.sort_by(|a, b| {
        let order = compare(a, b, &sort);
        if descending { order.reverse() } else { order }
    });
    let last = latest(&series, since, until);
    let link_filters = filters.query();
    view.rows = groups
        .into_iter()
        .map(|g| {
            let component = g.component.clone().unwrap_or_default();
            let environment = g.environment.clone().unwrap_or_default();
            let (last_state, last_at) = last
                .get(&(component.clone(), environment.clone()))
                .copied()
                .unwrap_or(("", 0));
            let medians: Vec<Option<f64>> = g
                .daily
                .iter()
                .flatten()
                .map(|d| d.median_duration_seconds)
                .collect();
            Row {
                link: format!(
                    "/component?{}&{}",
                    serde_urlencoded::to_string([("component", &component)]).unwrap_or_default(),
                    link_filters
                ),
                deployments: g.deployments,
                success_rate: percent(g.success_rate),
                median: duration(g.duration_seconds.median),
                p95: duration(g.duration_seconds.p95),
                frequency: per_day(g.deploys_per_day),
                frequency_level: g.levels.deploy_frequency.as_str(),
                failure_rate: percent(g.change_failure_rate),
                failure_rate_level: level(g.levels.change_failure_rate),
                restore: duration(g.mean_time_to_restore_seconds),
                restore_level: level(g.levels.time_to_restore),
                last_state,
                last_age: age(now, last_at),
                sparkline: charts::sparkline(&medians),
                component,
                environment,
            }
        })
        .collect();
    page(StatusCode::OK, &view)
}
