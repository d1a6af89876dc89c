//! The command line: clap derive, the doc comments are the help text, and every
//! option a pipeline would set once has an environment variable.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use deploytime_core::{ReportedState, Status};
use uuid::Uuid;

use crate::exit;

#[derive(Debug, Parser)]
#[command(
    name = "deploytime",
    version,
    about = "Records how long deployments take: start, finish, or run a deploy command",
    after_help = exit::HELP
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The deploytime server.
    #[arg(
        long,
        env = "DEPLOYTIME_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[arg(long, env = "DEPLOYTIME_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Time allowed for each request (5s, 500ms, ...).
    #[arg(long, env = "DEPLOYTIME_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub timeout: Duration,
    /// How long to keep retrying an unreachable server before spooling the event.
    #[arg(long, env = "DEPLOYTIME_RETRY_FOR", default_value = "20s", value_parser = parse_duration, global = true)]
    pub retry_for: Duration,
    /// The spool file: events the server has not acknowledged yet, one JSON line
    /// each [default: $XDG_STATE_HOME/deploytime/spool.jsonl].
    #[arg(long, env = "DEPLOYTIME_SPOOL", global = true)]
    pub spool: Option<PathBuf>,
    /// Exit non-zero when the server cannot be reached, instead of warning.
    #[arg(
        long,
        env = "DEPLOYTIME_STRICT",
        global = true,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub strict: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record the start of a deployment and print its id on stdout.
    ///
    /// ID=$(deploytime start api --version 1.4.2)
    #[command(after_help = exit::HELP)]
    Start(StartArgs),
    /// Record the end of a deployment.
    #[command(after_help = exit::HELP)]
    Finish(FinishArgs),
    /// Record a deployment around a command: start, run it, finish with its outcome.
    ///
    /// The finish is `success`, `exit-N`, or `cancelled` when deploytime was
    /// stopped by SIGINT/SIGTERM (which the command receives too). Exits with the
    /// command's own exit code.
    #[command(after_help = exit::HELP)]
    Run(RunArgs),
    /// Send the events waiting in the spool, oldest first.
    #[command(after_help = exit::HELP)]
    Flush,
    /// List deployments, newest first.
    Deployments(DeploymentsArgs),
    /// Deployment statistics: counts, success rate, duration percentiles.
    Stats(StatsArgs),
    /// Write events or deployments as CSV.
    Export(ExportArgs),
    /// Correct a recorded deployment (admin): its version, owner, final status
    /// or finish time, with the reason, kept in its corrections.
    ///
    /// deploytime correct ID --status cancelled --finished-at 2026-11-29T10:00:00Z --reason "runner crashed"
    #[command(after_help = exit::HELP)]
    Correct(CorrectArgs),
    /// The release gate: ask approvers for a release and wait for their decision.
    ///
    /// deploytime release request --id 386 --name Desafio-CD --project Devx --wait 2h
    #[command(subcommand)]
    Release(ReleaseCommand),
    /// Print a shell completion script.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// What an event says about its deployment.
#[derive(Debug, Clone, Args)]
pub struct EventArgs {
    /// What is deployed (api, billing/worker, ...).
    pub component: String,
    /// The environment deployed to.
    #[arg(long = "env", env = "DEPLOYTIME_ENV", default_value = "production")]
    pub environment: String,
    /// The version being deployed.
    #[arg(long = "version", id = "deploy_version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Who deploys.
    #[arg(long)]
    pub owner: Option<String>,
    /// An attribute to store with the event; repeat for more.
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attribute)]
    pub attributes: Vec<(String, String)>,
    /// The deployment's id: chosen by `start` when not given; `finish` closes it.
    #[arg(long, env = "DEPLOYTIME_DEPLOYMENT_ID")]
    pub deployment_id: Option<Uuid>,
    /// Do not add the CI system's run id, commit and run URL to the attributes.
    #[arg(long)]
    pub no_ci_metadata: bool,
    /// With `start` and `run` in a git checkout: record the commits since REF
    /// (a commit, tag or branch) instead of since the commit the server says
    /// was deployed last.
    #[arg(long, value_name = "REF", env = "DEPLOYTIME_COMMITS_SINCE")]
    pub commits_since: Option<String>,
    /// Do not record the commits the deployment ships.
    #[arg(long, conflicts_with = "commits_since")]
    pub no_commits: bool,
    /// The deployment rolls back to an earlier version.
    #[arg(long)]
    pub rollback: bool,
    #[command(flatten)]
    pub release: ReleaseLink,
}

