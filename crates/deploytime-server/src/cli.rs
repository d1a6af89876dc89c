//! The binary's command line (not part of the library): clap types, every flag
//! with an environment fallback so that containers and systemd units configure
//! the server without arguments. Defaults come from `Settings` and `SeedPlan`.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use deploytime_core::release::GatePolicy;
use deploytime_server::access::Role;
use deploytime_server::db::DatabaseUrl;
use deploytime_server::db::seed::SeedPlan;
use deploytime_server::gate::GateSettings;
use deploytime_server::settings::Settings;
use deploytime_server::telemetry::LogFormat;

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
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Write synthetic deployment history (deployments, their events, and
    /// incidents after some failed production deployments) into the database,
    /// for benchmarks.
    Seed(SeedArgs),
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
        #[arg(long, value_parser = role_parser())]
        role: Role,
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

/// The roles, by the names the domain gives them.
fn role_parser() -> impl TypedValueParser<Value = Role> {
    PossibleValuesParser::new(Role::ALL.map(Role::as_str))
        .try_map(|name: String| Role::parse(&name).ok_or_else(|| format!("unknown role {name:?}")))
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
pub enum LogFormatArg {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(format: LogFormatArg) -> Self {
        match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// A duration given as `24h`, `90m`, `2d` (shown the same way in `--help`).
fn span(duration: std::time::Duration) -> humantime::Duration {
    duration.into()
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, env = "DEPLOYTIME_BIND", default_value = Settings::DEFAULT_BIND)]
    pub bind: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// A MySQL/MariaDB replica of the database that listings, statistics,
    /// exports and the dashboard read from (writes, token checks and a
    /// deployment fetched by its id stay on the primary). Not with SQLite.
    #[arg(long, env = "DEPLOYTIME_READ_DATABASE_URL", hide_env_values = true)]
    pub read_database_url: Option<String>,
    /// A read replica further behind than this is passed over for the
    /// primary, and /readyz says the server is degraded (e.g. 30s).
    #[arg(long, env = "DEPLOYTIME_MAX_REPLICA_LAG", default_value_t = span(Settings::DEFAULT_MAX_REPLICA_LAG))]
    pub max_replica_lag: humantime::Duration,
    /// Maximum number of database connections.
    #[arg(long, env = "DEPLOYTIME_POOL_SIZE", default_value_t = Settings::DEFAULT_POOL_SIZE)]
    pub pool_size: u32,
    /// HTTP worker threads (default: one per CPU).
    #[arg(long, env = "DEPLOYTIME_WORKERS")]
    pub workers: Option<usize>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT.
    #[arg(long, env = "DEPLOYTIME_SHUTDOWN_TIMEOUT", default_value_t = Settings::DEFAULT_SHUTDOWN_TIMEOUT)]
    pub shutdown_timeout: u64,
    /// A deployment still running after this long is reported as abandoned and
    /// left out of duration statistics (e.g. 24h, 90m, 2d).
    #[arg(long, env = "DEPLOYTIME_ABANDON_AFTER", default_value_t = span(Settings::DEFAULT_ABANDON_AFTER))]
    pub abandon_after: humantime::Duration,
    /// Log format.
    #[arg(long, env = "DEPLOYTIME_LOG_FORMAT", value_enum, default_value_t = LogFormatArg::Text)]
    pub log_format: LogFormatArg,
    /// Serve anonymous calls while no token exists even on a non-loopback
    /// address (anyone who can reach the server can then write and delete).
    #[arg(long, env = "DEPLOYTIME_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// Put /metrics behind the read role.
    #[arg(long, env = "DEPLOYTIME_PROTECT_METRICS")]
    pub protect_metrics: bool,
    /// A request still unanswered after this long is answered 503 (e.g. 30s).
    #[arg(long, env = "DEPLOYTIME_REQUEST_TIMEOUT", default_value_t = span(Settings::DEFAULT_REQUEST_TIMEOUT))]
    pub request_timeout: humantime::Duration,
    /// How long a request waits for a database connection before it is answered
    /// 503; also the readiness probe's limit.
    #[arg(long, env = "DEPLOYTIME_DB_TIMEOUT", default_value_t = span(Settings::DEFAULT_DB_TIMEOUT))]
    pub db_timeout: humantime::Duration,
    /// Database calls in flight at most (running or waiting for a connection);
    /// beyond that, requests are answered 503 at once instead of queueing.
    #[arg(long, env = "DEPLOYTIME_MAX_DB_WORK", default_value_t = Settings::DEFAULT_MAX_DB_WORK)]
    pub max_db_work: usize,
    #[command(flatten)]
    pub gate: GateArgs,
    #[command(flatten)]
    pub hooks: HookArgs,
}

/// The webhook endpoints. Each takes up to three secrets, comma-separated or
/// by repeating the flag, so that a secret can be rotated without refusing a
/// delivery: add the new one, change it at the provider, remove the old one.
/// Prefer the environment to the flag: a flag's value shows in `ps`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Webhooks")]
pub struct HookArgs {
    /// The secret of GitHub's webhook, which signs each delivery
    /// (X-Hub-Signature-256); POST /api/v1/hooks/github answers 404 without one.
    #[arg(
        long,
        env = "DEPLOYTIME_GITHUB_WEBHOOK_SECRET",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub github_webhook_secret: Vec<String>,
    /// The secret token of GitLab's webhook (X-Gitlab-Token);
    /// POST /api/v1/hooks/gitlab answers 404 without one.
    #[arg(
        long,
        env = "DEPLOYTIME_GITLAB_WEBHOOK_TOKEN",
        value_delimiter = ',',
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub gitlab_webhook_token: Vec<String>,
}

/// The release gate: who approves, how they are mailed.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Release gate")]
pub struct GateArgs {
    /// Where to ask who approves a release: a URL answering JSON, with
    /// {release_id}, {team_project} and {release_name} put in.
    /// It may hold credentials (https://user:password@…), so its value is
    /// never shown.
    #[arg(long, env = "DEPLOYTIME_APPROVERS_URL", hide_env_values = true)]
    pub approvers_url: Option<String>,
    /// A JSON file of approvers per team project ("*" for any other), asked
    /// before the approvers URL.
    #[arg(long, env = "DEPLOYTIME_APPROVERS_FILE")]
    pub approvers_file: Option<std::path::PathBuf>,
    /// The mail server: smtp://host:25, smtp://user:password@host:587?tls=required
    /// or smtps://user:password@host:465 (the password is never logged).
    #[arg(long, env = "DEPLOYTIME_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// The sender of approval mails.
    #[arg(long, env = "DEPLOYTIME_MAIL_FROM", default_value = GateSettings::DEFAULT_MAIL_FROM)]
    pub mail_from: String,
    /// The base URL put into approval links, as approvers reach the server
    /// (e.g. https://deploytime.example.com); default: the listening address.
    #[arg(long, env = "DEPLOYTIME_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let a requester who is also an approver approve their own release
    /// (for teams of one).
    #[arg(long, env = "DEPLOYTIME_ALLOW_SELF_APPROVAL")]
    pub allow_self_approval: bool,
    /// How long before a release expires the approvers who have not answered
    /// are reminded, once.
    #[arg(long, env = "DEPLOYTIME_APPROVAL_REMINDER", default_value_t = span(GatePolicy::DEFAULT_REMIND_BEFORE))]
    pub approval_reminder: humantime::Duration,
}

/// What `seed` generates.
#[derive(Debug, Clone, Args)]
pub struct SeedArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// How many deployments to write.
    #[arg(long, default_value_t = SeedPlan::BENCHMARK.deployments)]
    pub deployments: u64,
    /// How many components they belong to.
    #[arg(long, default_value_t = SeedPlan::BENCHMARK.components)]
    pub components: u32,
    /// How many environments each component is deployed to.
    #[arg(long, default_value_t = SeedPlan::BENCHMARK.environments)]
    pub environments: u32,
    /// How far back the history goes, in days.
    #[arg(long, default_value_t = SeedPlan::BENCHMARK.days)]
    pub days: i64,
    /// Seed of the pseudo-random generator.
    #[arg(long, default_value_t = SeedPlan::BENCHMARK.seed)]
    pub seed: u64,
}

impl SeedArgs {
    pub fn plan(&self) -> SeedPlan {
        SeedPlan {
            deployments: self.deployments,
            components: self.components,
            environments: self.environments,
            days: self.days,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_defaults_are_the_settings_defaults() {
        let cli = Cli::try_parse_from(["deploytime-server"]).unwrap();
        let serve = cli.serve;
        assert_eq!(serve.bind, "127.0.0.1:8080");
        assert_eq!(
            *serve.abandon_after,
            std::time::Duration::from_secs(24 * 3600)
        );
        assert_eq!(*serve.request_timeout, std::time::Duration::from_secs(30));
        assert_eq!(*serve.db_timeout, std::time::Duration::from_secs(2));
        assert_eq!(serve.pool_size, 8);
        assert_eq!(serve.max_db_work, 128);
        assert_eq!(serve.read_database_url, None);
        assert_eq!(*serve.max_replica_lag, std::time::Duration::from_secs(30));
        let role = Cli::try_parse_from([
            "deploytime-server",
            "token",
            "create",
            "--name",
            "ci",
            "--role",
            "ingest",
        ])
        .unwrap();
        assert!(matches!(
            role.command,
            Some(Command::Token(TokenCommand::Create {
                role: Role::Ingest,
                ..
            }))
        ));
    }
}
