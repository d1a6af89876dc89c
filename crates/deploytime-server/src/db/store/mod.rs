//! The store call's transaction: the idempotency check, then what the domain
//! decides (the target, the time, the pairing) written to the ledger and the
//! deployments table, all or nothing. Races are settled by unique indexes and
//! revision-checked updates; several events share one transaction
//! ([`store_batch`]). See docs/architecture.md ("One store call").

use chrono::{DateTime, Utc};
use deploytime_core::access::Denied;
use deploytime_core::pairing::{self, Target, pair};
use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::{Deployment, NewEvent, PairingError, RecordedEvent};
use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::connection::DbConnection;
use super::error::DbError;
use super::models::{DeploymentRow, EventRow};
use super::queries;

/// How many times a transaction that lost a race is run again. Each retry sees the
/// winner's committed rows, so one retry nearly always settles it.
const MAX_ATTEMPTS: usize = 4;

/// The result of a store call.
#[derive(Debug)]
pub struct Stored {
    pub event: RecordedEvent,
    pub deployment: Deployment,
    /// True when the event had been stored before (an idempotent replay).
    pub replayed: bool,
}

/// Why a store call stored nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Pairing(#[from] PairingError),
    #[error("event {event_id} was already stored with different content")]
    IdempotencyConflict { event_id: Uuid },
    #[error("the store call kept losing races with concurrent writers")]
    Contended,
    /// The caller's token was revoked (or another token created, for an
    /// anonymous caller) before the event's commit ran.
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        StoreError::Database(DbError::from(e))
    }
}

/// A store call's result before its rows are read back as domain values.
type Written = Result<(EventRow, DeploymentRow, bool), StoreError>;

/// The rows of a stored event as the domain's values.
fn stored(
    (event, deployment, replayed): (EventRow, DeploymentRow, bool),
) -> Result<Stored, StoreError> {
    Ok(Stored {
        event: event.into_recorded().map_err(DieselError::from)?,
        deployment: deployment.into_deployment().map_err(DieselError::from)?,
        replayed,
    })
}

/// Errors inside one attempt; `Retry` ends it so that the next attempt starts from
/// a fresh savepoint, `Abort` ends the whole transaction (the database has
/// already rolled it back: a deadlock), so that the whole batch is run again.
#[derive(Debug)]
enum AttemptError {
    Retry,
    Abort(DieselError),
    Fail(StoreError),
}

impl From<DieselError> for AttemptError {
    fn from(e: DieselError) -> Self {
        match &e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                AttemptError::Retry
            }
            DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => {
                AttemptError::Abort(e)
            }
            _ => AttemptError::Fail(StoreError::from(e)),
        }
    }
}

/// Ends the attempt with a failure that retrying cannot fix.
fn fail(e: impl Into<StoreError>) -> AttemptError {
    AttemptError::Fail(e.into())
}

/// Stores several validated events in one transaction (one commit, so one flush
/// to disk, for all of them), each in a savepoint of its own: an event that is
/// refused (a pairing error, an idempotency conflict) is rolled back alone and
/// the others are kept. Events are applied in the order given, so a finish after
/// its start in the same batch closes it.
///
/// The outer error means nothing of the batch was committed: the database
/// failed, or kept choosing this transaction as a deadlock's victim.
pub(crate) fn store_batch(
    conn: &mut DbConnection,
    events: &[(&NewEvent, DateTime<Utc>)],
) -> Result<Vec<Result<Stored, StoreError>>, DieselError> {
    Ok(write_batch(conn, events)?
        .into_iter()
        .map(|written| written.and_then(stored))
        .collect())
}