/// The release a deployment carries out, stored with its events as the
/// attributes `release_id` and `team_project`: the approval's waiting time is
/// the release's, the deploy's duration the deployment's.
#[derive(Debug, Clone, Default, Args)]
pub struct ReleaseLink {
    /// The approved release this deployment carries out (`release request --id`).
    #[arg(long, env = "DEPLOYTIME_RELEASE_ID", value_name = "ID", requires = "release_project", value_parser = release_id_arg)]
    pub release_id: Option<String>,
    /// The release's team project (`release request --project`).
    #[arg(long, env = "DEPLOYTIME_RELEASE_PROJECT", value_name = "PROJECT", requires = "release_id", value_parser = team_project_arg)]
    pub release_project: Option<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub event: EventArgs,
}

#[derive(Debug, Args)]
pub struct FinishArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// `success`, `cancelled`, or an error code (letters, digits, . _ -) meaning failure.
    #[arg(long, value_parser = status_arg)]
    pub status: Status,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub event: EventArgs,
    /// The command to run, after `--`.
    #[arg(last = true, required = true, value_name = "COMMAND", value_parser = clap::value_parser!(OsString))]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Register a release for approval and print where it stands; with --wait,
    /// wait for the decision and exit with its code.
    ///
    /// Repeating the call with the same options is safe: it answers the
    /// release's current state. Approvers are asked by mail by the server.
    #[command(after_help = exit::RELEASE_HELP)]
    Request(ReleaseRequestArgs),
    /// Print where a release stands; with --wait, wait for the decision and
    /// exit with its code.
    #[command(after_help = exit::RELEASE_HELP)]
    Status(ReleaseStatusArgs),
}

/// Which release.
#[derive(Debug, Clone, Args)]
pub struct ReleaseKeyArgs {
    /// The release's id within its project (1–128 characters, no `/`).
    #[arg(long, env = "DEPLOYTIME_RELEASE_ID", value_name = "ID", value_parser = release_id_arg)]
    pub id: String,
    /// The release's team project (1–128 characters, no `/`).
    #[arg(long, env = "DEPLOYTIME_RELEASE_PROJECT", value_name = "PROJECT", value_parser = team_project_arg)]
    pub project: String,
}

/// How long to wait for a decision, and how to print the release.
#[derive(Debug, Clone, Args)]
pub struct ReleaseWaitArgs {
    /// Wait up to this long (30m, 2h, 3d) for the release to be decided, then
    /// exit with the outcome's code (approved 0, rejected 10, expired 11,
    /// failed 12, still pending 13). `--wait 0s` looks once and exits with the
    /// code. Without it the state is printed and the exit code is 0.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = ReleaseFormat::Table)]
    pub output: ReleaseFormat,
}

#[derive(Debug, Args)]
pub struct ReleaseRequestArgs {
    #[command(flatten)]
    pub key: ReleaseKeyArgs,
    /// The release's name, shown to approvers (1–256 characters).
    #[arg(long, env = "DEPLOYTIME_RELEASE_NAME", value_name = "NAME")]
    pub name: String,
    /// What is released (api, billing/worker, ...).
    #[arg(long)]
    pub component: Option<String>,
    /// The environment it is released to.
    #[arg(long, visible_alias = "env", env = "DEPLOYTIME_ENV")]
    pub environment: Option<String>,
    /// The version released.
    #[arg(long = "version", id = "release_version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Who asks (an e-mail address or a name): they may not approve it
    /// themselves.
    #[arg(long, env = "DEPLOYTIME_REQUESTED_BY", value_name = "WHO")]
    pub requested_by: Option<String>,
    /// Approvals needed (1–100) [default: every approver who may approve].
    #[arg(long, value_name = "N")]
    pub required_approvals: Option<u32>,
    /// How long approvers have before the release expires (72h by default,
    /// at most 30d).
    #[arg(long, value_name = "DURATION")]
    pub expires_in: Option<String>,
    #[command(flatten)]
    pub wait: ReleaseWaitArgs,
}

#[derive(Debug, Args)]
pub struct ReleaseStatusArgs {
    #[command(flatten)]
    pub key: ReleaseKeyArgs,
    #[command(flatten)]
    pub wait: ReleaseWaitArgs,
}

