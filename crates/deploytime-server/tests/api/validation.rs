//! Every row of the store call's field table, accepted and refused.

use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, at, error_fields, expect_problem};

async fn rejected_fields(app: &TestApp, body: Value) -> Vec<String> {
    let problem = expect_problem(app.post_json(body).await, 422).await;
    assert_eq!(problem["type"], "/problems/validation");
    error_fields(&problem)
}

async fn accepts_every_documented_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = app
        .store(json!({
            "component": "billing/worker:eu", "phase": "start", "environment": "eu-west-1",
            "version": "v1.2.3 (build 7)", "owner": "Zoë Ng <zoe@example.com>",
            "deployment_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10",
            "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11",
            "timestamp": "2026-01-02T03:04:05.123456+01:00",
            "attributes": {"pipeline_url": "https://ci.example/p/1", "commit": "abc123"}
        }))
        .await;
    let event = &start["event"];
    assert_eq!(event["id"], "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11");
    assert_eq!(event["component"], "billing/worker:eu");
    assert_eq!(event["environment"], "eu-west-1");
    assert_eq!(event["owner"], "Zoë Ng <zoe@example.com>");
    // Stored in UTC with microseconds: 03:04 at +01:00 is 02:04 UTC.
    assert_eq!(event["timestamp"], "2026-01-02T02:04:05.123456Z");
    assert_eq!(event["attributes"]["commit"], "abc123");
    assert!(event["received_at"].as_str().unwrap().ends_with('Z'));
    let deployment = &start["deployment"];
    assert_eq!(deployment["id"], "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10");
    // Started long ago and never finished: reported as abandoned.
    assert_eq!(deployment["state"], "abandoned");
    assert_eq!(deployment["version"], "v1.2.3 (build 7)");
    assert_eq!(deployment["started_at"], "2026-01-02T02:04:05.123456Z");

    // The stored event reads back exactly as it was acknowledged.
    let detail = app.deployment("0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10").await;
    assert_eq!(detail["events"][0], *event);
}

async fn component_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for good in ["a", "9", "A.b_c-d/e:f", &"x".repeat(128)] {
        app.store(json!({"component": good, "phase": "start"}))
            .await;
    }
    for bad in [
        json!(""),
        json!("-api"),
        json!(".api"),
        json!("api server"),
        json!("api;rm"),
        json!("café"),
        json!("x".repeat(129)),
        json!(42),
        json!(["api"]),
    ] {
        let fields = rejected_fields(&app, json!({"component": bad, "phase": "start"})).await;
        assert_eq!(fields, vec!["component"], "component {bad}");
    }
    let fields = rejected_fields(&app, json!({"phase": "start"})).await;
    assert_eq!(fields, vec!["component"]);
}

async fn phase_and_status_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for bad in [json!("begin"), json!("START"), json!(""), json!(1)] {
        let fields = rejected_fields(&app, json!({"component": "api", "phase": bad})).await;
        assert_eq!(fields, vec!["phase"], "phase {bad}");
    }
    assert_eq!(
        rejected_fields(&app, json!({"component": "api"})).await,
        vec!["phase"]
    );
    assert_eq!(
        rejected_fields(
            &app,
            json!({"component": "api", "phase": "start", "status": "success"})
        )
        .await,
        vec!["status"],
        "status is rejected on start"
    );
    assert_eq!(
        rejected_fields(&app, json!({"component": "api", "phase": "finish"})).await,
        vec!["status"],
        "status is required on finish"
    );
    for bad in [
        json!("exit 2"),
        json!("x".repeat(65)),
        json!("é"),
        json!(true),
    ] {
        assert_eq!(
            rejected_fields(
                &app,
                json!({"component": "api", "phase": "finish", "status": bad})
            )
            .await,
            vec!["status"],
            "status {bad}"
        );
    }
    for (status, state) in [
        ("success", "succeeded"),
        ("cancelled", "cancelled"),
        ("failed", "failed"),
        ("exit-2", "failed"),
        ("E4031", "failed"),
        (&"x".repeat(64), "failed"),
    ] {
        let body = app
            .store(json!({"component": "api", "phase": "finish", "status": status}))
            .await;
        assert_eq!(body["deployment"]["state"], state, "status {status}");
        assert_eq!(body["deployment"]["status"], status);
    }
}

async fn environment_version_owner_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let body = app
        .store(json!({"component": "api", "phase": "start"}))
        .await;
    assert_eq!(body["deployment"]["environment"], "production");
    app.store(json!({"component": "api", "phase": "start", "environment": "e".repeat(64)}))
        .await;
    for bad in [json!("e".repeat(65)), json!("prod env"), json!("_x")] {
        assert_eq!(
            rejected_fields(
                &app,
                json!({"component": "api", "phase": "start", "environment": bad})
            )
            .await,
            vec!["environment"]
        );
    }
    for field in ["version", "owner"] {
        app.store(json!({"component": "api", "phase": "start", field: "ü".repeat(128)}))
            .await;
        for bad in [
            json!("v".repeat(129)),
            json!("a\nb"),
            json!("tab\there"),
            json!("\u{1b}[31m"),
        ] {
            assert_eq!(
                rejected_fields(
                    &app,
                    json!({"component": "api", "phase": "start", field: bad})
                )
                .await,
                vec![field]
            );
        }
    }
}

