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
use deploytime_core::stats::{self, ChangeFailure, GroupBy, GroupStats, Series, StatsRequest};
use deploytime_core::time::to_micros;

use super::filters::PageFilters;
use super::frame::{Chrome, page, query_pairs};
use super::views::{FilterForm, age, duration, incident_count, per_day, percent};
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
    /// "2 running, 1 abandoned": what is not finished, said as such.
    pub unfinished: Option<String>,
    pub success_rate: String,
    pub median: String,
    pub p95: String,
    pub frequency: String,
    pub frequency_level: &'static str,
    pub failure_rate: String,
    pub failure_rate_level: Option<&'static str>,
    pub restore: String,
    pub restore_level: Option<&'static str>,
    pub lead_time: String,
    pub lead_time_level: Option<&'static str>,
    /// Incidents started in the window ("-" when none).
    pub incidents: String,
    /// "1 open": incidents not yet resolved, said as such.
    pub incidents_open: Option<String>,
    /// The mean time to restore of the resolved ones, with its level.
    pub incident_restore: Option<String>,
    pub incident_restore_level: Option<&'static str>,
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
    thresholds: [(&'static str, [&'static str; 4]); 4],
    columns: Vec<Column>,
    rows: Vec<Row>,
    hint: Option<String>,
    sparkline_note: Option<String>,
}

/// The sortable columns: (key in the URL, heading, numeric).
const COLUMNS: [(&str, &str, bool); 12] = [
    ("component", "Component", false),
    ("environment", "Environment", false),
    ("deployments", "Deployments", true),
    ("success", "Success", true),
    ("median", "Median", true),
    ("p95", "p95", true),
    ("frequency", "Frequency", true),
    ("failure", "Change failure rate", true),
    ("restore", "Time to restore", true),
    ("lead", "Lead time", true),
    ("incidents", "Incidents", true),
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
            name: "Lead time for changes",
            value: duration(now.lead_time_seconds.total.median),
            level: level(now.levels.lead_time),
            previous: previous(&|g| duration(g.lead_time_seconds.total.median)),
        },
        Card {
            name: "Incidents",
            value: incident_count(now),
            level: None,
            previous: previous(&incident_count),
        },
        Card {
            name: "Time to restore, by incidents",
            value: duration(now.incidents.mean_time_to_restore_seconds),
            level: level(now.incidents.level),
            previous: previous(&|g| duration(g.incidents.mean_time_to_restore_seconds)),
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
        "lead" => number(
            a.lead_time_seconds.total.median,
            b.lead_time_seconds.total.median,
        ),
        "incidents" => a.incidents.count.cmp(&b.incidents.count),
        _ => a.component.cmp(&b.component),
    }
}

