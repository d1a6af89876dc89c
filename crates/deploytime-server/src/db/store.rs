//! The store call's transaction: idempotency check, pairing, and the writes to the
//! ledger and the deployments table, all or nothing.
//!
//! Concurrency is handled by the database, not by checking first: the event id and
//! the deployment id are unique indexes, and a deployment is only updated at the
//! revision it was read at. When a concurrent writer wins one of those races the
//! event's work is run again (from its savepoint), and on the second reading the
//! loser sees what happened (a replay, or a conflict) and answers accordingly.
//!
//! Several events can share one transaction ([`store_batch`]): the server's
//! group commit (see `group_commit.rs`) acknowledges them with one flush to disk.

use chrono::{DateTime, Utc};
use deploytime_core::deployment::pair;
use deploytime_core::time::to_micros;
use deploytime_core::{Deployment, NewEvent, PairingError, Phase};
use diesel::Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use uuid::Uuid;

use super::DbConnection;
use super::models::{CorruptRow, DeploymentRow, EventRow};
use super::queries;

/// How many times a transaction that lost a race is run again. Each retry sees the
/// winner's committed rows, so one retry nearly always settles it.
const MAX_ATTEMPTS: usize = 4;

/// The result of a store call.
#[derive(Debug)]
pub struct Stored {
    pub event: EventRow,
    pub deployment: DeploymentRow,
    /// True when the event had been stored before (an idempotent replay).
    pub replayed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Pairing(#[from] PairingError),
    #[error("event {event_id} was already stored with different content")]
    IdempotencyConflict { event_id: Uuid },
    #[error(transparent)]
    Corrupt(#[from] CorruptRow),
    #[error("the store call kept losing races with concurrent writers")]
    Contended,
    /// The caller's token was revoked (or another token created, for an
    /// anonymous caller) before the event's commit ran.
    #[error(transparent)]
    Denied(#[from] crate::auth::Denied),
    #[error(transparent)]
    Database(#[from] DieselError),
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
            _ => AttemptError::Fail(StoreError::Database(e)),
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
pub fn store_batch(
    conn: &mut DbConnection,
    events: &[(&NewEvent, DateTime<Utc>)],
) -> Result<Vec<Result<Stored, StoreError>>, DieselError> {
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
) -> Result<Result<Stored, StoreError>, DieselError> {
    match attempt(conn, event, received_at, ledger) {
        Ok(stored) => Ok(Ok(stored)),
        Err(AttemptError::Fail(
            e @ (StoreError::Pairing(_)
            | StoreError::IdempotencyConflict { .. }
            | StoreError::Corrupt(_)
            | StoreError::Denied(_)),
        )) => Ok(Err(e)),
        Err(AttemptError::Abort(e)) | Err(AttemptError::Fail(StoreError::Database(e))) => Err(e),
        Err(AttemptError::Retry) | Err(AttemptError::Fail(StoreError::Contended)) => {
            Err(DieselError::RollbackTransaction)
        }
    }
}

/// One event of a batch: `Ok(Err(_))` is this event's own refusal (its savepoint
/// rolled back), `Err(_)` a failure of the whole transaction.
fn store_in_savepoint(
    conn: &mut DbConnection,
    event: &NewEvent,
    received_at: DateTime<Utc>,
) -> Result<Result<Stored, StoreError>, DieselError> {
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

/// Applies one event. Its ledger row is inserted at once, or pushed to `ledger`
/// for the caller to insert (before the transaction commits).
fn attempt(
    conn: &mut DbConnection,
    event: &NewEvent,
    received_at: DateTime<Utc>,
    ledger: Option<&mut Vec<EventRow>>,
) -> Result<Stored, AttemptError> {
    if let Some(event_id) = event.event_id
        && let Some(existing) = queries::find_event(conn, &event_id.to_string())?
    {
        return replay(conn, event, existing);
    }

    let target = match (event.deployment_id, event.kind.phase()) {
        (Some(id), _) => queries::find_deployment(conn, &id.to_string())?,
        (None, Phase::Finish) => queries::find_latest_running(
            conn,
            event.component.as_str(),
            event.environment.as_str(),
        )?,
        (None, Phase::Start) => None,
    };
    let (target, revision, created_at) = match target {
        Some(row) => {
            let deployment = row.to_deployment().map_err(fail)?;
            (Some(deployment), row.revision, row.created_at)
        }
        None => (None, 0, to_micros(received_at)),
    };

    // Without a client timestamp the event happened "now": stamp it when it is
    // applied rather than when it was received, and never before the start it
    // closes, or a finish that waited behind its own start (or raced it on
    // another connection) would be refused as earlier than that start.
    let restamped;
    let event = if event.timestamp_given {
        event
    } else {
        let started = target.as_ref().and_then(|d| d.started_at);
        let applied = deploytime_core::time::truncate_to_micros(Utc::now());
        restamped = NewEvent {
            occurred_at: applied
                .max(event.occurred_at)
                .max(started.unwrap_or(applied)),
            ..event.clone()
        };
        &restamped
    };
    let now = to_micros(received_at);
    let pairing = pair(event, target, Uuid::now_v7()).map_err(fail)?;
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

    let event_row = event_row(event, pairing.deployment(), received_at);
    match ledger {
        Some(rows) => rows.push(event_row.clone()),
        None => {
            queries::insert_event(conn, &event_row)?;
        }
    }
    Ok(Stored {
        event: event_row,
        deployment: deployment_row,
        replayed: false,
    })
}

/// The same event id again: the original result if it is the same call, a
/// conflict if it is not.
fn replay(
    conn: &mut DbConnection,
    event: &NewEvent,
    existing: EventRow,
) -> Result<Stored, AttemptError> {
    if existing.fingerprint != event.fingerprint {
        return Err(AttemptError::Fail(StoreError::IdempotencyConflict {
            event_id: event.event_id.unwrap_or_default(),
        }));
    }
    let deployment = queries::find_deployment(conn, &existing.deployment_id)?.ok_or_else(|| {
        AttemptError::Fail(StoreError::Corrupt(CorruptRow {
            id: existing.deployment_id.clone(),
            reason: format!(
                "event {} names a deployment that is not stored",
                existing.id
            ),
        }))
    })?;
    Ok(Stored {
        event: existing,
        deployment,
        replayed: true,
    })
}

fn event_row(event: &NewEvent, deployment: &Deployment, received_at: DateTime<Utc>) -> EventRow {
    EventRow {
        id: event.event_id.unwrap_or_else(Uuid::now_v7).to_string(),
        deployment_id: deployment.id.to_string(),
        phase: event.kind.phase().as_str().to_owned(),
        component: event.component.to_string(),
        environment: event.environment.to_string(),
        status: event.kind.status().map(|s| s.as_str().to_owned()),
        version: event.version.clone(),
        owner: event.owner.clone(),
        occurred_at: to_micros(event.occurred_at),
        received_at: to_micros(received_at),
        // A map of strings always serialises.
        attributes: serde_json::to_string(&event.attributes).unwrap_or_else(|_| "{}".into()),
        fingerprint: event.fingerprint.clone(),
    }
}
