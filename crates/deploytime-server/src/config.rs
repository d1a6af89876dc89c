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
        }
    }
}
