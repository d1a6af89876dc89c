//! The release gate's records: registering a release (or finding it again),
//! reading it with its approvers and audit, listing releases, recording a
//! decision made through a one-time link, and recording expiry. Every rule
//! is the domain's (`deploytime_core::release`); each function here is one
//! transaction that persists what it decides.

use chrono::{DateTime, Utc};
use deploytime_core::release::{
    Approver, Ask, Ballot, LinkDigest, Quorum, Refusal, Release, ReleaseKey, ReleaseRequest,
    ReleaseState, Verdict, admit, outcome,
};
use deploytime_core::time::{from_micros, to_micros};
use deploytime_core::wire::AuditEntry;
use deploytime_core::{Component, Environment};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::{Cursor, Listed};
use crate::db::connection::DbConnection;
use crate::db::schema::{approval_links, gate_audit, gate_outbox, release_approvers, releases};

/// A stored release row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = releases)]
pub(crate) struct ReleaseRow {
    pub seq: i64,
    pub team_project: String,
    pub release_id: String,
    pub release_name: String,
    pub component: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub requested_by: Option<String>,
    pub required_approvals: Option<i32>,
    pub expires_in_s: i64,
    pub fingerprint: String,
    pub state: String,
    pub reason: Option<String>,
    pub needed: Option<i32>,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
}

fn corrupt(what: &str, seq: i64) -> DieselError {
    DieselError::DeserializationError(format!("stored release {seq} has an invalid {what}").into())
}

impl ReleaseRow {
    /// The domain's release; a row that is not a valid one is a decoding error.
    pub(crate) fn into_release(self) -> QueryResult<Release> {
        let seq = self.seq;
        let state = ReleaseState::parse(&self.state).ok_or_else(|| corrupt("state", seq))?;
        let component = self
            .component
            .map(|c| Component::parse(&c))
            .transpose()
            .map_err(|_| corrupt("component", seq))?;
        let environment = self
            .environment
            .map(|e| Environment::parse(&e))
            .transpose()
            .map_err(|_| corrupt("environment", seq))?;
        Ok(Release {
            request: ReleaseRequest {
                key: ReleaseKey {
                    team_project: self.team_project,
                    release_id: self.release_id,
                },
                release_name: self.release_name,
                component,
                environment,
                version: self.version,
                requested_by: self.requested_by,
                required_approvals: self.required_approvals.and_then(|n| u32::try_from(n).ok()),
                expires_in: std::time::Duration::from_secs(
                    u64::try_from(self.expires_in_s).unwrap_or_default(),
                ),
            },
            state,
            reason: self.reason,
            needed: self.needed.and_then(|n| u32::try_from(n).ok()),
            created_at: from_micros(self.created_at),
            expires_at: from_micros(self.expires_at),
            decided_at: self.decided_at.map(from_micros),
        })
    }
}

/// A stored approver row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = release_approvers)]
pub(crate) struct ApproverRow {
    pub seq: i64,
    pub release_seq: i64,
    pub email: String,
    pub name: Option<String>,
    pub may_approve: i16,
    pub verdict: Option<String>,
    pub comment: Option<String>,
    pub decided_at: Option<i64>,
}

impl ApproverRow {
    pub(crate) fn approver(&self) -> Approver {
        Approver {
            email: self.email.clone(),
            name: self.name.clone(),
        }
    }

    fn into_ask(self) -> QueryResult<Ask> {
        let verdict = self
            .verdict
            .as_deref()
            .map(|v| Verdict::parse(v).ok_or_else(|| corrupt("verdict", self.release_seq)))
            .transpose()?;
        Ok(Ask {
            approver: self.approver(),
            may_approve: self.may_approve != 0,
            verdict,
            comment: self.comment,
            decided_at: self.decided_at.map(from_micros),
        })
    }
}

