//! Persistence: the connection manager, migrations, the pool, and the queries.
//!
//! Error policy: queries return diesel's `QueryResult`; [`Database`] runs them on a
//! blocking thread and turns pool and database failures into
//! [`DbError::Unavailable`], which the API answers with 503. A database failure is
//! never reported as success.

pub mod connection;
pub mod group_commit;
pub mod models;
pub mod queries;
pub mod schema;
pub mod store;
pub mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deploytime_core::NewEvent;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use group_commit::{GroupCommit, Job, StoreOutcome};

use crate::auth::{Credential, TokenCache};

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
    #[error("cannot start the database writer threads: {0}")]
    Writers(std::io::Error),
}

/// A failure to reach the database or to complete a query.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("the server is busy: {0} database calls are already in flight")]
    Busy(usize),
    #[error("the request was abandoned before its database call ran")]
    Abandoned,
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

/// How much database work the server takes on, and how long it waits for it.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    pub pool_size: u32,
    /// Longest wait for a pooled connection: an unreachable database is reported
    /// (503) after this long instead of holding requests.
    pub checkout_timeout: Duration,
    /// Database calls in flight at most, running or waiting for a connection.
    pub max_in_flight: usize,
}

impl DbLimits {
    pub fn new(pool_size: u32) -> Self {
        DbLimits {
            pool_size,
            checkout_timeout: Duration::from_secs(2),
            max_in_flight: 128,
        }
    }
}

/// Set when the request that wanted a database call has gone (timed out, client
/// hung up): a call that has not started yet is then skipped, so that a request
/// answered 503 does not store its event afterwards.
struct AbandonOnDrop(Option<Arc<AtomicBool>>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        if let Some(flag) = &self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

/// The pool and what it needs to be used safely.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    url: DatabaseUrl,
    limits: DbLimits,
    /// Bounds the database calls in flight; when none is left the call is refused
    /// at once (503) rather than queued without limit.
    in_flight: Arc<Semaphore>,
    /// SQLite has one writer at a time; taking turns in the process is cheaper and
    /// more predictable than letting writers collide on the file lock.
    write_turn: Option<Arc<Mutex<()>>>,
    /// Store calls go through here, to share commits.
    group_commit: GroupCommit,
    /// The tokens as last read, refreshed by every group commit.
    tokens: TokenCache,
}

/// How many transactions of store calls are in flight at once, and how many
/// calls each takes at most. SQLite has one writer, which takes every call
/// waiting. MySQL gains from a second committer applying the next batch while
/// the first waits for its flush, and little from more (they would contend for
/// the same rows, the pool's connections and the CPU); there a batch is bounded
/// so that a burst is shared between the two. Measured with `bench/store.sh`'s
/// load at 64 connections on MariaDB (BENCHMARKS.md): batches of at most 16, 24,
/// 32, 48 and 128 gave p99s of 19, 19–23, 17–21, 22–24 and 28 ms; three
/// committers 23–25 ms, four 40–45 ms.
fn committers(url: &DatabaseUrl, pool_size: u32) -> (usize, usize) {
    match url {
        DatabaseUrl::Sqlite(_) => (1, group_commit::MAX_BATCH),
        DatabaseUrl::Mysql(_) => {
            let committers = usize::try_from(pool_size / 4).unwrap_or(1).clamp(1, 2);
            let max_batch = if committers > 1 {
                32
            } else {
                group_commit::MAX_BATCH
            };
            (committers, max_batch)
        }
    }
}

impl Database {
    /// Migrates, then builds the pool with the default limits.
    pub fn open(url: &DatabaseUrl, pool_size: u32) -> Result<Self, SetupError> {
        Self::open_with(url, DbLimits::new(pool_size))
    }

