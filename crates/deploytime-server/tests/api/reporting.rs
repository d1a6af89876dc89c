//! Reports: statistics checked against values computed here from the raw data
//! (not by the server's code), pagination under concurrent inserts, CSV exports
//! parsed back, components, abandonment and removal.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

use deploytime_server::db::seed::{SeedPlan, seed};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

fn rfc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Stores a deployment that started at `start` and, if `finish` is given, ended
/// `seconds` later with `status`.
async fn deploy(
    app: &TestApp,
    component: &str,
    start: &str,
    finish: Option<(i64, &str)>,
) -> String {
    let started = app
        .store(json!({"component": component, "phase": "start", "timestamp": start}))
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    if let Some((seconds, status)) = finish {
        app.store(json!({"component": component, "phase": "finish", "status": status,
                         "deployment_id": id, "timestamp": rfc(t(start) + Duration::seconds(seconds))}))
            .await;
    }
    id
}

/// Nearest rank, written out from its definition.
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.max(1) - 1]
}

fn close(actual: &Value, expected: f64) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{actual} is not a number"));
    assert!((actual - expected).abs() < 1e-9, "{actual} != {expected}");
}

async fn seed_history(app: &TestApp) {
    deploy(app, "api", "2026-10-01T10:00:00Z", Some((100, "success"))).await;
    deploy(app, "api", "2026-10-02T10:00:00Z", Some((300, "exit-1"))).await;
    deploy(app, "api", "2026-10-02T12:00:00Z", Some((200, "failed"))).await;
    deploy(app, "api", "2026-10-03T10:00:00Z", Some((50, "success"))).await;
    deploy(app, "api", "2026-10-04T10:00:00Z", Some((400, "cancelled"))).await;
    // 01:00 UTC is 22:00 the evening before in São Paulo.
    deploy(app, "api", "2026-10-05T01:00:00Z", Some((250, "success"))).await;
    // Never finished: abandoned by now.
    deploy(app, "api", "2026-10-06T10:00:00Z", None).await;
    // A finish without a start (it names a deployment never started, so it does
    // not close the running one): counted, but has no duration.
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success",
                     "deployment_id": uuid::Uuid::new_v4().to_string(),
                     "timestamp": "2026-10-07T10:00:00Z"}),
    )
    .await;
    deploy(app, "web", "2026-10-02T09:00:00Z", Some((60, "success"))).await;
    deploy(app, "web", "2026-10-03T09:00:00Z", Some((120, "exit-3"))).await;
    // Outside the window.
    deploy(app, "api", "2026-09-30T23:59:59Z", Some((9999, "success"))).await;
}

const WINDOW: &str = "since=2026-10-01T00:00:00Z&until=2026-10-11T00:00:00Z";

