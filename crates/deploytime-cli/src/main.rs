//! The `deploytime` binary: parse, run, and print an error once with its causes.

use std::error::Error as _;
use std::process::ExitCode;

use clap::Parser;
use deploytime_cli::cli::Cli;
use deploytime_cli::error::Error;
use deploytime_cli::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    match deploytime_cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            print_error(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// `deploytime: error: …`, with each cause on a line of its own.
fn print_error(error: &Error) {
    let mut text = format!("deploytime: error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    eprintln!("{text}");
}
