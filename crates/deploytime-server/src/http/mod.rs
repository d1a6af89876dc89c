//! The HTTP layer: the route table and its handlers, the request guard, the
//! errors and their problem bodies, the request log, the metrics and the
//! OpenAPI description. It calls the access and data layers and the domain;
//! what it needs of the server's settings is passed in ([`HttpSettings`]).

mod error;
mod guard;
mod metrics;
mod pages;
mod reports;
mod request_log;
mod routes;
mod settings;

pub use metrics::Metrics;
pub(crate) use request_log::log_request;
pub(crate) use routes::limit_time;
pub use settings::HttpSettings;

/// Every route: the dashboard's pages and the API.
pub(crate) fn configure(cfg: &mut actix_web::web::ServiceConfig, settings: &HttpSettings) {
    pages::configure(cfg);
    routes::configure(cfg, settings);
}
