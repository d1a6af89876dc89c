//! Many pipelines at once: nothing lost, nothing stored twice.

use std::collections::BTreeSet;

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp};

const CLIENTS: usize = 50;

async fn fifty_clients_lose_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    // Each client starts and finishes its own deployment; half of them name it,
    // half rely on pairing by component (one component per client so the pairing
    // is unambiguous). Every request is sent twice at the same time with the same
    // event id, as a retrying client whose first response was lost would.
    let clients = (0..CLIENTS).map(|i| {
        let app = &app;
        async move {
            let component = format!("svc-{i}");
            let deployment_id = (i % 2 == 0).then(|| Uuid::new_v4().to_string());
            let mut start = json!({"component": component, "phase": "start",
                                   "event_id": Uuid::new_v4().to_string()});
            let mut finish = json!({"component": component, "phase": "finish",
                                    "status": if i % 5 == 0 { "exit-1" } else { "success" },
                                    "event_id": Uuid::new_v4().to_string()});
            if let Some(id) = &deployment_id {
                start["deployment_id"] = json!(id);
                finish["deployment_id"] = json!(id);
            }
            let statuses = |responses: Vec<reqwest::Response>| {
                let mut codes: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
                codes.sort();
                codes
            };
            let starts =
                join_all([app.post_json(start.clone()), app.post_json(start.clone())]).await;
            assert_eq!(
                statuses(starts),
                vec![200, 201],
                "one start stored, one replayed"
            );
            let finishes =
                join_all([app.post_json(finish.clone()), app.post_json(finish.clone())]).await;
            assert_eq!(
                statuses(finishes),
                vec![200, 201],
                "one finish stored, one replayed"
            );
            (
                component,
                start["event_id"].clone(),
                finish["event_id"].clone(),
            )
        }
    });
    let expected = join_all(clients).await;

    let deployments = app.all_deployments().await;
    assert_eq!(deployments.len(), CLIENTS, "one deployment per client");
    let components: BTreeSet<_> = deployments
        .iter()
        .map(|d| d["component"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(components.len(), CLIENTS);
    for d in &deployments {
        assert_ne!(d["state"], "running", "every deployment was closed: {d}");
        let (_, start_id, finish_id) = expected
            .iter()
            .find(|(c, _, _)| *c == d["component"])
            .unwrap();
        let detail = app.deployment(d["id"].as_str().unwrap()).await;
        let events: Vec<Value> = detail["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].clone())
            .collect();
        assert_eq!(events, vec![start_id.clone(), finish_id.clone()]);
    }
}

async fn concurrent_finishes_close_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    let id = started["deployment"]["id"].as_str().unwrap().to_owned();
    // Ten different finishes race for the same deployment: exactly one wins.
    let responses = join_all((0..10).map(|i| {
        app.post_json(json!({"component": "api", "phase": "finish",
                             "status": format!("code-{i}"), "deployment_id": id}))
    }))
    .await;
    let mut codes: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    codes.sort();
    assert_eq!(codes, [vec![201], vec![409; 9]].concat());
    let detail = app.deployment(&id).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 2);
    assert_eq!(detail["state"], "failed");
}

async fn racing_start_and_finish_without_timestamps_pair(backend: Backend) {
    // A start and its finish sent at the same moment on two connections (as a
    // load generator or a careless script does): whichever is applied first, the
    // server's own timestamps never date the finish before the start.
    let app = TestApp::spawn(backend).await;
    let pairs = (0..20).map(|i| {
        let app = &app;
        async move {
            let component = format!("race-{i}");
            let (start, finish) = tokio::join!(
                app.post_json(json!({"component": component, "phase": "start"})),
                app.post_json(
                    json!({"component": component, "phase": "finish", "status": "success"})
                ),
            );
            (start.status().as_u16(), finish.status().as_u16())
        }
    });
    for (start, finish) in join_all(pairs).await {
        assert_eq!((start, finish), (201, 201));
    }
    for d in app.all_deployments().await {
        if let Some(seconds) = d["duration_seconds"].as_f64() {
            assert!(seconds >= 0.0, "{d}");
        }
    }
}

backend_tests!(
    fifty_clients_lose_nothing,
    concurrent_finishes_close_once,
    racing_start_and_finish_without_timestamps_pair,
);
