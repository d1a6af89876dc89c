//! `deploytime release request|status`: registering a release, waiting for its
//! decision and the exit code of each outcome; `run --release-id`.
//!
//! Against a real server; the outcomes an approver gives come from a decision
//! made with the link of the mail that reached a real SMTP server.

use std::time::{Duration, Instant};

use deploytime_cli::exit;
use deploytime_server::access::Role;
use predicates::prelude::*;
use serde_json::{Value, json};

use deploytime_server::testing::mail_sink::MailSink;

use crate::helpers::{TestServer, TestSpool, nothing_listening, stderr, stdout};

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

/// Registers a release with `--wait` in the background, has the approver
/// answer through the link of the mail that arrived (or not at all), and
/// returns the command's output.
fn outcome_of(
    server: &TestServer,
    sink: &MailSink,
    id: &str,
    answer: Option<(&str, &str)>,
    extra: &[&str],
) -> std::process::Output {
    let spool = TestSpool::new();
    let mut args = vec![
        "release",
        "request",
        "--id",
        id,
        "--name",
        "Desafio-CD",
        "--project",
        "Devx",
        "--wait",
        "1m",
    ];
    args.extend_from_slice(extra);
    let waiting = spool
        .std_command(&server.url)
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if let Some((decision, comment)) = answer {
        let before = sink.mails().len();
        let mails = sink.wait_for_blocking(before + 1, Duration::from_secs(30));
        let token = mails[before].approval_token();
        let decided = reqwest::blocking::Client::new()
            .post(format!("{}/api/v1/approvals", server.url))
            .json(&json!({"token": token, "decision": decision, "comment": comment}))
            .send()
            .unwrap();
        assert_eq!(decided.status(), 200, "{:?}", decided.text());
    }
    waiting.wait_with_output().unwrap()
}

#[test]
fn each_outcome_an_approver_gives_exits_with_its_code() {
    let sink = MailSink::start();
    let server = TestServer::start_with_approvers(
        &sink,
        r#"{"Devx": [{"email": "ana@example.com", "name": "Ana"}]}"#,
    );

    let approved = outcome_of(&server, &sink, "a1", Some(("approve", "ship it")), &[]);
    let (out, err) = (stdout(&approved), stderr(&approved));
    assert_eq!(approved.status.code(), Some(i32::from(exit::OK)), "{err}");
    assert!(err.contains("approved by ana@example.com"), "{err}");
    assert!(out.contains("state         approved"), "{out}");
    assert!(
        out.contains("Ana <ana@example.com>") && out.contains("ship it"),
        "{out}"
    );

    let rejected = outcome_of(
        &server,
        &sink,
        "r1",
        Some(("reject", "not on a Friday")),
        &[],
    );
    let err = stderr(&rejected);
    assert_eq!(
        rejected.status.code(),
        Some(i32::from(exit::RELEASE_REJECTED)),
        "{err}"
    );
    assert!(err.contains("rejected by ana@example.com"), "{err}");
    assert!(err.contains("ana@example.com: not on a Friday"), "{err}");

    let expired = outcome_of(&server, &sink, "e1", None, &["--expires-in", "2s"]);
    let err = stderr(&expired);
    assert_eq!(
        expired.status.code(),
        Some(i32::from(exit::RELEASE_EXPIRED)),
        "{err}"
    );
    assert!(err.contains("expired after"), "{err}");
    assert!(stdout(&expired).contains("state         expired"));
}