async fn stats_match_an_independent_computation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let body: Value = app.get_json(&format!("/api/v1/stats?{WINDOW}")).await;
    assert_eq!(body["group_by"], "component");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2);
    let api = &groups[0];
    assert_eq!(api["component"], "api");
    assert_eq!(api["deployments"], 8);
    assert_eq!(api["succeeded"], 4);
    assert_eq!(api["failed"], 2);
    assert_eq!(api["cancelled"], 1);
    assert_eq!(api["abandoned"], 1);
    assert_eq!(api["running"], 0);
    close(&api["success_rate"], 4.0 / 7.0);
    close(&api["change_failure_rate"], 2.0 / 7.0);
    close(&api["deploys_per_day"], 8.0 / 10.0);

    let mut durations = vec![100.0, 300.0, 200.0, 50.0, 400.0, 250.0];
    durations.sort_by(f64::total_cmp);
    let n = durations.len() as f64;
    let mean = durations.iter().sum::<f64>() / n;
    let stddev = (durations.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
    let d = &api["duration_seconds"];
    assert_eq!(d["count"], 6);
    close(&d["mean"], mean);
    close(&d["median"], nearest_rank(&durations, 50.0));
    assert_eq!(
        d["median"], 200.0,
        "nearest rank, not the average of 200 and 250"
    );
    close(&d["p90"], nearest_rank(&durations, 90.0));
    close(&d["p95"], nearest_rank(&durations, 95.0));
    close(&d["p99"], nearest_rank(&durations, 99.0));
    close(&d["min"], 50.0);
    close(&d["max"], 400.0);
    close(&d["stddev"], stddev);

    // The streak of failures starts with the first one's finish and ends with
    // the next success's finish.
    let restored = (t("2026-10-03T10:00:50Z") - t("2026-10-02T10:05:00Z")).num_seconds() as f64;
    close(&api["mean_time_to_restore_seconds"], restored);

    // DORA 2023 levels, as DevLake encodes them: 0.8 deploys a day is at least
    // weekly (high); 2 failures of 7 finished is above 15 % (low); a restore
    // of about 23 hours is under a day (high); no commits, no lead time.
    assert!(restored > 3_600.0 && restored < 86_400.0);
    assert_eq!(
        api["levels"],
        json!({"deploy_frequency": "high", "change_failure_rate": "low", "time_to_restore": "high",
               "lead_time": null})
    );

    let web = &groups[1];
    assert_eq!(web["component"], "web");
    assert_eq!(
        web["mean_time_to_restore_seconds"],
        Value::Null,
        "never restored"
    );
    assert_eq!(
        web["levels"]["time_to_restore"],
        Value::Null,
        "no restore, no level"
    );
    close(&web["duration_seconds"]["mean"], 90.0);

    // Durations of successful deployments only.
    let body: Value = app
        .get_json(&format!(
            "/api/v1/stats?{WINDOW}&component=api&status=success"
        ))
        .await;
    let d = &body["groups"][0]["duration_seconds"];
    assert_eq!(d["count"], 3);
    close(&d["median"], nearest_rank(&[50.0, 100.0, 250.0], 50.0));
    close(&d["mean"], (100.0 + 50.0 + 250.0) / 3.0);
}

async fn stats_groupings_and_empty_groups(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let body: Value = app
        .get_json(&format!("/api/v1/stats?{WINDOW}&group_by=none"))
        .await;
    assert_eq!(body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(body["groups"][0]["deployments"], 10);
    assert_eq!(body["groups"][0]["component"], Value::Null);
    let body: Value = app
        .get_json(&format!(
            "/api/v1/stats?{WINDOW}&group_by=component,environment"
        ))
        .await;
    assert_eq!(body["groups"][0]["environment"], "production");
    // Nothing in the window: counts of zero and null durations, not an error.
    let response = app
        .get("/api/v1/stats?group_by=none&since=2020-01-01T00:00:00Z&until=2020-02-01T00:00:00Z")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let empty = &body["groups"][0];
    assert_eq!(empty["deployments"], 0);
    assert_eq!(empty["duration_seconds"]["count"], 0);
    assert_eq!(empty["duration_seconds"]["median"], Value::Null);
    assert_eq!(empty["success_rate"], Value::Null);
    for bad in [
        "group_by=team",
        "tz=Mars/Olympus",
        "interval=week",
        "status=failed",
        "since=yesterday",
    ] {
        let problem = expect_problem(app.get(&format!("/api/v1/stats?{bad}")).await, 422).await;
        assert_query_problem(&problem);
    }
}

/// A refused query is a problem of its own kind: not the store call's
/// "Invalid event", and with the parameter named in `errors`.
fn assert_query_problem(problem: &Value) {
    assert_eq!(problem["type"], "/problems/invalid-query", "{problem}");
    assert_eq!(problem["title"], "Invalid query parameters", "{problem}");
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(1),
        "{problem}"
    );
}

