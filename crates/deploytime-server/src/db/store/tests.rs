//! One transaction for several events: an event refused inside it is rolled
//! back alone, and every kept event reaches the ledger with its deployment.
//! Driven directly (no HTTP) and checked through the API.

use chrono::{TimeZone, Utc};
use deploytime_core::EventInput;
use serde_json::{Value as Json, json};

use super::{StoreError, store_batch};
use crate::backend_tests;
use crate::testing::{Backend, RunningServer, TestDatabase, settings};

fn event(body: Json) -> deploytime_core::NewEvent {
    EventInput::from_json(body)
        .unwrap()
        .validate(Utc::now())
        .unwrap()
}

/// A server on a database of its own, to read back through the API.
struct App {
    server: RunningServer,
    _database: TestDatabase,
}

impl App {
    fn start(backend: Backend) -> App {
        let database = TestDatabase::create(backend).unwrap();
        let server = RunningServer::start(&settings(&database.url)).unwrap();
        App {
            server,
            _database: database,
        }
    }

    async fn get_json(&self, path: &str) -> Json {
        let response = reqwest::get(format!("{}{path}", self.server.url))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn deployment(&self, id: &str) -> Json {
        self.get_json(&format!("/api/v1/deployments/{id}")).await
    }
}

async fn a_refused_event_leaves_the_rest_of_its_commit(backend: Backend) {
    let app = App::start(backend);
    let deployment = "0190f3a2-7c1d-7e55-9a10-2b3c4d5e6f70";
    let start = json!({
        "component": "api", "phase": "start", "deployment_id": deployment,
        "event_id": "0190f3a2-7c1d-7e55-9a10-000000000001",
        "timestamp": "2026-11-20T10:00:00Z",
    });
    let events = [
        event(start.clone()),
        // Earlier than the start it closes: refused.
        event(json!({
            "component": "api", "phase": "finish", "status": "success",
            "deployment_id": deployment, "timestamp": "2026-11-20T09:00:00Z",
        })),
        // The same event again: a replay of what this transaction stored.
        event(start.clone()),
        // The same event id with other content: a conflict.
        event(json!({
            "component": "api", "phase": "start", "deployment_id": deployment,
            "event_id": "0190f3a2-7c1d-7e55-9a10-000000000001",
            "timestamp": "2026-11-20T10:01:00Z",
        })),
        event(json!({
            "component": "api", "phase": "finish", "status": "success",
            "deployment_id": deployment, "timestamp": "2026-11-20T10:05:00Z",
        })),
        event(json!({"component": "web", "phase": "start"})),
    ];
    let received = Utc.with_ymd_and_hms(2026, 11, 20, 10, 6, 0).unwrap();
    let pool = app.server.db.pool().clone();
    let results = tokio::task::spawn_blocking(move || {
        let batch: Vec<_> = events.iter().map(|e| (e, received)).collect();
        let mut conn = pool.get().unwrap();
        store_batch(&mut conn, &batch).unwrap()
    })
    .await
    .unwrap();

    assert_eq!(results.len(), 6);
    let first = results[0].as_ref().unwrap();
    assert!(!first.replayed);
    assert!(
        matches!(&results[1], Err(StoreError::Pairing(_))),
        "{:?}",
        results[1]
    );
    let replay = results[2].as_ref().unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.event.id, first.event.id);
    assert!(
        matches!(&results[3], Err(StoreError::IdempotencyConflict { .. })),
        "{:?}",
        results[3]
    );
    assert!(results[4].is_ok(), "{:?}", results[4]);
    assert!(results[5].is_ok(), "{:?}", results[5]);

    // What the API reports afterwards: the kept events, and nothing of the
    // refused ones.
    let closed = app.deployment(deployment).await;
    assert_eq!(closed["state"], "succeeded", "{closed}");
    assert_eq!(closed["duration_seconds"], 300.0, "{closed}");
    let ledger = app.get_json("/api/v1/events?limit=1000").await;
    let phases: Vec<(&str, &str)> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["component"].as_str().unwrap(),
                e["phase"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(phases.len(), 3, "{ledger}");
    assert_eq!(phases.iter().filter(|p| **p == ("api", "start")).count(), 1);
    assert_eq!(
        phases.iter().filter(|p| **p == ("api", "finish")).count(),
        1
    );
    assert_eq!(phases.iter().filter(|p| **p == ("web", "start")).count(), 1);
}

/// A commit whose event ids are all different writes its ledger rows in one
/// statement at its end: every kept event is in the ledger once, with the
/// deployment it was paired with, and a refused one is not.
async fn every_kept_event_of_a_commit_reaches_the_ledger(backend: Backend) {
    let app = App::start(backend);
    let components = ["api", "web", "worker", "db"];
    let mut events = Vec::new();
    for (n, component) in components.iter().enumerate() {
        let deployment = format!("0190f3a2-7c1d-7e55-9a10-00000000010{n}");
        events.push(event(json!({
            "component": component, "phase": "start", "deployment_id": deployment,
            "event_id": format!("0190f3a2-7c1d-7e55-9a10-00000000020{n}"),
            "timestamp": "2026-11-20T10:00:00Z",
        })));
        events.push(event(json!({
            "component": component, "phase": "finish", "status": "success",
            "deployment_id": deployment,
            "event_id": format!("0190f3a2-7c1d-7e55-9a10-00000000030{n}"),
            "timestamp": format!("2026-11-20T10:0{}:00Z", n + 1),
        })));
    }
    // Earlier than the start it would close: refused, so not in the ledger.
    events.insert(
        2,
        event(json!({
            "component": "api", "phase": "finish", "status": "failed",
            "deployment_id": "0190f3a2-7c1d-7e55-9a10-000000000100",
            "event_id": "0190f3a2-7c1d-7e55-9a10-000000000400",
            "timestamp": "2026-11-20T09:00:00Z",
        })),
    );
    let received = Utc.with_ymd_and_hms(2026, 11, 20, 10, 30, 0).unwrap();
    let pool = app.server.db.pool().clone();
    let results = tokio::task::spawn_blocking(move || {
        let batch: Vec<_> = events.iter().map(|e| (e, received)).collect();
        let mut conn = pool.get().unwrap();
        store_batch(&mut conn, &batch).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 8);
    assert!(
        matches!(&results[2], Err(StoreError::Pairing(_))),
        "{:?}",
        results[2]
    );

    let ledger = app.get_json("/api/v1/events?limit=1000").await;
    let mut stored: Vec<(String, String)> = ledger["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_owned(),
                e["deployment_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    stored.sort();
    let mut expected: Vec<(String, String)> = (0..components.len())
        .flat_map(|n| {
            let deployment = format!("0190f3a2-7c1d-7e55-9a10-00000000010{n}");
            [
                (
                    format!("0190f3a2-7c1d-7e55-9a10-00000000020{n}"),
                    deployment.clone(),
                ),
                (
                    format!("0190f3a2-7c1d-7e55-9a10-00000000030{n}"),
                    deployment,
                ),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(stored, expected, "{ledger}");
    for n in 0..components.len() {
        let deployment = app
            .deployment(&format!("0190f3a2-7c1d-7e55-9a10-00000000010{n}"))
            .await;
        assert_eq!(deployment["state"], "succeeded", "{deployment}");
        assert_eq!(
            deployment["duration_seconds"],
            60.0 * (n as f64 + 1.0),
            "{deployment}"
        );
    }
}

backend_tests!(
    a_refused_event_leaves_the_rest_of_its_commit,
    every_kept_event_of_a_commit_reaches_the_ledger,
);