/// How a release is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReleaseFormat {
    /// The release, then who was asked and what they decided.
    Table,
    /// The API's JSON (durations in seconds), with the audit once read.
    Json,
}

/// How read commands print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns, durations like `3m 12s`.
    Table,
    /// JSON, durations in seconds.
    Json,
    /// CSV with a header row, durations in seconds.
    Csv,
}

/// Which rows to read.
#[derive(Debug, Clone, Args)]
pub struct Filters {
    /// Only this component.
    pub component: Option<String>,
    /// Only this environment.
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// Only deployments in this state (deployments only); abandoned: still
    /// running after the server's abandon-after time (default 24h).
    #[arg(long, value_parser = state_parser())]
    pub state: Option<ReportedState>,
    /// From this time on: a duration back from now (7d, 12h) or an RFC 3339 time or date.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Up to this time: a duration back from now or an RFC 3339 time or date.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    #[command(flatten)]
    pub filters: Filters,
    /// How many deployments to show at most.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this component.
    pub component: Option<String>,
    /// Only this environment.
    #[arg(long = "env")]
    pub environment: Option<String>,
    /// From this time on: a duration back from now or an RFC 3339 time or date.
    #[arg(long, value_parser = parse_time, default_value = "30d")]
    pub since: DateTime<Utc>,
    /// Up to this time.
    #[arg(long, value_parser = parse_time)]
    pub until: Option<DateTime<Utc>>,
    /// How to group: component, environment, component,environment or none.
    #[arg(long, default_value = "component", value_parser = ["component", "environment", "component,environment", "none"])]
    pub group_by: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// One row per start or finish event.
    Events,
    /// One row per deployment.
    Deployments,
}

impl ExportKind {
    pub fn path(self) -> &'static str {
        match self {
            ExportKind::Events => deploytime_core::wire::paths::EVENTS,
            ExportKind::Deployments => deploytime_core::wire::paths::DEPLOYMENTS,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// What to export.
    #[arg(value_enum)]
    pub kind: ExportKind,
    #[command(flatten)]
    pub filters: Filters,
    /// Write to this file instead of stdout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CorrectArgs {
    /// The deployment's id.
    pub id: Uuid,
    /// Its final status: `success`, `cancelled`, or an error code. Closing a
    /// running (or abandoned) deployment needs --finished-at too.
    #[arg(long, value_parser = status_arg)]
    pub status: Option<Status>,
    /// When it finished: an RFC 3339 time, a date, or a duration back from now.
    #[arg(long, value_parser = parse_time)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Its version ("" clears it).
    #[arg(long = "version", id = "corrected_version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Who deployed it ("" clears it).
    #[arg(long)]
    pub owner: Option<String>,
    /// Why the record is corrected; kept with the correction.
    #[arg(long)]
    pub reason: String,
    /// Output format of the corrected deployment.
    #[arg(long, short, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// `5s`, `500ms`, `1m 30s`, or a plain number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if let Ok(seconds) = value.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string());
    }
    humantime::parse_duration(value).map_err(|e| format!("{e} (write e.g. 5s, 500ms, 2m)"))
}

/// `7d` (seven days ago), `2026-11-01T12:00:00Z`, or `2026-11-01` (midnight UTC).
pub fn parse_time(value: &str) -> Result<DateTime<Utc>, String> {
    parse_time_at(value, Utc::now())
}

fn parse_time_at(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(value) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(date) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    let ago = humantime::parse_duration(value).map_err(|_| {
        format!("{value:?} is neither a duration (7d, 12h) nor an RFC 3339 time or date")
    })?;
    let ago = chrono::Duration::from_std(ago).map_err(|e| e.to_string())?;
    now.checked_sub_signed(ago)
        .ok_or_else(|| format!("{value} reaches too far back"))
}

/// `KEY=VALUE`; the value may contain `=`.
fn parse_attribute(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{value:?} is not KEY=VALUE")),
    }
}

/// The server's own rule (the domain's parser), checked before anything is
/// sent: a mistyped status should fail the call now, not be spooled and
/// rejected later.
fn status_arg(value: &str) -> Result<Status, String> {
    Status::parse(value).map_err(|reason| format!("{value:?}: {reason}"))
}

/// The release's part of a release link, by the server's own rule.
fn release_id_arg(value: &str) -> Result<String, String> {
    key_part(value, "release_id")
}

