//! The two promises: an event is never lost (retries re-send the same id, the
//! spool keeps what the server did not acknowledge) and a deploy is never broken
//! by an unreachable server (unless `--strict`).

use std::sync::atomic::Ordering;

use deploytime_cli::exit;
use predicates::prelude::*;
use serde_json::Value;

use crate::helpers::{
    DroppingProxy, TestServer, TestSpool, exists, nothing_listening, stderr, stdout,
};

fn ids(events: &[Value], field: &str) -> Vec<String> {
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e[field].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn events_spooled_while_the_server_is_down_are_flushed_once_and_paired() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    let output = spool
        .deploytime(&down)
        .args(["--retry-for", "1s", "start", "api", "--version", "2.0.0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(exit::OK)));
    let id = stdout(&output).trim().to_owned();
    assert!(
        uuid::Uuid::parse_str(&id).is_ok(),
        "the id is printed even when spooled"
    );
    assert!(stderr(&output).contains("deploytime: warning: cannot reach the server"));
    // No --deployment-id: the finish must find the start that is still spooled.
    spool
        .deploytime(&down)
        .args(["--retry-for", "1s", "finish", "api", "--status", "success"])
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("the event is kept in"));
    let spooled = spool.events();
    assert_eq!(spooled.len(), 2);
    assert_eq!(spooled[0]["phase"], "start");
    assert_eq!(spooled[1]["phase"], "finish");
    assert_eq!(spooled[1]["deployment_id"], id.as_str());

    let server = TestServer::start();
    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("sent 2 spooled event(s)"));
    assert!(spool.events().is_empty());

    let deployments = server.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let deployment = server.deployment(&id);
    assert_eq!(deployment["state"], "succeeded");
    assert_eq!(deployment["version"], "2.0.0");
    assert!(
        deployment["duration_seconds"].as_f64().is_some(),
        "start and finish paired"
    );
    assert_eq!(
        ids(deployment["events"].as_array().unwrap(), "id"),
        ids(&spooled, "event_id")
    );

    // Flushing again sends nothing twice.
    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("the spool is empty"));
    assert_eq!(server.events().len(), 2);
}

#[test]
fn a_finish_flushed_before_its_start_still_pairs() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    let output = spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "start", "web"])
        .output()
        .unwrap();
    let id = stdout(&output).trim().to_owned();
    spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "finish", "web", "--status", "exit-1"])
        .assert()
        .code(i32::from(exit::OK));
    // Reverse the spool: the finish now goes first.
    let text = std::fs::read_to_string(spool.path()).unwrap();
    let reversed: Vec<&str> = text.lines().rev().collect();
    std::fs::write(spool.path(), reversed.join("\n") + "\n").unwrap();

    let server = TestServer::start();
    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::OK));
    let deployments = server.deployments();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    assert_eq!(deployments[0]["id"], id.as_str());
    assert_eq!(deployments[0]["state"], "failed");
    assert!(deployments[0]["started_at"].is_string());
    assert!(deployments[0]["duration_seconds"].is_number());
}

#[test]
fn every_call_flushes_the_spool_first() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    let output = spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "start", "api"])
        .output()
        .unwrap();
    let spooled_id = stdout(&output).trim().to_owned();
    assert_eq!(spool.events().len(), 1);

    let server = TestServer::start();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "web"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(stderr(&output).contains("sent 1 spooled event(s)"));
    assert!(spool.events().is_empty());
    let mut components: Vec<String> = server
        .deployments()
        .iter()
        .map(|d| d["component"].as_str().unwrap().to_owned())
        .collect();
    components.sort();
    assert_eq!(components, ["api", "web"]);
    assert_eq!(server.deployment(&spooled_id)["state"], "running");
}

#[test]
fn strict_turns_an_unreachable_server_into_an_error_and_keeps_only_what_happened() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    // The pipeline stops on this exit code: the deploy does not happen, so
    // its start must not be recorded by a later flush.
    spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "--strict", "start", "api"])
        .assert()
        .code(i32::from(exit::UNREACHABLE))
        .stdout("")
        .stderr(predicate::str::starts_with(
            "deploytime: error: cannot reach the server",
        ));
    assert!(
        spool.events().is_empty(),
        "a failed strict start is not kept"
    );
    // A finish describes a deploy that did happen: kept, strict or not.
    spool
        .deploytime(&down)
        .env("DEPLOYTIME_STRICT", "1")
        .args(["--retry-for", "0s", "finish", "api", "--status", "success"])
        .assert()
        .code(i32::from(exit::UNREACHABLE));
    spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "start", "web"])
        .assert()
        .code(i32::from(exit::OK));
    assert_eq!(spool.events().len(), 2, "the finish and the lenient start");
    spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "flush"])
        .assert()
        .code(i32::from(exit::UNREACHABLE))
        .stderr(predicate::str::contains("2 event(s) not sent"));
}

#[test]
fn a_strict_start_the_server_never_saw_is_never_recorded() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&nothing_listening())
        .args(["--retry-for", "0s", "--strict", "start", "api"])
        .assert()
        .code(i32::from(exit::UNREACHABLE));
    // The server is back: the next call flushes the spool first.
    spool
        .deploytime(&server.url)
        .args(["start", "web"])
        .assert()
        .success();
    let deployments = server.deployments();
    let components: Vec<&str> = deployments
        .iter()
        .map(|d| d["component"].as_str().unwrap())
        .collect();
    assert_eq!(components, ["web"], "no phantom deployment of api");
}

