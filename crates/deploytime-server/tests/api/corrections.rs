//! Correcting a record: PATCH /api/v1/deployments/{id} changes a deployment's
//! version, owner, final status or finish time with a reason, keeps the change
//! with its before and after, and every report follows.

use chrono::{Duration, Utc};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

fn rfc(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

async fn patch(app: &TestApp, id: &str, body: Value, if_match: Option<&str>) -> reqwest::Response {
    let mut request = app
        .client
        .patch(app.url(&format!("/api/v1/deployments/{id}")))
        .json(&body);
    if let Some(etag) = if_match {
        request = request.header("if-match", etag);
    }
    request.send().await.unwrap()
}

/// A deployment started `ago` before now and, with `seconds`, finished that
/// long after its start with `status`. Returns its id.
async fn deployment(app: &TestApp, ago: Duration, finish: Option<(i64, &str)>) -> String {
    let started = Utc::now() - ago;
    let body = app
        .store(
            json!({"component": "api", "phase": "start", "timestamp": rfc(started),
                      "version": "v1"}),
        )
        .await;
    let id = body["deployment"]["id"].as_str().unwrap().to_owned();
    if let Some((seconds, status)) = finish {
        app.store(json!({"component": "api", "phase": "finish", "status": status,
                         "deployment_id": id, "timestamp": rfc(started + Duration::seconds(seconds))}))
            .await;
    }
    id
}

async fn etag(app: &TestApp, id: &str) -> String {
    let response = app.get(&format!("/api/v1/deployments/{id}")).await;
    assert_eq!(response.status(), 200);
    response.headers()["etag"].to_str().unwrap().to_owned()
}

async fn a_correction_is_kept_and_every_report_follows(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = deployment(&app, Duration::hours(1), Some((120, "success"))).await;
    let before = etag(&app, &id).await;
    let response = patch(
        &app,
        &id,
        json!({"status": "exit-3", "version": "v1.0.1", "reason": "the finish reported the wrong status"}),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let after = response.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(after, before, "a correction is a new revision");
    let detail: Value = response.json().await.unwrap();
    assert_eq!(detail["state"], "failed");
    assert_eq!(detail["status"], "exit-3");
    assert_eq!(detail["version"], "v1.0.1");
    assert_eq!(detail["duration_seconds"], 120.0, "the finish time is kept");
    let corrections = detail["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 1);
    let correction = &corrections[0];
    assert_eq!(correction["reason"], "the finish reported the wrong status");
    assert_eq!(correction["corrected_by"], "anonymous");
    assert_eq!(
        correction["changes"],
        json!({
            "state": {"before": "succeeded", "after": "failed"},
            "status": {"before": "success", "after": "exit-3"},
            "version": {"before": "v1", "after": "v1.0.1"},
        })
    );
    // The events are what was sent; they are not rewritten.
    assert_eq!(detail["events"][1]["status"], "success");
    // The reports count the corrected deployment.
    let stats = app.get_json("/api/v1/stats?component=api").await;
    assert_eq!(stats["groups"][0]["failed"], 1, "{stats}");
    assert_eq!(stats["groups"][0]["succeeded"], 0, "{stats}");
    let listed = app.get_json("/api/v1/deployments?state=failed").await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
}

async fn a_deployment_left_running_is_closed_by_a_correction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = deployment(&app, Duration::days(2), None).await;
    assert_eq!(app.deployment(&id).await["state"], "abandoned");
    let started = app.deployment(&id).await["started_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let finished = chrono::DateTime::parse_from_rfc3339(&started).unwrap() + Duration::seconds(300);
    let response = patch(
        &app,
        &id,
        json!({"status": "cancelled", "finished_at": finished.to_rfc3339(), "reason": "runner crashed"}),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    let detail: Value = response.json().await.unwrap();
    assert_eq!(detail["state"], "cancelled");
    assert_eq!(detail["duration_seconds"], 300.0);
    let stats = app
        .get_json(&format!(
            "/api/v1/stats?component=api&since={}",
            rfc(Utc::now() - Duration::days(3))
        ))
        .await;
    let group = &stats["groups"][0];
    assert_eq!(group["abandoned"], 0, "{stats}");
    assert_eq!(group["cancelled"], 1, "{stats}");
    assert_eq!(group["duration_seconds"]["count"], 1, "{stats}");
}

async fn refused_corrections_name_the_field_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let running = deployment(&app, Duration::minutes(10), None).await;
    let done = deployment(&app, Duration::minutes(20), Some((60, "success"))).await;
    let cases = [
        (&running, json!({"status": "success"}), "reason"),
        (
            &running,
            json!({"status": "success", "reason": "done"}),
            "finished_at",
        ),
        (
            &running,
            json!({"finished_at": rfc(Utc::now()), "reason": "done"}),
            "status",
        ),
        (
            &done,
            json!({"finished_at": rfc(Utc::now() - Duration::hours(1)), "reason": "r"}),
            "finished_at",
        ),
        (&done, json!({"reason": "nothing"}), "(body)"),
        (
            &done,
            json!({"stauts": "success", "reason": "typo"}),
            "stauts",
        ),
        (&done, json!({"version": "a\nb", "reason": "r"}), "version"),
    ];
    for (id, body, field) in cases {
        let problem = expect_problem(patch(&app, id, body.clone(), None).await, 422).await;
        assert_eq!(problem["type"], "/problems/invalid-correction", "{body}");
        assert_eq!(problem["title"], "Invalid correction", "{body}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    expect_problem(
        patch(
            &app,
            "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10",
            json!({"version": "v", "reason": "r"}),
            None,
        )
        .await,
        404,
    )
    .await;
    expect_problem(
        patch(
            &app,
            &done,
            json!({"version": "v", "reason": "r"}),
            Some("\"yesterday\""),
        )
        .await,
        400,
    )
    .await;
    let form = app
        .client
        .patch(app.url(&format!("/api/v1/deployments/{done}")))
        .form(&[("version", "v"), ("reason", "r")])
        .send()
        .await
        .unwrap();
    expect_problem(form, 415).await;
    for id in [&running, &done] {
        let detail = app.deployment(id).await;
        assert_eq!(detail["corrections"], json!([]), "{detail}");
        assert_eq!(
            detail["revision"],
            if id == &running { 0 } else { 1 },
            "{detail}"
        );
    }
}

/// A correction sent with the revision it read (If-Match) and a finish of the
/// same running deployment, sent at once: the revision check lets exactly one
/// of them through, and the other is told so (409).
async fn a_correction_racing_a_finish_is_settled_by_the_revision(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut winners = (0, 0);
    for _ in 0..8 {
        let id = deployment(&app, Duration::minutes(5), None).await;
        let revision = etag(&app, &id).await;
        let finished = rfc(Utc::now());
        let finish = app.post_json(json!({
            "component": "api", "phase": "finish", "status": "success",
            "deployment_id": id, "timestamp": finished,
        }));
        let correction = patch(
            &app,
            &id,
            json!({"status": "cancelled", "finished_at": finished, "reason": "closing it by hand"}),
            Some(&revision),
        );
        let (finish, correction) = tokio::join!(finish, correction);
        let statuses = (finish.status().as_u16(), correction.status().as_u16());
        let state = app.deployment(&id).await["state"].clone();
        match statuses {
            (201, 409) => {
                winners.0 += 1;
                assert_eq!(state, "succeeded");
            }
            (409, 200) => {
                winners.1 += 1;
                assert_eq!(state, "cancelled");
            }
            other => panic!("both or neither went through: {other:?}, {state}"),
        }
    }
    assert_eq!(winners.0 + winners.1, 8, "{winners:?}");
}

backend_tests!(
    a_correction_is_kept_and_every_report_follows,
    a_deployment_left_running_is_closed_by_a_correction,
    refused_corrections_name_the_field_and_change_nothing,
    a_correction_racing_a_finish_is_settled_by_the_revision,
);