/// Several environments at once, comma-separated: listings and statistics
/// cover exactly those.
async fn several_environments_at_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for environment in ["production", "eu", "staging"] {
        app.store(json!({"component": "api", "phase": "start", "environment": environment}))
            .await;
    }
    let listed = app
        .get_json("/api/v1/deployments?environment=production,eu")
        .await;
    let mut environments: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    environments.sort_unstable();
    assert_eq!(environments, ["eu", "production"]);
    let stats = app
        .get_json("/api/v1/stats?environment=production,eu&group_by=none")
        .await;
    assert_eq!(stats["groups"][0]["deployments"], 2, "{stats}");
    let events = app.get_json("/api/v1/events?environment=staging,eu").await;
    assert_eq!(events["items"].as_array().unwrap().len(), 2);
    let problem = expect_problem(app.get("/api/v1/stats?environment=eu,,x").await, 422).await;
    assert_eq!(problem["errors"][0]["field"], "environment", "{problem}");
}

/// The work and the size of one statistics answer are bounded whatever window
/// is asked for: a request for every day since year 1 is refused at once with
/// the limit named, not answered with gigabytes.
async fn daily_buckets_are_bounded(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let problem = expect_problem(
        app.get("/api/v1/stats?since=0001-01-01T00:00:00Z&interval=day&group_by=component")
            .await,
        422,
    )
    .await;
    assert_query_problem(&problem);
    assert_eq!(problem["errors"][0]["field"], "since", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("at most 3660 days"),
        "{problem}"
    );
    // Ten years of days for every component is still answered.
    let body = app
        .get_json(
            "/api/v1/stats?since=2016-10-05T00:00:00Z&until=2026-10-05T00:00:00Z&interval=day",
        )
        .await;
    let days = body["groups"][0]["daily"].as_array().unwrap().len();
    assert_eq!(
        days, 3_652,
        "2016-10-05 up to 2026-10-05, leap days included"
    );
}

/// A component whose history is older than the default window: its statistics
/// are empty, and the answer says when its latest deployment started.
async fn an_empty_window_names_the_latest_deployment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = Utc::now() - Duration::days(400);
    deploy(&app, "legacy", &rfc(started), Some((60, "success"))).await;
    let body = app.get_json("/api/v1/stats?component=legacy").await;
    assert_eq!(body["groups"], json!([]), "{body}");
    let hint = body["hint"]
        .as_str()
        .unwrap_or_else(|| panic!("no hint: {body}"));
    assert!(hint.contains(&rfc(started)), "{hint}");
    // A window that holds it has no hint.
    let body = app
        .get_json(&format!(
            "/api/v1/stats?component=legacy&since={}",
            rfc(started - Duration::days(1)).replace('+', "%2B")
        ))
        .await;
    assert_eq!(body["groups"][0]["deployments"], 1, "{body}");
    assert_eq!(body.get("hint"), None, "{body}");
}

async fn daily_buckets_follow_the_time_zone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let daily = |tz: &'static str| {
        let app = &app;
        async move {
            let body: Value = app
                .get_json(&format!(
                    "/api/v1/stats?{WINDOW}&component=api&interval=day&tz={tz}"
                ))
                .await;
            body["groups"][0]["daily"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["date"].as_str().unwrap().to_owned(), d.clone()))
                .collect::<BTreeMap<_, _>>()
        }
    };
    let utc = daily("UTC").await;
    assert_eq!(
        utc.len(),
        10,
        "one bucket per day of the window, empty days included"
    );
    assert_eq!(utc["2026-10-04"]["deployments"], 1);
    assert_eq!(utc["2026-10-05"]["deployments"], 1);
    assert_eq!(utc["2026-10-08"]["deployments"], 0);
    assert_eq!(utc["2026-10-08"]["median_duration_seconds"], Value::Null);
    let sao_paulo = daily("America/Sao_Paulo").await;
    assert_eq!(
        sao_paulo["2026-10-04"]["deployments"], 2,
        "the 01:00 UTC deploy is on the 4th"
    );
    assert_eq!(sao_paulo["2026-10-05"]["deployments"], 0);
    assert_eq!(sao_paulo["2026-10-04"]["cancelled"], 1);
    assert_eq!(sao_paulo["2026-10-04"]["succeeded"], 1);
    // Median of 400 and 250 by nearest rank is the first: 250.
    assert_eq!(sao_paulo["2026-10-04"]["median_duration_seconds"], 250.0);
    assert_eq!(utc["2026-10-02"]["median_duration_seconds"], 200.0);
}