#[test]
fn retrying_after_a_lost_answer_stores_the_event_once() {
    let server = TestServer::start();
    let proxy = DroppingProxy::start(&server.url);
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&proxy.url)
        .args(["--retry-for", "10s", "start", "api"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OK)),
        "{}",
        stderr(&output)
    );
    assert!(stderr(&output).contains("retrying"), "{}", stderr(&output));
    assert!(proxy.connections.load(Ordering::SeqCst) >= 2);
    let id = stdout(&output).trim().to_owned();
    assert_eq!(server.deployments().len(), 1);
    assert_eq!(
        server.events().len(),
        1,
        "the retry re-sent the same event id"
    );
    assert_eq!(server.deployment(&id)["state"], "running");
    assert!(spool.events().is_empty());
}

#[test]
fn a_spooled_event_the_server_refuses_is_set_aside_not_retried_forever() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "api"])
        .output()
        .unwrap();
    let id = stdout(&output).trim().to_owned();
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
        .success();
    // A second finish of the same deployment, spooled while the server is down.
    spool
        .deploytime(&nothing_listening())
        .args(["--retry-for", "0s", "finish", "api", "--status", "exit-1"])
        .args(["--deployment-id", &id])
        .assert()
        .code(i32::from(exit::OK));
    let refused = spool.events()[0]["event_id"].as_str().unwrap().to_owned();

    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("409 Conflict"));
    assert!(
        spool.events().is_empty(),
        "the refused event left the spool"
    );
    assert!(exists(&spool.rejected_path()));
    let rejected = std::fs::read_to_string(spool.rejected_path()).unwrap();
    assert!(
        rejected.contains(&refused),
        "…but is kept aside: {rejected}"
    );
    assert_eq!(server.deployment(&id)["status"], "success");
}

#[test]
fn processes_spooling_at_the_same_time_lose_no_event() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    let children: Vec<std::process::Child> = (0..6)
        .map(|i| {
            spool
                .std_command(&down)
                .args(["--retry-for", "0s", "start", &format!("component-{i}")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let mut components: Vec<String> = spool
        .events()
        .iter()
        .map(|e| e["component"].as_str().unwrap().to_owned())
        .collect();
    components.sort();
    assert_eq!(
        components,
        (0..6).map(|i| format!("component-{i}")).collect::<Vec<_>>()
    );

    let server = TestServer::start();
    spool
        .deploytime(&server.url)
        .arg("flush")
        .assert()
        .code(i32::from(exit::OK));
    assert_eq!(server.deployments().len(), 6);
}

#[test]
fn an_event_that_can_be_neither_sent_nor_spooled_is_printed_for_the_log() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    // A path below a regular file cannot be created.
    let blocker = tempfile::NamedTempFile::new().unwrap();
    let unwritable = blocker.path().join("spool.jsonl");
    let output = spool
        .deploytime(&down)
        .env("DEPLOYTIME_SPOOL", &unwritable)
        .args(["--retry-for", "0s", "finish", "api", "--status", "success"])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(i32::from(exit::OK)),
        "a deploy is not broken"
    );
    let log = stderr(&output);
    let printed = log
        .lines()
        .find_map(|line| line.split_once("the event was: "))
        .map(|(_, event)| serde_json::from_str::<Value>(event).unwrap())
        .expect("the event is printed");
    assert_eq!(printed["phase"], "finish");
    assert_eq!(printed["status"], "success");
    assert!(printed["event_id"].is_string());

    // With --strict, an event that should be kept (a finish: the deploy
    // happened) but cannot be is its own failure.
    spool
        .deploytime(&down)
        .env("DEPLOYTIME_SPOOL", &unwritable)
        .args([
            "--strict",
            "--retry-for",
            "0s",
            "finish",
            "api",
            "--status",
            "success",
        ])
        .assert()
        .code(i32::from(exit::SPOOL_FAILED))
        .stdout("")
        .stderr(predicate::str::contains(
            "deploytime: error: the event could be neither sent nor spooled",
        ));
}

#[test]
fn an_event_outside_the_tokens_scope_is_kept_without_holding_back_the_others() {
    let server = TestServer::start_with_admin_token(
        "dt_cli-test-admin-token-0123456789abcdef0123456789abcdef",
    );
    let api_only = server.create_token(
        "api-deployer",
        deploytime_server::access::Role::Ingest,
        &["component=api"],
    );
    let spool = TestSpool::new();
    let down = nothing_listening();
    for component in ["web", "api"] {
        spool
            .deploytime(&down)
            .args(["--retry-for", "0s", "start", component])
            .assert()
            .code(i32::from(exit::OK));
    }

    spool
        .deploytime(&server.url)
        .env("DEPLOYTIME_TOKEN", &api_only)
        .arg("flush")
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("403"));
    let kept = spool.events();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["component"], "web", "the refused event stays");
    let stored = server.deployments();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["component"], "api",
        "the one after it went through"
    );
}
