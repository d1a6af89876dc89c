//! Group commit: store calls that arrive while a commit is in flight share the
//! next transaction (an event refused inside a shared transaction is tested
//! with the store's transaction itself, in `src/db/store/tests.rs`).

use std::time::{Duration, Instant};

use deploytime_server::access::Secret;
use prometheus_parse::{Scrape, Value};
use serde_json::{Value as Json, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

const ADMIN: &str = "group-commit-admin-token-0123456789";

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

backend_tests!(calls_waiting_for_a_commit_share_the_next_one);