async fn pages_see_every_row_once_under_inserts(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let base = t("2026-06-01T00:00:00Z");
    let mut expected = Vec::new();
    for i in 0..60 {
        // Pairs share a timestamp, so the sequence number must break ties.
        let at = rfc(base + Duration::minutes(i / 2));
        let body = app
            .store(json!({"component": format!("c{}", i % 3), "phase": "start", "timestamp": at}))
            .await;
        expected.push(body["deployment"]["id"].as_str().unwrap().to_owned());
    }
    let inserter = {
        let client = app.client.clone();
        let url = app.url("/api/v1/events");
        tokio::spawn(async move {
            for i in 0..40 {
                let response = client
                    .post(&url)
                    .json(&json!({"component": format!("new{i}"), "phase": "start"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
            }
        })
    };
    let pages = app
        .pages("/api/v1/deployments?limit=7&until=2026-07-01T00:00:00Z")
        .await;
    assert!(pages.iter().all(|page| page.len() <= 7));
    let seen: Vec<String> = pages
        .iter()
        .flatten()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    inserter.await.unwrap();
    let mut sorted_seen = seen.clone();
    sorted_seen.sort();
    sorted_seen.dedup();
    assert_eq!(sorted_seen.len(), seen.len(), "no row repeated");
    let mut sorted_expected = expected.clone();
    sorted_expected.sort();
    assert_eq!(sorted_seen, sorted_expected, "every row exactly once");
    // Newest first: the order is the reverse of insertion (same-time pairs by sequence).
    expected.reverse();
    assert_eq!(seen, expected);

    // The walk over everything, new rows included, also sees each once.
    let all: Vec<Value> = app
        .pages("/api/v1/deployments?limit=1000")
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(all.len(), 100);
    let problem = expect_problem(app.get("/api/v1/deployments?cursor=bogus").await, 422).await;
    assert_query_problem(&problem);
    assert_eq!(problem["errors"][0]["field"], "cursor");
}

async fn filters_by_state_and_window(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let recent = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    let ids = |body: Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["state"].as_str().unwrap().to_owned())
            .collect()
    };
    let body: Value = app.get_json("/api/v1/deployments?state=abandoned").await;
    assert_eq!(ids(body), vec!["abandoned"]);
    let body: Value = app.get_json("/api/v1/deployments?state=running").await;
    assert_eq!(body["items"][0]["id"], recent["deployment"]["id"]);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    let body: Value = app
        .get_json("/api/v1/deployments?state=failed&component=api")
        .await;
    assert_eq!(ids(body), vec!["failed", "failed"]);
    // since is inclusive, until exclusive, on the start time (finish time without a start).
    let body: Value = app
        .get_json(
            "/api/v1/deployments?since=2026-10-07T10:00:00Z&until=2026-10-07T10:00:00.000001Z",
        )
        .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["started_at"],
        Value::Null,
        "the orphan finish, by its finish time"
    );
    let problem = expect_problem(app.get("/api/v1/deployments?state=done").await, 422).await;
    assert_query_problem(&problem);
    assert_eq!(problem["errors"][0]["field"], "state");

    // The ledger: same filters, on the event's own time.
    let body: Value = app
        .get_json("/api/v1/events?component=web&phase=finish")
        .await;
    let statuses: Vec<_> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!("exit-3"), json!("success")]);
}

