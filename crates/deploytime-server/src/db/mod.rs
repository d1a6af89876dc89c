//! The data layer: the connection manager, migrations, the pool, the queries,
//! the store call's transaction and its group commit. It persists what the
//! domain decides and imports nothing from the layers above it (access, HTTP,
//! start-up). [`Database`] is its one entry point for the rest of the server.

mod connection;
mod error;
mod group_commit;
mod migrations;
mod models;
mod pool;
pub(crate) mod queries;
mod replica;
mod schema;
pub mod seed;
mod store;
pub(crate) mod tokens;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use deploytime_core::NewEvent;
use deploytime_core::access::Credential;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use group_commit::{GroupCommit, Job};

pub use connection::{DatabaseUrl, DatabaseUrlError, DbConnection};
pub use error::{DbError, DbErrorClass, ReplicaSetupError, SetupError};
pub use migrations::migrate;
pub use pool::DbLimits;
pub use replica::{REPLICA_CHECK_WAIT, ReplicaHealth, ReplicaSettings};
pub use store::{StoreError, Stored};
pub use tokens::{StoredToken, TokenCache};

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
    pool: pool::Pool,
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
    /// Where reports are read when it can serve them.
    replica: Option<Arc<replica::Replica>>,
}

/// How many transactions of store calls are in flight at once, and how many
/// calls each takes at most. SQLite has one writer, which takes every call
/// waiting. MySQL gains from a second committer applying the next batch while
/// the first waits for its flush, and little from more; there a batch is bounded
/// so that a burst is shared between the two (measurements in BENCHMARKS.md).
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
    /// Migrates, then builds the pool and starts the committers. Runs before the
    /// server accepts traffic.
    pub fn open(url: &DatabaseUrl, limits: DbLimits) -> Result<Self, SetupError> {
        Self::open_with_replica(url, limits, None)
    }

    /// As [`Database::open`], with a read replica that reports read from
    /// ([`Database::report`]). Migrations run on the primary only; the
    /// replica receives them through replication.
    pub fn open_with_replica(
        url: &DatabaseUrl,
        limits: DbLimits,
        replica: Option<&ReplicaSettings>,
    ) -> Result<Self, SetupError> {
        let replica = replica
            .map(|settings| {
                match (url, &settings.url) {
                    (DatabaseUrl::Sqlite(_), _) => {
                        Err(ReplicaSetupError::SqlitePrimary(url.clone()))
                    }
                    (_, DatabaseUrl::Sqlite(_)) => {
                        Err(ReplicaSetupError::SqliteReplica(settings.url.clone()))
                    }
                    (DatabaseUrl::Mysql(_), DatabaseUrl::Mysql(_)) => Ok(()),
                }?;
                replica::Replica::open(settings, &limits).map(Arc::new)
            })
            .transpose()?;
        let applied = migrate(url)?;
        for migration in &applied {
            tracing::info!(%migration, "applied migration");
        }
        let pool = pool::build(url, &limits)?;
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
            replica,
        })
    }

    /// The in-memory copy of the stored tokens.
    pub fn tokens(&self) -> &TokenCache {
        &self.tokens
    }

    pub fn limits(&self) -> DbLimits {
        self.limits
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// The pool's connections now: open, and idle among them.
    pub fn pool_state(&self) -> (u32, u32) {
        let state = self.pool.state();
        (state.connections, state.idle_connections)
    }

    #[cfg(test)]
    pub(crate) fn pool(&self) -> &pool::Pool {
        &self.pool
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

    /// Runs read-only work on a blocking thread with a pooled connection.
    pub async fn read<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(None, work).await
    }

    /// Runs the read-only work of a report (a listing, statistics, an export,
    /// a dashboard page) on the read replica when there is one that can serve
    /// it, else on the primary, like [`Database::read`]. What it reads may be
    /// behind the primary by up to the replica's bound on lag: a read that
    /// must see a write just made uses [`Database::read`]. The work runs on
    /// one connection; a replica that gives none in time is passed over for
    /// the primary (and counted), one that fails the work is taken for down.
    pub async fn report<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let Some(replica) = self.replica.clone() else {
            return self.run(None, work).await;
        };
        let (permit, abandoned, mut on_drop) = self.admit()?;
        let pool = self.pool.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            if abandoned.load(Ordering::SeqCst) {
                return Err(DbError::Abandoned);
            }
            let Some(mut conn) = replica.checkout() else {
                let mut conn = pool.get()?;
                if abandoned.load(Ordering::SeqCst) {
                    return Err(DbError::Abandoned);
                }
                return Ok(work(&mut conn)?);
            };
            if abandoned.load(Ordering::SeqCst) {
                return Err(DbError::Abandoned);
            }
            let done = work(&mut conn).map_err(DbError::from);
            if let Err(e) = &done
                && e.class() == DbErrorClass::Unavailable
            {
                replica.read_failed(format!("a read on the read replica failed: {e:#}"));
            }
            done
        })
        .await
        .map_err(|_| DbError::WorkerGone)?;
        on_drop.0 = None;
        result
    }

    /// Whether a read replica is configured.
    pub fn has_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Looks at the read replica now and tells what is seen, waiting at most
    /// `wait` for the look (which itself may take up to `--db-timeout` to get
    /// a connection): past that, or while another look is under way, what
    /// was seen last. `None` without a replica.
    pub async fn check_replica(&self, wait: Duration) -> Option<ReplicaHealth> {
        let replica = self.replica.clone()?;
        if let Some(looking) = replica.begin_check() {
            let timeout = self.limits.checkout_timeout;
            let checked = replica.clone();
            let check = tokio::task::spawn_blocking(move || {
                let _looking = looking;
                checked.check(timeout);
            });
            // A look that takes longer goes on and records what it sees.
            let _ = tokio::time::timeout(wait, check).await;
        }
        Some(replica.health())
    }

    /// Looks at the read replica every few seconds until `stop` turns true,
    /// so that reports leave a replica that fell behind or went down, and
    /// come back to it, without waiting for `/readyz` or `/metrics`.
    pub async fn watch_replica(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.replica.is_none() {
            return;
        }
        let timeout = self.limits.checkout_timeout;
        loop {
            self.check_replica(timeout).await;
            tokio::select! {
                _ = tokio::time::sleep(replica::CHECK_EVERY) => {}
                // Told to stop, or the server that would tell it has gone.
                _ = stop.changed() => return,
            }
        }
    }

    /// Runs writing work on a blocking thread, taking turns with other writers on
    /// SQLite.
    pub async fn write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(self.write_turn.clone(), work).await
    }

    /// Runs read-only work of the server's own (the release gate's worker),
    /// outside the bound on requests' database work: a request is never
    /// refused because the worker is busy. The worker's work is bounded by
    /// the worker itself.
    pub async fn background_read<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_unbounded(None, work).await
    }

    /// Writing work of the server's own, as [`Database::background_read`],
    /// taking turns with other writers on SQLite.
    pub async fn background_write<T, F>(&self, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run_unbounded(self.write_turn.clone(), work).await
    }

    async fn run_unbounded<T, F>(&self, turn: Option<Arc<Mutex<()>>>, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _turn = turn
                .as_ref()
                .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
            let mut conn = pool.get()?;
            Ok(work(&mut conn)?)
        })
        .await
        .map_err(|_| DbError::WorkerGone)?
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

    async fn run<T, F>(&self, turn: Option<Arc<Mutex<()>>>, work: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (permit, abandoned, mut on_drop) = self.admit()?;
        let pool = self.pool.clone();
        let result = tokio::task::spawn_blocking(move || {
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
            Ok(work(&mut conn)?)
        })
        .await
        .map_err(|_| DbError::WorkerGone)?;
        on_drop.0 = None;
        result
    }

    /// Stores a validated event, in a transaction shared with the store calls
    /// that arrive meanwhile (group commit), if `credential` may record it by
    /// the tokens as they are when that transaction runs. Answers once the
    /// transaction holding the event is committed.
    pub async fn store(
        &self,
        event: NewEvent,
        received_at: DateTime<Utc>,
        credential: Credential,
    ) -> Result<Stored, StoreError> {
        let (permit, abandoned, mut on_drop) = self.admit()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.group_commit.submit(Job {
            event,
            received_at,
            credential,
            abandoned,
            _permit: permit,
            reply,
        })?;
        let outcome = answer.await.map_err(|_| DbError::WorkerGone)?;
        on_drop.0 = None;
        outcome
    }

    /// Records the number of events of each group commit in `histogram`.
    pub fn observe_commit_sizes(&self, histogram: prometheus::Histogram) {
        self.group_commit.observe_batch_sizes(histogram);
    }

    /// Ok when the database answers a trivial query within `timeout`.
    pub async fn is_ready(&self, timeout: Duration) -> Result<(), DbError> {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get_timeout(timeout)?;
            Ok(queries::ping(&mut conn)?)
        })
        .await
        .map_err(|_| DbError::WorkerGone)?
    }
}
