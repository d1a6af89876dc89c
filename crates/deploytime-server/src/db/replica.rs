//! The read replica: a second pool, on a MySQL/MariaDB replica of the primary,
//! that reports read from (listings, statistics, exports, the dashboard). Its
//! sessions are opened read-only, so even a bug cannot write there, and no
//! migration runs on it. What was last seen of it (reachable, how far behind)
//! decides whether a report goes there or to the primary: a replica that is
//! down, or further behind than the bound, is passed over until it is back.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Nullable, Text};

use super::connection::{DatabaseUrl, DbConnection, DbConnectionManager};
use super::error::SetupError;
use super::pool::{DbLimits, LogPoolErrors, Pool};

/// What the server is told about its read replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSettings {
    pub url: DatabaseUrl,
    /// A replica further behind than this is passed over (reports go to the
    /// primary) and `/readyz` says the server is degraded.
    pub max_lag: Duration,
}

impl ReplicaSettings {
    pub const DEFAULT_MAX_LAG: Duration = Duration::from_secs(30);
}

/// How often the replica is looked at when nobody asks (`/readyz` and
/// `/metrics` look at it when they are called).
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(2);

/// The longest a report waits for a replica connection before it is read on
/// the primary instead.
const REPLICA_CHECKOUT: Duration = Duration::from_secs(1);

/// The longest `/readyz` and `/metrics` wait for a look at the replica
/// before they answer with what was seen last: a replica that does not
/// answer must not make the readiness probe time out.
pub const REPLICA_CHECK_WAIT: Duration = Duration::from_millis(500);

/// What was last seen of the replica.
#[derive(Debug, Clone)]
enum Seen {
    /// Not looked at yet: reports try it.
    Unchecked,
    /// No connection could be had, or a read on it failed.
    Down { reason: String },
    /// Replicating, this far behind.
    Replicating { lag: Duration },
    /// Replication is stopped: from the moment that was first seen, the
    /// replica falls further behind, by at least the time since.
    Stopped {
        since: Instant,
        lag_before: Duration,
        /// Which threads run, as `/readyz` may show it.
        threads: String,
        /// With the replica's last error, for the log only.
        reason: String,
    },
    /// Reachable, but how far behind cannot be told.
    LagUnknown {
        /// What to do about it, as `/readyz` may show it.
        public: &'static str,
        /// With the database's words, for the log only.
        reason: String,
    },
}

/// What `/readyz` says of a replica that does not answer: the cause, in the
/// database's words (user and host names), is only logged, since `/readyz`
/// is open to anyone.
const DOWN: &str =
    "the read replica does not answer, or a read on it failed (the server's log says why)";

const NO_PRIVILEGE: &str = "the read replica's lag is unknown: its user may not read the \
     replication status (grant it REPLICATION CLIENT, or REPLICA MONITOR on MariaDB)";

const NOT_A_REPLICA: &str =
    "the read replica's lag is unknown: SHOW REPLICA STATUS is empty there (not a replica)";

/// The replica's state as `/readyz` and `/metrics` show it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaHealth {
    /// A connection could be had and a statement ran.
    pub up: bool,
    /// How far behind the primary, in seconds; `None` when unknown. While
    /// replication is stopped, the time since it was first seen stopped
    /// (added to the lag it had): a lower bound.
    pub lag_seconds: Option<f64>,
    pub max_lag_seconds: f64,
    /// Whether reports are read there now (else on the primary).
    pub serving_reports: bool,
    /// Down, or further behind than the bound.
    pub degraded: bool,
    /// What is wrong, in words, when something is.
    pub problem: Option<String>,
    /// Reports read on the primary because the replica could not serve them,
    /// since the server started.
    pub fallbacks: u64,
}

