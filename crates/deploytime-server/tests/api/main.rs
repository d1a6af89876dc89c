//! Integration tests: the real server, started on a free port, called over HTTP,
//! against a real SQLite file and, with `--features mysql`, a real MySQL/MariaDB
//! database created for each test (`DEPLOYTIME_TEST_MYSQL_URL`).
//! One test binary so the suite links once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

mod helpers;
// Test doubles for the release approval gate: an SMTP server, an approver directory.
mod approver_source;

/// Runs a test function once per backend.
pub(crate) use deploytime_server::backend_tests;

mod access;
mod concurrency;
mod corrections;
mod deployments;
mod errors;
mod group_commit;
mod harness;
mod hooks;
mod idempotency;
mod incidents;
mod lead_time;
mod observability;
mod outage;
mod pages;
mod pairing;
mod releases;
// A MariaDB primary and its replica (.ci/mariadb-replica.sh).
#[cfg(feature = "mysql")]
mod replica;
mod reporting;
mod restart;
mod startup;
mod validation;
