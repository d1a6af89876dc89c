//! `start` and `finish` against a running server.

use deploytime_cli::exit;
use predicates::prelude::*;

use crate::helpers::{TestServer, TestSpool, exists, stderr, stdout};

#[test]
fn start_prints_the_deployment_id_alone_and_finish_closes_it() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "api", "--env", "staging", "--version", "1.4.2"])
        .args(["--owner", "ops", "--attr", "team=payments"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OK)),
        "{}",
        stderr(&output)
    );
    let id = stdout(&output);
    let id = id.strip_suffix('\n').unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "stdout is the id alone: {id:?}"
    );
    assert!(stderr(&output).contains("started api in staging"));

    spool
        .deploytime(&server.url)
        .args(["finish", "api", "--env", "staging", "--status", "success"])
        .args(["--deployment-id", id])
        .assert()
        .code(i32::from(exit::OK))
        .stdout("")
        .stderr(predicate::str::contains("finished api in staging: success"));

    let deployment = server.deployment(id);
    assert_eq!(deployment["state"], "succeeded");
    assert_eq!(deployment["version"], "1.4.2");
    assert_eq!(deployment["owner"], "ops");
    assert!(deployment["duration_seconds"].as_f64().unwrap() >= 0.0);
    let events = deployment["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    let start = events.iter().find(|e| e["phase"] == "start").unwrap();
    assert_eq!(start["attributes"]["team"], "payments");
    assert!(!exists(&spool.path()), "nothing was spooled");
}

#[test]
fn finish_without_an_id_closes_the_running_deployment_with_a_failure_code() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "worker"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let id = stdout(&output).trim().to_owned();
    spool
        .deploytime(&server.url)
        .args(["finish", "worker", "--status", "exit-2"])
        .assert()
        .code(i32::from(exit::OK));
    let deployment = server.deployment(&id);
    assert_eq!(deployment["state"], "failed");
    assert_eq!(deployment["status"], "exit-2");
    assert_eq!(deployment["environment"], "production");
}

#[test]
fn ci_metadata_is_stored_and_attributes_given_win() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_RUN_ID", "9001")
        .env("GITHUB_SHA", "c0ffee")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .args(["start", "api", "--attr", "ci.commit=override"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let deployment = server.deployment(stdout(&output).trim());
    let attributes = &deployment["events"][0]["attributes"];
    assert_eq!(attributes["ci.provider"], "github-actions");
    assert_eq!(attributes["ci.run_id"], "9001");
    assert_eq!(
        attributes["ci.run_url"],
        "https://github.com/acme/shop/actions/runs/9001"
    );
    assert_eq!(attributes["ci.commit"], "override");
}

#[test]
fn a_refused_event_exits_rejected_with_the_servers_detail_and_is_not_spooled() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    // 422: a component the server does not accept.
    spool
        .deploytime(&server.url)
        .args(["start", "bad name"])
        .assert()
        .code(i32::from(exit::REJECTED))
        .stdout("")
        .stderr(predicate::str::contains(
            "deploytime: error: the server refused the call: 422",
        ))
        .stderr(predicate::str::contains(
            "component: may contain only letters, digits",
        ));

    // 409: closing a deployment twice.
    let output = spool
        .deploytime(&server.url)
        .args(["start", "api"])
        .output()
        .unwrap();
    let id = stdout(&output).trim().to_owned();
    for expected in [exit::OK, exit::REJECTED] {
        spool
            .deploytime(&server.url)
            .args([
                "finish",
                "api",
                "--status",
                "success",
                "--deployment-id",
                &id,
            ])
            .assert()
            .code(i32::from(expected));
    }
    spool
        .deploytime(&server.url)
        .args([
            "finish",
            "api",
            "--status",
            "cancelled",
            "--deployment-id",
            &id,
        ])
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("409 Conflict"))
        .stderr(predicate::str::contains("already finished"));
    assert!(spool.events().is_empty(), "refused events are not spooled");
    assert_eq!(server.deployment(&id)["status"], "success");
}

#[test]
fn help_lists_the_exit_codes_and_usage_errors_exit_usage() {
    let spool = TestSpool::new();
    spool
        .deploytime("http://127.0.0.1:1")
        .arg("--help")
        .assert()
        .code(i32::from(exit::OK))
        .stdout(predicate::str::contains("Exit codes:"))
        .stdout(predicate::str::contains(format!(
            "  {}    the server refused the call",
            exit::REJECTED
        )))
        .stdout(predicate::str::contains(format!(
            "  {}    the server could not be reached",
            exit::UNREACHABLE
        )));
    spool
        .deploytime("http://127.0.0.1:1")
        .args(["finish", "api", "--status", "not ok"])
        .assert()
        .code(i32::from(exit::USAGE));
    spool
        .deploytime("not a url")
        .args(["start", "api"])
        .assert()
        .code(i32::from(exit::USAGE))
        .stderr(predicate::str::starts_with("deploytime: error: --url"));
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish() {
    let spool = TestSpool::new();
    for (shell, marker) in [
        ("bash", "_deploytime()"),
        ("zsh", "#compdef deploytime"),
        ("fish", "complete -c deploytime"),
    ] {
        spool
            .deploytime("http://127.0.0.1:1")
            .args(["completions", shell])
            .assert()
            .code(i32::from(exit::OK))
            .stdout(predicate::str::contains(marker));
    }
}

#[test]
fn a_wrong_address_is_an_error_but_the_event_is_kept_for_a_later_flush() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let wrong = format!("{}/no-such-prefix", server.url);
    let output = spool
        .deploytime(&wrong)
        .args(["start", "api"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(exit::REJECTED)));
    assert!(
        stderr(&output).contains("404 Not found"),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("the event is kept in"));
    let id = stdout(&output).trim().to_owned();
    assert_eq!(spool.events().len(), 1);
    assert_eq!(spool.events()[0]["deployment_id"], id.as_str());

    spool
        .deploytime(&wrong)
        .arg("flush")
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("events remain in the spool"));
    assert_eq!(
        spool.events().len(),
        1,
        "a refused address keeps the events"
    );

    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::OK));
    assert!(spool.events().is_empty());
    assert_eq!(server.deployment(&id)["state"], "running");
}

#[test]
fn the_token_is_sent_as_a_bearer_and_an_event_refused_without_it_is_kept() {
    let token = "dt_cli-test-admin-token-0123456789abcdef0123456789abcdef";
    let server = TestServer::start_with_admin_token(token);
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "api"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(exit::REJECTED)));
    assert!(stderr(&output).contains("401"), "{}", stderr(&output));
    assert!(stderr(&output).contains("check --url and --token"));
    let id = stdout(&output).trim().to_owned();
    assert_eq!(spool.events().len(), 1, "the refused start is kept");

    // With the token, the next call first delivers the kept start.
    spool
        .deploytime(&server.url)
        .env("DEPLOYTIME_TOKEN", token)
        .args([
            "finish",
            "api",
            "--status",
            "success",
            "--deployment-id",
            &id,
        ])
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("sent 1 spooled event(s)"));
    assert!(spool.events().is_empty());
    assert_eq!(server.deployment(&id)["state"], "succeeded");

    spool
        .deploytime(&server.url)
        .args(["--token", token, "deployments", "-o", "json"])
        .assert()
        .code(i32::from(exit::OK))
        .stdout(predicate::str::contains(id.as_str()));
    spool
        .deploytime(&server.url)
        .args(["--token", "dt_wrong", "deployments"])
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("the token is not valid"));
}