async fn csv_exports_match_the_json_listing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    app.store(
        json!({"component": "evil", "phase": "start", "version": "=HYPERLINK(\"x\")",
                     "owner": "@SUM(1+1)", "attributes": {"note": "+1, \"quoted\"\nline"}}),
    )
    .await;
    app.store(json!({"component": "rolled-back", "phase": "start", "rollback": true}))
        .await;
    let response = app.get("/api/v1/deployments?format=csv").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header[0], "id");
    assert_eq!(header[9], "duration_seconds");
    assert_eq!(header[10], "rollback");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let json = app.all_deployments().await;
    assert_eq!(rows.len(), json.len());
    for (row, d) in rows.iter().zip(&json) {
        assert_eq!(&row[0], d["id"].as_str().unwrap());
        assert_eq!(&row[1], d["component"].as_str().unwrap());
        assert_eq!(&row[5], d["state"].as_str().unwrap());
        assert_eq!(&row[7], d["started_at"].as_str().unwrap_or(""));
        match d["duration_seconds"].as_f64() {
            Some(seconds) => assert_eq!(row[9].parse::<f64>().unwrap(), seconds),
            None => assert_eq!(&row[9], ""),
        }
        assert_eq!(&row[10], d["rollback"].as_bool().unwrap().to_string());
    }
    let rolled_back = rows.iter().find(|r| &r[1] == "rolled-back").unwrap();
    assert_eq!(&rolled_back[10], "true");
    assert_eq!(&evil_row(&rows)[10], "false");
    let evil = evil_row(&rows);
    assert_eq!(&evil[3], "'=HYPERLINK(\"x\")");
    assert_eq!(&evil[4], "'@SUM(1+1)");

    // The ledger, asked for with an Accept header.
    let response = app
        .client
        .get(app.url("/api/v1/events?component=evil"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    let attributes: Value = serde_json::from_str(&rows[0][10]).unwrap();
    assert_eq!(attributes["note"], "+1, \"quoted\"\nline");
    let count = csv_records(&app, "/api/v1/events?format=csv").await.len();
    // 9 finished pairs, 1 start never finished, 1 finish never started, and
    // the two starts above.
    assert_eq!(count, 9 * 2 + 1 + 1 + 2);
}

async fn components_and_removal(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_history(&app).await;
    let body: Value = app.get_json("/api/v1/components").await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["component"], "api");
    assert_eq!(items[0]["deployments"], 9);
    // Means are reported to the microsecond, like every stored duration.
    let mean = items[0]["mean_duration_seconds"].as_f64().unwrap();
    let expected = (100.0 + 300.0 + 200.0 + 50.0 + 400.0 + 250.0 + 9999.0) / 7.0;
    assert!((mean - expected).abs() <= 1e-6, "{mean} != {expected}");
    assert_eq!(
        items[0]["last_deployment"]["finished_at"],
        "2026-10-07T10:00:00.000000Z"
    );
    close(&items[1]["mean_duration_seconds"], 90.0);

    let id = deploy(&app, "doomed", "2026-10-08T00:00:00Z", Some((5, "success"))).await;
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    expect_problem(app.get(&format!("/api/v1/deployments/{id}")).await, 404).await;
    let body: Value = app.get_json("/api/v1/events?component=doomed").await;
    assert!(
        body["items"].as_array().unwrap().is_empty(),
        "its events are gone too"
    );
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/deployments/{id}")))
        .send()
        .await
        .unwrap();
    expect_problem(response, 404).await;
}

