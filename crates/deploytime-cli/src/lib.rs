//! `deploytime`: the command pipelines call to record deployments.
//!
//! Two promises shape it: never lose an event (ids chosen once, retries that
//! re-send the same id, a local spool when the server stays unreachable), and
//! never break a deploy (an unreachable server is a warning unless `--strict`;
//! `run` always exits with its command's code).
//!
//! The binary is `src/main.rs`; the library exists so that tests can name the
//! exit codes rather than repeat numbers.

pub mod api;
pub mod cli;
pub mod commands;
pub mod commits;
pub mod error;
pub mod event;
pub mod exit;
pub mod output;
pub mod spool;

use clap::CommandFactory;

use crate::api::Api;
use crate::cli::{Cli, Command, ReleaseCommand};
use crate::commands::{correct, record, release, reports};
use crate::error::Error;
use crate::spool::Spool;

/// Runs a parsed command line and returns the exit code.
pub fn run(cli: Cli) -> Result<u8, Error> {
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "deploytime",
            &mut std::io::stdout(),
        );
        return Ok(exit::OK);
    }
    let api = Api::new(&cli.global)?;
    let spool = Spool::new(cli.global.spool.clone());
    // Every call sends what earlier calls could not, oldest first, before its own
    // event; `flush` does the same but waits for a concurrent flush to end.
    if !matches!(cli.command, Command::Flush) {
        record::flush_before(&api, &spool);
    }
    match cli.command {
        Command::Start(args) => record::start(&api, &spool, &cli.global, args),
        Command::Finish(args) => record::finish(&api, &spool, &cli.global, args),
        Command::Run(args) => commands::run::run(&api, &spool, &cli.global, args),
        Command::Flush => record::flush(&api, &spool),
        Command::Deployments(args) => reports::deployments(&api, args),
        Command::Stats(args) => reports::stats(&api, args),
        Command::Export(args) => reports::export(&api, args),
        Command::Correct(args) => correct::correct(&api, args),
        Command::Release(ReleaseCommand::Request(args)) => release::request(&api, args),
        Command::Release(ReleaseCommand::Status(args)) => release::status(&api, args),
        Command::Completions { .. } => Ok(exit::OK),
    }
}
