//! The `ec2-runner` binary: parse, run, and turn errors into one message and a
//! documented exit code.

use std::process::ExitCode;

use clap::Parser as _;
use ec2_runner::cli::Cli;
use ec2_runner::error::{Error, exit_code};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout and usage errors to stderr.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(exit_code::USAGE)
            } else {
                ExitCode::from(exit_code::SUCCESS)
            };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", err.report());
            ExitCode::from(err.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(ec2_runner::run(cli))
}
