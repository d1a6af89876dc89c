//! `deploytime release request|status`: registering a release, waiting for its
//! decision and the exit code of each outcome; `run --release-id`.
//!
//! A real server decides a release only after an approver followed the link in
//! a mail, so outcomes an approver gives (approved, rejected, expired) are
//! played by a scripted server; the rest runs against a real one.

use std::time::{Duration, Instant};

use deploytime_cli::exit;
use deploytime_server::access::Role;
use predicates::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{ScriptedServer, TestServer, TestSpool, nothing_listening, stderr, stdout};

const REQUEST: [&str; 8] = [
    "release",
    "request",
    "--id",
    "386",
    "--name",
    "Desafio-CD",
    "--project",
    "Devx",
];

fn request_with(extra: &[&str]) -> Vec<String> {
    REQUEST
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

#[test]
fn a_request_prints_the_pending_release_and_repeating_it_answers_the_same() {
    let server = TestServer::start_with_approver_source_down(None);
    let spool = TestSpool::new();
    let first = spool
        .deploytime(&server.url)
        .args(request_with(&["--component", "api", "--version", "1.4.2"]))
        .output()
        .unwrap();
    assert_eq!(
        first.status.code(),
        Some(i32::from(exit::OK)),
        "{}",
        stderr(&first)
    );
    let text = stdout(&first);
    assert!(text.contains("release       Devx/386"), "{text}");
    assert!(text.contains("state         pending"), "{text}");
    assert!(text.contains("version       1.4.2"), "{text}");
    assert!(
        stderr(&first).contains("release Devx/386 (Desafio-CD): pending"),
        "{}",
        stderr(&first)
    );

    let again = spool
        .deploytime(&server.url)
        .args(request_with(&[
            "--component",
            "api",
            "--version",
            "1.4.2",
            "-o",
            "json",
        ]))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(i32::from(exit::OK)));
    let view: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(view["state"], "pending");
    assert_eq!(view["release_id"], "386");
    assert_eq!(view["team_project"], "Devx");
    assert_eq!(view["version"], "1.4.2");

    // Other content under the same id is the server's refusal, not a poll.
    spool
        .deploytime(&server.url)
        .args(request_with(&["--version", "2.0.0"]))
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("409"));
}

#[test]
fn waiting_on_a_release_without_approvers_exits_12_with_the_reason() {
    // The test server has no approver source: the release fails at once.
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(request_with(&["--wait", "30s"]))
        .output()
        .unwrap();
    let (out, err) = (stdout(&output), stderr(&output));
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::RELEASE_FAILED)),
        "{err}"
    );
    assert!(out.contains("state         failed"), "{out}");
    assert!(out.contains("no approver source is configured"), "{out}");
    assert!(
        err.contains("release Devx/386 failed: no approver source is configured"),
        "{err}"
    );
}

#[test]
fn a_release_still_pending_when_the_wait_ends_exits_13() {
    let server = TestServer::start_with_approver_source_down(None);
    let spool = TestSpool::new();
    let began = Instant::now();
    let output = spool
        .deploytime(&server.url)
        .args(request_with(&["--wait", "2s"]))
        .output()
        .unwrap();
    let waited = began.elapsed();
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::RELEASE_PENDING)),
        "{err}"
    );
    assert!(waited >= Duration::from_secs(2), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    assert!(
        err.contains("waiting up to 2s for release Devx/386"),
        "{err}"
    );
    assert!(err.contains("still pending after waiting 2s"), "{err}");
    assert!(stdout(&output).contains("state         pending"));

    // `status` reads it; with --wait it exits with the state's code.
    spool
        .deploytime(&server.url)
        .args(["release", "status", "--id", "386", "--project", "Devx"])
        .assert()
        .code(i32::from(exit::OK))
        .stdout(predicate::str::contains("state         pending"));
    spool
        .deploytime(&server.url)
        .args([
            "release",
            "status",
            "--id",
            "386",
            "--project",
            "Devx",
            "--wait",
            "0s",
        ])
        .assert()
        .code(i32::from(exit::RELEASE_PENDING));
    spool
        .deploytime(&server.url)
        .args(["release", "status", "--id", "387", "--project", "Devx"])
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("404"));
}

#[test]
fn a_token_that_may_not_read_releases_waits_by_registering_again() {
    let server = TestServer::start_with_approver_source_down(Some(
        "dt_cli-test-admin-token-0123456789abcdef0123456789abcdef",
    ));
    let ingest = server.create_token("pipeline", Role::Ingest, &[]);
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["--token", &ingest])
        .args(request_with(&["--wait", "2s"]))
        .output()
        .unwrap();
    let err = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::RELEASE_PENDING)),
        "{err}"
    );
    assert!(err.contains("this token may not read releases"), "{err}");
}

