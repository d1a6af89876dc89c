//! The exit codes of `deploytime`, named once so that the code, the `--help` text,
//! docs/cli.md and the tests all speak of the same numbers.
//!
//! `run` is the exception to all of them: it exits with its command's own code.

use deploytime_core::release::ReleaseState;

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
/// `release … --wait`: the release was rejected by an approver.
pub const RELEASE_REJECTED: u8 = 10;
/// `release … --wait`: the release expired before it was decided.
pub const RELEASE_EXPIRED: u8 = 11;
/// `release … --wait`: the release failed: no approver could be found.
pub const RELEASE_FAILED: u8 = 12;
/// `release … --wait`: the release was still pending when the wait ended.
pub const RELEASE_PENDING: u8 = 13;
/// `run`: the command could not be executed (it exists but is not executable).
pub const COMMAND_NOT_EXECUTABLE: u8 = 126;
/// `run`: the command was not found.
pub const COMMAND_NOT_FOUND: u8 = 127;
/// `run`: a command killed by signal N makes `deploytime` exit with 128 + N.
pub const SIGNAL_BASE: u8 = 128;

/// The code `release … --wait` exits with when the release is in `state`:
/// approved is the only success, and every other outcome has its own code, so
/// a pipeline can tell a "no" from a "no answer" from "nobody to ask".
pub fn release_code(state: ReleaseState) -> u8 {
    match state {
        ReleaseState::Approved => OK,
        ReleaseState::Rejected => RELEASE_REJECTED,
        ReleaseState::Expired => RELEASE_EXPIRED,
        ReleaseState::Failed => RELEASE_FAILED,
        ReleaseState::Pending => RELEASE_PENDING,
    }
}

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
  10   release --wait: the release was rejected (approved: 0)
  11   release --wait: the release expired before it was decided
  12   release --wait: the release failed (no approver could be found)
  13   release --wait: the release was still pending when the wait ended
  run  exits with its command's code: 126 not executable, 127 not found, 128+N killed by signal N";

/// The exit codes of `release request` and `release status`.
pub const RELEASE_HELP: &str = "\
Exit codes:
  0    without --wait: the release was read, whatever its state;
       with --wait: the release is approved
  2    invalid command line (a field the server would refuse, such as an --id with a /)
  3    the server refused the call (4xx): its problem detail is printed
  4    the server could not be reached within --retry-for (while waiting: by the end of the wait)
  6    the server does not offer the release gate yet (404/405)
  10   with --wait: the release was rejected
  11   with --wait: the release expired before it was decided
  12   with --wait: the release failed (no approver could be found; the reason is printed)
  13   with --wait: the release was still pending when the wait ended";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_release_state_has_its_own_code() {
        assert_eq!(release_code(ReleaseState::Approved), 0);
        assert_eq!(release_code(ReleaseState::Rejected), 10);
        assert_eq!(release_code(ReleaseState::Expired), 11);
        assert_eq!(release_code(ReleaseState::Failed), 12);
        assert_eq!(release_code(ReleaseState::Pending), 13);
        let mut codes: Vec<u8> = ReleaseState::ALL.map(release_code).to_vec();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ReleaseState::ALL.len(), "one code per state");
        for code in codes.iter().filter(|c| **c != OK) {
            assert!(
                ![
                    FAILURE,
                    USAGE,
                    REJECTED,
                    UNREACHABLE,
                    SPOOL_FAILED,
                    UNSUPPORTED
                ]
                .contains(code),
                "{code} is taken by another meaning"
            );
        }
    }

    #[test]
    fn the_help_lists_every_release_code() {
        for state in ReleaseState::ALL {
            let code = release_code(state);
            assert!(
                RELEASE_HELP.contains(&format!("\n  {code:<4} ")),
                "{state} ({code}) is missing from RELEASE_HELP"
            );
        }
    }
}
