//! What can go wrong with the database, each failure with its cause kept, and
//! the one place that sorts them into "unavailable", "not found" and "failed"
//! (the HTTP layer turns those into 503, 404 and 500).

use std::sync::Arc;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::connection::DatabaseUrl;

/// Why the database could not be prepared at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: DatabaseUrl,
        source: diesel::ConnectionError,
    },
    #[error("cannot run the migrations on {url}: {message}")]
    Migrate { url: DatabaseUrl, message: String },
    #[error("cannot create the connection pool for {url}: {source}")]
    Pool {
        url: DatabaseUrl,
        source: r2d2::Error,
    },
    #[error("cannot start the database writer threads: {0}")]
    Writers(std::io::Error),
    #[error(transparent)]
    Replica(#[from] ReplicaSetupError),
}

/// Why a read replica cannot be used with this primary.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetupError {
    #[error(
        "--read-database-url needs a MySQL/MariaDB primary: SQLite has no replication, \
         so a SQLite database ({0}) cannot have a read replica; leave --read-database-url unset"
    )]
    SqlitePrimary(DatabaseUrl),
    #[error("--read-database-url must be a mysql:// URL of a replica of the primary, not {0}")]
    SqliteReplica(DatabaseUrl),
}

/// A database call that did not complete. Cloned when one failed commit
/// answers all of its store calls, hence the shared sources.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    /// Refused at once: the bound on database work in flight is reached.
    #[error("the server is busy: {0} database calls are already in flight")]
    Busy(usize),
    /// The request that wanted the call has gone; the call was skipped.
    #[error("the request was abandoned before its database call ran")]
    Abandoned,
    /// No connection could be had in time: the database is unreachable or
    /// every connection is busy.
    #[error("no database connection could be had in time")]
    PoolTimeout(#[source] Arc<r2d2::Error>),
    /// The thread or writer that was to run the call stopped.
    #[error("the database worker stopped before the call completed")]
    WorkerGone,
    /// The database refused or failed a statement.
    #[error("a database statement failed")]
    Query(#[source] Arc<DieselError>),
}

/// What a database failure means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbErrorClass {
    /// The database cannot be reached or is overloaded: retrying later helps.
    Unavailable,
    /// The statement looked for one row and found none.
    NotFound,
    /// A fault of the server or of stored data: retrying does not help.
    Failed,
}

impl DbError {
    /// Sorts the failure. Constraint violations, rows that cannot be decoded
    /// and statements that cannot be built are the server's own faults. A
    /// database error diesel has no kind for (a lost connection, a locked or
    /// vanished SQLite file, a disk error) is taken for unavailability.
    pub fn class(&self) -> DbErrorClass {
        match self {
            DbError::Busy(_)
            | DbError::Abandoned
            | DbError::PoolTimeout(_)
            | DbError::WorkerGone => DbErrorClass::Unavailable,
            DbError::Query(error) => match error.as_ref() {
                DieselError::NotFound => DbErrorClass::NotFound,
                DieselError::DatabaseError(kind, _) => match kind {
                    DatabaseErrorKind::UniqueViolation
                    | DatabaseErrorKind::ForeignKeyViolation
                    | DatabaseErrorKind::NotNullViolation
                    | DatabaseErrorKind::CheckViolation => DbErrorClass::Failed,
                    _ => DbErrorClass::Unavailable,
                },
                DieselError::BrokenTransactionManager => DbErrorClass::Unavailable,
                _ => DbErrorClass::Failed,
            },
        }
    }

    /// Whether the call was refused by the server's own limits (not a fault).
    pub fn is_refusal(&self) -> bool {
        matches!(self, DbError::Busy(_) | DbError::Abandoned)
    }
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        DbError::Query(Arc::new(e))
    }
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::PoolTimeout(Arc::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_error(kind: DatabaseErrorKind) -> DbError {
        DbError::from(DieselError::DatabaseError(
            kind,
            Box::new("message".to_owned()),
        ))
    }

    #[test]
    fn failures_keep_their_class() {
        assert_eq!(
            database_error(DatabaseErrorKind::UniqueViolation).class(),
            DbErrorClass::Failed,
            "a statement that hits a constraint is a fault, not an outage to retry"
        );
        assert_eq!(
            database_error(DatabaseErrorKind::ClosedConnection).class(),
            DbErrorClass::Unavailable
        );
        assert_eq!(
            database_error(DatabaseErrorKind::Unknown).class(),
            DbErrorClass::Unavailable
        );
        assert_eq!(
            DbError::from(DieselError::NotFound).class(),
            DbErrorClass::NotFound
        );
        assert_eq!(
            DbError::from(DieselError::DeserializationError("bad row".into())).class(),
            DbErrorClass::Failed
        );
        assert_eq!(DbError::Busy(8).class(), DbErrorClass::Unavailable);
    }

    #[test]
    fn the_cause_is_kept_as_the_source() {
        let error = database_error(DatabaseErrorKind::Unknown);
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("message"));
    }
}
