//! Re-sent events: the same call is answered with the original result and stored
//! once; a different call under the same event id is a conflict.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

async fn replay_returns_the_original_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let event = json!({"component": "api", "phase": "start", "version": "v1",
                       "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5c00"});
    let first = app.store(event.clone()).await;
    let response = app.post_json(event.clone()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!(
            "/api/v1/deployments/{}",
            first["deployment"]["id"].as_str().unwrap()
        )
    );
    let again: Value = response.json().await.unwrap();
    assert_eq!(again, first, "the replay answers with the original result");
    assert_eq!(app.all_deployments().await.len(), 1);
    let detail = app
        .deployment(first["deployment"]["id"].as_str().unwrap())
        .await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 1);
}

async fn replayed_finish_does_not_close_twice(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.store(json!({"component": "api", "phase": "start"}))
        .await;
    app.store(json!({"component": "api", "phase": "start"}))
        .await;
    let finish = json!({"component": "api", "phase": "finish", "status": "success",
                        "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5c01"});
    let first = app.store(finish.clone()).await;
    for _ in 0..3 {
        let response = app.post_json(finish.clone()).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["deployment"]["id"], first["deployment"]["id"]);
    }
    let states: Vec<_> = app
        .all_deployments()
        .await
        .iter()
        .map(|d| d["state"].as_str().unwrap().to_owned())
        .collect();
    let running = states.iter().filter(|s| *s == "running").count();
    assert_eq!(
        running, 1,
        "a replayed finish must not close the other deployment: {states:?}"
    );
}

async fn same_id_different_content_is_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5c02";
    app.store(json!({"component": "api", "phase": "start", "event_id": id, "version": "v1"}))
        .await;
    let problem = expect_problem(
        app.post_json(
            json!({"component": "api", "phase": "start", "event_id": id, "version": "v2"}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains(id),
        "{problem}"
    );
    let deployments = app.all_deployments().await;
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["version"], "v1");
}

async fn replay_without_timestamp_is_still_the_same_call(backend: Backend) {
    // The server fills in the time of receipt; a retry a moment later must not
    // count as different content.
    let app = TestApp::spawn(backend).await;
    let event = json!({"component": "api", "phase": "start",
                       "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5c03"});
    let first = app.store(event.clone()).await;
    tokio::task::yield_now().await;
    let response = app.post_json(event).await;
    assert_eq!(response.status(), 200);
    let again: Value = response.json().await.unwrap();
    assert_eq!(again["event"]["timestamp"], first["event"]["timestamp"]);
}

backend_tests!(
    replay_returns_the_original_and_stores_nothing,
    replayed_finish_does_not_close_twice,
    same_id_different_content_is_409,
    replay_without_timestamp_is_still_the_same_call,
);