fn team_project_arg(value: &str) -> Result<String, String> {
    key_part(value, "team_project")
}

/// `value` as the server stores it in `field` of a release request (trimmed),
/// or the server's own reason for refusing it.
fn key_part(value: &str, field: &str) -> Result<String, String> {
    let mut body = serde_json::json!({
        "release_name": "-", "release_id": "-", "team_project": "-"
    });
    body[field] = serde_json::Value::String(value.to_owned());
    match deploytime_core::release::ReleaseRequest::from_json(&body) {
        Ok(request) if field == "release_id" => Ok(request.key.release_id),
        Ok(request) => Ok(request.key.team_project),
        Err(errors) => Err(errors
            .0
            .into_iter()
            .map(|e| e.message)
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

/// The reported states, by the names the domain gives them.
fn state_parser() -> impl TypedValueParser<Value = ReportedState> {
    PossibleValuesParser::new(ReportedState::ALL.map(ReportedState::as_str)).try_map(
        |name: String| ReportedState::parse(&name).ok_or_else(|| format!("unknown state {name:?}")),
    )
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
    fn times_are_durations_back_dates_or_instants() {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_time_at("7d", now).unwrap().to_rfc3339(),
            "2026-11-15T12:00:00+00:00"
        );
        assert_eq!(
            parse_time_at("2026-11-01", now).unwrap().to_rfc3339(),
            "2026-11-01T00:00:00+00:00"
        );
        assert_eq!(
            parse_time_at("2026-11-01T10:00:00+02:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T08:00:00+00:00"
        );
        assert!(parse_time_at("last tuesday", now).is_err());
    }

    #[test]
    fn durations_accept_units_and_plain_seconds() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn attributes_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_attribute("url=https://x/?a=b").unwrap(),
            ("url".to_owned(), "https://x/?a=b".to_owned())
        );
        assert!(parse_attribute("novalue").is_err());
        assert!(parse_attribute("=v").is_err());
    }

    #[test]
    fn statuses_follow_the_servers_rule() {
        let finish =
            |status: &str| Cli::try_parse_from(["deploytime", "finish", "api", "--status", status]);
        for ok in ["success", "cancelled", "exit-2", "E4031", "timeout.db_1"] {
            assert!(finish(ok).is_ok(), "{ok}");
        }
        for bad in ["", "exit 2", "späť", &"x".repeat(65)] {
            assert!(finish(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_release_link_needs_both_parts_by_the_servers_rule() {
        let link = |extra: &[&str]| {
            let mut args = vec!["deploytime", "run", "api"];
            args.extend_from_slice(extra);
            args.extend_from_slice(&["--", "true"]);
            Cli::try_parse_from(args).map(|cli| match cli.command {
                Command::Run(args) => args.event.release,
                _ => ReleaseLink::default(),
            })
        };
        let both = link(&["--release-id", " 386 ", "--release-project", "Devx"]).unwrap();
        assert_eq!(both.release_id.as_deref(), Some("386"), "trimmed as stored");
        assert_eq!(both.release_project.as_deref(), Some("Devx"));
        assert!(link(&["--release-id", "386"]).is_err());
        assert!(link(&["--release-project", "Devx"]).is_err());
        assert!(link(&["--release-id", "3/86", "--release-project", "Devx"]).is_err());
        assert!(link(&[]).unwrap().release_id.is_none());
    }

    #[test]
    fn release_waits_are_durations() {
        let wait = |value: &str| {
            Cli::try_parse_from([
                "deploytime",
                "release",
                "status",
                "--id",
                "386",
                "--project",
                "Devx",
                "--wait",
                value,
            ])
            .map(|cli| match cli.command {
                Command::Release(ReleaseCommand::Status(args)) => args.wait.wait,
                _ => None,
            })
        };
        assert_eq!(wait("2h").unwrap(), Some(Duration::from_secs(7200)));
        assert_eq!(wait("0s").unwrap(), Some(Duration::ZERO));
        assert!(wait("until approved").is_err());
    }

    #[test]
    fn states_are_the_reported_states() {
        let state = |state: &str| {
            Cli::try_parse_from(["deploytime", "deployments", "--state", state]).map(
                |cli| match cli.command {
                    Command::Deployments(args) => args.filters.state,
                    _ => None,
                },
            )
        };
        assert_eq!(state("abandoned").unwrap(), Some(ReportedState::Abandoned));
        assert!(state("done").is_err());
    }
}
