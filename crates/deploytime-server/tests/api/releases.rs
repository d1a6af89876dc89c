//! The release gate end to end: a real server, a real SMTP server receiving
//! the approval mails (their links are taken out of the bodies and opened),
//! a real HTTP approver source that can be slow, down or wrong, on SQLite and
//! MariaDB.

use std::future::Future;
use std::time::Duration;

use deploytime_server::access::Secret;
use deploytime_server::settings::Settings;
use serde_json::{Value, json};

use crate::approver_source::ApproverSource;
use crate::backend_tests;
use crate::helpers::{Backend, TestApp, cells, expect_problem};
use deploytime_server::testing::mail_sink::{Mail, MailSink};

/// Long enough for a mail to go out on a busy CI machine.
const MAIL_WAIT: Duration = Duration::from_secs(20);

/// A gate that asks `source` and mails through `smtp`, retrying quickly.
fn gate(settings: &mut Settings, source: &ApproverSource, smtp: String) {
    settings.gate.approvers_url = Some(source.url("/approvers/{team_project}/{release_id}"));
    settings.gate.smtp_url = Some(Secret::new(smtp));
    settings.gate.mail_from = "deploytime@example.com".into();
    settings.gate.retry_min = Duration::from_millis(50);
    settings.gate.retry_max = Duration::from_millis(200);
}

async fn spawn(backend: Backend, source: &ApproverSource, smtp: String) -> TestApp {
    TestApp::spawn_with(backend, |s| gate(s, source, smtp)).await
}

fn approvers(emails: &[&str]) -> String {
    json!({ "approvers": emails }).to_string()
}

async fn register(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/releases"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn release(id: &str, extra: Value) -> Value {
    let mut body = json!({"release_name": "Desafio-CD", "release_id": id, "team_project": "Devx"});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn created(app: &TestApp, body: Value) -> Value {
    let response = register(app, body.clone()).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 201, "registering {body} answered {status}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get_json(&format!("/api/v1/releases/Devx/{id}")).await
}

/// Waits (long polls) until the release is in `state`.
async fn until_state(app: &TestApp, id: &str, state: &str) -> Value {
    for _ in 0..20 {
        let body = app
            .get_json(&format!("/api/v1/releases/Devx/{id}?wait=5s"))
            .await;
        if body["state"] == state {
            return body;
        }
    }
    panic!(
        "release {id} never became {state}: {}",
        detail(app, id).await
    );
}

/// Checks `check` until it holds (the worker's writes are not announced).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + MAIL_WAIT;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen");
}

async fn audit_events(app: &TestApp, id: &str) -> Vec<String> {
    detail(app, id).await["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect()
}

/// The token of the link in an approval mail.
fn token_in(mail: &Mail) -> String {
    mail.approval_token()
}

fn mail_to<'a>(mails: &'a [Mail], to: &str) -> &'a Mail {
    mails
        .iter()
        .find(|m| m.to.iter().any(|t| t == to))
        .unwrap_or_else(|| panic!("no mail to {to}"))
}

async fn decide_json(app: &TestApp, token: &str, decision: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/approvals"))
        .json(&json!({"token": token, "decision": decision, "comment": "looks good"}))
        .send()
        .await
        .unwrap()
}

async fn decide_form(app: &TestApp, token: &str, decision: &str) -> reqwest::Response {
    app.client
        .post(app.url("/approval"))
        .form(&[
            ("token", token),
            ("decision", decision),
            ("comment", "ship it"),
        ])
        .send()
        .await
        .unwrap()
}