fn write_batch(
    conn: &mut DbConnection,
    events: &[(&NewEvent, DateTime<Utc>)],
) -> Result<Vec<Written>, DieselError> {
    // First without savepoints (two statements less per event): an event is
    // refused before it writes anything, so a refusal needs no rollback. Only a
    // lost race or a database error can come after a write; then this attempt is
    // rolled back whole and the batch runs again, each event in a savepoint.
    //
    // The ledger rows of this first attempt are written together at its end, in
    // one statement: one round trip less per event. Only an event id's own
    // earlier row could be missed that way (the idempotency check reads the
    // ledger), so a batch that holds an event id twice writes each row at once.
    let mut ids = std::collections::HashSet::with_capacity(events.len());
    let repeated_id = events
        .iter()
        .filter_map(|(event, _)| event.event_id)
        .any(|id| !ids.insert(id));
    let direct = conn.transaction(|conn| {
        let mut ledger = (!repeated_id).then(|| Vec::with_capacity(events.len()));
        let results = events
            .iter()
            .map(|(event, received_at)| store_directly(conn, event, *received_at, ledger.as_mut()))
            .collect::<Result<Vec<_>, DieselError>>()?;
        if let Some(rows) = &ledger {
            queries::insert_events(conn, rows)?;
        }
        Ok::<_, DieselError>(results)
    });
    if let Ok(results) = direct {
        return Ok(results);
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let outcome = conn.transaction(|conn| {
            events
                .iter()
                .map(|(event, received_at)| store_in_savepoint(conn, event, *received_at))
                .collect::<Result<Vec<_>, DieselError>>()
        });
        match outcome {
            Err(DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _))
                if attempts < MAX_ATTEMPTS =>
            {
                continue;
            }
            other => return other,
        }
    }
}

/// One event of a batch without a savepoint: `Ok(Err(_))` is a refusal (nothing
/// written), `Err(_)` abandons the attempt so the batch is run with savepoints.
fn store_directly(
    conn: &mut DbConnection,
    event: &NewEvent,
    received_at: DateTime<Utc>,
    ledger: Option<&mut Vec<EventRow>>,
) -> Result<Written, DieselError> {
    match attempt(conn, event, received_at, ledger) {
        Ok(written) => Ok(Ok(written)),
        Err(AttemptError::Fail(
            e @ (StoreError::Pairing(_)
            | StoreError::IdempotencyConflict { .. }
            | StoreError::Denied(_)),
        )) => Ok(Err(e)),
        // Anything else is rolled back with the attempt and retried with
        // savepoints, where it is this event's alone.
        Err(AttemptError::Abort(_))
        | Err(AttemptError::Fail(StoreError::Database(_)))
        | Err(AttemptError::Retry)
        | Err(AttemptError::Fail(StoreError::Contended)) => Err(DieselError::RollbackTransaction),
    }
}

/// One event of a batch: `Ok(Err(_))` is this event's own refusal (its savepoint
/// rolled back), `Err(_)` a failure of the whole transaction.
fn store_in_savepoint(
    conn: &mut DbConnection,
    event: &NewEvent,
    received_at: DateTime<Utc>,
) -> Result<Written, DieselError> {
    for _ in 0..MAX_ATTEMPTS {
        match conn.transaction(|conn| attempt(conn, event, received_at, None)) {
            Ok(stored) => return Ok(Ok(stored)),
            Err(AttemptError::Retry) => continue,
            Err(AttemptError::Abort(e)) => return Err(e),
            // A database error of this event's statements is its own (rolled back
            // to its savepoint); if the connection is gone, the commit fails and
            // the whole batch is reported as not stored.
            Err(AttemptError::Fail(e)) => return Ok(Err(e)),
        }
    }
    Ok(Err(StoreError::Contended))
}

