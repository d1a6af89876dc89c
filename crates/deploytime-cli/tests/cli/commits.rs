//! The commits a deployment ships, collected from a real git repository by
//! `start` and `run`, from the commit the server says was deployed last.

use std::path::{Path, PathBuf};
use std::process::Command;

use deploytime_cli::exit;
use predicates::prelude::*;
use serde_json::Value;

use crate::helpers::{TestServer, TestSpool};

/// A git repository in a directory of its own, with commits dated by the test.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"], None);
        repo
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    fn git(&self, args: &[&str], date: Option<&str>) -> String {
        let mut command = Command::new("git");
        command
            .current_dir(self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "user.name=Ann", "-c", "user.email=ann@example.com"])
            .args(args);
        if let Some(date) = date {
            command
                .env("GIT_COMMITTER_DATE", date)
                .env("GIT_AUTHOR_DATE", date);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// Commits at `date` (RFC 3339); returns the sha.
    fn commit(&self, message: &str, date: &str) -> String {
        std::fs::write(self.dir.path().join("file"), message).unwrap();
        self.git(&["add", "file"], None);
        self.git(&["commit", "--quiet", "-m", message], Some(date));
        self.git(&["rev-parse", "HEAD"], None)
    }
}

fn run_in(spool: &TestSpool, server: &TestServer, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["run", "api"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "true"]);
    spool
        .deploytime(&server.url)
        .current_dir(dir)
        .args(&args)
        .assert()
        .code(i32::from(exit::OK));
    latest(server)
}

/// The newest deployment, with its commits.
fn latest(server: &TestServer) -> Value {
    let newest = server.deployments()[0]["id"].as_str().unwrap().to_owned();
    server.deployment(&newest)
}

fn shas(detail: &Value) -> Vec<String> {
    detail["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn each_deployment_ships_the_commits_since_the_one_deployed_last() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let repo = Repo::new();
    repo.commit("one", "2026-11-01T10:00:00+01:00");
    let second = repo.commit("two", "2026-11-02T10:00:00Z");

    // Nothing deployed before: HEAD only, not the whole history.
    let detail = run_in(&spool, &server, &repo.path(), &[]);
    assert_eq!(shas(&detail), std::slice::from_ref(&second));
    assert_eq!(
        detail["commits"][0]["committed_at"],
        "2026-11-02T10:00:00.000000Z"
    );

    let third = repo.commit("three", "2026-11-03T10:00:00Z");
    let fourth = repo.commit("four", "2026-11-04T10:00:00Z");
    let detail = run_in(&spool, &server, &repo.path(), &[]);
    assert_eq!(shas(&detail), [fourth.clone(), third], "newest first");

    // A failed deployment does not move the base: the one deployed last is
    // still the fourth.
    spool
        .deploytime(&server.url)
        .current_dir(repo.path())
        .args(["run", "api", "--", "sh", "-c", "exit 1"])
        .assert()
        .code(1);
    let fifth = repo.commit("five", "2026-11-05T10:00:00Z");
    let detail = run_in(&spool, &server, &repo.path(), &[]);
    assert_eq!(shas(&detail), [fifth], "since {fourth}, deployed last");
}

#[test]
fn commits_since_a_reference_none_or_a_rollback() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let repo = Repo::new();
    let first = repo.commit("one", "2026-11-01T10:00:00Z");
    let second = repo.commit("two", "2026-11-02T10:00:00Z");
    let third = repo.commit("three", "2026-11-03T10:00:00Z");

    let detail = run_in(&spool, &server, &repo.path(), &["--commits-since", &first]);
    assert_eq!(shas(&detail), [third, second]);

    let detail = run_in(
        &spool,
        &server,
        &repo.path(),
        &["--no-commits", "--rollback"],
    );
    assert!(shas(&detail).is_empty());
    assert_eq!(detail["rollback"], true);

    // An unknown reference is a warning; the deploy is recorded all the same.
    spool
        .deploytime(&server.url)
        .current_dir(repo.path())
        .args(["run", "api", "--commits-since", "no-such-tag", "--", "true"])
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains(
            "no commits recorded: --commits-since no-such-tag: no such commit here",
        ));
    assert!(shas(&latest(&server)).is_empty());
    assert_eq!(server.deployments().len(), 3);
}

#[test]
fn a_checkout_without_the_deployed_commit_ships_its_head_only() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let elsewhere = Repo::new();
    elsewhere.commit("elsewhere", "2026-11-01T10:00:00Z");
    run_in(&spool, &server, &elsewhere.path(), &[]);

    let repo = Repo::new();
    repo.commit("one", "2026-11-02T10:00:00Z");
    let head = repo.commit("two", "2026-11-03T10:00:00Z");
    spool
        .deploytime(&server.url)
        .current_dir(repo.path())
        .args(["run", "api", "--", "true"])
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("recording HEAD only"));
    assert_eq!(shas(&latest(&server)), [head]);
}

#[test]
fn outside_a_checkout_nothing_is_collected_and_nothing_fails() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    spool
        .deploytime(&server.url)
        .args(["start", "api"])
        .assert()
        .code(i32::from(exit::OK))
        .stderr(predicate::str::contains("warning").not());
    assert!(shas(&latest(&server)).is_empty());
}
