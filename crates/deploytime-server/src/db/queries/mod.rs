//! Queries, written once for every backend: plain synchronous functions that
//! return diesel's `QueryResult` and domain values (a stored row that is not a
//! valid value is a decoding error), to be run on a blocking thread.
//! Listings page by keyset; see docs/architecture.md ("Pagination").

mod commits;
mod corrections;
mod deployments;
mod events;
mod gate_outbox;
mod incidents;
mod releases;
mod stats;

#[cfg(test)]
mod plans;

use diesel::prelude::*;

use super::connection::DbConnection;

pub(crate) use commits::{any_commits, commits_of, latest_shipped, record_commits, shipped};
pub(crate) use corrections::{Corrected, correct_deployment, corrections_of};
pub(crate) use deployments::{
    DeploymentFilter, component_summaries, delete_deployment, deployments_page_end,
    find_deployment_row, find_latest_running, insert_deployment, list_deployments,
    update_deployment,
};
pub(crate) use events::{
    EventFilter, events_of_deployment, events_page_end, find_event, insert_event, insert_events,
    list_events,
};
pub(crate) use gate_outbox::{
    MailJob, OutboxItem, Work, approvers_failed, approvers_found, approvers_unavailable, claim_due,
    mail_failed, mail_sent, next_due, prepare_mail, queued, release_of, skip,
};
pub(crate) use incidents::{
    Changed, IncidentFilter, Opened, change_incident, count_open_incidents, find_incident,
    incident_samples, list_incidents, open_incident,
};
pub(crate) use releases::{
    AskedRelease, Decided, Decision, Registered, ReleaseFilter, audit_of, count_by_state, decide,
    expire_due, find_release, link_target, list_releases, register,
};
pub(crate) use stats::{latest_anchor, stats_samples, stats_targets};

/// The backend type every query is written against.
pub(crate) type Backend = <DbConnection as Connection>::Backend;

/// A position in a newest-first listing: the sort time and the row's sequence
/// number of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub seq: i64,
}

/// One item of a listing, with its position in the listing's order.
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub item: T,
    pub cursor: Cursor,
}

/// A trivial round trip, to tell whether the database answers.
pub(crate) fn ping(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    conn.batch_execute("SELECT 1")
}