pub(crate) struct Replica {
    pool: Pool,
    max_lag: Duration,
    seen: Mutex<Seen>,
    fallbacks: AtomicU64,
    /// The lag cannot be read (privilege, not a replica): said once.
    told_lag_unknown: AtomicBool,
    /// A look at the replica is under way: one at a time.
    looking: Arc<AtomicBool>,
    /// Whether the last look let reports read here (`UNDECIDED` before the
    /// first): a change is logged. Kept apart from `seen`, since a stopped
    /// replica passes the bound while nothing new is seen.
    serving: AtomicU8,
}

const UNDECIDED: u8 = 0;
const SERVING: u8 = 1;
const PASSED_OVER: u8 = 2;

/// A look at the replica under way, until dropped.
pub(crate) struct Looking(Arc<AtomicBool>);

impl Drop for Looking {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Opens every replica connection read-only: a statement that would write is
/// refused by the replica itself ("Cannot execute statement in a READ ONLY
/// transaction").
#[derive(Debug)]
struct ReadOnlySessions;

impl r2d2::CustomizeConnection<DbConnection, diesel::ConnectionError> for ReadOnlySessions {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::ConnectionError> {
        conn.batch_execute("SET SESSION TRANSACTION READ ONLY")
            .map_err(diesel::ConnectionError::CouldntSetupConfiguration)
    }
}

impl Replica {
    /// Builds the replica's pool without connecting: a replica that is down
    /// when the server starts is passed over until it answers, it does not
    /// keep the server from starting.
    pub(crate) fn open(settings: &ReplicaSettings, limits: &DbLimits) -> Result<Self, SetupError> {
        let pool = r2d2::Pool::builder()
            .max_size(limits.pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(limits.checkout_timeout.max(Duration::from_millis(10)))
            .error_handler(Box::new(LogPoolErrors))
            .connection_customizer(Box::new(ReadOnlySessions))
            .build_unchecked(DbConnectionManager::new(settings.url.clone()));
        Ok(Replica {
            pool,
            max_lag: settings.max_lag,
            seen: Mutex::new(Seen::Unchecked),
            fallbacks: AtomicU64::new(0),
            told_lag_unknown: AtomicBool::new(false),
            looking: Arc::default(),
            serving: AtomicU8::new(UNDECIDED),
        })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding it cannot leave a half-written `Seen`.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How far behind, as far as is known, and whether that is within bounds.
    fn lag_of(seen: &Seen) -> Option<Duration> {
        match seen {
            Seen::Replicating { lag } => Some(*lag),
            Seen::Stopped {
                since, lag_before, ..
            } => Some(*lag_before + since.elapsed()),
            Seen::Unchecked | Seen::Down { .. } | Seen::LagUnknown { .. } => None,
        }
    }

    /// Whether reports should be read here now.
    pub(crate) fn usable(&self) -> bool {
        self.usable_locked(&self.seen())
    }

    /// A connection for a report, or `None` (the replica is passed over, or
    /// no connection could be had in time: then it is taken for down until
    /// the next look at it). Either way the report is counted as a fallback.
    pub(crate) fn checkout(&self) -> Option<r2d2::PooledConnection<DbConnectionManager>> {
        if self.usable() {
            match self.pool.get_timeout(REPLICA_CHECKOUT) {
                Ok(conn) => return Some(conn),
                Err(e) => self.observe(Seen::Down {
                    reason: format!("no connection to the read replica: {e}"),
                }),
            }
        }
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// A read on the replica failed in a way that says it is unreachable.
    pub(crate) fn read_failed(&self, reason: String) {
        self.observe(Seen::Down { reason });
    }

    /// The right to look at the replica now, unless a look is under way.
    pub(crate) fn begin_check(&self) -> Option<Looking> {
        (!self.looking.swap(true, Ordering::SeqCst)).then(|| Looking(self.looking.clone()))
    }

    /// Looks at the replica now (a blocking call): a connection within
    /// `timeout`, then its replication status.
    pub(crate) fn check(&self, timeout: Duration) {
        let seen = match self.pool.get_timeout(timeout) {
            Err(e) => Seen::Down {
                reason: format!("no connection to the read replica: {e}"),
            },
            Ok(mut conn) => match replication_status(&mut conn) {
                Ok(None) => Seen::LagUnknown {
                    public: NOT_A_REPLICA,
                    reason: NOT_A_REPLICA.to_owned(),
                },
                Ok(Some(status)) => status.seen(&self.seen()),
                Err(DieselError::DatabaseError(_, info))
                    if info.message().contains("Access denied")
                        || info.message().contains("privilege") =>
                {
                    Seen::LagUnknown {
                        public: NO_PRIVILEGE,
                        reason: format!("{NO_PRIVILEGE}: {}", info.message()),
                    }
                }
                Err(e) => Seen::Down {
                    reason: format!("the read replica failed a statement: {e}"),
                },
            },
        };
        self.observe(seen);
    }

    /// Records what was seen; a change of kind is logged once.
    fn observe(&self, now: Seen) {
        let mut seen = self.seen();
        let is_usable = self.usable_locked(&now);
        let was_usable = match self.serving.swap(
            if is_usable { SERVING } else { PASSED_OVER },
            Ordering::SeqCst,
        ) {
            SERVING => Some(true),
            PASSED_OVER => Some(false),
            _ => None,
        };
        match &now {
            Seen::Down { reason } if was_usable != Some(false) => {
                tracing::warn!(%reason, "reports are read on the primary: the read replica is down");
            }
            Seen::LagUnknown { reason, .. }
                if !self.told_lag_unknown.swap(true, Ordering::Relaxed) =>
            {
                tracing::warn!(%reason, "the read replica's lag is unknown");
            }
            Seen::Stopped { reason, .. } if !matches!(*seen, Seen::Stopped { .. }) => {
                tracing::warn!(%reason, "the read replica has stopped replicating");
            }
            _ if was_usable == Some(true) && !is_usable => {
                let lag = Self::lag_of(&now).map(|l| l.as_secs_f64());
                tracing::warn!(
                    lag_seconds = lag,
                    max_lag_seconds = self.max_lag.as_secs_f64(),
                    "reports are read on the primary: the read replica is too far behind"
                );
            }
            _ if was_usable == Some(false) && is_usable => {
                tracing::info!("reports are read on the read replica again");
            }
            _ => {}
        }
        *seen = now;
    }

    fn usable_locked(&self, seen: &Seen) -> bool {
        match seen {
            Seen::Unchecked | Seen::LagUnknown { .. } => true,
            Seen::Down { .. } => false,
            Seen::Replicating { .. } | Seen::Stopped { .. } => {
                Self::lag_of(seen).is_some_and(|lag| lag <= self.max_lag)
            }
        }
    }

    pub(crate) fn health(&self) -> ReplicaHealth {
        let seen = self.seen().clone();
        let lag = Self::lag_of(&seen);
        let usable = self.usable_locked(&seen);
        let up = !matches!(seen, Seen::Down { .. });
        let problem = match &seen {
            Seen::Unchecked | Seen::Replicating { .. } => None,
            Seen::Down { .. } => Some(DOWN.to_owned()),
            Seen::Stopped { threads, .. } => Some(format!(
                "replication is not running on the read replica ({threads})"
            )),
            Seen::LagUnknown { public, .. } => Some((*public).to_owned()),
        }
        .or_else(|| {
            (!usable).then(|| {
                format!(
                    "the read replica is further behind than --max-replica-lag ({}s)",
                    self.max_lag.as_secs()
                )
            })
        });
        ReplicaHealth {
            up,
            lag_seconds: lag.map(|l| l.as_secs_f64()),
            max_lag_seconds: self.max_lag.as_secs_f64(),
            serving_reports: usable,
            degraded: !usable,
            problem,
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
        }
    }
}

/// The replication status as MariaDB (and MySQL before 8.0.22) names it.
#[derive(QueryableByName)]
struct SlaveStatus {
    #[diesel(sql_type = Text, column_name = Slave_IO_Running)]
    slave_io_running: String,
    #[diesel(sql_type = Text, column_name = Slave_SQL_Running)]
    slave_sql_running: String,
    #[diesel(sql_type = Nullable<BigInt>, column_name = Seconds_Behind_Master)]
    seconds_behind_master: Option<i64>,
    #[diesel(sql_type = Text, column_name = Last_IO_Error)]
    last_io_error: String,
    #[diesel(sql_type = Text, column_name = Last_SQL_Error)]
    last_sql_error: String,
}

/// The replication status as MySQL 8.0.22 and later names it.
#[derive(QueryableByName)]
struct ReplicaStatus {
    #[diesel(sql_type = Text, column_name = Replica_IO_Running)]
    replica_io_running: String,
    #[diesel(sql_type = Text, column_name = Replica_SQL_Running)]
    replica_sql_running: String,
    #[diesel(sql_type = Nullable<BigInt>, column_name = Seconds_Behind_Source)]
    seconds_behind_source: Option<i64>,
    #[diesel(sql_type = Text, column_name = Last_IO_Error)]
    last_io_error: String,
    #[diesel(sql_type = Text, column_name = Last_SQL_Error)]
    last_sql_error: String,
}

/// What `SHOW REPLICA STATUS` says, whichever names it uses.
struct Replication {
    io_running: String,
    sql_running: String,
    seconds_behind: Option<i64>,
    last_error: String,
}

impl Replication {
    fn seen(self, before: &Seen) -> Seen {
        let running = self.io_running == "Yes" && self.sql_running == "Yes";
        match self.seconds_behind {
            Some(seconds) if running => Seen::Replicating {
                lag: Duration::from_secs(u64::try_from(seconds).unwrap_or(0)),
            },
            _ => {
                let threads = format!(
                    "IO thread: {}, SQL thread: {}",
                    self.io_running, self.sql_running
                );
                let reason = format!(
                    "replication is not running on the read replica ({threads}){}",
                    if self.last_error.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", self.last_error)
                    }
                );
                match before {
                    // Still stopped: it has been falling behind since first seen.
                    Seen::Stopped {
                        since, lag_before, ..
                    } => Seen::Stopped {
                        since: *since,
                        lag_before: *lag_before,
                        threads,
                        reason,
                    },
                    Seen::Replicating { lag } => Seen::Stopped {
                        since: Instant::now(),
                        lag_before: *lag,
                        threads,
                        reason,
                    },
                    _ => Seen::Stopped {
                        since: Instant::now(),
                        lag_before: Duration::ZERO,
                        threads,
                        reason,
                    },
                }
            }
        }
    }
}

/// `SHOW REPLICA STATUS` (MariaDB 10.5+, MySQL 8.0.22+), or `SHOW SLAVE
/// STATUS` on servers that do not know it. `None`: the server is not a
/// replica.
fn replication_status(conn: &mut DbConnection) -> QueryResult<Option<Replication>> {
    let asked = diesel::sql_query("SHOW REPLICA STATUS").load::<SlaveStatus>(conn);
    let rows = match asked {
        Ok(rows) => rows,
        // MySQL 8.0.22 and later: the same statement, other column names.
        Err(DieselError::DeserializationError(_)) => {
            let rows = diesel::sql_query("SHOW REPLICA STATUS").load::<ReplicaStatus>(conn)?;
            return Ok(rows.into_iter().next().map(|r| Replication {
                io_running: r.replica_io_running,
                sql_running: r.replica_sql_running,
                seconds_behind: r.seconds_behind_source,
                last_error: first_error(r.last_io_error, r.last_sql_error),
            }));
        }
        Err(DieselError::DatabaseError(_, info)) if info.message().contains("syntax") => {
            diesel::sql_query("SHOW SLAVE STATUS").load::<SlaveStatus>(conn)?
        }
        Err(e) => return Err(e),
    };
    Ok(rows.into_iter().next().map(|r| Replication {
        io_running: r.slave_io_running,
        sql_running: r.slave_sql_running,
        seconds_behind: r.seconds_behind_master,
        last_error: first_error(r.last_io_error, r.last_sql_error),
    }))
}

fn first_error(io: String, sql: String) -> String {
    if io.is_empty() { sql } else { io }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(max_lag: Duration) -> Replica {
        let settings = ReplicaSettings {
            // Never connected to: these tests only feed it what was seen.
            url: DatabaseUrl::Mysql("mysql://reader@127.0.0.1:1/deploytime".to_owned()),
            max_lag,
        };
        Replica::open(&settings, &DbLimits::DEFAULT).unwrap()
    }

    fn status(io: &str, sql: &str, seconds: Option<i64>) -> Replication {
        Replication {
            io_running: io.to_owned(),
            sql_running: sql.to_owned(),
            seconds_behind: seconds,
            last_error: String::new(),
        }
    }

    #[test]
    fn a_replica_within_the_bound_serves_and_one_beyond_it_does_not() {
        let replica = replica(Duration::from_secs(30));
        assert!(replica.usable(), "not looked at yet: tried");
        replica.observe(status("Yes", "Yes", Some(30)).seen(&Seen::Unchecked));
        let health = replica.health();
        assert!(health.serving_reports && !health.degraded && health.up);
        assert_eq!(health.lag_seconds, Some(30.0));
        replica.observe(status("Yes", "Yes", Some(31)).seen(&Seen::Unchecked));
        let health = replica.health();
        assert!(!health.serving_reports && health.degraded && health.up);
        assert!(health.problem.unwrap().contains("--max-replica-lag"));
    }

    #[test]
    fn stopped_replication_falls_behind_from_when_it_was_first_seen() {
        let replica = replica(Duration::from_secs(30));
        let before = Seen::Replicating {
            lag: Duration::from_secs(29),
        };
        let stopped = status("Yes", "No", None).seen(&before);
        let Seen::Stopped { lag_before, .. } = &stopped else {
            panic!("{stopped:?}");
        };
        assert_eq!(*lag_before, Duration::from_secs(29));
        // Seen stopped again: the first sighting is kept.
        let Seen::Stopped { since, .. } = &stopped else {
            unreachable!()
        };
        let again = status("Yes", "No", None).seen(&stopped);
        assert!(matches!(&again, Seen::Stopped { since: s, .. } if s == since));
        let long_ago = Seen::Stopped {
            since: Instant::now() - Duration::from_secs(2),
            lag_before: Duration::from_secs(29),
            threads: "IO thread: Yes, SQL thread: No".to_owned(),
            reason: "stopped".to_owned(),
        };
        replica.observe(long_ago);
        let health = replica.health();
        assert!(health.degraded && !health.serving_reports);
        assert!(health.lag_seconds.unwrap() >= 31.0, "{health:?}");
    }

    #[test]
    fn a_replica_that_is_down_is_passed_over_without_being_tried() {
        let replica = replica(Duration::from_secs(30));
        replica.observe(Seen::Down {
            reason: "no connection".to_owned(),
        });
        let started = Instant::now();
        assert!(replica.checkout().is_none());
        assert!(started.elapsed() < REPLICA_CHECKOUT, "it was tried");
        let health = replica.health();
        assert_eq!(health.fallbacks, 1);
        assert!(!health.up && health.degraded && health.lag_seconds.is_none());
        assert_eq!(health.problem.as_deref(), Some(DOWN));
    }

    #[test]
    fn an_unknown_lag_is_said_and_the_replica_still_serves() {
        let replica = replica(Duration::from_secs(30));
        replica.observe(Seen::LagUnknown {
            public: NO_PRIVILEGE,
            reason: format!("{NO_PRIVILEGE}: Access denied for user 'reader'@'10.0.0.7'"),
        });
        let health = replica.health();
        assert!(health.up && health.serving_reports && !health.degraded);
        assert_eq!(health.lag_seconds, None);
        let problem = health.problem.unwrap();
        assert!(problem.contains("REPLICATION CLIENT"), "{problem}");
        assert!(!problem.contains("10.0.0.7"), "/readyz is open: {problem}");
    }
}
