//! Which database, and how to connect to it. The backend is chosen from the URL
//! scheme, not by trying each in turn (SQLite accepts any string as a file name,
//! so trial and error would turn a MySQL "access denied" into a stray SQLite
//! file); connection errors are the database's own, passwords never shown.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;

#[cfg(feature = "mysql")]
use diesel::mysql::MysqlConnection;

/// One connection to whichever database the server was given; every query is
/// written once against it.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Mysql(MysqlConnection),
}

/// One connection to whichever database the server was given; every query is
/// written once against it.
#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
}

/// Runs `$body` with `$c` bound to the backend's own connection rather than to
/// [`DbConnection`], for the statements of the store path. Through the
/// multi-backend wrapper diesel writes a query's SQL text again on every run,
/// even when the statement itself is cached; on the backend's connection a
/// statement with a fixed shape is prepared once per connection and only its
/// values are bound after that.
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::connection::DbConnection::Sqlite($c) => $body,
            #[cfg(feature = "mysql")]
            $crate::db::connection::DbConnection::Mysql($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// SQLite checkpoints the write-ahead log inside the commit that takes it past
/// this many pages, and the group commit that crosses the line holds all its
/// calls (and the next batch) meanwhile. At SQLite's default of 1,000 pages that
/// stall set the store call's p99; at 250 each checkpoint copies a quarter as
/// much, for the same throughput (BENCHMARKS.md, "The store path at the
/// storage engine's limit"). A checkpoint on a thread of its own was measured
/// too and is worse: beside a writer that never pauses it never catches up, so
/// the log is never restarted and grows until a commit checkpoints it all.
const WAL_AUTOCHECKPOINT_PAGES: u32 = 250;

/// A parsed `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Mysql(String),
}

/// Why a `DATABASE_URL` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseUrlError {
    #[error(
        "this build has no MySQL support; rebuild with `--features mysql` (it needs libmariadb-dev or libmysqlclient-dev)"
    )]
    MysqlNotCompiled,
    #[error(
        "unsupported database URL scheme `{0}`: use mysql://user:password@host:3306/database, sqlite://PATH or a plain file path"
    )]
    UnsupportedScheme(String),
    #[error("the SQLite path is empty")]
    EmptyPath,
}

impl DatabaseUrl {
    /// The embedded default: a SQLite file in the working directory.
    pub const DEFAULT: &'static str = "deploytime.db";

    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        let raw = raw.trim();
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if rest.is_empty() {
                return Err(DatabaseUrlError::EmptyPath);
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(rest)));
        }
        if raw.starts_with("mysql://") || raw.starts_with("mariadb://") {
            if cfg!(feature = "mysql") {
                return Ok(DatabaseUrl::Mysql(raw.replacen(
                    "mariadb://",
                    "mysql://",
                    1,
                )));
            }
            return Err(DatabaseUrlError::MysqlNotCompiled);
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(DatabaseUrlError::UnsupportedScheme(scheme.to_owned()));
        }
        if raw.is_empty() {
            return Err(DatabaseUrlError::EmptyPath);
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(raw)))
    }

    pub fn backend_name(&self) -> &'static str {
        match self {
            DatabaseUrl::Sqlite(_) => "sqlite",
            DatabaseUrl::Mysql(_) => "mysql",
        }
    }

    /// Opens one connection, with the database's own error on failure.
    pub fn establish(&self) -> ConnectionResult<DbConnection> {
        match self {
            DatabaseUrl::Sqlite(path) => {
                let mut conn = SqliteConnection::establish(&path.to_string_lossy())?;
                // Every pooled connection: a busy timeout instead of failing at once
                // while another connection holds a lock (set first, so that the
                // pragmas after it wait too), WAL so readers never wait for the
                // writer, foreign keys enforced, full fsync so an acknowledged
                // event survives a power cut, and smaller checkpoints.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; \
                     PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; \
                     PRAGMA wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES};"
                ))
                .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Sqlite(conn))
            }
            #[cfg(feature = "mysql")]
            DatabaseUrl::Mysql(url) => {
                let mut conn = MysqlConnection::establish(url)?;
                // READ COMMITTED: each statement sees what is committed now. A
                // store call that lost a race on a unique index retries from its
                // savepoint inside a shared transaction (group commit) and must
                // then see the winner's row, which REPEATABLE READ's snapshot,
                // taken at the transaction's first read, would hide. Correctness
                // never rested on the snapshot: unique indexes and the revision
                // check in the UPDATE settle races, and both read the latest
                // committed rows at any isolation level. It also takes no gap
                // locks, so concurrent commits deadlock less.
                conn.batch_execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .map_err(ConnectionError::CouldntSetupConfiguration)?;
                Ok(DbConnection::Mysql(conn))
            }
            #[cfg(not(feature = "mysql"))]
            DatabaseUrl::Mysql(_) => Err(ConnectionError::BadConnection(
                DatabaseUrlError::MysqlNotCompiled.to_string(),
            )),
        }
    }
}

