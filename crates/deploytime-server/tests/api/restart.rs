//! What was acknowledged is still there after the server restarts.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

async fn data_survives_a_restart(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = app
        .store(
            json!({"component": "api", "phase": "start", "version": "v3",
                      "attributes": {"run": "42"}}),
        )
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    let before = app.deployment(&id).await;

    let app = app.restart().await;
    assert_eq!(app.deployment(&id).await, before);
    // Pairing picks up where it left off.
    let finished = app
        .store(json!({"component": "api", "phase": "finish", "status": "success"}))
        .await;
    assert_eq!(finished["deployment"]["id"], id.as_str());
    assert_eq!(finished["deployment"]["version"], "v3");
}

backend_tests!(data_survives_a_restart);
