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
        for cell in record(row) {
            writer
                .write_field(deploytime_core::export::neutralise(&cell).as_bytes())
                .map_err(failed)?;
        }
        writer
            .write_record(std::iter::empty::<&[u8]>())
            .map_err(failed)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))
}

/// One page of rows, and the cursor of the next page (`None` after the last).
type FetchedPage<R> = Result<(Vec<(i64, R)>, Option<Cursor>), ApiError>;

/// Fetches one page on a blocking thread, starting now.
fn fetch_page<R: Send + 'static>(
    db: &Database,
    export: Arc<Export<R>>,
    cursor: Option<Cursor>,
) -> actix_web::rt::task::JoinHandle<FetchedPage<R>> {
    let db = db.clone();
    actix_web::rt::spawn(async move {
        db.read(move |conn| {
            let rows =
                (export.fetch)(conn, cursor, PAGE).map_err(|e| ApiError::from(DbError::from(e)))?;
            let next = if (rows.len() as i64) < PAGE {
                None
            } else {
                rows.last()
                    .map(|(seq, last)| (export.cursor_of)(*seq, last))
            };
            Ok((rows, next))
        })
        .await?
    })
}

/// Streams the export as `text/csv`. Pages are fetched and encoded on blocking
/// threads, and the next page is fetched while the current one is encoded and
/// sent (the database produces rows while the server writes CSV), so at most
/// two pages are held at once. A database failure after the first page has been
/// sent can no longer change the status, so it ends the response early (the
/// client sees a truncated transfer, not a short file presented as whole).
pub fn stream_csv<R: Send + 'static>(db: Database, export: Export<R>) -> HttpResponse {
    struct State<R> {
        db: Database,
        export: Arc<Export<R>>,
        pending: Option<actix_web::rt::task::JoinHandle<FetchedPage<R>>>,
        first: bool,
    }
    let export = Arc::new(export);
    let filename = export.filename;
    let state = State {
        pending: Some(fetch_page(&db, export.clone(), None)),
        db,
        export,
        first: true,
    };
    let body = stream::unfold(state, |mut state| async move {
        let page = match state.pending.take()?.await {
            Ok(page) => page,
            Err(e) => Err(ApiError::Internal(format!("the export stopped: {e}"))),
        };
        let chunk = match page {
            Ok((rows, next)) => {
                if let Some(cursor) = next {
                    state.pending = Some(fetch_page(&state.db, state.export.clone(), Some(cursor)));
                }
                let header = state.first.then_some(state.export.header);
                state.first = false;
                let export = state.export.clone();
                actix_web::web::block(move || encode(&rows, header, export.record.as_ref()))
                    .await
                    .map_err(|e| ApiError::Internal(format!("the export stopped: {e}")))
                    .and_then(|encoded| encoded)
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &chunk {
            tracing::error!(error = %e, "CSV export failed");
            state.pending = None;
        }
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
