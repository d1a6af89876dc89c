//! The release gate's outbox: work done after the pipeline has its answer
//! (fetching a release's approvers, each approver's mail, each reminder),
//! durable so that a restart or an outage loses none of it.
//!
//! An item is *claimed* for a while (a lease) before it is worked on, so
//! that two servers on one database never work on the same item at once, and
//! an item whose server died is taken over when its lease runs out. Each
//! attempt is recorded before it is made (the claim counts it) and its result
//! after (done, or the error and when to try again).

use chrono::{DateTime, Utc};
use deploytime_core::release::{Approver, GatePolicy, LinkDigest, Release, ReleaseState, quorum};
use deploytime_core::time::{format_rfc3339, from_micros, to_micros};
use diesel::prelude::*;

use super::releases::{ApproverRow, ReleaseRow, audit, close, enqueue};
use crate::db::connection::DbConnection;
use crate::db::schema::{approval_links, gate_outbox, release_approvers, releases};

/// What an outbox item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Ask the approver source who approves the release.
    FetchApprovers,
    /// Mail an approver their link.
    Mail,
    /// Remind an approver who has not answered.
    Reminder,
}

impl Work {
    fn as_str(self) -> &'static str {
        match self {
            Work::FetchApprovers => "approvers",
            Work::Mail => "mail",
            Work::Reminder => "reminder",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        [Work::FetchApprovers, Work::Mail, Work::Reminder]
            .into_iter()
            .find(|w| w.as_str() == value)
    }
}

/// One claimed item.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub seq: i64,
    pub release_seq: i64,
    pub work: Work,
    pub approver_seq: Option<i64>,
    /// Attempts made, this one included.
    pub attempts: i32,
}

/// Claims up to `limit` items that are due and not claimed by a live lease.
pub(crate) fn claim_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    lease: std::time::Duration,
    limit: i64,
) -> QueryResult<Vec<OutboxItem>> {
    let now_us = to_micros(now);
    let lease_until =
        now_us.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 2));
    let due: Vec<(i64, i64, String, Option<i64>, i32)> = gate_outbox::table
        .filter(gate_outbox::done_at.is_null())
        .filter(gate_outbox::next_at.le(now_us))
        .filter(
            gate_outbox::lease_until
                .is_null()
                .or(gate_outbox::lease_until.lt(now_us)),
        )
        .order(gate_outbox::next_at.asc())
        .limit(limit)
        .select((
            gate_outbox::seq,
            gate_outbox::release_seq,
            gate_outbox::kind,
            gate_outbox::approver_seq,
            gate_outbox::attempts,
        ))
        .load(conn)?;
    let mut claimed = Vec::new();
    for (seq, release_seq, kind, approver_seq, attempts) in due {
        // Taken only if nobody took it since it was read.
        let taken = diesel::update(
            gate_outbox::table
                .filter(gate_outbox::seq.eq(seq))
                .filter(gate_outbox::done_at.is_null())
                .filter(gate_outbox::attempts.eq(attempts)),
        )
        .set((
            gate_outbox::lease_until.eq(lease_until),
            gate_outbox::attempts.eq(attempts + 1),
        ))
        .execute(conn)?;
        if taken != 1 {
            continue;
        }
        let Some(work) = Work::parse(&kind) else {
            // Written by a newer version; left for it.
            continue;
        };
        claimed.push(OutboxItem {
            seq,
            release_seq,
            work,
            approver_seq,
            attempts: attempts + 1,
        });
    }
    Ok(claimed)
}

/// When the worker next has something to do: the earliest queued item, lease
/// or expiry.
pub(crate) fn next_due(conn: &mut DbConnection) -> QueryResult<Option<DateTime<Utc>>> {
    let queued: Option<i64> = gate_outbox::table
        .filter(gate_outbox::done_at.is_null())
        .select(diesel::dsl::min(gate_outbox::next_at))
        .first(conn)?;
    let leased: Option<i64> = gate_outbox::table
        .filter(gate_outbox::done_at.is_null())
        .select(diesel::dsl::min(gate_outbox::lease_until))
        .first(conn)?;
    let expiring: Option<i64> = releases::table
        .filter(releases::state.eq(ReleaseState::Pending.as_str()))
        .select(diesel::dsl::min(releases::expires_at))
        .first(conn)?;
    Ok([queued, leased, expiring]
        .into_iter()
        .flatten()
        .min()
        .map(from_micros))
}

/// Mails and reminders not sent yet (reminders waiting for their time
/// included), for the metrics.
pub(crate) fn queued(conn: &mut DbConnection) -> QueryResult<i64> {
    gate_outbox::table
        .filter(gate_outbox::done_at.is_null())
        .filter(gate_outbox::kind.ne(Work::FetchApprovers.as_str()))
        .count()
        .get_result(conn)
}

