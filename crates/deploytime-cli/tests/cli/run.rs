//! `deploytime run`: the deployment recorded around a command, whose exit code
//! is passed through.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use deploytime_cli::exit;
use predicates::prelude::*;

use crate::helpers::{TestServer, TestSpool, nothing_listening, wait_until};

#[test]
fn a_successful_command_records_success_and_keeps_its_output() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&server.url)
        .args([
            "run",
            "api",
            "--version",
            "3.1.0",
            "--",
            "sh",
            "-c",
            "echo deploying",
        ])
        .assert()
        .code(i32::from(exit::OK))
        .stdout("deploying\n")
        .stderr(predicate::str::contains(
            "finished api in production: success",
        ));
    let deployments = server.deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["state"], "succeeded");
    assert_eq!(deployments[0]["version"], "3.1.0");
    assert!(deployments[0]["duration_seconds"].is_number());
}

#[test]
fn a_failing_command_records_exit_n_and_exits_with_its_code() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&server.url)
        .args(["run", "api", "--", "sh", "-c", "exit 3"])
        .assert()
        .code(3);
    let deployments = server.deployments();
    assert_eq!(deployments[0]["state"], "failed");
    assert_eq!(deployments[0]["status"], "exit-3");
}

#[test]
fn a_missing_command_is_127_and_recorded_as_failed() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&server.url)
        .args(["run", "api", "--", "/nonexistent/deploy.sh"])
        .assert()
        .code(i32::from(exit::COMMAND_NOT_FOUND))
        .stderr(predicate::str::contains(
            "cannot run /nonexistent/deploy.sh",
        ));
    assert_eq!(server.deployments()[0]["status"], "exit-127");
}

#[test]
fn with_the_server_down_the_command_still_runs_and_both_events_are_spooled() {
    let spool = TestSpool::new();
    spool
        .deploytime(&nothing_listening())
        .args([
            "--retry-for",
            "1s",
            "run",
            "api",
            "--",
            "sh",
            "-c",
            "echo ran; exit 4",
        ])
        .assert()
        .code(4)
        .stdout("ran\n");
    let spooled = spool.events();
    assert_eq!(spooled.len(), 2);
    assert_eq!(spooled[0]["phase"], "start");
    assert_eq!(spooled[1]["status"], "exit-4");
    assert_eq!(spooled[0]["deployment_id"], spooled[1]["deployment_id"]);
}

/// Sends `signal` to a `deploytime run` whose command traps it, and checks
/// that the command received it, its code came back, and the deployment was
/// recorded as cancelled.
#[cfg(unix)]
fn stop_a_run_with(signal: nix::sys::signal::Signal, name: &str, code: i32) {
    use nix::sys::signal::kill;
    use nix::unistd::Pid;

    let server = TestServer::start();
    let spool = TestSpool::new();
    let marker = tempfile::tempdir().unwrap();
    let marker = marker.path().join("got-signal");
    // The command notes that it received the signal, then stops as told.
    let script = format!(
        "trap 'kill $sleeper; echo {name} > {}; exit {code}' {name}; sleep 30 & sleeper=$!; echo ready; wait $sleeper",
        marker.display()
    );
    let mut child = spool
        .std_command(&server.url)
        .args(["run", "api", "--", "sh", "-c", &script])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), signal).unwrap();

    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            status = child.try_wait().unwrap();
            status.is_some()
        }),
        "deploytime did not stop after {name}, though its command sleeps for 30s"
    );
    assert_eq!(status.unwrap().code(), Some(code), "the command's own code");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        name,
        "the command received {name}"
    );
    let deployments = server.deployments();
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0]["state"], "cancelled");
    assert_eq!(deployments[0]["status"], "cancelled");
}

#[cfg(unix)]
#[test]
fn sigterm_is_forwarded_to_the_command_and_records_cancelled() {
    stop_a_run_with(nix::sys::signal::Signal::SIGTERM, "TERM", 143);
}

#[cfg(unix)]
#[test]
fn a_sigint_sent_by_a_process_is_forwarded_and_records_cancelled() {
    stop_a_run_with(nix::sys::signal::Signal::SIGINT, "INT", 130);
}

#[test]
fn strict_run_reports_an_unreachable_server_only_over_a_success() {
    let spool = TestSpool::new();
    let down = nothing_listening();
    let output = spool
        .deploytime(&down)
        .args(["--retry-for", "0s", "--strict", "run", "api", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(i32::from(exit::UNREACHABLE)));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr
            .matches("deploytime: error: cannot reach the server")
            .count(),
        2,
        "start and finish, each reported once: {stderr}"
    );
    spool
        .deploytime(&down)
        .args([
            "--retry-for",
            "0s",
            "--strict",
            "run",
            "api",
            "--",
            "sh",
            "-c",
            "exit 5",
        ])
        .assert()
        .code(5);
    assert_eq!(spool.events().len(), 4);
}