/// Applies one event: looks up what the domain says it targets, stamps and
/// pairs it as the domain decides, and writes the result. Its ledger row is
/// inserted at once, or pushed to `ledger` for the caller to insert (before the
/// transaction commits).
fn attempt(
    conn: &mut DbConnection,
    event: &NewEvent,
    received_at: DateTime<Utc>,
    ledger: Option<&mut Vec<EventRow>>,
) -> Result<(EventRow, DeploymentRow, bool), AttemptError> {
    if let Some(event_id) = event.event_id
        && let Some(existing) = queries::find_event(conn, &event_id.to_string())?
    {
        return replay(conn, event, existing);
    }

    let found = match pairing::target(event) {
        Target::Named(id) => queries::find_deployment_row(conn, &id.to_string())?,
        Target::LatestRunning {
            component,
            environment,
        } => queries::find_latest_running(conn, component, environment)?,
        Target::Nothing => None,
    };
    let (target, revision, created_at) = match found {
        Some(row) => {
            let (revision, created_at) = (row.revision, row.created_at);
            let deployment = row
                .into_deployment()
                .map_err(|e| fail(DieselError::from(e)))?;
            (Some(deployment), revision, created_at)
        }
        None => (None, 0, to_micros(received_at)),
    };

    let stamped = pairing::stamped(event, target.as_ref(), Utc::now());
    let now = to_micros(received_at);
    let pairing = match pair(&stamped, target, Uuid::now_v7()) {
        Ok(pairing) => pairing,
        Err(refused) => return refused_unless_stored_meanwhile(conn, event, refused),
    };
    let event = stamped;
    let deployment_row = match &pairing {
        deploytime_core::Pairing::Insert(d) => {
            let row = DeploymentRow::from_deployment(d, 0, now, now);
            queries::insert_deployment(conn, &row)?;
            row
        }
        deploytime_core::Pairing::Update { after, .. } => {
            let row = DeploymentRow::from_deployment(after, revision + 1, created_at, now);
            if queries::update_deployment(conn, &row, revision)? != 1 {
                return Err(AttemptError::Retry);
            }
            row
        }
    };

    queries::record_commits(conn, &deployment_row.id, &event.commits)?;

    let event_id = event.event_id.unwrap_or_else(Uuid::now_v7);
    let event_row = EventRow::new(event_id, &event, pairing.deployment(), from_micros(now));
    match ledger {
        Some(rows) => rows.push(event_row.clone()),
        None => {
            queries::insert_event(conn, &event_row)?;
        }
    }
    Ok((event_row, deployment_row, false))
}

/// A pairing refusal, unless the same event id was committed by another
/// transaction between this attempt's ledger lookup and its target's: MySQL
/// runs several committers, each statement reading what is committed when it
/// runs, so a retried call racing its original can find the ledger without
/// the event and then the deployment the original already started or
/// finished. That call is the original's replay, not a conflict. (The
/// deployment and its ledger row commit together, so a target that shows the
/// original's write means its ledger row is visible too.)
fn refused_unless_stored_meanwhile(
    conn: &mut DbConnection,
    event: &NewEvent,
    refused: PairingError,
) -> Result<(EventRow, DeploymentRow, bool), AttemptError> {
    if let Some(event_id) = event.event_id
        && let Some(existing) = queries::find_event(conn, &event_id.to_string())?
    {
        return replay(conn, event, existing);
    }
    Err(fail(refused))
}

/// The same event id again: the original result if it is the same call, a
/// conflict if it is not.
fn replay(
    conn: &mut DbConnection,
    event: &NewEvent,
    existing: EventRow,
) -> Result<(EventRow, DeploymentRow, bool), AttemptError> {
    if existing.fingerprint != event.fingerprint {
        return Err(AttemptError::Fail(StoreError::IdempotencyConflict {
            event_id: event.event_id.unwrap_or_default(),
        }));
    }
    let deployment =
        queries::find_deployment_row(conn, &existing.deployment_id)?.ok_or_else(|| {
            fail(DieselError::DeserializationError(
                format!(
                    "stored event {} names deployment {}, which is not stored",
                    existing.id, existing.deployment_id
                )
                .into(),
            ))
        })?;
    Ok((existing, deployment, true))
}

#[cfg(test)]
mod tests;
