//! What the HTTP layer needs of the server's settings, passed in by start-up.

use std::time::Duration;

use deploytime_core::AbandonPolicy;

use crate::access::HookSecrets;

/// What the routes and middleware need of the server's settings.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// When a running deployment is reported as abandoned.
    pub abandon: AbandonPolicy,
    /// A request still unanswered after this long is answered 503.
    pub request_timeout: Duration,
    /// Whether `/metrics` needs the read role.
    pub protect_metrics: bool,
    /// The webhook endpoints' secrets.
    pub hooks: HookSecrets,
}
