//! The connection pool and the limits on the database work the server takes on.

use std::time::Duration;

use super::connection::{DatabaseUrl, DbConnectionManager};
use super::error::SetupError;

pub type Pool = r2d2::Pool<DbConnectionManager>;

/// How much database work the server takes on, and how long it waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbLimits {
    pub pool_size: u32,
    /// Longest wait for a pooled connection: an unreachable database is reported
    /// (503) after this long instead of holding requests.
    pub checkout_timeout: Duration,
    /// Database calls in flight at most, running or waiting for a connection.
    pub max_in_flight: usize,
}

impl DbLimits {
    /// The defaults of `deploytime-server serve`.
    pub const DEFAULT: DbLimits = DbLimits {
        pool_size: 8,
        checkout_timeout: Duration::from_secs(2),
        max_in_flight: 128,
    };
}

impl Default for DbLimits {
    fn default() -> Self {
        DbLimits::DEFAULT
    }
}

/// Builds the pool; one connection is opened at once, so an unreachable
/// database is reported at start-up.
pub(crate) fn build(url: &DatabaseUrl, limits: &DbLimits) -> Result<Pool, SetupError> {
    r2d2::Pool::builder()
        .max_size(limits.pool_size.max(1))
        .min_idle(Some(1))
        .connection_timeout(limits.checkout_timeout.max(Duration::from_millis(10)))
        .error_handler(Box::new(LogPoolErrors))
        .build(DbConnectionManager::new(url.clone()))
        .map_err(|source| SetupError::Pool {
            url: url.clone(),
            source,
        })
}

/// Pool errors go to the log, through tracing like everything else.
#[derive(Debug)]
pub(crate) struct LogPoolErrors;

impl<E: std::fmt::Display> r2d2::HandleError<E> for LogPoolErrors {
    fn handle_error(&self, error: E) {
        tracing::warn!(%error, "database connection failed");
    }
}