/// Appends to a release's audit.
pub(crate) fn audit(
    conn: &mut DbConnection,
    release_seq: i64,
    at: DateTime<Utc>,
    event: &str,
    actor: &str,
    client_address: Option<&str>,
    detail: &str,
) -> QueryResult<()> {
    diesel::insert_into(gate_audit::table)
        .values((
            gate_audit::release_seq.eq(release_seq),
            gate_audit::at.eq(to_micros(at)),
            gate_audit::event.eq(event),
            gate_audit::actor.eq(actor),
            gate_audit::client_address.eq(client_address),
            gate_audit::detail.eq(detail),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Queues work for the gate's worker, once per `dedupe_key`: queueing it again
/// (a retried transaction, a second server) changes nothing.
pub(crate) fn enqueue(
    conn: &mut DbConnection,
    dedupe_key: &str,
    release_seq: i64,
    kind: &str,
    approver_seq: Option<i64>,
    next_at: DateTime<Utc>,
) -> QueryResult<()> {
    let exists = gate_outbox::table
        .filter(gate_outbox::dedupe_key.eq(dedupe_key))
        .count()
        .get_result::<i64>(conn)?;
    if exists > 0 {
        return Ok(());
    }
    diesel::insert_into(gate_outbox::table)
        .values((
            gate_outbox::dedupe_key.eq(dedupe_key),
            gate_outbox::release_seq.eq(release_seq),
            gate_outbox::kind.eq(kind),
            gate_outbox::approver_seq.eq(approver_seq),
            gate_outbox::attempts.eq(0),
            gate_outbox::next_at.eq(to_micros(next_at)),
        ))
        .execute(conn)
        .map(|_| ())
}

/// What registering a release did.
#[derive(Debug)]
pub(crate) enum Registered {
    /// A new release, pending; its approvers are fetched after the answer.
    Created(Box<Release>),
    /// The same request again: a poll.
    Known,
    /// A different request under a known id.
    Conflict,
}

fn find_row(conn: &mut DbConnection, key: &ReleaseKey) -> QueryResult<Option<ReleaseRow>> {
    releases::table
        .filter(releases::team_project.eq(&key.team_project))
        .filter(releases::release_id.eq(&key.release_id))
        .select(ReleaseRow::as_select())
        .first(conn)
        .optional()
}

/// Registers `request`, or finds it again. A new release is stored pending,
/// audited, and its approvers queued for fetching, in one transaction.
pub(crate) fn register(
    conn: &mut DbConnection,
    request: &ReleaseRequest,
    created_by: &str,
    now: DateTime<Utc>,
) -> QueryResult<Registered> {
    let known = |row: ReleaseRow| -> QueryResult<Registered> {
        Ok(if request.same_as(&row.fingerprint, &row.release_name) {
            Registered::Known
        } else {
            Registered::Conflict
        })
    };
    if let Some(row) = find_row(conn, &request.key)? {
        return known(row);
    }
    let expires_at =
        now + chrono::Duration::from_std(request.expires_in).unwrap_or(chrono::Duration::days(3));
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(releases::table)
            .values((
                releases::team_project.eq(&request.key.team_project),
                releases::release_id.eq(&request.key.release_id),
                releases::release_name.eq(&request.release_name),
                releases::component.eq(request.component.as_ref().map(Component::as_str)),
                releases::environment.eq(request.environment.as_ref().map(Environment::as_str)),
                releases::version.eq(&request.version),
                releases::requested_by.eq(&request.requested_by),
                releases::required_approvals.eq(request
                    .required_approvals
                    .and_then(|n| i32::try_from(n).ok())),
                releases::expires_in_s
                    .eq(i64::try_from(request.expires_in.as_secs()).unwrap_or(i64::MAX)),
                releases::fingerprint.eq(request.fingerprint()),
                releases::state.eq(ReleaseState::Pending.as_str()),
                releases::created_by.eq(created_by),
                releases::created_at.eq(to_micros(now)),
                releases::expires_at.eq(to_micros(expires_at)),
            ))
            .execute(conn)?;
        let row = find_row(conn, &request.key)?.ok_or(DieselError::NotFound)?;
        audit(
            conn,
            row.seq,
            now,
            "created",
            created_by,
            None,
            &format!(
                "release {:?} registered; expires {}",
                request.release_name,
                deploytime_core::time::format_rfc3339(expires_at)
            ),
        )?;
        enqueue(
            conn,
            &format!("approvers:{}", row.seq),
            row.seq,
            "approvers",
            None,
            now,
        )?;
        row.into_release()
    });
    match inserted {
        Ok(release) => Ok(Registered::Created(Box::new(release))),
        // Registered meanwhile by another call: this one is then a poll (or a conflict).
        Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {
            find_row(conn, &request.key)?
                .ok_or(DieselError::NotFound)
                .and_then(known)
        }
        Err(e) => Err(e),
    }
}

/// The approvers asked about a release, in the order they were asked.
fn asks_of(conn: &mut DbConnection, release_seq: i64) -> QueryResult<Vec<Ask>> {
    release_approvers::table
        .filter(release_approvers::release_seq.eq(release_seq))
        .order(release_approvers::seq.asc())
        .select(ApproverRow::as_select())
        .load(conn)?
        .into_iter()
        .map(ApproverRow::into_ask)
        .collect()
}

/// A release with its approvers, and its row's number.
pub(crate) fn find_release(
    conn: &mut DbConnection,
    key: &ReleaseKey,
) -> QueryResult<Option<(i64, Release, Vec<Ask>)>> {
    let Some(row) = find_row(conn, key)? else {
        return Ok(None);
    };
    let seq = row.seq;
    let asks = asks_of(conn, seq)?;
    Ok(Some((seq, row.into_release()?, asks)))
}

/// A release's audit, oldest first.
pub(crate) fn audit_of(conn: &mut DbConnection, release_seq: i64) -> QueryResult<Vec<AuditEntry>> {
    let rows: Vec<(i64, String, String, Option<String>, String)> = gate_audit::table
        .filter(gate_audit::release_seq.eq(release_seq))
        .order(gate_audit::seq.asc())
        .select((
            gate_audit::at,
            gate_audit::event,
            gate_audit::actor,
            gate_audit::client_address,
            gate_audit::detail,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|(at, event, actor, client_address, detail)| AuditEntry {
            at: from_micros(at),
            event,
            actor,
            client_address,
            detail,
        })
        .collect())
}

/// A release with the approvers asked about it.
pub(crate) type AskedRelease = (Release, Vec<Ask>);

/// What a listing of releases selects.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReleaseFilter {
    /// The state a reader is told, with pending releases past expiry counted
    /// as expired at `now`.
    pub state: Option<(ReleaseState, i64)>,
    pub team_project: Option<String>,
    /// Registered at or after, microseconds.
    pub since: Option<i64>,
}

