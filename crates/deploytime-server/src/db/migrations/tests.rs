//! A database written by the previous release is migrated whole: every row
//! is read back through the API unchanged, and what the migration changed
//! (the running deployments' index) serves the rows stored before it.

use chrono::{DurationRound, Utc};
use deploytime_core::EventInput;
use diesel::prelude::*;
use serde_json::{Value as Json, json};

use super::migrate_sqlite_through;
use crate::db::store::store_batch;
use crate::testing::{Backend, RunningServer, TestDatabase, settings};

/// The last migration of the release before the running deployments' index
/// became partial.
const PREVIOUS_RELEASE: &str = "2026-12-01-100000_record_commits_and_rollbacks";

#[derive(QueryableByName)]
struct Sql {
    #[diesel(sql_type = diesel::sql_types::Text)]
    sql: String,
}

fn running_index(url: &crate::db::DatabaseUrl) -> String {
    let mut conn = url.establish().unwrap();
    diesel::sql_query("SELECT sql FROM sqlite_master WHERE name = 'deployments_running'")
        .get_result::<Sql>(&mut conn)
        .unwrap()
        .sql
}

async fn get(server: &RunningServer, path: &str) -> Json {
    let response = reqwest::get(format!("{}{path}", server.url)).await.unwrap();
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.unwrap()
}

async fn deployment(server: &RunningServer, id: &str) -> Json {
    get(server, &format!("/api/v1/deployments/{id}")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_of_the_previous_release_migrates_whole() {
    let database = TestDatabase::create(Backend::Sqlite).unwrap();
    migrate_sqlite_through(&database.url, PREVIOUS_RELEASE).unwrap();
    assert!(
        !running_index(&database.url).contains("WHERE"),
        "the previous release's index is on every deployment"
    );

    // Minutes ago, so the running ones are not yet reported as abandoned.
    let now = Utc::now()
        .duration_trunc(chrono::Duration::seconds(1))
        .unwrap();
    let minute = |m: i64| now - chrono::Duration::minutes(m);
    let at = |m: i64| minute(m).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let shown = |m: i64| minute(m).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // What the previous release stored: a finished deployment, two still
    // running (one of them to be closed by a finish without an id after the
    // migration), each event with its own id.
    let bodies = [
        json!({"component": "api", "phase": "start", "version": "1.0",
               "deployment_id": "0190f3a2-7c1d-7e55-9a10-00000000a001",
               "event_id": "0190f3a2-7c1d-7e55-9a10-00000000e001",
               "timestamp": at(50)}),
        json!({"component": "api", "phase": "finish", "status": "success",
               "deployment_id": "0190f3a2-7c1d-7e55-9a10-00000000a001",
               "event_id": "0190f3a2-7c1d-7e55-9a10-00000000e002",
               "timestamp": at(46)}),
        json!({"component": "web", "phase": "start", "environment": "staging",
               "deployment_id": "0190f3a2-7c1d-7e55-9a10-00000000a002",
               "event_id": "0190f3a2-7c1d-7e55-9a10-00000000e003",
               "timestamp": at(40)}),
        json!({"component": "db", "phase": "start", "owner": "dba",
               "event_id": "0190f3a2-7c1d-7e55-9a10-00000000e004",
               "timestamp": at(30)}),
    ];
    let events: Vec<_> = bodies
        .iter()
        .map(|body| {
            EventInput::from_json(body.clone())
                .unwrap()
                .validate(Utc::now())
                .unwrap()
        })
        .collect();
    let received = Utc::now();
    let batch: Vec<_> = events.iter().map(|e| (e, received)).collect();
    let mut conn = database.url.establish().unwrap();
    let stored: Vec<_> = store_batch(&mut conn, &batch)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    drop(conn);
    let db_deployment = stored[3].deployment.id.to_string();

    // The release of this change opens it: the migration runs at start-up.
    let server = RunningServer::start(&settings(&database.url)).unwrap();
    let index = running_index(&database.url);
    assert!(
        index.contains("WHERE state = 'running'"),
        "the index is not partial: {index}"
    );

    // Every deployment as it was stored, under the same id.
    let api = deployment(&server, "0190f3a2-7c1d-7e55-9a10-00000000a001").await;
    assert_eq!(api["state"], "succeeded");
    assert_eq!(api["version"], "1.0");
    assert_eq!(api["started_at"], shown(50).as_str());
    assert_eq!(api["finished_at"], shown(46).as_str());
    assert_eq!(api["duration_seconds"], 240.0);
    let web = deployment(&server, "0190f3a2-7c1d-7e55-9a10-00000000a002").await;
    assert_eq!(web["state"], "running");
    assert_eq!(web["environment"], "staging");
    let db = deployment(&server, &db_deployment).await;
    assert_eq!(db["state"], "running");
    assert_eq!(db["owner"], "dba");
    // Every event, under its id.
    let listed = get(&server, "/api/v1/events?limit=100").await;
    let mut ids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "0190f3a2-7c1d-7e55-9a10-00000000e001",
            "0190f3a2-7c1d-7e55-9a10-00000000e002",
            "0190f3a2-7c1d-7e55-9a10-00000000e003",
            "0190f3a2-7c1d-7e55-9a10-00000000e004",
        ]
    );

    // A finish without an id finds the running deployment stored before the
    // migration: the rebuilt index holds the rows that were there.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/events", server.url))
        .json(
            &json!({"component": "db", "phase": "finish", "status": "success",
                      "timestamp": at(20)}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["deployment"]["id"], db_deployment.as_str());
    assert_eq!(body["deployment"]["state"], "succeeded");
    assert_eq!(body["deployment"]["duration_seconds"], 600.0);
    server.stop().await.unwrap();
}