    /// Migrates, then builds the pool. Runs before the server accepts traffic.
    pub fn open_with(url: &DatabaseUrl, limits: DbLimits) -> Result<Self, SetupError> {
        let applied = migrate(url)?;
        for migration in &applied {
            tracing::info!(%migration, "applied migration");
        }
        let pool = r2d2::Pool::builder()
            .max_size(limits.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(limits.checkout_timeout.max(Duration::from_millis(10)))
            .error_handler(Box::new(LogPoolErrors))
            .build(DbConnectionManager::new(url.clone()))
            .map_err(|source| SetupError::Pool {
                url: url.clone(),
                source,
            })?;
        let write_turn = matches!(url, DatabaseUrl::Sqlite(_)).then(|| Arc::new(Mutex::new(())));
        let tokens = TokenCache::default();
        let (committers, max_batch) = committers(url, limits.pool_size);
        let group_commit = GroupCommit::start(
            pool.clone(),
            write_turn.clone(),
            committers,
            max_batch,
            tokens.clone(),
        )
        .map_err(SetupError::Writers)?;
        Ok(Self {
            pool,
            url: url.clone(),
            limits,
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight.max(1))),
            write_turn,
            group_commit,
            tokens,
        })
    }

    /// The in-memory copy of the stored tokens (see `auth`).
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    pub fn limits(&self) -> DbLimits {
        self.limits
    }

    /// Waits until no database call is in flight, including calls whose request
    /// has already been answered (a timed-out request's skipped call).
    pub async fn wait_until_idle(&self) {
        let all = u32::try_from(self.limits.max_in_flight.max(1)).unwrap_or(u32::MAX);
        // Only fails if the semaphore was closed, which this type never does.
        let _ = self.in_flight.acquire_many(all).await;
    }

    /// Database calls in flight now: running, or waiting for a connection or a
    /// commit.
    pub fn calls_in_flight(&self) -> usize {
        self.limits
            .max_in_flight
            .max(1)
            .saturating_sub(self.in_flight.available_permits())
    }

    /// Whether any API token exists, asked directly (at start-up).
    pub fn any_token_now(&self) -> Result<bool, DbError> {
        let mut conn = self.pool.get()?;
        Ok(tokens::any_token(&mut conn)?)
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
        self.run(None, work).await
    }

    /// Runs writing work on a blocking thread, taking turns with other writers on
    /// SQLite.
    pub async fn write<T, E, F>(&self, work: F) -> Result<Result<T, E>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        self.run(self.write_turn.clone(), work).await
    }

    /// Admits one database call: a slot among `max_in_flight` (refused at once
    /// when none is left), to be held until the work ends, and the flag that
    /// tells the work its caller has gone, set when the returned guard drops
    /// before it is disarmed (`on_drop.0 = None`).
    fn admit(&self) -> Result<(OwnedSemaphorePermit, Arc<AtomicBool>, AbandonOnDrop), DbError> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| DbError::Busy(self.limits.max_in_flight))?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let on_drop = AbandonOnDrop(Some(abandoned.clone()));
        Ok((permit, abandoned, on_drop))
    }

    async fn run<T, E, F>(
        &self,
        turn: Option<Arc<Mutex<()>>>,
        work: F,
    ) -> Result<Result<T, E>, DbError>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let (permit, abandoned, mut on_drop) = self.admit()?;
        let pool = self.pool.clone();
        let result = actix_web::web::block(move || {
            // The permit travels with the work: it is released when the work is
            // done, even if the request has been answered already.
            let _permit = permit;
            // The turn comes first so that waiting writers do not sit on pooled
            // connections that readers could use. A poisoned lock only means
            // another writer panicked; its transaction was rolled back.
            let _turn = turn
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            if abandoned.load(Ordering::SeqCst) {
                return Err(DbError::Abandoned);
            }
            let mut conn = pool.get()?;
            if abandoned.load(Ordering::SeqCst) {
                return Err(DbError::Abandoned);
            }
            Ok(work(&mut conn))
        })
        .await
        .map_err(|e| DbError::Unavailable(e.to_string()))?;
        on_drop.0 = None;
        result
    }

    /// Stores a validated event, in a transaction shared with the store calls
    /// that arrive meanwhile (see [`group_commit`]), if `credential` may record
    /// it by the tokens as they are when that transaction runs. Answers once
    /// the transaction holding the event is committed.
    pub async fn store(
        &self,
        event: NewEvent,
        received_at: DateTime<Utc>,
        credential: Credential,
    ) -> StoreOutcome {
        let (permit, abandoned, mut on_drop) = self.admit()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.group_commit.submit(Job {
            event,
            received_at,
            credential,
            abandoned,
            permit,
            reply,
        })?;
        let outcome = answer.await.map_err(|_| {
            DbError::Unavailable("the database writer stopped before storing the event".into())
        })?;
        on_drop.0 = None;
        outcome
    }

    /// Records the number of events of each group commit in `histogram`.
    pub fn observe_commit_sizes(&self, histogram: prometheus::Histogram) {
        self.group_commit.observe_batch_sizes(histogram);
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