async fn id_and_timestamp_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for field in ["deployment_id", "event_id"] {
        for bad in [
            json!("123"),
            json!("00000000-0000-0000-0000-000000000000"),
            json!(7),
        ] {
            assert_eq!(
                rejected_fields(
                    &app,
                    json!({"component": "api", "phase": "start", field: bad})
                )
                .await,
                vec![field],
                "{field} {bad}"
            );
        }
    }
    // The past is allowed (backfill), up to five minutes of clock skew ahead too.
    app.store(json!({"component": "api", "phase": "start", "timestamp": "2019-05-01T00:00:00Z"}))
        .await;
    app.store(json!({"component": "api", "phase": "start", "timestamp": at(240)}))
        .await;
    for bad in [
        json!(at(400)),
        json!("2026-01-01 00:00:00"),
        json!("2026-01-01T00:00:00"),
        json!("yesterday"),
        json!(1700000000),
    ] {
        assert_eq!(
            rejected_fields(
                &app,
                json!({"component": "api", "phase": "start", "timestamp": bad})
            )
            .await,
            vec!["timestamp"],
            "timestamp {bad}"
        );
    }
}

async fn attribute_rules(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let max: serde_json::Map<String, Value> = (0..32)
        .map(|i| (format!("{i:0>64}"), Value::String("v".repeat(512))))
        .collect();
    let body = app
        .store(json!({"component": "api", "phase": "start", "attributes": max}))
        .await;
    assert_eq!(body["event"]["attributes"].as_object().unwrap().len(), 32);
    let too_many: serde_json::Map<String, Value> = (0..33)
        .map(|i| (format!("k{i}"), Value::String("v".into())))
        .collect();
    assert_eq!(
        rejected_fields(
            &app,
            json!({"component": "api", "phase": "start", "attributes": too_many})
        )
        .await,
        vec!["attributes"]
    );
    let fields = rejected_fields(
        &app,
        json!({"component": "api", "phase": "start", "attributes": {
            "k".repeat(65): "v", "long": "v".repeat(513), "nested": {"a": "b"}, "n": 1
        }}),
    )
    .await;
    assert_eq!(fields.len(), 4, "{fields:?}");
    assert_eq!(
        rejected_fields(
            &app,
            json!({"component": "api", "phase": "start", "attributes": "a=b"})
        )
        .await,
        vec!["attributes"]
    );
}

async fn unknown_fields_are_refused_not_dropped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let problem = expect_problem(
        app.post_json(json!({"component": "api", "phase": "finish", "stauts": "success"}))
            .await,
        422,
    )
    .await;
    let fields = error_fields(&problem);
    assert!(fields.contains(&"stauts".to_owned()), "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("did you mean `status`")
    );
    assert!(app.all_deployments().await.is_empty(), "nothing was stored");
}

async fn all_errors_are_listed_together(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut fields = rejected_fields(
        &app,
        json!({"component": "", "phase": "later", "environment": "a b", "owner": "x\u{0}",
               "event_id": "nope", "timestamp": "now", "colour": "red"}),
    )
    .await;
    fields.sort();
    assert_eq!(
        fields,
        [
            "colour",
            "component",
            "environment",
            "event_id",
            "owner",
            "phase",
            "timestamp"
        ]
    );
}

async fn form_encoded_events(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let response = app
        .post_form(&[
            ("component", "api"),
            ("phase", "start"),
            ("version", "v9"),
            ("attributes[commit]", "abc"),
        ])
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deployment"]["version"], "v9");
    assert_eq!(body["event"]["attributes"]["commit"], "abc");
    let response = app
        .post_form(&[
            ("component", "api"),
            ("phase", "finish"),
            ("status", "success"),
        ])
        .await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deployment"]["state"], "succeeded");
    let problem = expect_problem(
        app.post_form(&[("component", "api"), ("phase", "start"), ("stauts", "x")])
            .await,
        422,
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["stauts"]);
    let problem = expect_problem(
        app.post_form(&[("component", "a"), ("component", "b"), ("phase", "start")])
            .await,
        422,
    )
    .await;
    assert_eq!(error_fields(&problem), vec!["component"]);
}

async fn idempotency_key_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let key = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a99";
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("Idempotency-Key", key)
        .json(&json!({"component": "api", "phase": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["event"]["id"], key);
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("Idempotency-Key", "not-a-uuid")
        .json(&json!({"component": "api", "phase": "start"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_fields(&expect_problem(response, 422).await),
        vec!["event_id"]
    );
    let response = app
        .client
        .post(app.url("/api/v1/events"))
        .header("Idempotency-Key", key)
        .json(&json!({"component": "api", "phase": "start",
                       "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a98"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_fields(&expect_problem(response, 422).await),
        vec!["Idempotency-Key"]
    );
}

backend_tests!(
    accepts_every_documented_field,
    component_rules,
    phase_and_status_rules,
    environment_version_owner_rules,
    id_and_timestamp_rules,
    attribute_rules,
    unknown_fields_are_refused_not_dropped,
    all_errors_are_listed_together,
    form_encoded_events,
    idempotency_key_header,
);
