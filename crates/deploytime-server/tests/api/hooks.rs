//! The hook endpoints with the providers' own payloads
//! (tests/fixtures/hooks, sources in its README), signed as the providers sign
//! them. What was stored is read back through the API; expected durations are
//! computed here from the fixtures' timestamps.
//!
//! Substitutions made by these tests (never in the files): a GitHub
//! `deployment_status.state` and `created_at` for another step of the same
//! deployment; a GitLab `status` and `status_changed_at` likewise; a CDEvent's
//! `context.id`, `context.type` and `context.timestamp` for the other end of
//! the same run (the spec's examples all share one id and one instant).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::backend_tests;
use crate::helpers::{Backend, TestApp, expect_problem};

const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITLAB_TOKEN: &str = "gitlab-secret-token";

fn fixture(path: &str) -> Vec<u8> {
    let full = format!("{}/tests/fixtures/hooks/{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn fixture_json(path: &str) -> Value {
    serde_json::from_slice(&fixture(path)).unwrap()
}

fn instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// GitHub's signature of a body: `sha256=` and the hex HMAC-SHA256.
fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn hooks_app(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, |s| {
        s.hooks = deploytime_server::access::HookSecrets::new(
            vec![GITHUB_SECRET.into()],
            vec![GITLAB_TOKEN.into()],
        )
        .unwrap();
    })
    .await
}

impl TestApp {
    async fn github_signed_with(
        &self,
        secret: &str,
        event: &str,
        delivery: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/hooks/github"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", event)
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", github_signature(secret, &body))
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn github(&self, event: &str, delivery: &str, body: Vec<u8>) -> reqwest::Response {
        self.github_signed_with(GITHUB_SECRET, event, delivery, body)
            .await
    }

    /// The deployments of a component, through the API.
    async fn deployments_of(&self, component: &str) -> Vec<Value> {
        let body = self
            .get_json(&format!("/api/v1/deployments?component={component}"))
            .await;
        body["items"].as_array().unwrap().clone()
    }

    async fn metric(&self, name_and_labels: &str) -> Option<f64> {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find(|l| l.starts_with(name_and_labels))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse().unwrap())
    }
}

