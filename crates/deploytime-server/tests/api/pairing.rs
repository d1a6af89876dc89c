//! Pairing starts and finishes into deployments, over HTTP.

use chrono::DateTime;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

fn seconds(a: &serde_json::Value, b: &serde_json::Value) -> f64 {
    let a = DateTime::parse_from_rfc3339(a.as_str().unwrap()).unwrap();
    let b = DateTime::parse_from_rfc3339(b.as_str().unwrap()).unwrap();
    (b - a).num_microseconds().unwrap() as f64 / 1e6
}

async fn finish_without_id_closes_the_latest_running(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // The newer start is stored first: "latest" is by start time, not arrival.
    let newer = app
        .store(json!({"component": "api", "phase": "start", "timestamp": "2026-02-01T10:02:00Z"}))
        .await;
    let older = app
        .store(json!({"component": "api", "phase": "start", "timestamp": "2026-02-01T10:00:00Z"}))
        .await;
    let elsewhere = app
        .store(
            json!({"component": "api", "phase": "start", "environment": "staging",
                      "timestamp": "2026-02-01T10:03:00Z"}),
        )
        .await;
    let response = app
        .post_json(
            json!({"component": "api", "phase": "finish", "status": "success",
                          "timestamp": "2026-02-01T10:04:30.5Z"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let finished: serde_json::Value = response.json().await.unwrap();
    let d = &finished["deployment"];
    assert_eq!(d["id"], newer["deployment"]["id"]);
    assert_eq!(
        location,
        format!("/api/v1/deployments/{}", d["id"].as_str().unwrap())
    );
    assert_eq!(d["state"], "succeeded");
    // The duration is what the two timestamps say, computed here independently.
    assert_eq!(
        d["duration_seconds"].as_f64().unwrap(),
        seconds(&d["started_at"], &d["finished_at"])
    );
    assert_eq!(d["duration_seconds"], 150.5);
    // The other two are untouched.
    for other in [&older, &elsewhere] {
        let id = other["deployment"]["id"].as_str().unwrap();
        // Started in February, they are reported as abandoned by now; still open.
        assert_eq!(
            app.deployment(id).await["finished_at"],
            serde_json::Value::Null
        );
    }
    // The next finish closes the older one.
    let finished = app
        .store(json!({"component": "api", "phase": "finish", "status": "exit-2"}))
        .await;
    assert_eq!(finished["deployment"]["id"], older["deployment"]["id"]);
    assert_eq!(finished["deployment"]["state"], "failed");
    assert_eq!(finished["deployment"]["status"], "exit-2");
}

async fn finish_with_id_closes_that_one(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app
        .store(json!({"component": "web", "phase": "start"}))
        .await;
    let _second = app
        .store(json!({"component": "web", "phase": "start"}))
        .await;
    let id = first["deployment"]["id"].as_str().unwrap();
    let finished = app
        .store(json!({"component": "web", "phase": "finish", "status": "cancelled", "deployment_id": id}))
        .await;
    assert_eq!(finished["deployment"]["id"], id);
    assert_eq!(finished["deployment"]["state"], "cancelled");
    let detail = app.deployment(id).await;
    let phases: Vec<_> = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["phase"].clone())
        .collect();
    assert_eq!(phases, vec![json!("start"), json!("finish")]);
    assert_eq!(detail["events"][1]["deployment_id"], id);
}

async fn client_chosen_deployment_ids(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5b00";
    let started = app
        .store(json!({"component": "api", "phase": "start", "deployment_id": id}))
        .await;
    assert_eq!(started["deployment"]["id"], id);
    // The same id cannot be started twice.
    let problem = expect_problem(
        app.post_json(json!({"component": "api", "phase": "start", "deployment_id": id}))
            .await,
        409,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already started")
    );
    // A finish naming it for another component is refused.
    let problem = expect_problem(
        app.post_json(json!({"component": "web", "phase": "finish", "status": "success", "deployment_id": id}))
            .await,
        409,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("belongs to api")
    );
    assert_eq!(app.deployment(id).await["state"], "running");
}

async fn orphan_finish_is_kept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let orphan = app
        .store(json!({"component": "db", "phase": "finish", "status": "E4031", "version": "v7"}))
        .await;
    let d = &orphan["deployment"];
    assert_eq!(d["state"], "failed");
    assert_eq!(d["status"], "E4031");
    assert_eq!(d["started_at"], serde_json::Value::Null);
    assert!(d["finished_at"].is_string());
    assert_eq!(d["duration_seconds"], serde_json::Value::Null);
    assert_eq!(app.all_deployments().await.len(), 1);
}

async fn late_start_joins_its_finish(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5b01";
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success",
                     "deployment_id": id, "timestamp": "2026-03-01T10:05:00Z"}),
    )
    .await;
    let joined = app
        .store(
            json!({"component": "api", "phase": "start", "deployment_id": id,
                      "timestamp": "2026-03-01T10:00:00Z"}),
        )
        .await;
    assert_eq!(joined["deployment"]["state"], "succeeded");
    assert_eq!(joined["deployment"]["duration_seconds"], 300.0);
    assert_eq!(app.all_deployments().await.len(), 1);
}

async fn closing_twice_is_409(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    let id = started["deployment"]["id"].as_str().unwrap();
    app.store(
        json!({"component": "api", "phase": "finish", "status": "success", "deployment_id": id}),
    )
    .await;
    let problem = expect_problem(
        app.post_json(
            json!({"component": "api", "phase": "finish", "status": "failed", "deployment_id": id}),
        )
        .await,
        409,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
    let detail = app.deployment(id).await;
    assert_eq!(detail["state"], "succeeded", "the first finish stands");
    assert_eq!(
        detail["events"].as_array().unwrap().len(),
        2,
        "the refused finish is not in the ledger"
    );
}

async fn finish_before_start_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = app
        .store(json!({"component": "api", "phase": "start", "timestamp": "2026-03-01T10:00:00Z"}))
        .await;
    let id = started["deployment"]["id"].as_str().unwrap();
    let problem = expect_problem(
        app.post_json(
            json!({"component": "api", "phase": "finish", "status": "success",
                             "deployment_id": id, "timestamp": "2026-03-01T09:59:59.999999Z"}),
        )
        .await,
        422,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("earlier than the start")
    );
    let detail = app.deployment(id).await;
    assert_eq!(detail["finished_at"], serde_json::Value::Null, "still open");
    assert_eq!(detail["events"].as_array().unwrap().len(), 1);
}

backend_tests!(
    finish_without_id_closes_the_latest_running,
    finish_with_id_closes_that_one,
    client_chosen_deployment_ids,
    orphan_finish_is_kept,
    late_start_joins_its_finish,
    closing_twice_is_409,
    finish_before_start_is_422,
);
