//! `deployments`, `stats` and `export`: reading back what was recorded.
//!
//! Servers without the reporting endpoints answer 404/405 (or 400 for a filter
//! they do not know); the commands then say so plainly, and `deployments` and
//! `export deployments` fall back to what the basic listing offers.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::api::{Api, Failure, Problem};
use crate::cli::{DeploymentsArgs, ExportArgs, ExportKind, Filters, Format, StatsArgs};
use crate::error::Error;
use crate::exit;
use crate::output::{
    self, align_right, cell, human_duration, new_table, print_json, print_table,
    write_deployments_csv,
};

/// The most the server returns per page.
const PAGE_LIMIT: u32 = 1000;

fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Query pairs for the basic filters every server knows.
fn basic_query(filters: &Filters) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(component) = &filters.component {
        query.push(("component", component.clone()));
    }
    if let Some(environment) = &filters.environment {
        query.push(("environment", environment.clone()));
    }
    query
}

/// Query pairs for the filters newer servers add.
fn reporting_query(filters: &Filters) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(state) = filters.state {
        query.push(("state", state.as_str().to_owned()));
    }
    if let Some(since) = &filters.since {
        query.push(("since", rfc3339(since)));
    }
    if let Some(until) = &filters.until {
        query.push(("until", rfc3339(until)));
    }
    query
}

/// A 400 about the query string: the server predates a filter it was sent.
fn unknown_filter(problem: &Problem) -> bool {
    problem.status == 400 && problem.detail.contains("unknown field")
}

fn not_offered(problem: &Problem) -> bool {
    matches!(problem.status, 404 | 405)
}

fn failure_to_error(api: &Api, what: &str, failure: Failure) -> Error {
    match failure {
        Failure::Refused(problem) if not_offered(&problem) => Error::Unsupported {
            url: api.base().to_owned(),
            what: what.to_owned(),
            status: problem.status,
        },
        Failure::Refused(problem) => Error::Rejected(problem),
        Failure::Transient { cause, .. } => Error::Unreachable {
            url: api.base().to_owned(),
            cause,
        },
    }
}

/// Up to `limit` deployments, newest first, following `next_cursor`.
fn fetch_deployments(api: &Api, filters: &Filters, limit: u32) -> Result<Vec<Value>, Error> {
    let advanced = reporting_query(filters);
    let mut query = basic_query(filters);
    query.extend(advanced.iter().cloned());
    let mut items: Vec<Value> = Vec::new();
    loop {
        let left = limit.saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let mut page_query = query.clone();
        page_query.push(("limit", left.min(PAGE_LIMIT).to_string()));
        let page = match api.get_json("/api/v1/deployments", &page_query) {
            Ok(page) => page,
            Err(Failure::Refused(problem)) if !advanced.is_empty() && unknown_filter(&problem) => {
                return fetch_and_filter_here(api, filters, limit);
            }
            Err(failure) => return Err(failure_to_error(api, "the deployment list", failure)),
        };
        items.extend(page["items"].as_array().into_iter().flatten().cloned());
        let next = page["next_cursor"].as_str().filter(|c| !c.is_empty());
        match next {
            Some(cursor) if items.len() < limit as usize => {
                query.retain(|(name, _)| *name != "cursor");
                query.push(("cursor", cursor.to_owned()));
            }
            _ => break,
        }
    }
    items.truncate(limit as usize);
    Ok(items)
}

/// For servers without `state`/`since`/`until`: the newest deployments they
/// list, filtered here.
fn fetch_and_filter_here(api: &Api, filters: &Filters, limit: u32) -> Result<Vec<Value>, Error> {
    eprintln!(
        "deploytime: warning: the server at {} cannot filter by state or time yet; filtering its newest {PAGE_LIMIT} deployments here",
        api.base()
    );
    let mut query = basic_query(filters);
    query.push(("limit", PAGE_LIMIT.to_string()));
    let page = api
        .get_json("/api/v1/deployments", &query)
        .map_err(|failure| failure_to_error(api, "the deployment list", failure))?;
    Ok(page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| matches_locally(item, filters))
        .take(limit as usize)
        .cloned()
        .collect())
}