async fn whole_flow_from_the_original_contract(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["ana@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;

    let response = app
        .client
        .post(app.url("/release"))
        .json(&json!({"ReleaseName": "Desafio-CD", "ReleaseId": "386", "TeamProject": "Devx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["location"], "/api/v1/releases/Devx/386");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["state"], "pending");

    let mails = sink.wait_for(1, MAIL_WAIT).await;
    let mail = mail_to(&mails, "ana@example.com");
    assert!(mail.subject().contains("Desafio-CD"), "{}", mail.subject());
    assert_eq!(mail.from, "deploytime@example.com");
    let token = token_in(mail);
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");
    assert!(source.hits()[0].starts_with("/approvers/Devx/386"));

    // The link shows a page with the buttons, and decides nothing.
    let page = app.get(&format!("/approval?token={token}")).await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("Desafio-CD"));
    assert!(html.contains(r#"value="approve""#) && html.contains(r#"value="reject""#));
    assert_eq!(detail(&app, "386").await["state"], "pending");

    let decided = decide_form(&app, &token, "approve").await;
    assert_eq!(decided.status(), 200);
    assert!(decided.text().await.unwrap().contains("now approved"));

    let done = detail(&app, "386").await;
    assert_eq!(done["state"], "approved");
    assert_eq!(done["approvals"], 1);
    assert_eq!(done["required_approvals"], 1);
    assert_eq!(done["approvers"][0]["email"], "ana@example.com");
    assert_eq!(done["approvers"][0]["decision"], "approve");
    assert_eq!(done["approvers"][0]["comment"], "ship it");
    assert!(done["decided_at"].is_string());
    assert!(done["waited_seconds"].as_f64().unwrap() >= 0.0);
    let events: Vec<&str> = done["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["created", "approvers", "mail-sent", "decision", "approved"]
    );
    let decision = &done["audit"][3];
    assert_eq!(decision["actor"], "ana@example.com");
    assert_eq!(decision["client_address"], "127.0.0.1");

    // Polling with the original body answers the state.
    let poll = app
        .client
        .post(app.url("/release"))
        .json(&json!({"ReleaseName": "Desafio-CD", "ReleaseId": "386", "TeamProject": "Devx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(poll.status(), 200);
    assert_eq!(poll.json::<Value>().await.unwrap()["state"], "approved");
    // The link is spent.
    let again = app.get(&format!("/approval?token={token}")).await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("already been used"));
}

async fn quorum_of_two_among_three(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(
        200,
        &approvers(&["a@example.com", "b@example.com", "c@example.com"]),
    );
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("q1", json!({"required_approvals": 2}))).await;
    let mails = sink.wait_for(3, MAIL_WAIT).await;

    assert_eq!(
        decide_json(&app, &token_in(mail_to(&mails, "a@example.com")), "approve")
            .await
            .status(),
        200
    );
    let one = detail(&app, "q1").await;
    assert_eq!(one["state"], "pending");
    assert_eq!(one["approvals"], 1);
    let two = decide_json(&app, &token_in(mail_to(&mails, "b@example.com")), "approve").await;
    assert_eq!(two.status(), 200);
    assert_eq!(two.json::<Value>().await.unwrap()["state"], "approved");
    let late = decide_json(&app, &token_in(mail_to(&mails, "c@example.com")), "approve").await;
    let problem = expect_problem(late, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("already approved")
    );
}

async fn one_rejection_rejects(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com", "b@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("r1", json!({"required_approvals": 1}))).await;
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let rejected = decide_form(&app, &token_in(mail_to(&mails, "b@example.com")), "reject").await;
    assert_eq!(rejected.status(), 200);
    let body = detail(&app, "r1").await;
    assert_eq!(body["state"], "rejected");
    assert_eq!(body["rejections"], 1);
    assert_eq!(body["approvers"][1]["decision"], "reject");
    let after = decide_json(&app, &token_in(mail_to(&mails, "a@example.com")), "approve").await;
    expect_problem(after, 409).await;
}

async fn a_release_expires(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("e1", json!({"expires_in": 2}))).await;
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    let expired = until_state(&app, "e1", "expired").await;
    assert_eq!(expired["approvers"][0]["decision"], Value::Null);
    let token = token_in(&mails[0]);
    let page = app.get(&format!("/approval?token={token}")).await;
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("expired"));
    expect_problem(decide_json(&app, &token, "approve").await, 410).await;
    let listed = app.get_json("/api/v1/releases?state=expired").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let pending = app.get_json("/api/v1/releases?state=pending").await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 0);
}

async fn who_has_not_answered_is_reminded_once_before_expiry(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com", "b@example.com"]));
    let sink = MailSink::start();
    let app = TestApp::spawn_with(backend, |s| {
        gate(s, &source, sink.url());
        s.gate.policy.remind_before = Duration::from_secs(4);
    })
    .await;
    created(&app, release("rm1", json!({"expires_in": 8}))).await;
    let first = sink.wait_for(2, MAIL_WAIT).await;
    assert_eq!(
        decide_json(&app, &token_in(mail_to(&first, "a@example.com")), "approve")
            .await
            .status(),
        200
    );
    // The reminder is due 4 s before the expiry, 4 s after the request.
    let mails = sink.wait_for(3, MAIL_WAIT).await;
    let reminder = &mails[2];
    assert_eq!(reminder.to, ["b@example.com"], "only who has not answered");
    assert!(
        reminder.subject().starts_with("Reminder: "),
        "{}",
        reminder.subject()
    );
    // Its link works like the first one.
    let token = token_in(reminder);
    assert_ne!(token, token_in(mail_to(&first, "b@example.com")));
    assert_eq!(
        app.get(&format!("/approval?token={token}")).await.status(),
        200
    );
    until_state(&app, "rm1", "expired").await;
    assert_eq!(sink.mails().len(), 3, "one reminder, and none after expiry");
    assert!(
        audit_events(&app, "rm1")
            .await
            .contains(&"reminder-sent".to_owned())
    );
}

async fn the_requester_cannot_approve_their_own_release(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["ana@example.com", "bo@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(
        &app,
        release("s1", json!({"requested_by": "Ana@Example.com"})),
    )
    .await;
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let own = mail_to(&mails, "ana@example.com");
    assert!(own.body_text().contains("your approval does not count"));
    let token = token_in(own);
    let page = app
        .get(&format!("/approval?token={token}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains(r#"value="approve""#),
        "no Approve button for the requester"
    );
    let refused = expect_problem(decide_json(&app, &token, "approve").await, 403).await;
    assert!(refused["detail"].as_str().unwrap().contains("someone else"));
    let body = detail(&app, "s1").await;
    assert_eq!(body["state"], "pending");
    assert_eq!(body["required_approvals"], 1);
    assert_eq!(body["approvers"][0]["may_approve"], false);
    let other = decide_json(
        &app,
        &token_in(mail_to(&mails, "bo@example.com")),
        "approve",
    )
    .await;
    assert_eq!(other.status(), 200);
    assert_eq!(detail(&app, "s1").await["state"], "approved");
}

async fn a_link_decides_once_even_when_clicked_twice_at_once(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com", "b@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("t1", json!({}))).await;
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let token = token_in(mail_to(&mails, "a@example.com"));
    let (first, second) = tokio::join!(
        decide_json(&app, &token, "approve"),
        decide_json(&app, &token, "reject")
    );
    let mut statuses = [first.status().as_u16(), second.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409]);
    let body = detail(&app, "t1").await;
    assert_eq!(
        body["approvals"].as_u64().unwrap() + body["rejections"].as_u64().unwrap(),
        1
    );
    let decisions = body["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "decision")
        .count();
    assert_eq!(decisions, 1);
    // Used once more, later: still one decision.
    expect_problem(decide_json(&app, &token, "approve").await, 409).await;
}

async fn a_token_decides_only_its_own_release(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("o1", json!({}))).await;
    created(&app, release("o2", json!({}))).await;
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    let first = mails.iter().find(|m| m.subject().contains("#o1")).unwrap();
    assert_eq!(
        decide_json(&app, &token_in(first), "approve")
            .await
            .status(),
        200
    );
    assert_eq!(detail(&app, "o1").await["state"], "approved");
    assert_eq!(detail(&app, "o2").await["state"], "pending");
}

async fn the_answer_does_not_wait_for_slow_dependencies(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    source.delay(Duration::from_secs(20));
    let (port, _down) = MailSink::reserve();
    let app = TestApp::spawn_with(backend, |s| {
        gate(s, &source, format!("smtp://127.0.0.1:{port}"));
        s.gate.dependency_timeout = Duration::from_secs(60);
    })
    .await;
    let response = app
        .client
        .post(app.url("/api/v1/releases"))
        .timeout(Duration::from_secs(5))
        .json(&release("slow", json!({})))
        .send()
        .await
        .expect("the pipeline gets its answer while the source is still thinking");
    assert_eq!(response.status(), 201);
    source.wait_for_hits(1, MAIL_WAIT).await;
    assert_eq!(detail(&app, "slow").await["state"], "pending");
}

async fn an_approver_source_down_at_creation_is_asked_again(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(503, "down for maintenance");
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("d1", json!({}))).await;
    source.wait_for_hits(2, MAIL_WAIT).await;
    let waiting = detail(&app, "d1").await;
    assert_eq!(waiting["state"], "pending");
    assert!(
        waiting["reason"]
            .as_str()
            .is_some_and(|r| r.contains("waiting for the approver source") && r.contains("503")),
        "{waiting}"
    );
    assert!(sink.mails().is_empty());
    source.answer(200, &approvers(&["a@example.com"]));
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    assert_eq!(mails[0].to, ["a@example.com"]);
    let back = detail(&app, "d1").await;
    assert_eq!(back["reason"], Value::Null);
    assert!(
        audit_events(&app, "d1")
            .await
            .contains(&"approvers-unavailable".to_owned())
    );
}

