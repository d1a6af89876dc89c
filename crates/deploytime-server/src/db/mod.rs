//! Persistence: the connection manager, migrations, the pool, and the queries.
//!
//! Error policy: queries return diesel's `QueryResult`; [`Database`] runs them on a
//! blocking thread and turns pool and database failures into
//! [`DbError::Unavailable`], which the API answers with 503. A database failure is
//! never reported as success.

pub mod connection;
pub mod models;
pub mod queries;
pub mod schema;
pub mod store;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub use connection::{DatabaseUrl, DbConnection, DbConnectionManager};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

pub type Pool = r2d2::Pool<DbConnectionManager>;

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
}

/// A failure to reach the database or to complete a query.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl From<r2d2::Error> for DbError {
    fn from(e: r2d2::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

impl From<diesel::result::Error> for DbError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::Unavailable(e.to_string())
    }
}

/// Runs the pending migrations of the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    let applied = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS),
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(c) => c.run_pending_migrations(MYSQL_MIGRATIONS),
    }
    .map_err(|e| e.to_string())?;
    Ok(applied.iter().map(ToString::to_string).collect())
}

/// Connects once (so that a wrong password or an unknown database is reported
/// with the database's own words), applies the migrations, and returns the
/// migrations it applied.
pub fn migrate(url: &DatabaseUrl) -> Result<Vec<String>, SetupError> {
    let mut conn = url.establish().map_err(|source| SetupError::Connect {
        url: url.clone(),
        source,
    })?;
    run_migrations(&mut conn).map_err(|message| SetupError::Migrate {
        url: url.clone(),
        message,
    })
}

/// The pool and what it needs to be used safely.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    url: DatabaseUrl,
    /// SQLite has one writer at a time; taking turns in the process is cheaper and
    /// more predictable than letting writers collide on the file lock.
    write_turn: Option<Arc<Mutex<()>>>,
}

impl Database {
    /// Migrates, then builds the pool. Runs before the server accepts traffic.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Self, SetupError> {
        let applied = migrate(url)?;
        for migration in &applied {
            tracing::info!(%migration, "applied migration");
        }
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(5))
            .error_handler(Box::new(LogPoolErrors))
            .build(DbConnectionManager::new(url.clone()))
            .map_err(|source| SetupError::Pool {
                url: url.clone(),
                source,
            })?;
        let write_turn = matches!(url, DatabaseUrl::Sqlite(_)).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            pool,
            url: url.clone(),
            write_turn,
        })
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs read-only work on a blocking thread with a pooled connection.
    pub async fn read<T, E, F>(&self, work: F) -> Result<Result<T, E>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            Ok(work(&mut conn))
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?
    }

    /// Runs writing work on a blocking thread, taking turns with other writers on
    /// SQLite.
    pub async fn write<T, E, F>(&self, work: F) -> Result<Result<T, E>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let pool = self.pool.clone();
        let turn = self.write_turn.clone();
        actix_web::web::block(move || {
            // The turn comes first so that waiting writers do not sit on pooled
            // connections that readers could use. A poisoned lock only means
            // another writer panicked; its transaction was rolled back.
            let _turn = turn
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            let mut conn = pool.get()?;
            Ok(work(&mut conn))
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?
    }

    /// True when the database answers a trivial query within `timeout`.
    pub async fn is_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get_timeout(timeout)?;
            queries::ping(&mut conn).map_err(DbError::from)
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?
    }
}

/// Pool errors go to the log, through tracing like everything else.
#[derive(Debug)]
struct LogPoolErrors;

impl<E: std::fmt::Display> r2d2::HandleError<E> for LogPoolErrors {
    fn handle_error(&self, error: E) {
        tracing::warn!(%error, "database connection failed");
    }
}