/// Releases, newest first, a page after `cursor`, with their approvers.
pub(crate) fn list_releases(
    conn: &mut DbConnection,
    filter: &ReleaseFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<Listed<AskedRelease>>> {
    let mut query = releases::table
        .select(ReleaseRow::as_select())
        .order((releases::created_at.desc(), releases::seq.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(project) = &filter.team_project {
        query = query.filter(releases::team_project.eq(project.clone()));
    }
    if let Some(since) = filter.since {
        query = query.filter(releases::created_at.ge(since));
    }
    if let Some((state, now)) = filter.state {
        query = match state {
            ReleaseState::Pending => query
                .filter(releases::state.eq(ReleaseState::Pending.as_str()))
                .filter(releases::expires_at.gt(now)),
            ReleaseState::Expired => query.filter(
                releases::state
                    .eq(ReleaseState::Expired.as_str())
                    .or(releases::state
                        .eq(ReleaseState::Pending.as_str())
                        .and(releases::expires_at.le(now))),
            ),
            other => query.filter(releases::state.eq(other.as_str())),
        };
    }
    if let Some(c) = cursor {
        query = query.filter(
            releases::created_at
                .le(c.at)
                .and(releases::created_at.lt(c.at).or(releases::seq.lt(c.seq))),
        );
    }
    let rows = query.load(conn)?;
    rows.into_iter()
        .map(|row| {
            let cursor = Cursor {
                at: row.created_at,
                seq: row.seq,
            };
            let asks = asks_of(conn, row.seq)?;
            Ok(Listed {
                item: (row.into_release()?, asks),
                cursor,
            })
        })
        .collect()
}

/// What became of a decision sent with a link's token.
#[derive(Debug)]
pub(crate) enum Decided {
    /// Recorded; the release as it now is.
    Recorded {
        key: ReleaseKey,
        approver: Approver,
        state: ReleaseState,
    },
    /// No link has this token.
    UnknownToken,
    /// The domain refused it (used, expired, closed, self-approval).
    Refused { refusal: Refusal },
}

/// What a link's token points at: the approver, the release and its key.
pub(crate) struct LinkTarget {
    pub approver: ApproverRow,
    pub release: Release,
    pub release_seq: i64,
}

/// The approver and release a token's link is for.
pub(crate) fn link_target(
    conn: &mut DbConnection,
    digest: &LinkDigest,
) -> QueryResult<Option<LinkTarget>> {
    let found = approval_links::table
        .inner_join(release_approvers::table.inner_join(releases::table))
        .filter(approval_links::token_hash.eq(digest.to_hex()))
        .select((ApproverRow::as_select(), ReleaseRow::as_select()))
        .first::<(ApproverRow, ReleaseRow)>(conn)
        .optional()?;
    let Some((approver, release)) = found else {
        return Ok(None);
    };
    let release_seq = release.seq;
    Ok(Some(LinkTarget {
        approver,
        release: release.into_release()?,
        release_seq,
    }))
}

/// One decision about a release.
pub(crate) struct Decision<'a> {
    pub digest: LinkDigest,
    pub verdict: Verdict,
    pub comment: Option<&'a str>,
    pub client_address: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// Records a decision through a link, if the domain admits it, and what it
/// makes of the release; all in one transaction. The release's row is
/// touched first so that decisions about one release are taken one at a
/// time (each sees the others' answers when it counts); the approver's row is
/// only updated while it has no answer, so two clicks of one link racing
/// record one decision.
pub(crate) fn decide(conn: &mut DbConnection, decision: &Decision<'_>) -> QueryResult<Decided> {
    conn.transaction(|conn| {
        let Some(target) = link_target(conn, &decision.digest)? else {
            return Ok(Decided::UnknownToken);
        };
        let seq = target.release_seq;
        diesel::update(releases::table.filter(releases::seq.eq(seq)))
            .set(releases::state.eq(releases::state))
            .execute(conn)?;
        // Read again under the lock just taken.
        let release = releases::table
            .filter(releases::seq.eq(seq))
            .select(ReleaseRow::as_select())
            .first(conn)?
            .into_release()?;
        let approver_row = release_approvers::table
            .filter(release_approvers::seq.eq(target.approver.seq))
            .select(ApproverRow::as_select())
            .first(conn)?;
        let approver = approver_row.approver();
        let key = release.request.key.clone();
        let ballot = Ballot {
            answered: approver_row.verdict.is_some(),
            may_approve: approver_row.may_approve != 0,
            release_state: release.state,
            expires_at: release.expires_at,
        };
        if let Err(refusal) = admit(&ballot, decision.verdict, decision.now) {
            return Ok(Decided::Refused { refusal });
        }
        let updated = diesel::update(
            release_approvers::table
                .filter(release_approvers::seq.eq(approver_row.seq))
                .filter(release_approvers::verdict.is_null()),
        )
        .set((
            release_approvers::verdict.eq(decision.verdict.as_str()),
            release_approvers::comment.eq(decision.comment),
            release_approvers::decided_at.eq(to_micros(decision.now)),
            release_approvers::client_address.eq(decision.client_address),
        ))
        .execute(conn)?;
        if updated != 1 {
            return Ok(Decided::Refused {
                refusal: Refusal::AlreadyAnswered,
            });
        }
        audit(
            conn,
            seq,
            decision.now,
            "decision",
            &approver.email,
            decision.client_address,
            &match decision.comment {
                Some(comment) => format!("{}: {comment}", decision.verdict),
                None => decision.verdict.to_string(),
            },
        )?;
        let asks = asks_of(conn, seq)?;
        let count = |v: Verdict| {
            u32::try_from(asks.iter().filter(|a| a.verdict == Some(v)).count()).unwrap_or(u32::MAX)
        };
        let quorum = Quorum {
            needed: release.needed.unwrap_or(1),
            eligible: u32::try_from(asks.iter().filter(|a| a.may_approve).count())
                .unwrap_or(u32::MAX),
        };
        let state = outcome(quorum, count(Verdict::Approve), count(Verdict::Reject));
        if state.is_final() {
            close(conn, seq, state, None, decision.now)?;
            audit(
                conn,
                seq,
                decision.now,
                state.as_str(),
                "server",
                None,
                &format!(
                    "{} of {} approvals, {} rejection(s)",
                    count(Verdict::Approve),
                    quorum.needed,
                    count(Verdict::Reject)
                ),
            )?;
        }
        Ok(Decided::Recorded {
            key,
            approver,
            state,
        })
    })
}

/// Closes a pending release in `state`; a release closed meanwhile is left as it is.
pub(crate) fn close(
    conn: &mut DbConnection,
    release_seq: i64,
    state: ReleaseState,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> QueryResult<bool> {
    let mut changes = diesel::update(
        releases::table
            .filter(releases::seq.eq(release_seq))
            .filter(releases::state.eq(ReleaseState::Pending.as_str())),
    )
    .set((
        releases::state.eq(state.as_str()),
        releases::decided_at.eq(to_micros(at)),
    ))
    .execute(conn)?;
    if let Some(reason) = reason {
        changes += diesel::update(releases::table.filter(releases::seq.eq(release_seq)))
            .set(releases::reason.eq(reason))
            .execute(conn)?;
    }
    Ok(changes > 0)
}

/// Records the expiry of every pending release past its time, with an audit
/// entry each; returns how many.
pub(crate) fn expire_due(conn: &mut DbConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    let due: Vec<(i64, i64)> = releases::table
        .filter(releases::state.eq(ReleaseState::Pending.as_str()))
        .filter(releases::expires_at.le(to_micros(now)))
        .select((releases::seq, releases::expires_at))
        .limit(500)
        .load(conn)?;
    let mut expired = 0;
    for (seq, expires_at) in due {
        conn.transaction(|conn| {
            let at = from_micros(expires_at);
            if close(conn, seq, ReleaseState::Expired, None, at)? {
                audit(
                    conn,
                    seq,
                    at,
                    "expired",
                    "server",
                    None,
                    "no decision before the release expired",
                )?;
                expired += 1;
            }
            QueryResult::Ok(())
        })?;
    }
    Ok(expired)
}

/// Releases by the state a reader is told now, for the metrics.
pub(crate) fn count_by_state(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
) -> QueryResult<Vec<(ReleaseState, i64)>> {
    let rows: Vec<(String, i64)> = releases::table
        .group_by(releases::state)
        .select((releases::state, diesel::dsl::count_star()))
        .load(conn)?;
    let late: i64 = releases::table
        .filter(releases::state.eq(ReleaseState::Pending.as_str()))
        .filter(releases::expires_at.le(to_micros(now)))
        .count()
        .get_result(conn)?;
    Ok(ReleaseState::ALL
        .into_iter()
        .map(|state| {
            let stored = rows
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map_or(0, |(_, n)| *n);
            let n = match state {
                ReleaseState::Pending => stored - late,
                ReleaseState::Expired => stored + late,
                _ => stored,
            };
            (state, n)
        })
        .collect())
}