async fn unusable_approver_lists_fail_the_release(backend: Backend) {
    let source = ApproverSource::start();
    source.answer_for("/approvers/Devx/g1", 200, "<html>not json</html>");
    source.answer_for("/approvers/Devx/g2", 200, r#"{"approvers": []}"#);
    source.answer_for("/approvers/Devx/g3", 404, "no such project");
    source.answer_for("/approvers/Devx/g4", 200, r#"["a@example.com", "nope"]"#);
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    for (id, reason) in [
        ("g1", "not readable"),
        ("g2", "empty"),
        ("g3", "404"),
        ("g4", "invalid addresses"),
    ] {
        created(&app, release(id, json!({}))).await;
        let failed = until_state(&app, id, "failed").await;
        assert!(
            failed["reason"]
                .as_str()
                .is_some_and(|r| r.contains(reason)),
            "{id}: {failed}"
        );
    }
    assert!(sink.mails().is_empty());
}

async fn a_mail_server_down_and_back_loses_nothing_and_sends_once(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com", "b@example.com"]));
    let (port, down) = MailSink::reserve();
    let app = spawn(backend, &source, format!("smtp://127.0.0.1:{port}")).await;
    created(&app, release("m1", json!({}))).await;
    eventually("a failed mail attempt", || async {
        audit_events(&app, "m1")
            .await
            .iter()
            .any(|e| e == "mail-failed")
    })
    .await;
    let sink = down.start();
    let mails = sink.wait_for(2, MAIL_WAIT).await;
    eventually("both mails recorded as sent", || async {
        audit_events(&app, "m1")
            .await
            .iter()
            .filter(|e| *e == "mail-sent")
            .count()
            == 2
    })
    .await;
    // Each approver got one mail, and only the latest link of each works.
    assert_eq!(sink.mails().len(), 2, "{mails:?}");
    let token = token_in(mail_to(&mails, "a@example.com"));
    assert_eq!(decide_json(&app, &token, "approve").await.status(), 200);
}

async fn mails_queued_before_a_restart_go_out_after_it(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let (port, down) = MailSink::reserve();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn(backend, &source, smtp.clone()).await;
    created(&app, release("q9", json!({}))).await;
    eventually("a failed mail attempt", || async {
        audit_events(&app, "q9")
            .await
            .iter()
            .any(|e| e == "mail-failed")
    })
    .await;
    let app = app.restart_with(|s| gate(s, &source, smtp)).await;
    let sink = down.start();
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    assert_eq!(mails[0].to, ["a@example.com"]);
    assert_eq!(
        decide_form(&app, &token_in(&mails[0]), "approve")
            .await
            .status(),
        200
    );
    assert_eq!(detail(&app, "q9").await["state"], "approved");
    assert_eq!(sink.mails().len(), 1);
}

async fn a_scanner_opening_the_link_changes_nothing(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("x1", json!({}))).await;
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    let link = format!("/approval?token={}", token_in(&mails[0]));
    for _ in 0..3 {
        assert_eq!(app.get(&link).await.status(), 200);
    }
    let head = app.client.head(app.url(&link)).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let body = detail(&app, "x1").await;
    assert_eq!(body["state"], "pending");
    assert_eq!(body["approvers"][0]["decision"], Value::Null);
    assert!(
        !audit_events(&app, "x1")
            .await
            .contains(&"decision".to_owned())
    );
}

async fn different_content_under_a_known_id_is_a_conflict(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("c1", json!({"required_approvals": 1}))).await;
    let same = register(&app, release("c1", json!({"required_approvals": 1}))).await;
    assert_eq!(same.status(), 200);
    let other = register(
        &app,
        json!({"release_name": "Other", "release_id": "c1", "team_project": "Devx"}),
    )
    .await;
    expect_problem(other, 409).await;
}