async fn status_of(response: reqwest::Response, expected: u16) -> Value {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(status, expected, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// The `deployment_status` fixture at another step: `state` and its time.
fn github_status(state: &str, created_at: &Value) -> Vec<u8> {
    let mut payload = fixture_json("github/deployment_status.json");
    payload["deployment_status"]["state"] = state.into();
    payload["deployment_status"]["created_at"] = created_at.clone();
    serde_json::to_vec(&payload).unwrap()
}

async fn github_lifecycle_is_one_deployment_with_githubs_times(backend: Backend) {
    let app = hooks_app(backend).await;
    let created = fixture_json("github/deployment.json");
    let status = fixture_json("github/deployment_status.json");
    let started = instant(&created["deployment"]["created_at"]);
    let finished = instant(&status["deployment_status"]["created_at"]);

    let start = status_of(
        app.github("deployment", "d-created", fixture("github/deployment.json"))
            .await,
        201,
    )
    .await;
    assert_eq!(start["result"], "stored");
    // GitHub then reports the deployment as in progress: nothing new.
    let again = status_of(
        app.github(
            "deployment_status",
            "d-in-progress",
            github_status("in_progress", &status["deployment_status"]["created_at"]),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(again["result"], "replayed", "{again}");
    let finish = status_of(
        app.github(
            "deployment_status",
            "d-success",
            fixture("github/deployment_status.json"),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        finish["events"][0]["deployment_id"],
        start["events"][0]["deployment_id"]
    );

    let deployments = app.deployments_of("Codertocat/Hello-World").await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let deployment = &deployments[0];
    assert_eq!(deployment["state"], "succeeded");
    assert_eq!(
        deployment["environment"],
        created["deployment"]["environment"]
    );
    assert_eq!(deployment["version"], created["deployment"]["sha"]);
    assert_eq!(
        deployment["owner"],
        created["deployment"]["creator"]["login"]
    );
    assert_eq!(instant(&deployment["started_at"]), started);
    assert_eq!(instant(&deployment["finished_at"]), finished);
    assert_eq!(
        deployment["duration_seconds"].as_f64().unwrap(),
        (finished - started).num_milliseconds() as f64 / 1000.0
    );
    let detail = app.deployment(deployment["id"].as_str().unwrap()).await;
    let events = detail["events"].as_array().unwrap();
    assert_eq!(
        events.len(),
        2,
        "the repeated start is not stored: {events:?}"
    );
    assert_eq!(events[0]["attributes"]["provider"], "github");
    assert_eq!(
        app.metric("deploytime_hook_deliveries_total{outcome=\"stored\",source=\"github\"}")
            .await,
        Some(2.0)
    );
    assert_eq!(
        app.metric("deploytime_hook_deliveries_total{outcome=\"replayed\",source=\"github\"}")
            .await,
        Some(1.0)
    );
}

async fn github_redelivery_is_stored_once(backend: Backend) {
    let app = hooks_app(backend).await;
    let first = status_of(
        app.github("deployment", "same-guid", fixture("github/deployment.json"))
            .await,
        201,
    )
    .await;
    let second = status_of(
        app.github("deployment", "same-guid", fixture("github/deployment.json"))
            .await,
        200,
    )
    .await;
    assert_eq!(second["result"], "replayed");
    assert_eq!(
        second["events"][0]["event_id"],
        first["events"][0]["event_id"]
    );
    // A redelivered finish, under another delivery id, closes nothing twice.
    for delivery in ["s-1", "s-1", "s-2"] {
        app.github(
            "deployment_status",
            delivery,
            fixture("github/deployment_status.json"),
        )
        .await;
    }
    let deployments = app.deployments_of("Codertocat/Hello-World").await;
    assert_eq!(deployments.len(), 1);
    let detail = app.deployment(deployments[0]["id"].as_str().unwrap()).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 2);
}

async fn github_success_before_in_progress_pairs_with_true_times(backend: Backend) {
    let app = hooks_app(backend).await;
    let status = fixture_json("github/deployment_status.json");
    let finished = instant(&status["deployment_status"]["created_at"]);
    // The in-progress status, dated when the deployment was created.
    let in_progress_at = status["deployment"]["created_at"].clone();
    let started = instant(&in_progress_at);

    status_of(
        app.github(
            "deployment_status",
            "late-success",
            fixture("github/deployment_status.json"),
        )
        .await,
        201,
    )
    .await;
    let finished_first = app.deployments_of("Codertocat/Hello-World").await;
    assert_eq!(finished_first.len(), 1);
    assert!(finished_first[0]["started_at"].is_null());

    status_of(
        app.github(
            "deployment_status",
            "early-in-progress",
            github_status("in_progress", &in_progress_at),
        )
        .await,
        201,
    )
    .await;
    // The `deployment` event arriving last adds nothing.
    status_of(
        app.github(
            "deployment",
            "created-last",
            fixture("github/deployment.json"),
        )
        .await,
        200,
    )
    .await;
    let deployments = app.deployments_of("Codertocat/Hello-World").await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0]["state"], "succeeded");
    assert_eq!(instant(&deployments[0]["started_at"]), started);
    assert_eq!(
        deployments[0]["duration_seconds"].as_f64().unwrap(),
        (finished - started).num_milliseconds() as f64 / 1000.0
    );
}

async fn github_failure_and_error_are_failed_with_their_code(backend: Backend) {
    let app = hooks_app(backend).await;
    let status = fixture_json("github/deployment_status.json");
    app.github("deployment", "c", fixture("github/deployment.json"))
        .await;
    status_of(
        app.github(
            "deployment_status",
            "f",
            github_status("failure", &status["deployment_status"]["created_at"]),
        )
        .await,
        201,
    )
    .await;
    let deployments = app.deployments_of("Codertocat/Hello-World").await;
    assert_eq!(deployments[0]["state"], "failed");
    assert_eq!(deployments[0]["status"], "failure");
    // `inactive` only says a newer deployment replaced this one.
    let inactive = status_of(
        app.github(
            "deployment_status",
            "i",
            github_status("inactive", &status["deployment_status"]["created_at"]),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(inactive["result"], "ignored");
}

async fn github_refuses_bad_signatures_and_stores_nothing(backend: Backend) {
    let app = hooks_app(backend).await;
    let body = fixture("github/deployment.json");
    let wrong = app
        .github_signed_with("not the secret", "deployment", "x", body.clone())
        .await;
    expect_problem(wrong, 401).await;
    let unsigned = app
        .client
        .post(app.url("/api/v1/hooks/github"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "deployment")
        .header("X-GitHub-Delivery", "y")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    expect_problem(unsigned, 401).await;
    // Signed, then changed on the way.
    let mut tampered = body.clone();
    let signature = github_signature(GITHUB_SECRET, &body);
    tampered.extend_from_slice(b" ");
    let response = app
        .client
        .post(app.url("/api/v1/hooks/github"))
        .header("Content-Type", "application/json")
        .header("X-GitHub-Event", "deployment")
        .header("X-GitHub-Delivery", "z")
        .header("X-Hub-Signature-256", signature)
        .body(tampered)
        .send()
        .await
        .unwrap();
    expect_problem(response, 401).await;
    assert!(app.all_deployments().await.is_empty());
    assert_eq!(
        app.metric("deploytime_hook_deliveries_total{outcome=\"rejected\",source=\"github\"}")
            .await,
        Some(3.0)
    );
}

async fn github_answers_ping_bad_json_unknown_events_and_large_bodies(backend: Backend) {
    let app = hooks_app(backend).await;
    let pong = status_of(
        app.github("ping", "p", fixture("github/ping.json")).await,
        200,
    )
    .await;
    assert_eq!(pong["result"], "ignored");
    let bad = app
        .github("deployment", "b", b"{\"deployment\": ".to_vec())
        .await;
    expect_problem(bad, 400).await;
    let push = status_of(
        app.github("push", "u", fixture("github/deployment.json"))
            .await,
        202,
    )
    .await;
    assert_eq!(push["result"], "ignored");
    // A deployment payload without what a deployment has is the sender's
    // mistake, named.
    let empty = app.github("deployment", "e", b"{}".to_vec()).await;
    let problem = expect_problem(empty, 422).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("deployment.id")
    );
    // 5 MiB: refused before it is read.
    let mut large = b"{\"padding\": \"".to_vec();
    large.resize(5 * 1024 * 1024, b'a');
    large.extend_from_slice(b"\"}");
    let response = app.github("deployment", "l", large).await;
    expect_problem(response, 413).await;
    assert!(app.all_deployments().await.is_empty());
}

async fn github_hook_is_off_without_a_secret_and_accepts_two_during_rotation(backend: Backend) {
    let off = TestApp::spawn(backend).await;
    let response = off
        .github("deployment", "x", fixture("github/deployment.json"))
        .await;
    expect_problem(response, 404).await;

    let rotating = TestApp::spawn_with(backend, |s| {
        s.hooks = deploytime_server::access::HookSecrets::new(
            vec!["old-secret".into(), "new-secret".into()],
            vec![],
        )
        .unwrap();
    })
    .await;
    for (secret, delivery) in [("old-secret", "a"), ("new-secret", "b")] {
        let response = rotating
            .github_signed_with(secret, "ping", delivery, fixture("github/ping.json"))
            .await;
        assert_eq!(response.status(), 200, "{secret}");
    }
    let response = rotating
        .github_signed_with(GITHUB_SECRET, "ping", "c", fixture("github/ping.json"))
        .await;
    expect_problem(response, 401).await;
}

async fn github_hook_cannot_read(backend: Backend) {
    let app = hooks_app(backend).await;
    // A token exists, so anonymous reads are refused; the webhook's
    // signature is no credential for anything but its own endpoint.
    app.create_token("reader", deploytime_server::access::Role::Read, &[])
        .await;
    let response = app
        .client
        .get(app.url("/api/v1/deployments"))
        .header("X-Hub-Signature-256", github_signature(GITHUB_SECRET, b""))
        .send()
        .await
        .unwrap();
    expect_problem(response, 401).await;
    // ... while deliveries are still stored.
    status_of(
        app.github("deployment", "d", fixture("github/deployment.json"))
            .await,
        201,
    )
    .await;
}

impl TestApp {
    async fn gitlab_with(
        &self,
        token: Option<&str>,
        delivery: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/hooks/gitlab"))
            .header("Content-Type", "application/json")
            .header("X-Gitlab-Event", "Deployment Hook");
        if let Some(token) = token {
            request = request.header("X-Gitlab-Token", token);
        }
        if let Some(delivery) = delivery {
            request = request.header("Idempotency-Key", delivery);
        }
        request.body(body).send().await.unwrap()
    }

    async fn gitlab(&self, delivery: &str, body: Vec<u8>) -> reqwest::Response {
        self.gitlab_with(Some(GITLAB_TOKEN), Some(delivery), body)
            .await
    }
}

/// GitLab's `status_changed_at` (`2021-04-28 21:50:00 +0200`).
fn gitlab_instant(value: &Value) -> DateTime<Utc> {
    DateTime::parse_from_str(value.as_str().unwrap(), "%Y-%m-%d %H:%M:%S %z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The deployment fixture at another step: `status` and its time.
fn gitlab_step(status: &str, changed_at: &str) -> Vec<u8> {
    let mut payload = fixture_json("gitlab/deployment.json");
    payload["status"] = status.into();
    payload["status_changed_at"] = changed_at.into();
    serde_json::to_vec(&payload).unwrap()
}

async fn gitlab_lifecycle_in_either_order(backend: Backend) {
    let app = hooks_app(backend).await;
    let fixture_payload = fixture_json("gitlab/deployment.json");
    let finished = gitlab_instant(&fixture_payload["status_changed_at"]);
    // The job started four minutes before GitLab reported success.
    let running_at = "2021-04-28 21:46:00 +0200";
    let started = gitlab_instant(&running_at.into());

    // Success first, then running: they pair all the same.
    let finish = status_of(
        app.gitlab("g-success", fixture("gitlab/deployment.json"))
            .await,
        201,
    )
    .await;
    let start = status_of(
        app.gitlab("g-running", gitlab_step("running", running_at))
            .await,
        201,
    )
    .await;
    assert_eq!(
        finish["events"][0]["deployment_id"],
        start["events"][0]["deployment_id"]
    );
    // GitLab retries with the same Idempotency-Key: nothing new.
    let retry = status_of(
        app.gitlab("g-success", fixture("gitlab/deployment.json"))
            .await,
        200,
    )
    .await;
    assert_eq!(retry["result"], "replayed");

    let component = fixture_payload["project"]["path_with_namespace"]
        .as_str()
        .unwrap();
    let deployments = app.deployments_of(component).await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let deployment = &deployments[0];
    assert_eq!(deployment["state"], "succeeded");
    assert_eq!(deployment["environment"], fixture_payload["environment"]);
    assert_eq!(deployment["owner"], fixture_payload["user"]["username"]);
    let sha = fixture_payload["commit_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    assert_eq!(deployment["version"], sha);
    assert_eq!(instant(&deployment["started_at"]), started);
    assert_eq!(instant(&deployment["finished_at"]), finished);
    assert_eq!(
        deployment["duration_seconds"].as_f64().unwrap(),
        (finished - started).num_seconds() as f64
    );
}

async fn gitlab_failed_and_canceled_finish_the_deployment(backend: Backend) {
    let app = hooks_app(backend).await;
    for (status, expected_state) in [("failed", "failed"), ("canceled", "cancelled")] {
        let mut payload = fixture_json("gitlab/deployment.json");
        // Another deployment of the same project for each status.
        payload["deployment_id"] = format!("{status}-run").into();
        payload["status"] = status.into();
        let response = app
            .gitlab(status, serde_json::to_vec(&payload).unwrap())
            .await;
        let receipt = status_of(response, 201).await;
        let id = receipt["events"][0]["deployment_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let deployment = app.deployment(&id).await;
        assert_eq!(deployment["state"], expected_state, "{deployment}");
    }
    let created = status_of(
        app.gitlab(
            "created",
            gitlab_step("created", "2021-04-28 21:40:00 +0200"),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(created["result"], "ignored");
}

async fn gitlab_refuses_a_wrong_token_and_bad_bodies(backend: Backend) {
    let app = hooks_app(backend).await;
    for token in [None, Some("wrong")] {
        let response = app
            .gitlab_with(token, Some("k"), fixture("gitlab/deployment.json"))
            .await;
        expect_problem(response, 401).await;
    }
    expect_problem(app.gitlab("bad", b"not json".to_vec()).await, 400).await;
    let mut large = vec![b' '; 5 * 1024 * 1024];
    large[0] = b'{';
    expect_problem(app.gitlab("large", large).await, 413).await;
    assert!(app.all_deployments().await.is_empty());
    // Without a delivery id, the same body is the same event.
    for expected in [201, 200] {
        let response = app
            .gitlab_with(Some(GITLAB_TOKEN), None, fixture("gitlab/deployment.json"))
            .await;
        status_of(response, expected).await;
    }
    // Another event (a tag push, sent as GitLab sends it): 202, nothing stored.
    let tag = app
        .client
        .post(app.url("/api/v1/hooks/gitlab"))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", "Tag Push Hook")
        .header("X-Gitlab-Token", GITLAB_TOKEN)
        .body(fixture("gitlab/tag_push.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(status_of(tag, 202).await["result"], "ignored");
    let off = TestApp::spawn(backend).await;
    expect_problem(
        off.gitlab("x", fixture("gitlab/deployment.json")).await,
        404,
    )
    .await;
}

/// A CDEvent fixture as the CloudEvent that carries it (structured mode),
/// with the CloudEvent's id, source and type taken from its context.
fn cloud_event(cdevent: &Value) -> Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": cdevent["context"]["id"],
        "source": cdevent["context"]["source"],
        "type": cdevent["context"]["type"],
        "datacontenttype": "application/json",
        "data": cdevent,
    })
}

/// A CDEvent fixture as another event of the same run: its own id and time.
fn cdevent_at(path: &str, id: &str, timestamp: &str) -> Value {
    let mut cdevent = fixture_json(path);
    cdevent["context"]["id"] = id.into();
    cdevent["context"]["timestamp"] = timestamp.into();
    cdevent
}

impl TestApp {
    async fn cdevents(&self, content_type: &str, body: Vec<u8>) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/cdevents"))
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn cdevent_structured(&self, cdevent: &Value) -> reqwest::Response {
        self.cdevents(
            "application/cloudevents+json",
            serde_json::to_vec(&cloud_event(cdevent)).unwrap(),
        )
        .await
    }

    /// Binary mode: the CDEvent is the body, its CloudEvent in ce- headers.
    async fn cdevent_binary(&self, cdevent: &Value) -> reqwest::Response {
        let context = &cdevent["context"];
        self.client
            .post(self.url("/api/v1/cdevents"))
            .header("Content-Type", "application/json")
            .header("ce-specversion", "1.0")
            .header("ce-id", context["id"].as_str().unwrap())
            .header("ce-source", context["source"].as_str().unwrap())
            .header("ce-type", context["type"].as_str().unwrap())
            .body(serde_json::to_vec(cdevent).unwrap())
            .send()
            .await
            .unwrap()
    }
}

async fn cdevents_pipeline_run_pairs_in_either_order_and_mode(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started_fixture = fixture_json("cdevents/pipelinerun_started.json");
    let started = instant(&started_fixture["context"]["timestamp"]);
    let finished_at = "2023-03-20T14:28:35.315384Z";
    let finished = instant(&finished_at.into());
    let finish = cdevent_at(
        "cdevents/pipelinerun_finished.json",
        "run-finished",
        finished_at,
    );

    // The finish first, in binary mode; the start after it, structured.
    let first = status_of(app.cdevent_binary(&finish).await, 201).await;
    let second = status_of(app.cdevent_structured(&started_fixture).await, 201).await;
    assert_eq!(
        first["events"][0]["deployment_id"],
        second["events"][0]["deployment_id"]
    );
    // Sent again: (source, id) is the idempotency key.
    let again = status_of(app.cdevent_structured(&started_fixture).await, 200).await;
    assert_eq!(again["result"], "replayed");

    let component = started_fixture["subject"]["content"]["pipelineName"]
        .as_str()
        .unwrap();
    let deployments = app.deployments_of(component).await;
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let deployment = &deployments[0];
    assert_eq!(deployment["state"], "failed");
    assert_eq!(
        deployment["status"],
        finish["subject"]["content"]["outcome"]
    );
    assert_eq!(instant(&deployment["started_at"]), started);
    assert_eq!(instant(&deployment["finished_at"]), finished);
    assert_eq!(
        deployment["duration_seconds"].as_f64().unwrap(),
        (finished - started).num_microseconds().unwrap() as f64 / 1e6
    );
}

async fn cdevents_task_run_is_a_deployment_of_its_task(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let start = fixture_json("cdevents/taskrun_started.json");
    let finish = cdevent_at(
        "cdevents/taskrun_finished.json",
        "task-finished",
        "2023-03-20T14:27:35.315384Z",
    );
    status_of(app.cdevent_structured(&start).await, 201).await;
    status_of(app.cdevent_structured(&finish).await, 201).await;
    let task = start["subject"]["content"]["taskName"].as_str().unwrap();
    let deployments = app.deployments_of(task).await;
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["duration_seconds"].as_f64().unwrap(), 30.0);
}

async fn cdevents_batch_of_service_events_and_an_unknown_type(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let timestamp = "2023-03-20T14:27:05.315384Z";
    let mut batch = Vec::new();
    for (path, id) in [
        ("cdevents/service_deployed.json", "deployed"),
        ("cdevents/service_upgraded.json", "upgraded"),
        ("cdevents/service_rolledback.json", "rolledback"),
    ] {
        batch.push(cloud_event(&cdevent_at(path, id, timestamp)));
    }
    // A type deploytime does not track, in the same batch.
    let mut unknown = fixture_json("cdevents/pipelinerun_started.json");
    unknown["context"]["id"] = "build".into();
    unknown["context"]["type"] = "dev.cdevents.build.started.0.3.0".into();
    batch.push(cloud_event(&unknown));
    let receipt = status_of(
        app.cdevents(
            "application/cloudevents-batch+json",
            serde_json::to_vec(&batch).unwrap(),
        )
        .await,
        201,
    )
    .await;
    let results: Vec<&str> = receipt["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["stored", "stored", "stored", "ignored"]);

    let service = fixture_json("cdevents/service_deployed.json");
    let deployments = app
        .deployments_of(service["subject"]["id"].as_str().unwrap())
        .await;
    assert_eq!(deployments.len(), 3, "{deployments:?}");
    for deployment in &deployments {
        assert_eq!(deployment["state"], "succeeded");
        assert!(deployment["started_at"].is_null());
        assert!(deployment["duration_seconds"].is_null());
        assert_eq!(
            deployment["environment"],
            service["subject"]["content"]["environment"]["id"]
        );
    }
    let rollbacks = deployments.iter().filter(|d| d["rollback"] == true).count();
    assert_eq!(rollbacks, 1, "{deployments:?}");
    assert_eq!(
        app.metric("deploytime_hook_deliveries_total{outcome=\"ignored\",source=\"cdevents\"}")
            .await,
        Some(1.0)
    );
    // An unknown type alone: 202, never an error the sender retries.
    let alone = app.cdevent_structured(&unknown).await;
    assert_eq!(alone.status(), 202);
}

async fn cdevents_refusals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    expect_problem(
        app.cdevents(
            "application/cloudevents+json",
            b"{\"specversion\":".to_vec(),
        )
        .await,
        400,
    )
    .await;
    expect_problem(
        app.cdevents(
            "application/cloudevents+json",
            br#"{"specversion":"1.0","source":"/s","type":"t"}"#.to_vec(),
        )
        .await,
        400,
    )
    .await;
    expect_problem(app.cdevents("text/plain", b"hello".to_vec()).await, 415).await;
    let mut large = b"[".to_vec();
    large.resize(5 * 1024 * 1024, b' ');
    large.push(b']');
    expect_problem(
        app.cdevents("application/cloudevents-batch+json", large)
            .await,
        413,
    )
    .await;
    // A finished run that does not say how it ended.
    let mut finish = cdevent_at(
        "cdevents/pipelinerun_finished.json",
        "no-outcome",
        "2023-03-20T14:28:35Z",
    );
    finish["subject"]["content"]
        .as_object_mut()
        .unwrap()
        .remove("outcome");
    let problem = expect_problem(app.cdevent_structured(&finish).await, 422).await;
    assert!(problem["detail"].as_str().unwrap().contains("outcome"));
    assert!(app.all_deployments().await.is_empty());
}

async fn cdevents_take_an_ingest_token_like_the_store_call(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let reader = app
        .create_token("reader", deploytime_server::access::Role::Read, &[])
        .await;
    let ingest = app
        .create_token("tekton", deploytime_server::access::Role::Ingest, &[])
        .await;
    let event = fixture_json("cdevents/pipelinerun_started.json");
    expect_problem(app.cdevent_structured(&event).await, 401).await;
    let body = serde_json::to_vec(&cloud_event(&event)).unwrap();
    for (token, status) in [(reader, 403), (ingest, 201)] {
        let response = app
            .client
            .post(app.url("/api/v1/cdevents"))
            .bearer_auth(token)
            .header("Content-Type", "application/cloudevents+json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
    }
}

async fn github_deployment_payload_commits_are_recorded(backend: Backend) {
    let app = hooks_app(backend).await;
    // Substituted: the deployment's payload lists the commit it ships, with
    // its time (the fixture's payload is empty).
    let mut payload = fixture_json("github/deployment.json");
    let sha = payload["deployment"]["sha"].clone();
    payload["deployment"]["payload"] = serde_json::json!({
        "commits": [{"sha": sha, "committed_at": "2019-05-15T15:10:00Z"}]
    });
    let receipt = status_of(
        app.github(
            "deployment",
            "with-commits",
            serde_json::to_vec(&payload).unwrap(),
        )
        .await,
        201,
    )
    .await;
    let detail = app
        .deployment(receipt["events"][0]["deployment_id"].as_str().unwrap())
        .await;
    assert_eq!(detail["commits"][0]["sha"], sha);
    assert_eq!(
        instant(&detail["commits"][0]["committed_at"]),
        instant(&"2019-05-15T15:10:00Z".into())
    );
    // The same deployment delivered again without them adds nothing (the
    // mapping invents no commit from a bare sha: see its unit tests).
    let bare = status_of(
        app.github("deployment", "bare", fixture("github/deployment.json"))
            .await,
        200,
    )
    .await;
    assert_eq!(bare["result"], "replayed");
}

backend_tests!(
    github_lifecycle_is_one_deployment_with_githubs_times,
    github_redelivery_is_stored_once,
    github_success_before_in_progress_pairs_with_true_times,
    github_failure_and_error_are_failed_with_their_code,
    github_refuses_bad_signatures_and_stores_nothing,
    github_answers_ping_bad_json_unknown_events_and_large_bodies,
    github_hook_is_off_without_a_secret_and_accepts_two_during_rotation,
    github_hook_cannot_read,
    github_deployment_payload_commits_are_recorded,
    gitlab_lifecycle_in_either_order,
    gitlab_failed_and_canceled_finish_the_deployment,
    gitlab_refuses_a_wrong_token_and_bad_bodies,
    cdevents_pipeline_run_pairs_in_either_order_and_mode,
    cdevents_task_run_is_a_deployment_of_its_task,
    cdevents_batch_of_service_events_and_an_unknown_type,
    cdevents_refusals,
    cdevents_take_an_ingest_token_like_the_store_call,
);
