//! deploytime-server: the HTTP API that stores deploy events and pairs them into
//! deployments. `main.rs` only reads the command line; everything else is here so
//! the tests run the very same application.
//!
//! Layers, each importing only from those below it (a test keeps it so; see
//! docs/architecture.md): the domain (`deploytime-core`) ← [`db`] (data) ←
//! [`access`] and [`gate`] ← [`http`] ← [`startup`] (with [`settings`] and [`telemetry`]) ←
//! the binary's command line. [`testing`] runs whole servers for tests.

pub mod access;
pub mod db;
pub mod gate;
pub mod http;
pub mod settings;
pub mod startup;
pub mod telemetry;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
