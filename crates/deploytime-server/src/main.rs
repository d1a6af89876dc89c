//! The `deploytime-server` binary: parse the command line, then serve, migrate,
//! seed or manage tokens.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use deploytime_server::access::{HookSecrets, Secret, tokens};
use deploytime_server::db::{self, DatabaseUrl};
use deploytime_server::settings::Settings;
use deploytime_server::startup::Application;
use deploytime_server::telemetry::{self, LogFormat};

use cli::{Cli, Command, GateArgs, ServeArgs, TokenCommand};
use deploytime_core::release::{GatePolicy, StaticApprovers};
use deploytime_server::gate::GateSettings;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "deploytime-server stopped");
            eprintln!("deploytime-server: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Migrate(args)) => {
            telemetry::init(LogFormat::Text);
            let url = DatabaseUrl::parse(&args.database_url)?;
            let applied = db::migrate(&url)?;
            if applied.is_empty() {
                eprintln!("{url}: up to date");
            }
            for migration in applied {
                eprintln!("{url}: applied {migration}");
            }
            Ok(())
        }
        Some(Command::Seed(args)) => {
            telemetry::init(LogFormat::Text);
            let url = DatabaseUrl::parse(&args.database.database_url)?;
            let started = std::time::Instant::now();
            let seeded = db::seed::seed(&url, &args.plan())?;
            eprintln!(
                "seeded {} deployments and {} incidents in {:.1}s",
                seeded.deployments,
                seeded.incidents,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(Command::Token(command)) => token(command),
        Some(Command::Serve(args)) => serve(*args),
        None => serve(cli.serve),
    }
}

fn token(command: TokenCommand) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Text);
    match command {
        TokenCommand::Create {
            name,
            role,
            scope,
            database,
        } => {
            let url = DatabaseUrl::parse(&database.database_url)?;
            let token = tokens::create(&url, &name, role, &scope)?;
            eprintln!("created token {name:?} (role {role}); it is shown this once:");
            println!("{token}");
        }
        TokenCommand::List { database } => {
            let url = DatabaseUrl::parse(&database.database_url)?;
            let list = tokens::list(&url)?;
            if list.is_empty() {
                eprintln!("no tokens: a server bound to a loopback address serves anonymous calls");
            }
            for token in list {
                println!(
                    "{}\t{}\t{}\t{}",
                    token.name, token.role, token.scope, token.created_at
                );
            }
        }
        TokenCommand::Revoke { name, database } => {
            let url = DatabaseUrl::parse(&database.database_url)?;
            tokens::revoke(&url, &name)?;
            eprintln!("revoked token {name:?}");
        }
    }
    Ok(())
}

/// The release gate's settings; an approvers file is read (and checked) now.
fn gate_settings(args: GateArgs) -> anyhow::Result<GateSettings> {
    let approvers_file = args
        .approvers_file
        .map(|path| {
            let text = std::fs::read(&path).map_err(|e| {
                anyhow::anyhow!("cannot read the approvers file {}: {e}", path.display())
            })?;
            StaticApprovers::parse(&text)
                .map_err(|e| anyhow::anyhow!("the approvers file {}: {e}", path.display()))
        })
        .transpose()?;
    Ok(GateSettings {
        approvers_url: args.approvers_url.filter(|u| !u.is_empty()),
        approvers_file,
        smtp_url: args.smtp_url.filter(|u| !u.is_empty()).map(Secret::new),
        mail_from: args.mail_from,
        policy: GatePolicy {
            allow_self_approval: args.allow_self_approval,
            remind_before: args.approval_reminder.into(),
        },
        ..GateSettings::new(args.public_url.filter(|u| !u.is_empty()))
    })
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format.into());
    let settings = Settings {
        bind: args.bind,
        database_url: DatabaseUrl::parse(&args.database.database_url)?,
        read_database_url: args
            .read_database_url
            .filter(|u| !u.trim().is_empty())
            .map(|u| DatabaseUrl::parse(&u))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--read-database-url: {e}"))?,
        max_replica_lag: args.max_replica_lag.into(),
        pool_size: args.pool_size,
        workers: args.workers,
        shutdown_timeout: args.shutdown_timeout,
        abandon_after: args.abandon_after.into(),
        handle_signals: true,
        allow_anonymous: args.allow_anonymous,
        // Read from the environment only: a flag would show it in `ps`.
        admin_token: std::env::var("DEPLOYTIME_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .map(Secret::new),
        protect_metrics: args.protect_metrics,
        request_timeout: args.request_timeout.into(),
        db_timeout: args.db_timeout.into(),
        max_db_work: args.max_db_work,
        gate: gate_settings(args.gate)?,
        hooks: HookSecrets::new(
            args.hooks.github_webhook_secret,
            args.hooks.gitlab_webhook_token,
        )?,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings)?;
        app.run_until_stopped().await?;
        tracing::info!("deploytime-server stopped gracefully");
        Ok(())
    })
}
