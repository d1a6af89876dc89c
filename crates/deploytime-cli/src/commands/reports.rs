//! `deployments`, `stats` and `export`: reading back what was recorded, as the
//! API's own types. A server that answers 404/405 does not offer the report;
//! the commands say so plainly.

use std::fs::File;
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use deploytime_core::dora::Level;
use deploytime_core::incident::IncidentStats;
use deploytime_core::stats::GroupStats;
use deploytime_core::wire::{DeploymentView, Page, StatsResponse, paths};
use serde_json::Value;

use crate::api::{Api, Failure};
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

/// Query pairs for the filters.
fn filter_query(filters: &Filters) -> Vec<(&'static str, String)> {
    let mut query = Vec::new();
    if let Some(component) = &filters.component {
        query.push(("component", component.clone()));
    }
    if let Some(environment) = &filters.environment {
        query.push(("environment", environment.clone()));
    }
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

fn not_offered(status: u16) -> bool {
    matches!(status, 404 | 405)
}

fn failure_to_error(api: &Api, what: &str, failure: Failure) -> Error {
    match failure {
        Failure::Refused(problem) if not_offered(problem.status) => Error::Unsupported {
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
fn fetch_deployments(
    api: &Api,
    filters: &Filters,
    limit: u32,
) -> Result<Vec<DeploymentView>, Error> {
    let mut query = filter_query(filters);
    let mut items: Vec<DeploymentView> = Vec::new();
    loop {
        let left = limit.saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
        let mut page_query = query.clone();
        page_query.push(("limit", left.min(PAGE_LIMIT).to_string()));
        let page: Page<DeploymentView> = api
            .get_json(paths::DEPLOYMENTS, &page_query)
            .map_err(|failure| failure_to_error(api, "the deployment list", failure))?;
        items.extend(page.items);
        match page.next_cursor.filter(|c| !c.is_empty()) {
            Some(cursor) if items.len() < limit as usize => {
                query.retain(|(name, _)| *name != "cursor");
                query.push(("cursor", cursor));
            }
            _ => break,
        }
    }
    items.truncate(limit as usize);
    Ok(items)
}

pub fn deployments(api: &Api, args: DeploymentsArgs) -> Result<u8, Error> {
    let items = fetch_deployments(api, &args.filters, args.limit)?;
    match args.output {
        Format::Json => print_json(&items)?,
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
    let answer: StatsResponse = api
        .get_json(paths::STATS, &query)
        .map_err(|failure| failure_to_error(api, "statistics (GET /api/v1/stats)", failure))?;
    // On stderr, so that JSON and CSV on stdout stay clean.
    eprintln!(
        "deploytime: deployments from {} to {}",
        rfc3339(&answer.window.since),
        rfc3339(&answer.window.until)
    );
    if let Some(hint) = &answer.hint {
        eprintln!("deploytime: {hint}");
    }
    let groups = answer.groups;
    match args.output {
        Format::Json => print_json(&groups)?,
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
/// The DORA level of each figure, as `LEVEL_COLUMNS` in the CSV.
const LEVELS: [&str; 3] = ["deploy_frequency", "change_failure_rate", "time_to_restore"];

/// The incident figures (`incidents` in JSON), as `incidents_*` in the CSV.
const INCIDENT_COLUMNS: [&str; 7] = [
    "count",
    "resolved",
    "unresolved",
    "mean_time_to_restore_seconds",
    "median_time_to_restore_seconds",
    "p90_time_to_restore_seconds",
    "level",
];

const DURATION_COLUMNS: [&str; 9] = [
    "count", "mean", "median", "p90", "p95", "p99", "min", "max", "stddev",
];

/// The groups as the columns of their JSON form, flattened.
fn json_rows(groups: &[GroupStats]) -> Vec<Value> {
    groups
        .iter()
        .map(|group| serde_json::to_value(group).unwrap_or(Value::Null))
        .collect()
}

fn write_stats_csv(out: impl Write, groups: &[GroupStats]) -> Result<(), Error> {
    let groups = json_rows(groups);
    let failed = |e: csv::Error| Error::Output {
        what: "CSV".into(),
        source: e.into(),
    };
    let mut writer = csv::Writer::from_writer(out);
    let header = STATS_COLUMNS
        .iter()
        .map(|c| (*c).to_owned())
        .chain(DURATION_COLUMNS.iter().map(|c| format!("duration_{c}")))
        .chain(LEVELS.iter().map(|c| format!("{c}_level")))
        .chain(INCIDENT_COLUMNS.iter().map(|c| format!("incidents_{c}")));
    writer.write_record(header).map_err(failed)?;
    for group in &groups {
        let row = STATS_COLUMNS
            .iter()
            .map(|c| cell(&group[*c]))
            .chain(
                DURATION_COLUMNS
                    .iter()
                    .map(|c| cell(&group["duration_seconds"][*c])),
            )
            .chain(LEVELS.iter().map(|c| cell(&group["levels"][*c])))
            .chain(
                INCIDENT_COLUMNS
                    .iter()
                    .map(|c| cell(&group["incidents"][*c])),
            );
        writer.write_record(row).map_err(failed)?;
    }
    writer.flush().map_err(|e| Error::Output {
        what: "CSV".into(),
        source: e,
    })
}

/// A figure with its DORA level: `4% (elite)`.
fn leveled(figure: String, level: Option<Level>) -> String {
    match level {
        Some(level) => format!("{figure} ({level})"),
        None => figure,
    }
}

/// How often deploys happen, in the unit that keeps a real cadence from
/// rounding to zero: per day from one a day, else per week, else per month.
fn cadence(per_day: f64) -> String {
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

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0))
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), human_duration)
}

/// The incident-based time to restore with its level, and the incidents
/// still open: `43m (elite), 1 open`; `-` without incidents.
fn incident_restore(incidents: &IncidentStats) -> String {
    if incidents.count == 0 {
        return "-".to_owned();
    }
    let mean = leveled(
        seconds(incidents.mean_time_to_restore_seconds),
        incidents.level,
    );
    match incidents.unresolved {
        0 => mean,
        open => format!("{mean}, {open} open"),
    }
}

fn stats_table(groups: &[GroupStats]) -> comfy_table::Table {
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
        "frequency",
        "cfr",
        "mttr",
        "incident mttr",
    ]);
    for group in groups {
        let or_all = |v: &Option<String>| v.clone().unwrap_or_else(|| "(all)".to_owned());
        table.add_row(vec![
            or_all(&group.component),
            or_all(&group.environment),
            group.deployments.to_string(),
            group.succeeded.to_string(),
            group.failed.to_string(),
            group.cancelled.to_string(),
            group.running.to_string(),
            percent(group.success_rate),
            seconds(group.duration_seconds.median),
            seconds(group.duration_seconds.p95),
            leveled(
                cadence(group.deploys_per_day),
                Some(group.levels.deploy_frequency),
            ),
            leveled(
                percent(group.change_failure_rate),
                group.levels.change_failure_rate,
            ),
            leveled(
                seconds(group.mean_time_to_restore_seconds),
                group.levels.time_to_restore,
            ),
            incident_restore(&group.incidents),
        ]);
    }
    align_right(&mut table, &[2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
    table
}

pub fn export(api: &Api, args: ExportArgs) -> Result<u8, Error> {
    if args.kind == ExportKind::Events && args.filters.state.is_some() {
        return Err(Error::Usage(
            "--state selects deployments; events have no state".into(),
        ));
    }
    let mut query = filter_query(&args.filters);
    query.push(("format", "csv".to_owned()));
    let what = match args.kind {
        ExportKind::Events => "event export (GET /api/v1/events?format=csv)",
        ExportKind::Deployments => "CSV export (GET /api/v1/deployments?format=csv)",
    };
    let mut response = api
        .get_stream(args.kind.path(), &query)
        .map_err(|failure| failure_to_error(api, what, failure))?;
    write_output(args.output.as_deref(), |out| {
        io::copy(&mut response, out).map(|_| ())
    })?;
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
    use super::cadence;

    #[test]
    fn a_real_cadence_never_reads_as_zero() {
        assert_eq!(cadence(12.0), "12.0/day");
        assert_eq!(cadence(1.0), "1.0/day");
        assert_eq!(cadence(2.0 / 7.0), "2.0/week");
        // Once in 30 days, the case that used to show 0.0 per day.
        assert_eq!(cadence(1.0 / 30.0), "1.0/month");
        assert_eq!(cadence(0.0), "0");
    }
}
