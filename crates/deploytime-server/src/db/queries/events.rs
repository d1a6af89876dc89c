//! The event ledger: one row per stored event, never changed once written.

use chrono::{DateTime, Utc};
use deploytime_core::time::to_micros;
use deploytime_core::{Component, Environment, Phase, RecordedEvent};
use diesel::prelude::*;

use super::{Backend, Cursor, Listed};
use crate::db::connection::{DbConnection, on_backend};
use crate::db::models::EventRow;
use crate::db::schema::events;

/// The stored row of the event with this id (its fingerprint settles a replay).
pub(crate) fn find_event(conn: &mut DbConnection, id: &str) -> QueryResult<Option<EventRow>> {
    // No LIMIT: the id is unique, and a bound LIMIT would make SQLite plan the
    // statement again on every run.
    on_backend!(conn, |c| events::table
        .filter(events::id.eq(id))
        .select(EventRow::as_select())
        .get_result(c)
        .optional())
}

pub(crate) fn insert_event(conn: &mut DbConnection, row: &EventRow) -> QueryResult<usize> {
    on_backend!(conn, |c| diesel::insert_into(events::table)
        .values(row)
        .execute(c))
}

/// Several events: on MySQL in one statement (one round trip); SQLite runs in
/// the process, where a statement per row costs no round trip.
pub(crate) fn insert_events(conn: &mut DbConnection, rows: &[EventRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    match conn {
        #[cfg(feature = "mysql")]
        DbConnection::Mysql(mysql) => diesel::insert_into(events::table)
            .values(rows)
            .execute(mysql),
        DbConnection::Sqlite(_) => rows.iter().map(|row| insert_event(conn, row)).sum(),
    }
}

/// A deployment's events, in the order they were stored.
pub(crate) fn events_of_deployment(
    conn: &mut DbConnection,
    id: &str,
) -> QueryResult<Vec<RecordedEvent>> {
    events::table
        .filter(events::deployment_id.eq(id))
        .order(events::seq.asc())
        .select(EventRow::as_select())
        .load::<EventRow>(conn)?
        .into_iter()
        .map(|row| row.into_recorded().map_err(Into::into))
        .collect()
}

/// Filters of the event ledger listing.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    pub component: Option<Component>,
    /// Any of these; none: every environment.
    pub environments: Vec<Environment>,
    pub phase: Option<Phase>,
    /// `[since, until)` on the event's own time.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl EventFilter {
    /// As `DeploymentFilter::orders_by_index_alone`, on `occurred_at, seq`.
    pub fn orders_by_index_alone(&self) -> bool {
        self.component.is_none() && self.environments.is_empty() && self.phase.is_none()
    }
}

/// One page of the ledger, newest event time first, after `cursor` and, with
/// `down_to`, not past it.
pub(crate) fn list_events(
    conn: &mut DbConnection,
    filter: &EventFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<Listed<RecordedEvent>>> {
    keyset_events(filter, cursor, down_to)
        .limit(limit)
        .select((events::seq, EventRow::as_select()))
        .load::<(i64, EventRow)>(conn)?
        .into_iter()
        .map(|(seq, row)| {
            let cursor = Cursor {
                at: row.occurred_at,
                seq,
            };
            Ok(Listed {
                item: row.into_recorded()?,
                cursor,
            })
        })
        .collect()
}

/// As `deployments_page_end`, for the ledger.
pub(crate) fn events_page_end(
    conn: &mut DbConnection,
    filter: &EventFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Option<Cursor>> {
    keyset_events(filter, cursor, None)
        .offset(limit - 1)
        .limit(1)
        .select((events::occurred_at, events::seq))
        .first::<(i64, i64)>(conn)
        .optional()
        .map(|end| end.map(|(at, seq)| Cursor { at, seq }))
}

fn keyset_events(
    filter: &EventFilter,
    cursor: Option<Cursor>,
    down_to: Option<Cursor>,
) -> events::BoxedQuery<'static, Backend> {
    let mut query = events::table.into_boxed();
    if let Some(component) = &filter.component {
        query = query.filter(events::component.eq(component.as_str().to_owned()));
    }
    if !filter.environments.is_empty() {
        let names: Vec<String> = filter
            .environments
            .iter()
            .map(|e| e.as_str().to_owned())
            .collect();
        query = query.filter(events::environment.eq_any(names));
    }
    if let Some(phase) = filter.phase {
        query = query.filter(events::phase.eq(phase.as_str()));
    }
    if let Some(since) = filter.since {
        query = query.filter(events::occurred_at.ge(to_micros(since)));
    }
    if let Some(until) = filter.until {
        query = query.filter(events::occurred_at.lt(to_micros(until)));
    }
    if let Some(Cursor { at, seq }) = cursor {
        // As for deployments: a range on the time, then a filter.
        query = query
            .filter(events::occurred_at.le(at))
            .filter(events::occurred_at.lt(at).or(events::seq.lt(seq)));
    }
    if let Some(Cursor { at, seq }) = down_to {
        query = query
            .filter(events::occurred_at.ge(at))
            .filter(events::occurred_at.gt(at).or(events::seq.ge(seq)));
    }
    query.order((events::occurred_at.desc(), events::seq.desc()))
}