/// `state`, `since` and `until` as the server applies them: a deployment is
/// placed in time by its start, or its finish when the start is unknown.
fn matches_locally(item: &Value, filters: &Filters) -> bool {
    let anchor = item["started_at"]
        .as_str()
        .or(item["finished_at"].as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    filters.state.is_none_or(|s| item["state"] == s.as_str())
        && filters
            .since
            .is_none_or(|since| anchor.is_some_and(|at| at >= since))
        && filters
            .until
            .is_none_or(|until| anchor.is_some_and(|at| at < until))
}

pub fn deployments(api: &Api, args: DeploymentsArgs) -> Result<u8, Error> {
    let items = fetch_deployments(api, &args.filters, args.limit)?;
    match args.output {
        Format::Json => print_json(&Value::Array(items))?,
        Format::Csv => write_deployments_csv(io::stdout().lock(), &items)?,
        Format::Table => {
            if items.is_empty() {
                eprintln!("deploytime: no deployments match");
            } else {
                print_table(&output::deployments_table(&items))?;
            }
        }
    }
    Ok(exit::OK)
}

pub fn stats(api: &Api, args: StatsArgs) -> Result<u8, Error> {
    let mut query = Vec::new();
    if let Some(component) = &args.component {
        query.push(("component", component.clone()));
    }
    if let Some(environment) = &args.environment {
        query.push(("environment", environment.clone()));
    }
    query.push(("since", rfc3339(&args.since)));
    if let Some(until) = &args.until {
        query.push(("until", rfc3339(until)));
    }
    query.push(("group_by", args.group_by.clone()));
    let answer = api
        .get_json("/api/v1/stats", &query)
        .map_err(|failure| failure_to_error(api, "statistics (GET /api/v1/stats)", failure))?;
    let groups = answer["groups"].as_array().cloned().unwrap_or_default();
    match args.output {
        Format::Json => print_json(&Value::Array(groups))?,
        Format::Csv => write_stats_csv(io::stdout().lock(), &groups)?,
        Format::Table => {
            if groups.is_empty() {
                eprintln!("deploytime: no deployments in that period");
            } else {
                print_table(&stats_table(&groups))?;
            }
        }
    }
    Ok(exit::OK)
}

const STATS_COLUMNS: [&str; 12] = [
    "component",
    "environment",
    "deployments",
    "succeeded",
    "failed",
    "cancelled",
    "abandoned",
    "running",
    "success_rate",
    "deploys_per_day",
    "change_failure_rate",
    "mean_time_to_restore_seconds",
];
const DURATION_COLUMNS: [&str; 9] = [
    "count", "mean", "median", "p90", "p95", "p99", "min", "max", "stddev",
];

fn write_stats_csv(out: impl Write, groups: &[Value]) -> Result<(), Error> {
    let failed = |e: csv::Error| Error::Output {
        what: "CSV".into(),
        source: e.into(),
    };
    let mut writer = csv::Writer::from_writer(out);
    let header = STATS_COLUMNS
        .iter()
        .map(|c| (*c).to_owned())
        .chain(DURATION_COLUMNS.iter().map(|c| format!("duration_{c}")));
    writer.write_record(header).map_err(failed)?;
    for group in groups {
        let row = STATS_COLUMNS.iter().map(|c| cell(&group[*c])).chain(
            DURATION_COLUMNS
                .iter()
                .map(|c| cell(&group["duration_seconds"][*c])),
        );
        writer.write_record(row).map_err(failed)?;
    }
    writer.flush().map_err(|e| Error::Output {
        what: "CSV".into(),
        source: e,
    })
}

fn percent(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0))
}

fn seconds(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "-".to_owned(), human_duration)
}

fn stats_table(groups: &[Value]) -> comfy_table::Table {
    let mut table = new_table(&[
        "component",
        "env",
        "deploys",
        "ok",
        "failed",
        "cancelled",
        "running",
        "success",
        "median",
        "p95",
        "per day",
        "cfr",
        "mttr",
    ]);
    for group in groups {
        let or_all = |v: &Value| v.as_str().unwrap_or("(all)").to_owned();
        table.add_row(vec![
            or_all(&group["component"]),
            or_all(&group["environment"]),
            cell(&group["deployments"]),
            cell(&group["succeeded"]),
            cell(&group["failed"]),
            cell(&group["cancelled"]),
            cell(&group["running"]),
            percent(&group["success_rate"]),
            seconds(&group["duration_seconds"]["median"]),
            seconds(&group["duration_seconds"]["p95"]),
            group["deploys_per_day"]
                .as_f64()
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.1}")),
            percent(&group["change_failure_rate"]),
            seconds(&group["mean_time_to_restore_seconds"]),
        ]);
    }
    align_right(&mut table, &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    table
}

