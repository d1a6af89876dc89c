//! deploytime-server: the HTTP API that stores deploy events and pairs them into
//! deployments. `main.rs` only parses the command line; everything else is here so
//! the tests run the very same application.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod seed;
pub mod startup;
pub mod telemetry;
pub mod tokens;
