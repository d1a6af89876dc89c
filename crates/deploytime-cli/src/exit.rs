//! The exit codes of `deploytime`, named once so that the code, the `--help` text,
//! docs/cli.md and the tests all speak of the same numbers.
//!
//! `run` is the exception to all of them: it exits with its command's own code.

/// Everything worked, or the server was unreachable and the event was spooled
/// (without `--strict`): a deploy is never broken by its bookkeeping.
pub const OK: u8 = 0;
/// Something unexpected: a file that cannot be written (an export, the spool
/// during `flush`), an internal failure.
pub const FAILURE: u8 = 1;
/// The command line is wrong (clap's own code).
pub const USAGE: u8 = 2;
/// The server refused the call (a 4xx): the call itself is wrong and retrying it
/// cannot help. The server's problem detail is printed.
pub const REJECTED: u8 = 3;
/// The server could not be reached within the retry budget. `start` and `finish`
/// return it only with `--strict`; a `finish` is kept in the spool, a strict
/// `start` is not (the pipeline stops: that deploy never happens).
pub const UNREACHABLE: u8 = 4;
/// The event could neither be sent nor written to the spool (with `--strict`;
/// without it the event is printed on stderr and the exit code is 0).
pub const SPOOL_FAILED: u8 = 5;
/// The server does not offer this report yet (it answered 404 or 405): upgrade it.
pub const UNSUPPORTED: u8 = 6;
/// `run`: the command could not be executed (it exists but is not executable).
pub const COMMAND_NOT_EXECUTABLE: u8 = 126;
/// `run`: the command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;
/// `run`: a command killed by signal N makes `deploytime` exit with 128 + N.
pub const SIGNAL_BASE: u8 = 128;

/// The exit codes, as shown at the end of `deploytime --help`.
pub const HELP: &str = "\
Exit codes:
  0    success; or the server was unreachable and the event was spooled (without --strict)
  1    unexpected failure (a file that cannot be written)
  2    invalid command line
  3    the server refused the call (4xx); its problem detail is printed
  4    the server could not be reached (start/finish: only with --strict; a finish is spooled, a start is not)
  5    the event could be neither sent nor spooled (with --strict)
  6    the server does not offer this report yet (404/405)
  run  exits with its command's code: 126 not executable, 127 not found, 128+N killed by signal N";
