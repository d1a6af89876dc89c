//! The real `deploytime` binary against a real server started in this process.
//! One test binary, so it links once.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

mod commits;
mod correct;
mod helpers;
mod record;
mod release;
mod reliability;
mod reports;
mod run;