async fn bad_input_is_refused_clearly_and_stores_nothing(backend: Backend) {
    let source = ApproverSource::start();
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    let malformed = app
        .client
        .post(app.url("/api/v1/releases"))
        .header("content-type", "application/json")
        .body("{\"release_name\": ")
        .send()
        .await
        .unwrap();
    expect_problem(malformed, 400).await;
    for (body, field) in [
        (release("u1", json!({"colour": "red"})), "colour"),
        (
            release("u1", json!({"release_name": "x".repeat(300)})),
            "release_name",
        ),
        (release("a\u{1b}[31mb", json!({})), "release_id"),
        (release("a/b", json!({})), "release_id"),
        (json!({"ReleaseName": "x", "ReleaseId": "1"}), "TeamProject"),
        (
            release("u2", json!({"expires_in": "forever"})),
            "expires_in",
        ),
    ] {
        let problem = expect_problem(register(&app, body.clone()).await, 422).await;
        assert_eq!(problem["type"], "/problems/invalid-release");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(fields.contains(&field), "{body}: {problem}");
    }
    let form = app
        .client
        .post(app.url("/api/v1/releases"))
        .form(&[("ReleaseName", "x")])
        .send()
        .await
        .unwrap();
    expect_problem(form, 415).await;
    // Approvals: a garbage token, a token in the URL, a wrong decision.
    expect_problem(decide_json(&app, "garbage", "approve").await, 404).await;
    expect_problem(decide_json(&app, &"A".repeat(43), "approve").await, 404).await;
    let in_url = app
        .client
        .post(app.url(&format!("/api/v1/approvals?token={}", "A".repeat(43))))
        .json(&json!({"token": "A".repeat(43), "decision": "approve"}))
        .send()
        .await
        .unwrap();
    expect_problem(in_url, 400).await;
    let wrong = app
        .client
        .post(app.url("/api/v1/approvals"))
        .json(&json!({"token": "A".repeat(43), "decision": "maybe"}))
        .send()
        .await
        .unwrap();
    expect_problem(wrong, 422).await;
    // The approver's pages: readable messages, never a 500.
    for (path, status, words) in [
        ("/approval?token=garbage", 404, "not known"),
        ("/approval", 400, "incomplete"),
        ("/approval?token=", 400, "incomplete"),
        (
            &format!("/approval/{}", "A".repeat(43)) as &str,
            404,
            "not an approval link",
        ),
        (
            &format!("/approval?token={}", "A".repeat(43)) as &str,
            404,
            "not known",
        ),
    ] {
        let page = app.get(path).await;
        assert_eq!(page.status(), status, "{path}");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
        assert!(page.text().await.unwrap().contains(words), "{path}");
    }
    let empty_form = app
        .client
        .post(app.url("/approval"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(empty_form.status(), 404);
    let listed = app.get_json("/api/v1/releases").await;
    assert_eq!(listed["items"], json!([]), "nothing was stored");
    expect_problem(app.get("/api/v1/releases?state=maybe").await, 422).await;
    expect_problem(app.get("/api/v1/releases/Devx/1?wait=forever").await, 422).await;
    expect_problem(app.get("/api/v1/releases/Devx/none").await, 404).await;
}

async fn releases_are_listed_exported_and_audited(backend: Backend) {
    let source = ApproverSource::start();
    source.answer(200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    for id in ["l1", "l2", "l3"] {
        created(&app, release(id, json!({}))).await;
    }
    let pages = app
        .pages("/api/v1/releases?limit=2&team_project=Devx")
        .await;
    let ids: Vec<&str> = pages
        .iter()
        .flatten()
        .map(|r| r["release_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["l3", "l2", "l1"]);
    let csv = app
        .get("/api/v1/releases?format=csv")
        .await
        .text()
        .await
        .unwrap();
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("team_project,release_id,release_name,state")
    );
    assert_eq!(lines.count(), 3);
    sink.wait_for(3, MAIL_WAIT).await;
    let audit = app
        .get("/api/v1/releases/Devx/l1/audit?format=csv")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        audit.starts_with("at,event,actor,client_address,detail"),
        "{audit}"
    );
    assert!(audit.contains(",created,"), "{audit}");
    // The worker counts a mail once the server has answered it: the figures
    // follow the mails' arrival.
    eventually("the metrics count the three mails", || async {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let line = |wanted: &str| metrics.lines().any(|l| l == wanted);
        line("deploytime_gate_mails_total{kind=\"request\",outcome=\"sent\"} 3")
            && line("deploytime_gate_mails_queued 3")
    })
    .await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let line = |wanted: &str| metrics.lines().any(|l| l == wanted);
    assert!(
        line("deploytime_releases{state=\"pending\"} 3"),
        "{metrics}"
    );
    assert!(
        line("deploytime_releases{state=\"approved\"} 0"),
        "{metrics}"
    );
}

/// Runs the real binary with debug logging through a whole approval, and
/// searches everything it wrote for the link's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_tokens_never_reach_the_logs() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let binary = env!("CARGO_BIN_EXE_deploytime-server");
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("deploytime.db");
    let approvers_file = dir.path().join("approvers.json");
    std::fs::write(&approvers_file, r#"{"Devx": ["ana@example.com"]}"#).unwrap();
    let sink = MailSink::start();
    let smtp = sink.url();
    let mut server = Command::new(binary)
        .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database-url")
        .arg(&database)
        .arg("--approvers-file")
        .arg(&approvers_file)
        .env("DEPLOYTIME_SMTP_URL", &smtp)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let readers: Vec<_> = [
        Box::new(server.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(server.stdout.take().unwrap()),
    ]
    .into_iter()
    .map(|stream| {
        let tx = lines_tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        })
    })
    .collect();
    drop(lines_tx);
    let mut log: Vec<String> = Vec::new();
    let port = loop {
        let line = lines_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs that it listens");
        let parsed: Value = serde_json::from_str(&line).unwrap_or_default();
        log.push(line);
        if parsed["message"] == "deploytime-server listening" {
            break parsed["port"].as_u64().unwrap();
        }
    };
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let created = client
        .post(url("/release"))
        .json(&json!({"ReleaseName": "Desafio-CD", "ReleaseId": "386", "TeamProject": "Devx"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let mails = sink.wait_for(1, MAIL_WAIT).await;
    let token = token_in(&mails[0]);
    let page = client
        .get(url(&format!("/approval?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let decided = client
        .post(url("/approval"))
        .form(&[("token", token.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(decided.status(), 200);
    let wrong = client
        .post(url("/api/v1/approvals"))
        .json(&json!({"token": token, "decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 409);
    server.kill().unwrap();
    server.wait().unwrap();
    for reader in readers {
        reader.join().unwrap();
    }
    log.extend(lines_rx.try_iter());
    let leaked: Vec<&String> = log.iter().filter(|l| l.contains(&token)).collect();
    assert!(
        leaked.is_empty(),
        "the link's token is in the log: {leaked:?}"
    );
    // The log was really captured: the mail and the decision are in it.
    assert!(
        log.iter().any(|l| l.contains("approval mail sent")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains("decision recorded")),
        "{log:#?}"
    );
    assert!(
        log.iter().any(|l| l.contains(r#""route":"/approval""#)),
        "{log:#?}"
    );
}

async fn the_dashboard_shows_who_a_release_waits_on_and_the_decisions(backend: Backend) {
    let source = ApproverSource::start();
    source.answer_for(
        "/approvers/Devx/p1",
        200,
        &approvers(&["a@example.com", "b@example.com"]),
    );
    source.answer_for("/approvers/Devx/d1", 200, &approvers(&["a@example.com"]));
    let sink = MailSink::start();
    let app = spawn(backend, &source, sink.url()).await;
    created(&app, release("p1", json!({"release_name": "Waiting-One"}))).await;
    created(&app, release("d1", json!({"release_name": "Done-One"}))).await;
    let mails = sink.wait_for(3, MAIL_WAIT).await;
    let for_p1 = mails
        .iter()
        .find(|m| m.subject().contains("#p1") && m.to == ["a@example.com"])
        .unwrap();
    let for_d1 = mails.iter().find(|m| m.subject().contains("#d1")).unwrap();
    assert_eq!(
        decide_json(&app, &token_in(for_p1), "approve")
            .await
            .status(),
        200
    );
    assert_eq!(
        decide_json(&app, &token_in(for_d1), "reject")
            .await
            .status(),
        200
    );

    let response = app.get("/releases").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let page = scraper::Html::parse_document(&response.text().await.unwrap());
    let waiting = cells(&page, "#waiting-table");
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(waiting[0][0], "Waiting-One");
    assert_eq!(waiting[0][1], "Devx/p1");
    assert_eq!(waiting[0][4], "1 of 2");
    assert_eq!(waiting[0][5], "b@example.com", "only who has not answered");
    let decided = cells(&page, "#decided-table");
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0][0], "Done-One");
    assert_eq!(decided[0][2], "rejected");
    assert_eq!(decided[0][4], "a@example.com (reject)");
    // The navigation leads there from every page.
    let overview = app.get("/").await.text().await.unwrap();
    assert!(overview.contains(r#"href="/releases""#));
}

backend_tests!(
    who_has_not_answered_is_reminded_once_before_expiry,
    the_dashboard_shows_who_a_release_waits_on_and_the_decisions,
    whole_flow_from_the_original_contract,
    quorum_of_two_among_three,
    one_rejection_rejects,
    a_release_expires,
    the_requester_cannot_approve_their_own_release,
    a_link_decides_once_even_when_clicked_twice_at_once,
    a_token_decides_only_its_own_release,
    the_answer_does_not_wait_for_slow_dependencies,
    an_approver_source_down_at_creation_is_asked_again,
    unusable_approver_lists_fail_the_release,
    a_mail_server_down_and_back_loses_nothing_and_sends_once,
    mails_queued_before_a_restart_go_out_after_it,
    a_scanner_opening_the_link_changes_nothing,
    different_content_under_a_known_id_is_a_conflict,
    bad_input_is_refused_clearly_and_stores_nothing,
    releases_are_listed_exported_and_audited,
);
