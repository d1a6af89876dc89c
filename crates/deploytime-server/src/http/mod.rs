//! The HTTP layer: the route table and its handlers, the request guard, the
//! errors and their problem bodies, the request log, the metrics and the
//! OpenAPI description. It calls the access and data layers and the domain;
//! what it needs of the server's settings is passed in ([`HttpSettings`]).

mod error;
mod guard;
mod metrics;
mod reports;
mod request_log;
mod routes;

use std::time::Duration;

use deploytime_core::AbandonPolicy;

pub use metrics::Metrics;
pub(crate) use request_log::log_request;
pub(crate) use routes::{configure, limit_time};

/// What the routes and middleware need of the server's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// When a running deployment is reported as abandoned.
    pub abandon: AbandonPolicy,
    /// A request still unanswered after this long is answered 503.
    pub request_timeout: Duration,
    /// Whether `/metrics` needs the read role.
    pub protect_metrics: bool,
}
