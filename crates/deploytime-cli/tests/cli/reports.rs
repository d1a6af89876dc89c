//! `deployments`, `stats` and `export`: what was recorded, read back.

use deploytime_cli::exit;
use predicates::prelude::*;
use serde_json::Value;

use crate::helpers::{TestServer, TestSpool, stderr, stdout};

/// `api` succeeded, then `web` failed.
fn two_deployments(server: &TestServer, spool: &TestSpool) {
    spool
        .deploytime(&server.url)
        .args(["run", "api", "--", "true"])
        .assert()
        .success();
    spool
        .deploytime(&server.url)
        .args(["run", "web", "--env", "staging", "--", "false"])
        .assert()
        .code(1);
}

#[test]
fn deployments_print_as_table_json_and_csv_with_filters() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    two_deployments(&server, &spool);

    let output = spool
        .deploytime(&server.url)
        .args(["deployments", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let items: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let components: Vec<&str> = items
        .iter()
        .map(|d| d["component"].as_str().unwrap())
        .collect();
    assert_eq!(components, ["web", "api"], "newest first");

    let output = spool
        .deploytime(&server.url)
        .args([
            "deployments",
            "--state",
            "failed",
            "--since",
            "1h",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let items: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["status"], "exit-1");

    spool
        .deploytime(&server.url)
        .args(["deployments", "api", "--limit", "5"])
        .assert()
        .success()
        .stdout(predicate::str::contains("COMPONENT"))
        .stdout(predicate::str::contains("succeeded"))
        .stdout(predicate::str::contains("web").not());

    let output = spool
        .deploytime(&server.url)
        .args(["deployments", "-o", "csv"])
        .output()
        .unwrap();
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    assert_eq!(reader.headers().unwrap().get(0), Some("id"));
    assert_eq!(reader.records().count(), 2);
}

#[test]
fn export_writes_csv_that_parses_to_stdout_or_a_file() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    two_deployments(&server, &spool);

    let output = spool
        .deploytime(&server.url)
        .args(["export", "deployments"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut reader = csv::Reader::from_reader(output.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let id = headers.iter().position(|h| h == "id").unwrap();
    let component = headers.iter().position(|h| h == "component").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let mut exported: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r[id].to_owned(), r[component].to_owned()))
        .collect();
    exported.sort();
    let mut stored: Vec<(String, String)> = server
        .deployments()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_owned(),
                d["component"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    stored.sort();
    assert_eq!(exported, stored);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.csv");
    spool
        .deploytime(&server.url)
        .args(["export", "events", "web", "--output"])
        .arg(&file)
        .assert()
        .success()
        .stdout("");
    let mut reader = csv::Reader::from_path(&file).unwrap();
    let phase = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "phase")
        .unwrap();
    let mut phases: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[phase].to_owned())
        .collect();
    phases.sort();
    assert_eq!(phases, ["finish", "start"]);
}

#[test]
fn stats_count_outcomes_per_component() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    two_deployments(&server, &spool);
    let output = spool
        .deploytime(&server.url)
        .args(["stats", "--since", "1d", "-o", "json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let groups: Vec<Value> = serde_json::from_str(&stdout(&output)).unwrap();
    let api = groups.iter().find(|g| g["component"] == "api").unwrap();
    assert_eq!(api["deployments"], 1);
    assert_eq!(api["succeeded"], 1);
    let web = groups.iter().find(|g| g["component"] == "web").unwrap();
    assert_eq!(web["failed"], 1);

    spool
        .deploytime(&server.url)
        .args(["stats", "--group-by", "none"])
        .assert()
        .success()
        .stdout(predicate::str::contains("DEPLOYS"))
        .stdout(predicate::str::contains("50%"))
        .stdout(predicate::str::contains("FREQUENCY"))
        // One failure of two finished deployments: above 15 %, low.
        .stdout(predicate::str::contains("50% (low)"))
        .stderr(predicate::str::contains("deploytime: deployments from "));
}

#[test]
fn a_server_without_the_report_says_so_plainly() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    // Every path under this prefix is unknown to the server: 404, as from a
    // server that predates the reports.
    let old = format!("{}/no-such-prefix", server.url);
    spool
        .deploytime(&old)
        .args(["stats"])
        .assert()
        .code(i32::from(exit::UNSUPPORTED))
        .stderr(predicate::str::contains("does not offer statistics"))
        .stderr(predicate::str::contains("upgrade the server"));
    spool
        .deploytime(&old)
        .args(["export", "events"])
        .assert()
        .code(i32::from(exit::UNSUPPORTED));
}

#[test]
fn stats_show_the_incident_time_to_restore_beside_the_streaks() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    two_deployments(&server, &spool);
    let http = reqwest::blocking::Client::new();
    let now = chrono::Utc::now();
    let rfc = |at: chrono::DateTime<chrono::Utc>| at.to_rfc3339();
    for body in [
        serde_json::json!({"component": "api", "started_at": rfc(now - chrono::Duration::hours(2)),
                           "resolved_at": rfc(now - chrono::Duration::hours(2) + chrono::Duration::seconds(600))}),
        serde_json::json!({"component": "api", "started_at": rfc(now - chrono::Duration::hours(1))}),
    ] {
        let response = http
            .post(format!("{}/api/v1/incidents", server.url))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    let output = spool
        .deploytime(&server.url)
        .args(["stats", "--since", "1d", "-o", "csv"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let api = reader
        .records()
        .map(Result::unwrap)
        .find(|r| &r[column("component")] == "api")
        .unwrap();
    assert_eq!(&api[column("incidents_count")], "2");
    assert_eq!(&api[column("incidents_unresolved")], "1");
    let mean: f64 = api[column("incidents_mean_time_to_restore_seconds")]
        .parse()
        .unwrap();
    assert_eq!(mean, 600.0);
    assert_eq!(&api[column("incidents_level")], "elite");

    spool
        .deploytime(&server.url)
        .args(["stats", "api", "--since", "1d"])
        .assert()
        .success()
        .stdout(predicate::str::contains("INCIDENT MTTR"))
        .stdout(predicate::str::contains("(elite), 1 open"));
}
