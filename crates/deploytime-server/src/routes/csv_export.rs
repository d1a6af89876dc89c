//! Streaming CSV exports: every matching row, fetched page by page with the same
//! keyset pagination as the JSON listings, so memory stays flat however large the
//! export is.

use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::web::Bytes;
use futures_util::stream;

use crate::db::queries::Cursor;
use crate::db::{Database, DbConnection, DbError};
use crate::error::ApiError;

/// Rows fetched per database round trip while exporting.
const PAGE: i64 = 5_000;

type FetchPage<R> = dyn Fn(&mut DbConnection, Option<Cursor>, i64) -> diesel::QueryResult<Vec<(i64, R)>>
    + Send
    + Sync;

type RecordFn<R> = dyn Fn(&R) -> Vec<String> + Send + Sync;

/// How to export one kind of row.
pub struct Export<R> {
    pub filename: &'static str,
    pub header: &'static [&'static str],
    pub fetch: Arc<FetchPage<R>>,
    pub cursor_of: fn(i64, &R) -> Cursor,
    pub record: Arc<RecordFn<R>>,
}

fn encode<R>(
    rows: &[(i64, R)],
    header: Option<&[&str]>,
    record: &RecordFn<R>,
) -> Result<Bytes, ApiError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(rows.len() * 160 + 256));
    let failed = |e: csv::Error| ApiError::Internal(format!("cannot write CSV: {e}"));
    if let Some(header) = header {
        writer.write_record(header).map_err(failed)?;
    }
    for (_, row) in rows {
        let cells = record(row);
        writer
            .write_record(
                cells
                    .iter()
                    .map(|c| deploytime_core::export::neutralise(c).into_owned()),
            )
            .map_err(failed)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))
}

/// Streams the export as `text/csv`. A database failure after the first page has
/// been sent can no longer change the status, so it ends the response early
/// (the client sees a truncated transfer, not a short file presented as whole).
pub fn stream_csv<R: Send + 'static>(db: Database, export: Export<R>) -> HttpResponse {
    struct State<R> {
        db: Database,
        export: Export<R>,
        cursor: Option<Cursor>,
        first: bool,
        done: bool,
    }
    let state = State {
        db,
        export,
        cursor: None,
        first: true,
        done: false,
    };
    let filename = state.export.filename;
    let body = stream::unfold(state, |mut state| async move {
        if state.done {
            return None;
        }
        let fetch = state.export.fetch.clone();
        let cursor = state.cursor;
        let page = state
            .db
            .read(move |conn| fetch(conn, cursor, PAGE))
            .await
            .and_then(|r| r.map_err(DbError::from));
        let rows = match page {
            Ok(rows) => rows,
            Err(e) => {
                state.done = true;
                tracing::error!(error = %e, "CSV export failed");
                return Some((Err(ApiError::from(e)), state));
            }
        };
        state.done = (rows.len() as i64) < PAGE;
        if let Some((seq, last)) = rows.last() {
            state.cursor = Some((state.export.cursor_of)(*seq, last));
        }
        let header = state.first.then_some(state.export.header);
        state.first = false;
        let chunk = encode(&rows, header, state.export.record.as_ref());
        Some((chunk, state))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            actix_web::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body)
}