#[test]
fn a_request_the_server_would_refuse_is_a_usage_error_naming_the_flag() {
    let spool = TestSpool::new();
    // Nothing is sent: nothing listens there.
    let down = nothing_listening();
    spool
        .deploytime(&down)
        .args([
            "release",
            "request",
            "--id",
            "38/6",
            "--name",
            "x",
            "--project",
            "Devx",
        ])
        .assert()
        .code(i32::from(exit::USAGE))
        .stderr(
            predicate::str::contains("--id").and(predicate::str::contains(
                "must not contain `/` (it is part of the release's URL)",
            )),
        );
    spool
        .deploytime(&down)
        .args(request_with(&[
            "--component",
            "bad name",
            "--expires-in",
            "90d",
        ]))
        .assert()
        .code(i32::from(exit::USAGE))
        .stderr(
            predicate::str::contains("the release request would be refused")
                .and(predicate::str::contains("--component: "))
                .and(predicate::str::contains(
                    "--expires-in: must be between 1 second and 30 days",
                )),
        );
}

#[test]
fn run_stores_the_release_with_its_events() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&server.url)
        .args([
            "run",
            "api",
            "--release-id",
            "386",
            "--release-project",
            "Devx",
            "--",
            "true",
        ])
        .assert()
        .code(i32::from(exit::OK));
    let id = server.deployments()[0]["id"].as_str().unwrap().to_owned();
    let deployment = server.deployment(&id);
    let events = deployment["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    for event in events {
        assert_eq!(event["attributes"]["release_id"], "386", "{event}");
        assert_eq!(event["attributes"]["team_project"], "Devx", "{event}");
    }
    // One without the other names no release.
    spool
        .deploytime(&server.url)
        .args(["run", "api", "--release-id", "386", "--", "true"])
        .assert()
        .code(i32::from(exit::USAGE))
        .stderr(predicate::str::contains("--release-project"));
}

/// A release as the API shows it, in `state`, with one approver's decision.
fn release(state: &str, decision: Option<(&str, &str)>) -> Value {
    let decided = state != "pending";
    json!({
        "team_project": "Devx", "release_id": "386", "release_name": "Desafio-CD",
        "state": state, "url": "/api/v1/releases/Devx/386",
        "required_approvals": 1,
        "approvals": u32::from(matches!(decision, Some(("approve", _)))),
        "rejections": u32::from(matches!(decision, Some(("reject", _)))),
        "approvers": [{
            "email": "ana@example.com", "name": "Ana", "may_approve": true,
            "decision": decision.map(|(d, _)| d),
            "comment": decision.map(|(_, c)| c),
            "decided_at": decision.map(|_| "2026-11-30T10:05:00.000000Z"),
        }],
        "created_at": "2026-11-30T10:00:00.000000Z",
        "expires_at": "2026-12-03T10:00:00.000000Z",
        "decided_at": if decided { json!("2026-11-30T10:05:00.000000Z") } else { Value::Null },
        "waited_seconds": if decided { 300.0 } else { 10.0 },
    })
}

fn detail(view: Value) -> Value {
    let mut detail = view;
    detail["audit"] = json!([]);
    detail
}

#[test]
fn each_outcome_exits_with_its_code_and_unavailability_does_not_end_the_wait() {
    let cases = [
        (
            "approved",
            Some(("approve", "ship it")),
            exit::OK,
            "approved by ana@example.com after 5m",
        ),
        (
            "rejected",
            Some(("reject", "not on a Friday")),
            exit::RELEASE_REJECTED,
            "rejected by ana@example.com after 5m\n  ana@example.com: not on a Friday",
        ),
        (
            "expired",
            None,
            exit::RELEASE_EXPIRED,
            "expired after 5m with 0 of 1 approvals",
        ),
    ];
    for (state, decision, code, said) in cases {
        let unavailable = json!({
            "type": "/problems/unavailable", "title": "Service unavailable",
            "status": 503, "detail": "the database is busy"
        });
        let server = ScriptedServer::start(vec![
            (201, release("pending", None)),
            (503, unavailable),
            (200, detail(release(state, decision))),
        ]);
        let spool = TestSpool::new();
        let output = spool
            .deploytime(&server.url)
            .args(["--retry-for", "1s"])
            .args(request_with(&["--wait", "1m"]))
            .output()
            .unwrap();
        let (out, err) = (stdout(&output), stderr(&output));
        assert_eq!(
            output.status.code(),
            Some(i32::from(code)),
            "{state}: {err}"
        );
        assert!(err.contains(said), "{state}: {err}");
        assert!(err.contains("503"), "the 503 was retried: {err}");
        assert!(out.contains(&format!("state         {state}")), "{out}");
        assert!(out.contains("Ana <ana@example.com>"), "{out}");
        if let Some((verdict, comment)) = decision {
            assert!(out.contains(verdict) && out.contains(comment), "{out}");
        }
        let requests = server.requests();
        assert!(
            requests
                .iter()
                .any(|r| r.starts_with("POST /api/v1/releases ")),
            "{requests:?}"
        );
        let polls: Vec<&String> = requests
            .iter()
            .filter(|r| r.starts_with("GET /api/v1/releases/Devx/386?wait="))
            .collect();
        assert_eq!(polls.len(), 2, "{requests:?}");
    }
}
