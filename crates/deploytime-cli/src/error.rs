//! The errors a command ends with, and the exit code each one maps to.

use std::path::PathBuf;

use crate::exit;
use deploytime_core::wire::Problem;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("the server refused the call: {0}")]
    Rejected(Box<Problem>),
    #[error(
        "the server refused the call: {problem}; the event is kept in {} until `deploytime flush` can send it (check --url and --token)",
        spool.display()
    )]
    RejectedSpooled {
        problem: Box<Problem>,
        spool: PathBuf,
    },
    #[error("cannot reach the server at {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error(
        "cannot reach the server at {url}: {cause}; the event is kept in {} and will be sent by the next deploytime call or `deploytime flush`",
        spool.display()
    )]
    UnreachableSpooled {
        url: String,
        cause: String,
        spool: PathBuf,
    },
    #[error("the event could be neither sent nor spooled")]
    NotSpooled(#[source] std::io::Error),
    #[error(
        "the server at {url} does not offer {what} yet (it answered {status}); upgrade the server"
    )]
    Unsupported {
        url: String,
        what: String,
        status: u16,
    },
    #[error("{0}")]
    Internal(String),
    #[error("cannot use the spool {}", path.display())]
    Spool {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("events remain in the spool {}: {cause}", path.display())]
    FlushIncomplete { path: PathBuf, cause: String },
    #[error("events remain in the spool {}: the server refused the call: {problem} (check --url and --token)", path.display())]
    FlushRefused {
        path: PathBuf,
        problem: Box<Problem>,
    },
    #[error("{count} spooled event(s) were refused by the server; they are kept in {}", path.display())]
    FlushRejected { count: usize, path: PathBuf },
    #[error("cannot write {what}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::Rejected(_)
            | Error::RejectedSpooled { .. }
            | Error::FlushRejected { .. }
            | Error::FlushRefused { .. } => exit::REJECTED,
            Error::Unreachable { .. }
            | Error::UnreachableSpooled { .. }
            | Error::FlushIncomplete { .. } => exit::UNREACHABLE,
            Error::NotSpooled(_) => exit::SPOOL_FAILED,
            Error::Unsupported { .. } => exit::UNSUPPORTED,
            Error::Internal(_) | Error::Spool { .. } | Error::Output { .. } => exit::FAILURE,
        }
    }
}