fn finish(conn: &mut DbConnection, item: &OutboxItem, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(gate_outbox::table.filter(gate_outbox::seq.eq(item.seq)))
        .set((
            gate_outbox::done_at.eq(to_micros(now)),
            gate_outbox::lease_until.eq(None::<i64>),
        ))
        .execute(conn)
        .map(|_| ())
}

fn retry_at(
    conn: &mut DbConnection,
    item: &OutboxItem,
    error: &str,
    next_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(gate_outbox::table.filter(gate_outbox::seq.eq(item.seq)))
        .set((
            gate_outbox::next_at.eq(to_micros(next_at)),
            gate_outbox::lease_until.eq(None::<i64>),
            gate_outbox::last_error.eq(error),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Marks an item done without doing it (its release closed meanwhile).
pub(crate) fn skip(
    conn: &mut DbConnection,
    item: &OutboxItem,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    finish(conn, item, now)
}

/// The release an item is about.
pub(crate) fn release_of(conn: &mut DbConnection, item: &OutboxItem) -> QueryResult<Release> {
    releases::table
        .filter(releases::seq.eq(item.release_seq))
        .select(ReleaseRow::as_select())
        .first(conn)?
        .into_release()
}

/// Records the approvers a source named: each asked once, with a mail queued
/// for each and a reminder when one is due before expiry. If the quorum cannot
/// be reached with them, the release fails with that reason instead.
pub(crate) fn approvers_found(
    conn: &mut DbConnection,
    item: &OutboxItem,
    approvers: &[Approver],
    source: &str,
    policy: &GatePolicy,
    now: DateTime<Utc>,
) -> QueryResult<ReleaseState> {
    conn.transaction(|conn| {
        let release = release_of(conn, item)?;
        if release.state_at(now) != ReleaseState::Pending {
            finish(conn, item, now)?;
            return Ok(release.state_at(now));
        }
        let requested_by = release.request.requested_by.as_deref();
        let names: Vec<&str> = approvers.iter().map(|a| a.email.as_str()).collect();
        audit(
            conn,
            item.release_seq,
            now,
            "approvers",
            "server",
            None,
            &format!("{source} named {}", names.join(", ")),
        )?;
        let quorum = match quorum(
            release.request.required_approvals,
            approvers,
            requested_by,
            policy,
        ) {
            Ok(quorum) => quorum,
            Err(e) => {
                let reason = e.to_string();
                close(
                    conn,
                    item.release_seq,
                    ReleaseState::Failed,
                    Some(&reason),
                    now,
                )?;
                audit(
                    conn,
                    item.release_seq,
                    now,
                    "failed",
                    "server",
                    None,
                    &reason,
                )?;
                finish(conn, item, now)?;
                return Ok(ReleaseState::Failed);
            }
        };
        diesel::update(releases::table.filter(releases::seq.eq(item.release_seq)))
            .set((
                releases::needed.eq(i32::try_from(quorum.needed).unwrap_or(i32::MAX)),
                releases::reason.eq(None::<String>),
            ))
            .execute(conn)?;
        let reminder = policy.reminder_at(release.created_at, release.expires_at);
        for approver in approvers {
            diesel::insert_into(release_approvers::table)
                .values((
                    release_approvers::release_seq.eq(item.release_seq),
                    release_approvers::email.eq(&approver.email),
                    release_approvers::name.eq(&approver.name),
                    release_approvers::may_approve
                        .eq(i16::from(policy.may_approve(approver, requested_by))),
                ))
                .execute(conn)?;
            let seq: i64 = release_approvers::table
                .filter(release_approvers::release_seq.eq(item.release_seq))
                .filter(release_approvers::email.eq(&approver.email))
                .select(release_approvers::seq)
                .first(conn)?;
            enqueue(
                conn,
                &format!("mail:{seq}"),
                item.release_seq,
                Work::Mail.as_str(),
                Some(seq),
                now,
            )?;
            if let Some(at) = reminder.filter(|at| *at > now) {
                enqueue(
                    conn,
                    &format!("reminder:{seq}"),
                    item.release_seq,
                    Work::Reminder.as_str(),
                    Some(seq),
                    at,
                )?;
            }
        }
        finish(conn, item, now)?;
        Ok(ReleaseState::Pending)
    })
}

/// The release fails: no approver can be found (an empty or unreadable list,
/// no source configured, the source refused).
pub(crate) fn approvers_failed(
    conn: &mut DbConnection,
    item: &OutboxItem,
    reason: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    conn.transaction(|conn| {
        let closed = close(
            conn,
            item.release_seq,
            ReleaseState::Failed,
            Some(reason),
            now,
        )?;
        if closed {
            audit(
                conn,
                item.release_seq,
                now,
                "failed",
                "server",
                None,
                reason,
            )?;
        }
        finish(conn, item, now)?;
        Ok(closed)
    })
}

/// An attempt failed: the release shows why it still waits, the audit records
/// the first failure and every tenth after it (it says the dependency was down
/// without growing by one entry per retry), and the item is tried again at
/// `next_at`.
fn postpone(
    conn: &mut DbConnection,
    item: &OutboxItem,
    event: &str,
    reason: &str,
    error: &str,
    next_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    show_reason(conn, item.release_seq, reason)?;
    if item.attempts % 10 == 1 {
        audit(conn, item.release_seq, now, event, "server", None, reason)?;
    }
    retry_at(conn, item, error, next_at)
}

/// Shows why a pending release still waits (a closed one keeps its own).
fn show_reason(conn: &mut DbConnection, release_seq: i64, reason: &str) -> QueryResult<()> {
    diesel::update(
        releases::table
            .filter(releases::seq.eq(release_seq))
            .filter(releases::state.eq(ReleaseState::Pending.as_str())),
    )
    .set(releases::reason.eq(reason))
    .execute(conn)
    .map(|_| ())
}

/// The source could not be asked now: the release stays pending with the
/// reason shown, and the fetch is tried again at `next_at`.
pub(crate) fn approvers_unavailable(
    conn: &mut DbConnection,
    item: &OutboxItem,
    error: &str,
    next_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let reason = format!(
            "waiting for the approver source: {error} (attempt {}, next at {})",
            item.attempts,
            format_rfc3339(next_at)
        );
        postpone(
            conn,
            item,
            "approvers-unavailable",
            &reason,
            error,
            next_at,
            now,
        )
    })
}

/// A mail to send: to whom, about what, and whether it is the reminder.
#[derive(Debug, Clone)]
pub struct MailJob {
    pub release: Release,
    pub approver: Approver,
    pub may_approve: bool,
    pub reminder: bool,
    /// Numbers that make the mail's Message-ID the same on every attempt.
    pub release_seq: i64,
    pub approver_seq: i64,
}

/// Prepares an attempt at an approver's mail: stores the digest of the link's
/// new token (the token itself goes only into the mail). `None` when the mail
/// is no longer wanted (the release closed, the approver answered); the item
/// is then done.
pub(crate) fn prepare_mail(
    conn: &mut DbConnection,
    item: &OutboxItem,
    digest: &LinkDigest,
    now: DateTime<Utc>,
) -> QueryResult<Option<MailJob>> {
    conn.transaction(|conn| {
        let release = release_of(conn, item)?;
        let approver_seq = item.approver_seq.unwrap_or_default();
        let row = release_approvers::table
            .filter(release_approvers::seq.eq(approver_seq))
            .select(ApproverRow::as_select())
            .first(conn)
            .optional()?;
        let Some(row) = row.filter(|r| r.verdict.is_none()) else {
            finish(conn, item, now)?;
            return Ok(None);
        };
        if release.state_at(now) != ReleaseState::Pending {
            finish(conn, item, now)?;
            return Ok(None);
        }
        diesel::insert_into(approval_links::table)
            .values((
                approval_links::token_hash.eq(digest.to_hex()),
                approval_links::approver_seq.eq(approver_seq),
                approval_links::created_at.eq(to_micros(now)),
            ))
            .execute(conn)?;
        Ok(Some(MailJob {
            approver: row.approver(),
            may_approve: row.may_approve != 0,
            release,
            reminder: item.work == Work::Reminder,
            release_seq: item.release_seq,
            approver_seq,
        }))
    })
}

/// The mail went out.
pub(crate) fn mail_sent(
    conn: &mut DbConnection,
    item: &OutboxItem,
    job: &MailJob,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let event = if job.reminder {
            "reminder-sent"
        } else {
            "mail-sent"
        };
        audit(
            conn,
            item.release_seq,
            now,
            event,
            "server",
            None,
            &format!("to {} (attempt {})", job.approver.email, item.attempts),
        )?;
        finish(conn, item, now)
    })
}

/// The mail did not go out, as far as the server can tell: the failure is
/// audited and shown as the release's reason, and the mail tried again at
/// `next_at`. Its link stays valid: a mail server may have taken the mail
/// and failed to say so, and that mail's link must then work.
pub(crate) fn mail_failed(
    conn: &mut DbConnection,
    item: &OutboxItem,
    job: &MailJob,
    error: &str,
    next_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    conn.transaction(|conn| {
        let reason = format!(
            "the mail to {} is not sent yet: {error} (attempt {}, next at {})",
            job.approver.email,
            item.attempts,
            format_rfc3339(next_at)
        );
        postpone(conn, item, "mail-failed", &reason, error, next_at, now)
    })
}