pub fn export(api: &Api, args: ExportArgs) -> Result<u8, Error> {
    if args.kind == ExportKind::Events && args.filters.state.is_some() {
        return Err(Error::Usage(
            "--state selects deployments; events have no state".into(),
        ));
    }
    let mut query = basic_query(&args.filters);
    query.extend(reporting_query(&args.filters));
    query.push(("format", "csv".to_owned()));
    let what = match args.kind {
        ExportKind::Events => "event export (GET /api/v1/events?format=csv)",
        ExportKind::Deployments => "CSV export (GET /api/v1/deployments?format=csv)",
    };
    match api.get_stream(args.kind.path(), &query) {
        Ok(mut response) => write_output(args.output.as_deref(), |out| {
            io::copy(&mut response, out).map(|_| ())
        }),
        Err(Failure::Refused(problem))
            if args.kind == ExportKind::Deployments
                && (unknown_filter(&problem) || not_offered(&problem)) =>
        {
            eprintln!(
                "deploytime: warning: the server at {} cannot export CSV yet; writing its newest {PAGE_LIMIT} deployments as CSV here",
                api.base()
            );
            let items = fetch_and_filter_here(api, &args.filters, PAGE_LIMIT)?;
            write_output(args.output.as_deref(), |out| {
                write_deployments_csv(out, &items).map_err(io::Error::other)
            })
        }
        Err(Failure::Refused(problem)) if unknown_filter(&problem) => Err(Error::Unsupported {
            url: api.base().to_owned(),
            what: what.to_owned(),
            status: problem.status,
        }),
        Err(failure) => Err(failure_to_error(api, what, failure)),
    }?;
    Ok(exit::OK)
}

/// Writes to the file (replaced only once complete) or to stdout.
fn write_output(
    path: Option<&std::path::Path>,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<(), Error> {
    let failed = |what: String| move |source| Error::Output { what, source };
    match path {
        None => {
            let mut out = io::stdout().lock();
            write(&mut out)
                .and_then(|()| out.flush())
                .map_err(failed("stdout".into()))
        }
        Some(path) => {
            let mut partial = path.as_os_str().to_owned();
            partial.push(".partial");
            let partial = std::path::PathBuf::from(partial);
            let shown = path.display().to_string();
            let result = File::create(&partial).and_then(|file| {
                let mut out = BufWriter::new(file);
                write(&mut out)?;
                out.into_inner()
                    .map_err(io::IntoInnerError::into_error)?
                    .sync_all()?;
                std::fs::rename(&partial, path)
            });
            if result.is_err() {
                let _ = std::fs::remove_file(&partial);
            }
            result.map_err(failed(shown))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::State;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn local_filters_place_a_deployment_by_its_start_or_else_its_finish() {
        let filters = Filters {
            component: None,
            environment: None,
            state: Some(State::Failed),
            since: Some(at("2026-11-20T00:00:00Z")),
            until: Some(at("2026-11-21T00:00:00Z")),
        };
        let inside = json!({"state": "failed", "started_at": "2026-11-20T10:00:00Z"});
        let finish_only =
            json!({"state": "failed", "started_at": null, "finished_at": "2026-11-20T11:00:00Z"});
        let too_early = json!({"state": "failed", "started_at": "2026-11-19T23:59:59Z"});
        let at_until = json!({"state": "failed", "started_at": "2026-11-21T00:00:00Z"});
        let succeeded = json!({"state": "succeeded", "started_at": "2026-11-20T10:00:00Z"});
        assert!(matches_locally(&inside, &filters));
        assert!(matches_locally(&finish_only, &filters));
        assert!(!matches_locally(&too_early, &filters));
        assert!(!matches_locally(&at_until, &filters));
        assert!(!matches_locally(&succeeded, &filters));
    }
}
