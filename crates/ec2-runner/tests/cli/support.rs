//! Shared helpers: the binary with a clean AWS environment.

#![allow(dead_code)]

use std::path::PathBuf;

pub const BIN: &str = env!("CARGO_BIN_EXE_ec2-runner");

/// Exit codes as documented; duplicated on purpose so a renumbering is caught.
pub mod code {
    pub const SUCCESS: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NO_CREDENTIALS: i32 = 3;
    pub const INVALID_RESOURCE: i32 = 6;
    pub const WAIT_TIMEOUT: i32 = 7;
    pub const NOT_MANAGED: i32 = 9;
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Removes every variable through which the AWS chain could find real
/// credentials, a real endpoint or instance metadata, so a test can never
/// reach AWS whatever the machine it runs on.
pub fn isolate(cmd: &mut std::process::Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("DEPLOYTIME_URL")
        .env_remove("EC2_RUNNER_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/ec2-runner-tests/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/ec2-runner-tests/credentials",
        )
        .current_dir(repo_root());
}

/// The binary, isolated from the machine's AWS setup, run from the repository
/// root so the default `--script deploy/ec2/xyz.sh` resolves.
pub fn ec2_runner() -> assert_cmd::Command {
    let mut cmd = std::process::Command::new(BIN);
    isolate(&mut cmd);
    assert_cmd::Command::from_std(cmd)
}
