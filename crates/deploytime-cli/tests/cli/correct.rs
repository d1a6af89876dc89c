//! `deploytime correct`: a correction reaches the server with the revision it
//! was read at, and a refusal is reported with the server's reasons.

use deploytime_cli::exit;
use predicates::prelude::*;

use crate::helpers::{TestServer, TestSpool, stdout};

#[test]
fn a_correction_closes_a_running_deployment_and_is_kept() {
    let server = TestServer::start();
    let spool = TestSpool::new();
    let output = spool
        .deploytime(&server.url)
        .args(["start", "api", "--version", "v1"])
        .output()
        .unwrap();
    let id = stdout(&output).trim().to_owned();
    spool
        .deploytime(&server.url)
        .args([
            "correct",
            &id,
            "--status",
            "cancelled",
            "--finished-at",
            "0s",
        ])
        .args(["--version", "v1.0.1", "--reason", "the runner crashed"])
        .assert()
        .code(i32::from(exit::OK))
        .stdout(predicate::str::contains("cancelled"))
        .stderr(predicate::str::contains(format!(
            "deploytime: corrected deployment {id}: "
        )))
        .stderr(predicate::str::contains("state running -> cancelled"));
    let detail = server.deployment(&id);
    assert_eq!(detail["state"], "cancelled");
    assert_eq!(detail["version"], "v1.0.1");
    assert_eq!(detail["corrections"][0]["reason"], "the runner crashed");

    // The same again changes nothing: refused, with the server's reason.
    spool
        .deploytime(&server.url)
        .args(["correct", &id, "--version", "v1.0.1", "--reason", "again"])
        .assert()
        .code(i32::from(exit::REJECTED))
        .stderr(predicate::str::contains("422 Invalid correction"))
        .stderr(predicate::str::contains("nothing to correct"));
    assert_eq!(
        server.deployment(&id)["corrections"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