/// A failure is restored by the next success of the same component in the same
/// environment only, whatever the grouping; a component with nothing in the
/// window is not a group.
async fn restores_stay_within_one_environment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let store = |environment: &str, phase: &str, status: Option<&str>, at: &str, id: &str| {
        let mut body = json!({"component": "db", "environment": environment, "phase": phase,
                              "deployment_id": id, "timestamp": at});
        if let Some(status) = status {
            body["status"] = json!(status);
        }
        body
    };
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for body in [
        store("staging", "start", None, "2026-10-01T10:00:00Z", &ids[0]),
        store(
            "staging",
            "finish",
            Some("failed"),
            "2026-10-01T10:01:40Z",
            &ids[0],
        ),
        // A success in another environment restores nothing in staging.
        store("production", "start", None, "2026-10-01T11:00:00Z", &ids[1]),
        store(
            "production",
            "finish",
            Some("success"),
            "2026-10-01T11:00:10Z",
            &ids[1],
        ),
        store("staging", "start", None, "2026-10-02T10:00:00Z", &ids[2]),
        store(
            "staging",
            "finish",
            Some("success"),
            "2026-10-02T10:00:30Z",
            &ids[2],
        ),
    ] {
        app.store(body).await;
    }
    deploy(&app, "gone", "2026-09-01T10:00:00Z", Some((10, "success"))).await;
    let restored = (t("2026-10-02T10:00:30Z") - t("2026-10-01T10:01:40Z")).num_seconds() as f64;

    let body = app.get_json(&format!("/api/v1/stats?{WINDOW}")).await;
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{body}");
    assert_eq!(groups[0]["component"], "db");
    assert_eq!(groups[0]["deployments"], 3);
    close(&groups[0]["mean_time_to_restore_seconds"], restored);

    let body = app
        .get_json(&format!("/api/v1/stats?{WINDOW}&group_by=environment"))
        .await;
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{body}");
    assert_eq!(groups[0]["environment"], "production");
    assert_eq!(groups[0]["deployments"], 1);
    assert_eq!(groups[0]["mean_time_to_restore_seconds"], Value::Null);
    assert_eq!(groups[1]["environment"], "staging");
    assert_eq!(groups[1]["deployments"], 2);
    close(&groups[1]["mean_time_to_restore_seconds"], restored);
    close(&groups[1]["duration_seconds"]["mean"], (100.0 + 30.0) / 2.0);
}

/// The rows (after the header) of the CSV export at `path`.
fn evil_row(rows: &[csv::StringRecord]) -> &csv::StringRecord {
    rows.iter().find(|r| &r[1] == "evil").unwrap()
}

async fn csv_records(app: &TestApp, path: &str) -> Vec<csv::StringRecord> {
    let text = app.get(path).await.text().await.unwrap();
    csv::Reader::from_reader(text.as_bytes())
        .records()
        .map(Result::unwrap)
        .collect()
}

/// Writes `deployments` deployments of synthetic history (7 components, 2
/// environments, 30 days) straight into the test's database.
async fn seed_deployments(app: &TestApp, deployments: u64) {
    let url = app.database.url.clone();
    let plan = SeedPlan {
        deployments,
        components: 7,
        environments: 2,
        days: 30,
        seed: 7,
    };
    let seeded = tokio::task::spawn_blocking(move || seed(&url, &plan))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seeded.deployments, deployments);
}