/// What is not finished in a group, in words; nothing when all is finished.
fn unfinished(g: &GroupStats) -> Option<String> {
    let parts: Vec<String> = [(g.running, "running"), (g.abandoned, "abandoned")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// One row of the table: a group's figures as the page shows them.
fn row(
    g: GroupStats,
    last: &HashMap<(String, String), (&'static str, i64)>,
    now: chrono::DateTime<Utc>,
    link_filters: &str,
) -> Row {
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
        unfinished: unfinished(&g),
        success_rate: percent(g.success_rate),
        median: duration(g.duration_seconds.median),
        p95: duration(g.duration_seconds.p95),
        frequency: per_day(g.deploys_per_day),
        frequency_level: g.levels.deploy_frequency.as_str(),
        failure_rate: percent(g.change_failure_rate),
        failure_rate_level: level(g.levels.change_failure_rate),
        restore: duration(g.mean_time_to_restore_seconds),
        restore_level: level(g.levels.time_to_restore),
        lead_time: duration(g.lead_time_seconds.total.median),
        lead_time_level: level(g.levels.lead_time),
        incidents: match g.incidents.count {
            0 => "-".to_owned(),
            count => count.to_string(),
        },
        incidents_open: (g.incidents.unresolved > 0)
            .then(|| format!("{} open", g.incidents.unresolved)),
        incident_restore: g
            .incidents
            .mean_time_to_restore_seconds
            .map(|s| duration(Some(s))),
        incident_restore_level: level(g.incidents.level),
        last_state,
        last_age: if last_state.is_empty() {
            String::new()
        } else {
            age(now, last_at)
        },
        sparkline: charts::sparkline(&medians),
        component,
        environment,
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
    // Sorting keeps every filter, the component included.
    let mut here = filters.query();
    if let Some(component) = &filters.component {
        here.push('&');
        here.push_str(
            &serde_urlencoded::to_string([("component", component.as_str())]).unwrap_or_default(),
        );
    }
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
                link: format!("/?{here}&sort={key}&order={order}"),
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
        filters.component.clone(),
        filters.environments.clone(),
        (previous_since, until),
        cutoff,
    )
    .await
    {
        Ok(series) => series,
        Err(e) => return super::views::failed(&e),
    };
    // Incidents of a component without deployments get a row of their own,
    // as in `/api/v1/stats`.
    let incidents = match reports::read_incidents(
        &db,
        filters.component.clone(),
        filters.environments.clone(),
        (previous_since, until),
    )
    .await
    {
        Ok(incidents) => incidents,
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
        change_failure: ChangeFailure::default(),
    };
    let figures = |request: &StatsRequest<chrono_tz::Tz>| {
        stats::with_incidents(stats::compute(&series, request), &incidents, request)
    };
    let mut groups = figures(&ask(GroupBy::ComponentEnvironment, since, until, daily));
    let total = figures(&ask(GroupBy::None, since, until, None));
    let before = figures(&ask(GroupBy::None, previous_since, since, None));
    let anything = |g: &&GroupStats| g.deployments > 0 || g.incidents.count > 0;
    if let Some(total) = total.first().filter(anything) {
        view.total = Some(Total {
            cards: cards(total, before.first().filter(anything)),
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
        .map(|g| row(g, &last, now, &link_filters))
        .collect();
    page(StatusCode::OK, &view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploytime_core::state::ReportedState;
    use deploytime_core::stats::Sample;

    const DAY: i64 = 86_400_000_000;
    const MINUTE: i64 = 60_000_000;
    /// 2026-03-01T00:00:00Z, in microseconds.
    const SINCE: i64 = 1_772_323_200_000_000;
    const UNTIL: i64 = SINCE + 7 * DAY;

    fn sample(outcome: ReportedState, start: i64, minutes: Option<i64>) -> Sample {
        Sample {
            outcome,
            finished_at: minutes.map(|m| start + m * MINUTE),
            duration_us: minutes.map(|m| m * MINUTE),
            anchor_at: start,
            rollback: false,
        }
    }

    fn group(samples: Vec<Sample>) -> (GroupStats, Vec<Series>) {
        let series = vec![Series {
            component: "api".into(),
            environment: "production".into(),
            samples,
            shipped: Vec::new(),
        }];
        let request = StatsRequest {
            group_by: GroupBy::ComponentEnvironment,
            success_only: false,
            since: SINCE,
            until: UNTIL,
            daily_in: Some(chrono_tz::UTC),
            change_failure: ChangeFailure::default(),
        };
        let mut groups = stats::compute(&series, &request);
        assert_eq!(groups.len(), 1);
        (groups.remove(0), series)
    }

    fn now() -> chrono::DateTime<Utc> {
        deploytime_core::time::from_micros(UNTIL)
    }

    fn row_of(samples: Vec<Sample>) -> Row {
        let (g, series) = group(samples);
        row(g, &latest(&series, SINCE, UNTIL), now(), "window=7d")
    }

    #[test]
    fn a_component_with_only_failures() {
        let row = row_of(vec![
            sample(ReportedState::Failed, SINCE + DAY, Some(10)),
            sample(ReportedState::Failed, SINCE + 2 * DAY, Some(20)),
            sample(ReportedState::Failed, SINCE + 3 * DAY, Some(30)),
        ]);
        assert_eq!(row.deployments, 3);
        assert_eq!(row.success_rate, "0%");
        assert_eq!(row.failure_rate, "100%");
        assert_eq!(row.failure_rate_level, Some("low"));
        // Never restored: no time to restore, and no level for it.
        assert_eq!(row.restore, "-");
        assert_eq!(row.restore_level, None);
        assert_eq!(row.median, "20m");
        assert_eq!(row.last_state, "failed");
        assert_eq!(row.last_age, "4days ago");
        assert_eq!(row.unfinished, None);
        assert_eq!(row.frequency, "3.0/week");
        assert_eq!(row.frequency_level, "high");
        assert!(row.link.starts_with("/component?component=api&window=7d"));

        let (g, _) = group(vec![sample(ReportedState::Failed, SINCE, Some(5))]);
        let cards = cards(&g, None);
        let failure = cards
            .iter()
            .find(|c| c.name == "Change failure rate")
            .unwrap();
        assert_eq!(
            (failure.value.as_str(), failure.level),
            ("100%", Some("low"))
        );
        assert!(
            cards.iter().all(|c| c.previous == "-"),
            "no previous period"
        );
    }

    #[test]
    fn one_deployment_is_its_own_median_and_a_dot() {
        let row = row_of(vec![sample(
            ReportedState::Succeeded,
            SINCE + 2 * DAY,
            Some(5),
        )]);
        assert_eq!(
            (row.deployments, row.median.as_str(), row.p95.as_str()),
            (1, "5m", "5m")
        );
        assert_eq!(row.success_rate, "100%");
        assert_eq!(row.failure_rate, "0%");
        assert!(row.sparkline.contains("<circle"), "{}", row.sparkline);
    }

    #[test]
    fn running_and_abandoned_deployments_are_said_as_such() {
        let row = row_of(vec![
            sample(ReportedState::Succeeded, SINCE, Some(5)),
            sample(ReportedState::Abandoned, SINCE + DAY, None),
            sample(ReportedState::Running, SINCE + 6 * DAY, None),
        ]);
        assert_eq!(row.deployments, 3);
        assert_eq!(row.unfinished.as_deref(), Some("1 running, 1 abandoned"));
        assert_eq!(row.last_state, "running");
    }

    #[test]
    fn an_empty_window_says_so_and_where_the_history_is() {
        let view = OverviewPage {
            chrome: Chrome::new("window=7d".into(), false),
            filters: FilterForm {
                action: "/",
                component: None,
                window: "7d".into(),
                windows: Vec::new(),
                since_date: "2026-03-01".into(),
                until_date: "2026-03-07".into(),
                environments: Vec::new(),
                tz: "UTC".into(),
                zones: Vec::new(),
                components: Vec::new(),
                errors: Vec::new(),
            },
            window: "2026-03-01 to 2026-03-07 (UTC)".into(),
            total: None,
            thresholds: dora::THRESHOLDS,
            columns: Vec::new(),
            rows: Vec::new(),
            hint: Some("The latest deployment started on 2026-01-02.".into()),
            sparkline_note: None,
        };
        let html = view.render().unwrap();
        assert!(
            html.contains(
                "No deployment and no incident in this window. The latest deployment started on 2026-01-02."
            ),
            "{html}"
        );
        assert!(!html.contains("components-table"));
        assert!(!html.contains("DORA figures"), "no figures of nothing");
    }
}