/// Shows where the database is without ever showing a password.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::Mysql(raw) => match url::Url::parse(raw) {
                Ok(mut url) => {
                    if url.password().is_some() {
                        // Only fails for URLs that cannot have a password at all.
                        let _ = url.set_password(Some("***"));
                    }
                    write!(f, "{url}")
                }
                Err(_) => f.write_str("mysql://(unparseable URL)"),
            },
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Hands out connections to the r2d2 pool.
#[derive(Debug, Clone)]
pub struct DbConnectionManager {
    url: DatabaseUrl,
    /// The SQLite database file as SQLite itself resolved it (absolute, `..`
    /// and symbolic links resolved its way), learnt from the first connection.
    sqlite_file: Arc<OnceLock<PathBuf>>,
}

impl DbConnectionManager {
    pub fn new(url: DatabaseUrl) -> Self {
        Self {
            url,
            sqlite_file: Arc::default(),
        }
    }
}

#[derive(QueryableByName)]
struct AttachedDatabase {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    file: String,
}

/// The file of the connection's main database, as SQLite opened it.
fn sqlite_main_file(conn: &mut SqliteConnection) -> Option<PathBuf> {
    diesel::sql_query("PRAGMA database_list")
        .load::<AttachedDatabase>(conn)
        .ok()?
        .into_iter()
        .find(|d| d.name == "main")
        .map(|d| PathBuf::from(d.file))
        .filter(|file| !file.as_os_str().is_empty())
}

impl r2d2::ManageConnection for DbConnectionManager {
    type Connection = DbConnection;
    type Error = ConnectionError;

    fn connect(&self) -> Result<DbConnection, ConnectionError> {
        let mut conn = self.url.establish()?;
        #[allow(irrefutable_let_patterns)] // irrefutable without the mysql feature
        if self.sqlite_file.get().is_none()
            && let DbConnection::Sqlite(sqlite) = &mut conn
            && let Some(file) = sqlite_main_file(sqlite)
        {
            let _ = self.sqlite_file.set(file);
        }
        Ok(conn)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), ConnectionError> {
        // A SQLite connection keeps working on a file that was removed or moved
        // away, and what it writes there is lost: such a connection is no longer
        // valid, and the pool reconnects by path (or fails, 503, until the file
        // is back).
        if let Some(file) = self.sqlite_file.get()
            && !file.exists()
        {
            return Err(ConnectionError::BadConnection(format!(
                "the SQLite file {} is gone",
                file.display()
            )));
        }
        conn.batch_execute("SELECT 1")
            .map_err(ConnectionError::CouldntSetupConfiguration)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        // A connection left inside a failed transaction must not be reused.
        use diesel::connection::{TransactionManager, TransactionManagerStatus};
        matches!(
            <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn),
            TransactionManagerStatus::InError
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_picks_the_backend() {
        assert_eq!(
            DatabaseUrl::parse("deploytime.db").unwrap(),
            DatabaseUrl::Sqlite("deploytime.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/dt.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/dt.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/dt.db").unwrap(),
            DatabaseUrl::Sqlite("data/dt.db".into())
        );
        assert!(matches!(
            DatabaseUrl::parse("postgres://x@y/z"),
            Err(DatabaseUrlError::UnsupportedScheme(s)) if s == "postgres"
        ));
        assert!(matches!(
            DatabaseUrl::parse("sqlite://"),
            Err(DatabaseUrlError::EmptyPath)
        ));
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_urls_never_show_their_password() {
        let url = DatabaseUrl::parse("mysql://app:s3cret@db:3306/deploytime").unwrap();
        let shown = url.to_string();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db:3306/deploytime"), "{shown}");
        assert!(!format!("{url:?}").contains("s3cret"));
    }

    #[cfg(not(feature = "mysql"))]
    #[test]
    fn mysql_urls_need_the_feature() {
        assert!(matches!(
            DatabaseUrl::parse("mysql://app:pw@db/x"),
            Err(DatabaseUrlError::MysqlNotCompiled)
        ));
    }

    /// Each commit of a pooled SQLite connection adds its pages to the
    /// write-ahead log; the log is checkpointed and started again from its
    /// beginning once it passes WAL_AUTOCHECKPOINT_PAGES, so its file never
    /// grows much past that many pages (at SQLite's default of 1,000 it
    /// reaches 4 MiB and more).
    #[test]
    fn the_write_ahead_log_stays_small() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = DatabaseUrl::Sqlite(dir.path().join("wal.db"))
            .establish()
            .unwrap();
        conn.batch_execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .unwrap();
        let body = "x".repeat(3000);
        // 2,000 commits of about one page each: eight times the bound.
        for _ in 0..2000 {
            diesel::sql_query("INSERT INTO t (body) VALUES (?)")
                .bind::<diesel::sql_types::Text, _>(&body)
                .execute(&mut conn)
                .unwrap();
        }
        let wal = std::fs::metadata(dir.path().join("wal.db-wal"))
            .unwrap()
            .len();
        // 250 pages of 4 KiB and a margin of 16: 1,089,536 bytes.
        assert!(wal <= 1_089_536, "the write-ahead log is {wal} bytes");
    }
}
