//! What the server needs to run, with every default written once. The binary
//! fills it from its command line and environment; tests build it directly.

use std::time::Duration;

use deploytime_core::AbandonPolicy;

use crate::access::{HookSecrets, Secret};
use crate::db::{DatabaseUrl, DbLimits, ReplicaSettings};
use crate::gate::GateSettings;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address and port to listen on.
    pub bind: String,
    pub database_url: DatabaseUrl,
    /// A MySQL/MariaDB replica of `database_url` that reports read from.
    pub read_database_url: Option<DatabaseUrl>,
    /// A replica further behind than this is passed over for the primary.
    pub max_replica_lag: Duration,
    pub pool_size: u32,
    /// HTTP worker threads (`None`: one per CPU).
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: u64,
    /// A deployment still running after this long is reported as abandoned.
    pub abandon_after: Duration,
    /// Whether SIGTERM/SIGINT stop the server (off in tests, which stop it themselves).
    pub handle_signals: bool,
    /// Serve anonymous calls without tokens on a non-loopback address.
    pub allow_anonymous: bool,
    /// `DEPLOYTIME_ADMIN_TOKEN`: an admin token kept in memory (only its digest).
    pub admin_token: Option<Secret>,
    /// Whether /metrics needs the read role.
    pub protect_metrics: bool,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Longest wait for a database connection, and the readiness probe's limit.
    pub db_timeout: Duration,
    /// Database calls in flight at most; more are answered 503 at once.
    pub max_db_work: usize,
    /// The release gate: approver source, mail, links, policy.
    pub gate: GateSettings,
    /// The secrets of the GitHub and GitLab webhook endpoints (none: off).
    pub hooks: HookSecrets,
}

impl Settings {
    /// The address the server listens on unless told otherwise.
    pub const DEFAULT_BIND: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_SHUTDOWN_TIMEOUT: u64 = 30;
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
    pub const DEFAULT_ABANDON_AFTER: Duration = AbandonPolicy::DEFAULT_AFTER;
    pub const DEFAULT_POOL_SIZE: u32 = DbLimits::DEFAULT.pool_size;
    pub const DEFAULT_DB_TIMEOUT: Duration = DbLimits::DEFAULT.checkout_timeout;
    pub const DEFAULT_MAX_DB_WORK: usize = DbLimits::DEFAULT.max_in_flight;
    pub const DEFAULT_MAX_REPLICA_LAG: Duration = ReplicaSettings::DEFAULT_MAX_LAG;

    /// The defaults for a listener and a database; callers override what they
    /// need with struct update syntax, so new settings do not break them.
    pub fn new(bind: impl Into<String>, database_url: DatabaseUrl) -> Self {
        Self {
            bind: bind.into(),
            database_url,
            read_database_url: None,
            max_replica_lag: Self::DEFAULT_MAX_REPLICA_LAG,
            pool_size: Self::DEFAULT_POOL_SIZE,
            workers: None,
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            abandon_after: Self::DEFAULT_ABANDON_AFTER,
            handle_signals: true,
            allow_anonymous: false,
            admin_token: None,
            protect_metrics: false,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
            db_timeout: Self::DEFAULT_DB_TIMEOUT,
            max_db_work: Self::DEFAULT_MAX_DB_WORK,
            gate: GateSettings::new(None),
            hooks: HookSecrets::default(),
        }
    }

    /// The database limits these settings ask for.
    pub fn db_limits(&self) -> DbLimits {
        DbLimits {
            pool_size: self.pool_size,
            checkout_timeout: self.db_timeout,
            max_in_flight: self.max_db_work,
        }
    }

    /// The read replica these settings ask for, if any.
    pub fn replica(&self) -> Option<ReplicaSettings> {
        self.read_database_url.clone().map(|url| ReplicaSettings {
            url,
            max_lag: self.max_replica_lag,
        })
    }
}
