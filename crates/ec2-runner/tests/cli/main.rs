//! Command-line tests: the real `ec2-runner` binary, run as an operator would.
//! `offline` needs nothing but the toolchain; `moto` (feature `moto-tests`)
//! runs against a local moto server and fails if moto is missing.

// Helpers outside `#[test]` functions are test code too: a panic there is a
// failed test, which clippy's in-test allowance does not see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod offline;
mod support;

#[cfg(feature = "moto-tests")]
mod moto;
