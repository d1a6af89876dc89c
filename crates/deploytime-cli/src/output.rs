//! How read commands print: tables for people (durations like `3m 12s`), JSON
//! and CSV for machines (durations in seconds).

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::{CellAlignment, Table, presets};
use deploytime_core::wire::{DeploymentView, ReleaseView};
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// The columns of a deployment, in CSV and table order: the server's own.
pub use deploytime_core::export::DEPLOYMENT_COLUMNS;

/// A duration for people: `3m 12s`, `2h 5m 1s`, `450ms`.
pub fn human_duration(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_owned();
    }
    if seconds < 1.0 {
        return format!("{}ms", (seconds * 1000.0).round());
    }
    humantime::format_duration(Duration::from_secs(seconds.round() as u64)).to_string()
}

/// A timestamp for people, in UTC to the second.
pub fn human_time(at: Option<DateTime<Utc>>) -> String {
    at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".to_owned())
}

/// A JSON value as a CSV or table cell: strings bare, null empty.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn new_table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    table.set_header(header.iter().map(|h| h.to_uppercase()));
    table
}

pub fn align_right(table: &mut Table, columns: &[usize]) {
    for &index in columns {
        if let Some(column) = table.column_mut(index) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

pub fn deployments_table(items: &[DeploymentView]) -> Table {
    let mut table = new_table(&[
        "id",
        "component",
        "env",
        "version",
        "state",
        "status",
        "started",
        "duration",
    ]);
    for item in items {
        table.add_row(vec![
            item.id.to_string(),
            item.component.to_string(),
            item.environment.to_string(),
            or_dash(item.version.clone().unwrap_or_default()),
            item.state.to_string(),
            or_dash(
                item.status
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
            human_time(item.started_at),
            item.duration_seconds
                .map_or_else(|| "-".to_owned(), human_duration),
        ]);
    }
    align_right(&mut table, &[7]);
    table
}

fn or_dash(text: String) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// Writes deployments as CSV with a header row: each column as its JSON form
/// shows it (durations in seconds, as JSON numbers).
pub fn write_deployments_csv(out: impl Write, items: &[DeploymentView]) -> Result<(), Error> {
    let mut writer = csv::Writer::from_writer(out);
    let failed = |e: csv::Error| Error::Output {
        what: "CSV".into(),
        source: e.into(),
    };
    writer.write_record(DEPLOYMENT_COLUMNS).map_err(failed)?;
    for item in items {
        let item = serde_json::to_value(item).unwrap_or(Value::Null);
        writer
            .write_record(
                DEPLOYMENT_COLUMNS
                    .iter()
                    .map(|c| deploytime_core::export::neutralise(&cell(&item[*c])).into_owned()),
            )
            .map_err(failed)?;
    }
    writer.flush().map_err(|e| Error::Output {
        what: "CSV".into(),
        source: e,
    })
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl Serialize) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(|e| Error::Output {
            what: "stdout".into(),
            source: e,
        })
}

pub fn print_table(table: &Table) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    // comfy-table pads the lines; the trailing blanks are noise in a terminal.
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end()).map_err(|e| Error::Output {
            what: "stdout".into(),
            source: e,
        })?;
    }
    Ok(())
}

/// Text from outside (a comment, a reason) on one line: line breaks and other
/// control characters become spaces, so that a terminal only shows text.
pub fn one_line(text: &str) -> String {
    text.split(|c: char| c.is_control())
        .filter(|part| !part.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A release for people: its fields, then who was asked and what they decided.
pub fn release_text(view: &ReleaseView) -> String {
    let approvals = match view.required_approvals {
        Some(needed) => format!(
            "{} of {needed} ({} rejections)",
            view.approvals, view.rejections
        ),
        None => format!(
            "{} ({} rejections); approvers not known yet",
            view.approvals, view.rejections
        ),
    };
    let optional = |value: &Option<String>| or_dash(one_line(value.as_deref().unwrap_or("")));
    let fields = [
        (
            "release",
            format!("{}/{}", view.team_project, view.release_id),
        ),
        ("name", one_line(&view.release_name)),
        ("state", view.state.to_string()),
        ("reason", optional(&view.reason)),
        ("component", optional(&view.component)),
        ("environment", optional(&view.environment)),
        ("version", optional(&view.version)),
        ("requested by", optional(&view.requested_by)),
        ("approvals", approvals),
        ("requested", human_time(Some(view.created_at))),
        ("expires", human_time(Some(view.expires_at))),
        ("decided", human_time(view.decided_at)),
        ("waited", human_duration(view.waited_seconds)),
    ];
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, value) in fields {
        text.push_str(&format!("{name:<width$}  {value}\n"));
    }
    if !view.approvers.is_empty() {
        let mut table = new_table(&["approver", "may approve", "decision", "decided", "comment"]);
        for approver in &view.approvers {
            let who = match &approver.name {
                Some(name) => format!("{} <{}>", one_line(name), approver.email),
                None => approver.email.clone(),
            };
            table.add_row(vec![
                who,
                if approver.may_approve {
                    "yes".to_owned()
                } else {
                    "no (requester)".to_owned()
                },
                approver
                    .decision
                    .map_or_else(|| "-".to_owned(), |d| d.to_string()),
                human_time(approver.decided_at),
                optional(&approver.comment),
            ]);
        }
        text.push('\n');
        for line in table.lines() {
            text.push_str(line.trim_end());
            text.push('\n');
        }
    }
    text
}

pub fn print_release(view: &ReleaseView) -> Result<(), Error> {
    std::io::stdout()
        .lock()
        .write_all(release_text(view).as_bytes())
        .map_err(|e| Error::Output {
            what: "stdout".into(),
            source: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human_duration(192.4), "3m 12s");
        assert_eq!(human_duration(7501.0), "2h 5m 1s");
        assert_eq!(human_duration(0.45), "450ms");
        assert_eq!(human_duration(-1.0), "-");
    }

    #[test]
    fn deployment_csv_has_a_header_and_one_row_each() {
        let mut out = Vec::new();
        let items: Vec<DeploymentView> = serde_json::from_value(json!([{
            "id": "0193f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10", "component": "api",
            "environment": "production", "version": null, "owner": "ops",
            "state": "succeeded", "status": "success",
            "started_at": "2026-11-22T10:00:00Z", "finished_at": "2026-11-22T10:03:12Z",
            "duration_seconds": 192.0
        }]))
        .unwrap();
        write_deployments_csv(&mut out, &items).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "id,component,environment,version,owner,state,status,started_at,finished_at,duration_seconds,rollback"
            )
        );
        assert_eq!(
            lines.next(),
            Some(
                "0193f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10,api,production,,ops,succeeded,success,2026-11-22T10:00:00.000000Z,2026-11-22T10:03:12.000000Z,192.0,false"
            )
        );
        assert_eq!(lines.next(), None);
    }
}
