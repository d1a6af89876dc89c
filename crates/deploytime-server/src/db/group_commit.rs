//! Group commit: concurrent store calls share one transaction, so one flush to
//! disk acknowledges many events. Each call is a job on a queue; a committer
//! thread takes the jobs waiting, checks each caller against the tokens as they
//! are now, stores them in one transaction and answers them once it is
//! committed. See docs/architecture.md ("Group commit").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use chrono::{DateTime, Utc};
use deploytime_core::NewEvent;
use deploytime_core::access::{Credential, admit_event, identify};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::error::DbError;
use super::pool::Pool;
use super::store::{StoreError, Stored, store_batch};
use super::tokens::TokenCache;

/// Most events in one transaction with a single committer: enough to absorb a
/// burst of every connection of a busy server, few enough that one
/// transaction's locks and its retry after a deadlock stay short.
pub const MAX_BATCH: usize = 128;

/// What a store call is answered with.
pub(crate) type StoreOutcome = Result<Stored, StoreError>;

/// One store call waiting for a commit.
pub(crate) struct Job {
    pub event: NewEvent,
    pub received_at: DateTime<Utc>,
    /// Checked against the tokens as they are when the job's commit runs.
    pub credential: Credential,
    /// Set when the caller has gone before the job ran: it is then skipped.
    pub abandoned: Arc<AtomicBool>,
    /// Held until the job is answered, so in-flight work stays bounded.
    pub _permit: OwnedSemaphorePermit,
    pub reply: oneshot::Sender<StoreOutcome>,
}

/// The queue in front of the committer threads.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    sender: mpsc::Sender<Job>,
    batch_sizes: Arc<OnceLock<prometheus::Histogram>>,
}

impl GroupCommit {
    /// Starts `committers` threads writing through `pool`; they end when the last
    /// handle is dropped. `write_turn` is the SQLite writers' lock. Each commit
    /// takes at most `max_batch` jobs: with several committers a smaller bound
    /// shares a burst among them, where one committer taking everything waiting
    /// would keep all of it waiting for its single transaction while the other
    /// has nothing to do.
    pub fn start(
        pool: Pool,
        write_turn: Option<Arc<Mutex<()>>>,
        committers: usize,
        max_batch: usize,
        tokens: TokenCache,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let batch_sizes = Arc::new(OnceLock::new());
        for n in 0..committers.max(1) {
            let committer = Committer {
                receiver: receiver.clone(),
                pool: pool.clone(),
                write_turn: write_turn.clone(),
                batch_sizes: batch_sizes.clone(),
                tokens: tokens.clone(),
                max_batch: max_batch.max(1),
            };
            std::thread::Builder::new()
                .name(format!("deploytime-commit-{n}"))
                .spawn(move || committer.run())?;
        }
        Ok(GroupCommit {
            sender,
            batch_sizes,
        })
    }

    /// Queues a job; fails only when no committer is left to take it.
    pub fn submit(&self, job: Job) -> Result<(), DbError> {
        self.sender.send(job).map_err(|_| DbError::WorkerGone)
    }

    /// Records the number of events of each commit in `histogram` from now on.
    pub fn observe_batch_sizes(&self, histogram: prometheus::Histogram) {
        // Set once per application; a second registration keeps the first.
        let _ = self.batch_sizes.set(histogram);
    }
}

struct Committer {
    receiver: Arc<Mutex<mpsc::Receiver<Job>>>,
    pool: Pool,
    write_turn: Option<Arc<Mutex<()>>>,
    batch_sizes: Arc<OnceLock<prometheus::Histogram>>,
    tokens: TokenCache,
    max_batch: usize,
}

impl Committer {
    fn run(self) {
        while let Some(batch) = self.next_batch() {
            self.commit(batch);
        }
    }

    /// Waits for a job, then takes every job already waiting behind it. `None`
    /// when the queue is closed.
    fn next_batch(&self) -> Option<Vec<Job>> {
        // A poisoned lock only means another committer panicked while taking
        // jobs; the queue itself is intact.
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let first = receiver.recv().ok()?;
        let mut batch = Vec::with_capacity(16);
        batch.push(first);
        batch.extend(receiver.try_iter().take(self.max_batch - 1));
        Some(batch)
    }

    fn commit(&self, mut batch: Vec<Job>) {
        let _turn = self
            .write_turn
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        batch.retain(|job| !job.abandoned.load(Ordering::SeqCst));
        if batch.is_empty() {
            return;
        }
        let mut conn = match self.pool.get() {
            Ok(conn) => conn,
            Err(e) => return refuse_all(batch, DbError::from(e)),
        };
        // The wait for a connection may have outlasted some callers.
        batch.retain(|job| !job.abandoned.load(Ordering::SeqCst));
        // Each job's credential against the tokens as they are now, so that a
        // token revoked before the call was made stores nothing.
        let tokens = match self.tokens.refresh(&mut conn) {
            Ok(tokens) => tokens,
            Err(e) => return refuse_all(batch, DbError::from(e)),
        };
        let mut admitted = Vec::with_capacity(batch.len());
        for job in batch {
            match identify(&job.credential, tokens.as_ref())
                .and_then(|caller| admit_event(&caller, &job.event))
            {
                Ok(()) => admitted.push(job),
                // A caller that has gone needs no answer.
                Err(denied) => {
                    let _ = job.reply.send(Err(StoreError::Denied(denied)));
                }
            }
        }
        let batch = admitted;
        if batch.is_empty() {
            return;
        }
        let events: Vec<(&NewEvent, DateTime<Utc>)> = batch
            .iter()
            .map(|job| (&job.event, job.received_at))
            .collect();
        let outcome = store_batch(&mut conn, &events);
        drop(conn);
        match outcome {
            Ok(results) => {
                if let Some(histogram) = self.batch_sizes.get() {
                    histogram.observe(batch.len() as f64);
                }
                for (job, result) in batch.into_iter().zip(results) {
                    // The caller may have gone meanwhile; its event is stored and
                    // a retry with the same event id gets this answer again.
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(), "a group commit failed; none of its events was stored");
                refuse_all(batch, DbError::from(e));
            }
        }
    }
}

/// Answers every job of a batch that was not stored with the same error.
fn refuse_all(batch: Vec<Job>, error: DbError) {
    for job in batch {
        // A caller that has gone needs no answer.
        let _ = job.reply.send(Err(StoreError::Database(error.clone())));
    }
}
