//! Command line and environment: every flag has an environment fallback so that
//! containers and systemd units configure the server without arguments.

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::db::DatabaseUrl;

#[derive(Debug, Parser)]
#[command(
    name = "deploytime-server",
    version,
    about = "Stores deploy start/finish events and reports how long deployments take",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Options of `serve`, the default command.
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Write synthetic deployment history into the database (for benchmarks).
    Seed(crate::seed::SeedArgs),
    /// Manage API tokens: create (shown once), list, revoke.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it on stdout: it is shown this once, only its
    /// hash is stored.
    Create {
        /// A name to list and revoke it by (e.g. gitlab-runner).
        #[arg(long)]
        name: String,
        /// ingest: record events; read: GET endpoints; admin: everything.
        #[arg(long, value_enum)]
        role: crate::auth::Role,
        /// Limit the events it may record: component=NAME or environment=NAME,
        /// repeatable (default: any).
        #[arg(long = "scope", value_name = "KIND=NAME")]
        scope: Vec<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List tokens: name, role, scope, creation time (never the token).
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a token; a running server refuses it from its next request on.
    Revoke {
        /// The token's name.
        name: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Where to store data: mysql://user:password@host:3306/database, sqlite://PATH
    /// or a plain SQLite file path.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DatabaseUrl::DEFAULT,
        hide_env_values = true
    )]
    pub database_url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "DEPLOYTIME_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Maximum number of database connections.
    #[arg(long, env = "DEPLOYTIME_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,
    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "DEPLOYTIME_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "DEPLOYTIME_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// A deployment still running after this long is reported as abandoned and
    /// left out of duration statistics (e.g. 24h, 90m, 2d).
    #[arg(long, env = "DEPLOYTIME_ABANDON_AFTER", default_value = "24h", value_parser = humantime::parse_duration)]
    pub abandon_after: std::time::Duration,
    /// Log format.
    #[arg(long, env = "DEPLOYTIME_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Serve anonymous calls while no token exists even on a non-loopback
    /// address (anyone who can reach the server can then write and delete).
    #[arg(long, env = "DEPLOYTIME_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Put /metrics behind the read role.
    #[arg(long, env = "DEPLOYTIME_PROTECT_METRICS")]
    pub protect_metrics: bool,
    /// A request still unanswered after this long is answered 503 (e.g. 30s).
    #[arg(long, env = "DEPLOYTIME_REQUEST_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub request_timeout: std::time::Duration,
    /// How long a request waits for a database connection before it is answered
    /// 503; also the readiness probe's limit.
    #[arg(long, env = "DEPLOYTIME_DB_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub db_timeout: std::time::Duration,
    /// Database calls in flight at most (running or waiting for a connection);
    /// beyond that, requests are answered 503 at once instead of queueing.
    #[arg(long, env = "DEPLOYTIME_MAX_DB_WORK", default_value_t = 128)]
    pub max_db_work: usize,
}

/// What the server needs to run; tests build it directly.
#[derive(Debug, Clone)]
pub struct Settings {
    pub bind: String,
    pub database_url: DatabaseUrl,
    pub pool_size: u32,
    pub workers: Option<usize>,
    pub shutdown_timeout: u64,
    pub abandon_after: std::time::Duration,
    /// Whether SIGTERM/SIGINT stop the server (off in tests, which stop it themselves).
    pub handle_signals: bool,
    /// Serve anonymous calls without tokens on a non-loopback address.
    pub allow_anonymous: bool,
    /// `DEPLOYTIME_ADMIN_TOKEN`: an admin token kept in memory (only its hash).
    pub admin_token: Option<crate::auth::Secret>,
    /// Whether /metrics needs the read role.
    pub protect_metrics: bool,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout: std::time::Duration,
    /// Longest wait for a database connection, and the readiness probe's limit.
    pub db_timeout: std::time::Duration,
    /// Database calls in flight at most; more are answered 503 at once.
    pub max_db_work: usize,
}

impl Settings {
    /// The defaults of `serve` for a listener and a database; callers override
    /// what they need with struct update syntax, so new settings do not break them.
    pub fn new(bind: impl Into<String>, database_url: DatabaseUrl) -> Self {
        Self {
            bind: bind.into(),
            database_url,
            pool_size: 8,
            workers: None,
            shutdown_timeout: 30,
            abandon_after: std::time::Duration::from_secs(24 * 3600),
            handle_signals: true,
            allow_anonymous: false,
            admin_token: None,
            protect_metrics: false,
            request_timeout: std::time::Duration::from_secs(30),
            db_timeout: std::time::Duration::from_secs(2),
            max_db_work: 128,
        }
    }
}