/// The seeded history's incidents, read back through the API: each is caused by
/// a failed production deployment of its component, starts at that
/// deployment's finish and is restored 5 minutes to 8 hours later (or is still
/// open); about three in ten such failures have one, and the statistics count
/// the same incidents the listing shows.
async fn seeded_history_has_incidents_of_failed_deployments(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    seed_deployments(&app, 3_000).await;
    let since = rfc(Utc::now() - Duration::days(40));
    let rows = csv_records(
        &app,
        "/api/v1/deployments?format=csv&environment=production",
    )
    .await;
    let failed: std::collections::BTreeMap<&str, &csv::StringRecord> = rows
        .iter()
        .filter(|r| &r[5] == "failed")
        .map(|r| (&r[0], r))
        .collect();
    assert!(
        failed.len() > 50,
        "{} failed production deployments",
        failed.len()
    );

    let listing = app
        .get_json(&format!("/api/v1/incidents?limit=1000&since={since}"))
        .await;
    let incidents = listing["items"].as_array().unwrap();
    assert!(listing["next_cursor"].is_null(), "more than one page");
    let share = incidents.len() as f64 / failed.len() as f64;
    assert!(
        (0.15..=0.45).contains(&share),
        "{} incidents for {} failures",
        incidents.len(),
        failed.len()
    );
    for incident in incidents {
        let cause = incident["cause_deployment_id"].as_str().unwrap();
        let deployment = failed
            .get(cause)
            .unwrap_or_else(|| panic!("{incident}: not caused by a failed production deployment"));
        assert_eq!(incident["component"], &deployment[1]);
        assert_eq!(incident["environment"], "production");
        let started =
            DateTime::parse_from_rfc3339(incident["started_at"].as_str().unwrap()).unwrap();
        let finished = DateTime::parse_from_rfc3339(&deployment[8]).unwrap();
        assert_eq!(started, finished, "{incident}");
        match incident["resolved_at"].as_str() {
            Some(resolved) => {
                let restore = DateTime::parse_from_rfc3339(resolved).unwrap() - started;
                assert!(
                    (Duration::minutes(5)..=Duration::hours(8)).contains(&restore),
                    "{incident}"
                );
                assert_eq!(incident["state"], "resolved");
            }
            None => {
                assert_eq!(incident["state"], "open");
                assert!(started + Duration::hours(8) > Utc::now(), "{incident}");
            }
        }
    }

    let stats = app
        .get_json(&format!(
            "/api/v1/stats?since={since}&environment=production"
        ))
        .await;
    let counted: u64 = stats["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["incidents"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, incidents.len() as u64, "{stats}");
}

/// Exports longer than one page of the export (5,000 rows), seeded straight into
/// the database: every row exactly once, newest first.
async fn long_exports_span_pages_without_gaps(backend: Backend) {
    const DEPLOYMENTS: u64 = 12_345;
    let app = TestApp::spawn(backend).await;
    seed_deployments(&app, DEPLOYMENTS).await;

    let rows = csv_records(&app, "/api/v1/deployments?format=csv").await;
    assert_eq!(rows.len() as u64, DEPLOYMENTS);
    let ids: BTreeSet<&str> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!(ids.len() as u64, DEPLOYMENTS, "a row was exported twice");
    // started_at (column 7), or finished_at (8) without a start: RFC 3339 in one
    // format, so the text orders like the time.
    let anchors: Vec<&str> = rows
        .iter()
        .map(|r| if r[7].is_empty() { &r[8] } else { &r[7] })
        .collect();
    assert!(anchors.windows(2).all(|w| w[0] >= w[1]), "not newest first");

    // A filtered export (read page after page on one connection, where the
    // unfiltered one reads two pages at once): exactly the matching rows.
    let production: BTreeSet<&str> = rows
        .iter()
        .filter(|r| &r[2] == "production")
        .map(|r| &r[0])
        .collect();
    assert!(production.len() > 5_000, "{} rows", production.len());
    let filtered = csv_records(
        &app,
        "/api/v1/deployments?format=csv&environment=production",
    )
    .await;
    let filtered_ids: BTreeSet<&str> = filtered.iter().map(|r| &r[0]).collect();
    assert_eq!(
        filtered_ids.len(),
        filtered.len(),
        "a row was exported twice"
    );
    assert_eq!(filtered_ids, production);

    let events = csv_records(&app, "/api/v1/events?format=csv").await;
    let ids: BTreeSet<&str> = events.iter().map(|r| &r[0]).collect();
    assert!(events.len() > 10_000, "{} events", events.len());
    assert_eq!(ids.len(), events.len(), "an event was exported twice");
    let referenced: BTreeSet<&str> = events.iter().map(|r| &r[1]).collect();
    assert_eq!(referenced.len() as u64, DEPLOYMENTS);
}

backend_tests!(
    several_environments_at_once,
    daily_buckets_are_bounded,
    an_empty_window_names_the_latest_deployment,
    long_exports_span_pages_without_gaps,
    seeded_history_has_incidents_of_failed_deployments,
    stats_match_an_independent_computation,
    stats_groupings_and_empty_groups,
    restores_stay_within_one_environment,
    daily_buckets_follow_the_time_zone,
    pages_see_every_row_once_under_inserts,
    filters_by_state_and_window,
    csv_exports_match_the_json_listing,
    components_and_removal,
);
