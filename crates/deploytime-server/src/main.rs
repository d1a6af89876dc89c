//! The `deploytime-server` binary: parse the command line, then serve or migrate.

use std::process::ExitCode;

use clap::Parser;
use deploytime_server::config::{Cli, Command, LogFormat, ServeArgs, Settings};
use deploytime_server::db::{self, DatabaseUrl};
use deploytime_server::startup::Application;
use deploytime_server::telemetry;

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
            let started = std::time::Instant::now();
            let written = deploytime_server::seed::seed(&args)?;
            eprintln!(
                "seeded {written} deployments in {:.1}s",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    telemetry::init(args.log_format);
    let settings = Settings {
        bind: args.bind,
        database_url: DatabaseUrl::parse(&args.database.database_url)?,
        pool_size: args.pool_size,
        workers: args.workers,
        shutdown_timeout: args.shutdown_timeout,
        abandon_after: args.abandon_after,
        handle_signals: true,
    };
    actix_web::rt::System::new().block_on(async move {
        let app = Application::build(&settings)?;
        app.run_until_stopped().await?;
        tracing::info!("deploytime-server stopped gracefully");
        Ok(())
    })
}
