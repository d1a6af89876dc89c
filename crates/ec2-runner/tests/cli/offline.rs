//! Checks that happen before any request: they need no AWS and no moto.

use predicates::prelude::*;

use crate::support::{code, ec2_runner};

/// An endpoint nothing listens on: even a wrong code path cannot reach AWS.
const DEAD_ENDPOINT: &str = "http://127.0.0.1:9";

#[test]
fn help_documents_the_commands_and_exit_codes() {
    ec2_runner()
        .arg("--help")
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::contains("launch"))
        .stdout(predicate::str::contains("terminate"))
        .stdout(predicate::str::contains("7 wait timed out"));
    ec2_runner()
        .args(["launch", "--help"])
        .assert()
        .code(code::SUCCESS)
        .stdout(predicate::str::contains("--on-demand"))
        .stdout(predicate::str::contains("--max-runtime"));
}

#[test]
fn no_credentials_is_reported_as_such() {
    ec2_runner()
        .args(["--region", "us-east-1", "--endpoint-url", DEAD_ENDPOINT])
        .args(["launch", "--ami", "ami-12345678"])
        .assert()
        .code(code::NO_CREDENTIALS)
        .stdout("")
        .stderr(predicate::str::starts_with(
            "ec2-runner: error: no AWS credentials found",
        ));
}

#[test]
fn no_region_is_a_usage_error() {
    ec2_runner()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args([
            "--endpoint-url",
            DEAD_ENDPOINT,
            "status",
            "i-0123456789abcdef0",
        ])
        .assert()
        .code(code::USAGE)
        .stderr(predicate::str::contains("no AWS region"));
}

#[test]
fn oversized_user_data_is_refused_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("big.sh");
    std::fs::write(&script, format!("#!/bin/bash\n#{}\n", "x".repeat(20_000))).unwrap();
    // No credentials either: the size check must come first.
    ec2_runner()
        .args([
            "--region",
            "us-east-1",
            "--endpoint-url",
            DEAD_ENDPOINT,
            "launch",
        ])
        .arg("--script")
        .arg(&script)
        .assert()
        .code(code::USAGE)
        .stderr(predicate::str::contains(
            "over the EC2 limit of 16384 bytes",
        ));
}

#[test]
fn unreadable_script_and_bad_tags_are_usage_errors() {
    ec2_runner()
        .args(["--region", "us-east-1", "--endpoint-url", DEAD_ENDPOINT])
        .args(["launch", "--script", "does/not/exist.sh"])
        .assert()
        .code(code::USAGE)
        .stderr(predicate::str::contains(
            "cannot read script does/not/exist.sh",
        ))
        .stderr(predicate::str::contains("caused by:"));
    ec2_runner()
        .args(["launch", "--tag", "novalue"])
        .assert()
        .code(code::USAGE)
        .stderr(predicate::str::contains("is not KEY=VALUE"));
    ec2_runner()
        .args(["--region", "us-east-1", "--endpoint-url", DEAD_ENDPOINT])
        .args(["launch", "--tag", "managed-by=me"])
        .assert()
        .code(code::USAGE)
        .stderr(predicate::str::contains("set by ec2-runner itself"));
}

#[test]
fn an_unreachable_endpoint_is_reported_as_such() {
    ec2_runner()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .args(["--region", "us-east-1", "--endpoint-url", DEAD_ENDPOINT])
        .args(["status", "i-0123456789abcdef0"])
        .assert()
        .code(code::FAILURE)
        .stderr(predicate::str::contains(
            "ec2:DescribeInstances failed: cannot reach the EC2 endpoint",
        ));
}
