//! Reading deployments back.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

async fn listing_is_newest_first_and_filtered(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (component, environment, timestamp) in [
        ("api", "production", "2026-01-01T10:00:00Z"),
        ("api", "staging", "2026-01-01T11:00:00Z"),
        ("web", "production", "2026-01-01T12:00:00Z"),
        ("api", "production", "2026-01-01T13:00:00Z"),
    ] {
        app.store(json!({"component": component, "environment": environment,
                         "phase": "start", "timestamp": timestamp}))
            .await;
    }
    // An orphan finish is listed by its finish time.
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success",
                     "environment": "qa", "timestamp": "2026-01-01T12:30:00Z"}),
    )
    .await;
    let all = app.all_deployments().await;
    let times: Vec<_> = all
        .iter()
        .map(|d| {
            d["started_at"]
                .as_str()
                .or(d["finished_at"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(times.len(), 5);

    let body: serde_json::Value = app
        .get_json("/api/v1/deployments?component=api&environment=production")
        .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["started_at"], "2026-01-01T13:00:00.000000Z");
    assert_eq!(items[1]["started_at"], "2026-01-01T10:00:00.000000Z");

    let body: serde_json::Value = app.get_json("/api/v1/deployments?limit=2").await;
    assert_eq!(body["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        body["items"][0]["started_at"],
        "2026-01-01T13:00:00.000000Z"
    );
}

backend_tests!(listing_is_newest_first_and_filtered);
