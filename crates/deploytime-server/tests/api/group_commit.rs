//! Group commit: store calls that arrive while a commit is in flight share the
//! next transaction, and an event refused inside a shared transaction does not
//! take the others with it.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use deploytime_core::EventInput;
use deploytime_server::auth::Secret;
use deploytime_server::db::store::{StoreError, store_batch};
use prometheus_parse::{Scrape, Value};
use serde_json::{Value as Json, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

const ADMIN: &str = "group-commit-admin-token-0123456789";

fn event(body: Json) -> deploytime_core::NewEvent {
    EventInput::from_json(body)
        .unwrap()
        .validate(Utc::now())
        .unwrap()
}

async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
}

/// The value of the unlabelled sample `name` (a histogram's `_sum` or `_count`
/// included), or of a histogram's observation count.
fn sample(scrape: &Scrape, name: &str) -> f64 {
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name)
        .unwrap_or_else(|| panic!("no sample {name}"));
    match &found.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{name} is {other:?}"),
    }
}

/// Sends `calls` store calls (each starting a deployment of its own) as the
/// admin, and waits until all of them are waiting for the database, beside the
/// `others` calls already in flight. Returns each call's status.
async fn queue_store_calls(
    app: &TestApp,
    calls: usize,
    others: usize,
) -> Vec<tokio::task::JoinHandle<u16>> {
    let handles = (0..calls)
        .map(|i| {
            let request = app
                .client
                .post(app.url("/api/v1/events"))
                .bearer_auth(ADMIN)
                .json(&json!({"component": format!("svc-{i}"), "phase": "start"}));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.db.calls_in_flight() < calls + others {
        assert!(
            Instant::now() < deadline,
            "only {} calls reached the database",
            app.db.calls_in_flight()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    handles
}

/// The server's metrics, as text and parsed.
async fn metrics(app: &TestApp) -> (String, Scrape) {
    let text = admin_get(app, "/metrics").await.text().await.unwrap();
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    (text, scrape)
}

async fn calls_waiting_for_a_commit_share_the_next_one(backend: Backend) {
    const CALLS: usize = 20;
    let app = TestApp::spawn_with(backend, |s| {
        s.pool_size = 1;
        s.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    // The only connection is taken: the first store call's commit waits for it,
    // and every call after it queues behind that commit.
    let release = app.hold_database().await;
    // One more call holds the connection.
    let calls = queue_store_calls(&app, CALLS, 1).await;
    drop(release);
    for call in calls {
        assert_eq!(call.await.unwrap(), 201);
    }

    let (text, scrape) = metrics(&app).await;
    let events = sample(&scrape, "deploytime_store_commit_events_sum");
    let commits = sample(&scrape, "deploytime_store_commit_events_count");
    assert_eq!(events, CALLS as f64, "{text}");
    // The first commit holds the call(s) taken before the connection was free;
    // everything that queued meanwhile goes in the second.
    assert!(commits <= 2.0, "{commits} commits for {CALLS} calls");

    let listing: Json = admin_get(&app, "/api/v1/deployments?limit=1000")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        listing["items"].as_array().unwrap().len(),
        CALLS,
        "{listing}"
    );
}

/// On MySQL two committers run at once, and a burst is shared between them:
/// no commit takes more than 32 calls, where one would otherwise take every
/// call waiting and keep them all waiting for its single transaction.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_shared_between_mysql_committers() {
    const CALLS: usize = 70;
    let app = TestApp::spawn_with(Backend::Mysql, |s| {
        s.pool_size = 8;
        s.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    // Every connection is taken: the calls queue until they are released.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(app.hold_database().await);
    }
    let calls = queue_store_calls(&app, CALLS, held.len()).await;
    drop(held);
    for call in calls {
        assert_eq!(call.await.unwrap(), 201);
    }

    let (text, scrape) = metrics(&app).await;
    assert_eq!(
        sample(&scrape, "deploytime_store_commit_events_sum"),
        CALLS as f64
    );
    let commits = sample(&scrape, "deploytime_store_commit_events_count");
    let up_to_32 = scrape
        .samples
        .iter()
        .find_map(|s| match &s.value {
            Value::Histogram(buckets) if s.metric == "deploytime_store_commit_events" => buckets
                .iter()
                .find(|b| b.less_than == 32.0)
                .map(|b| b.count),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no histogram in {text}"));
    assert_eq!(
        up_to_32, commits,
        "a commit took more than 32 calls: {text}"
    );
    assert!(commits >= 3.0, "{commits} commits for {CALLS} calls");
}

async fn a_refused_event_leaves_the_rest_of_its_commit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
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
    let pool = app.db.pool().clone();
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
    let app = TestApp::spawn(backend).await;
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
    let pool = app.db.pool().clone();
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
    calls_waiting_for_a_commit_share_the_next_one,
    a_refused_event_leaves_the_rest_of_its_commit,
    every_kept_event_of_a_commit_reaches_the_ledger,
);
