//! Streaming CSV exports: every matching row, fetched page by page with the same
//! keyset pagination as the JSON listings, so memory stays flat however large the
//! export is.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::rt::task::JoinHandle;
use actix_web::web::Bytes;
use futures_util::stream;
use tokio::sync::oneshot;

use crate::db::queries::Cursor;
use crate::db::{Database, DbConnection, DbError};
use crate::error::ApiError;

/// Rows fetched per database round trip while exporting.
const PAGE: i64 = 5_000;

/// Fetches up to `limit` rows after the first cursor and not past the second.
type FetchPage<R> = dyn Fn(&mut DbConnection, Option<Cursor>, Option<Cursor>, i64) -> diesel::QueryResult<Vec<(i64, R)>>
    + Send
    + Sync;

/// Finds where the page of `limit` rows after the cursor ends (`None`: fewer
/// rows are left).
type FindPageEnd = dyn Fn(&mut DbConnection, Option<Cursor>, i64) -> diesel::QueryResult<Option<Cursor>>
    + Send
    + Sync;

type RecordFn<R> = dyn Fn(&R) -> Vec<String> + Send + Sync;

/// How to export one kind of row.
pub struct Export<R> {
    pub filename: &'static str,
    pub header: &'static [&'static str],
    pub fetch: Arc<FetchPage<R>>,
    /// Given when an index answers it alone (see [`stream_csv`]).
    pub page_end: Option<Arc<FindPageEnd>>,
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

/// One page of rows, and, when more rows lie before the next page's start
/// (rows inserted between finding the page's end and reading it), the range
/// they are in: `(after, down_to)`.
type FetchedPage<R> = Result<(Vec<(i64, R)>, Option<(Cursor, Option<Cursor>)>), ApiError>;

/// Reads the rows after `after` and not past `down_to` (at most a page), on a
/// blocking thread, starting now. With `page_end`, that end is found first, on
/// the same connection, and sent on `end` before the rows are read, so the next
/// page can start on another connection meanwhile; without it, `end` gets the
/// last row read (or `None` after the last page).
fn fetch_page<R: Send + 'static>(
    db: &Database,
    export: Arc<Export<R>>,
    after: Option<Cursor>,
    down_to: Option<Cursor>,
    end: Option<oneshot::Sender<Option<Cursor>>>,
) -> JoinHandle<FetchedPage<R>> {
    let db = db.clone();
    actix_web::rt::spawn(async move {
        db.read(move |conn| {
            let failed = |e| ApiError::from(DbError::from(e));
            let (down_to, end) = match (end, &export.page_end) {
                (Some(end), Some(page_end)) => {
                    let found = page_end(conn, after, PAGE).map_err(failed)?;
                    // The receiver only goes when the export has ended.
                    let _ = end.send(found);
                    (found, None)
                }
                (end, _) => (down_to, end),
            };
            let rows = (export.fetch)(conn, after, down_to, PAGE).map_err(failed)?;
            let last = rows.last().map(|(seq, row)| (export.cursor_of)(*seq, row));
            let full = rows.len() as i64 >= PAGE;
            if let Some(end) = end {
                let _ = end.send(last.filter(|_| full));
                return Ok((rows, None));
            }
            // A full page that stopped short of its end: more rows came in.
            let rest = match last {
                Some(last) if full && Some(last) != down_to => Some((last, down_to)),
                _ => None,
            };
            Ok((rows, rest))
        })
        .await?
    })
}

/// Where the page after those requested starts.
enum NextPage {
    After(Option<Cursor>),
    Waiting(oneshot::Receiver<Option<Cursor>>),
    None,
}

/// Streams the export as `text/csv`. Pages are fetched and encoded on blocking
/// threads, and the next page is fetched while the current one is encoded and
/// sent (the database produces rows while the server writes CSV). When an index
/// tells where a page ends without reading its rows (`page_end`: an export of
/// everything, or of a time window), the page after it is fetched at the same
/// time on a second connection: reading rows in the listing's order, one
/// table lookup each, is what limits an export on MySQL. At most three pages are
/// held at once. A database failure after the first page has been sent can no
/// longer change the status, so it ends the response early (the client sees a
/// truncated transfer, not a short file presented as whole).
pub fn stream_csv<R: Send + 'static>(db: Database, export: Export<R>) -> HttpResponse {
    struct State<R> {
        db: Database,
        export: Arc<Export<R>>,
        fetching: VecDeque<JoinHandle<FetchedPage<R>>>,
        next: NextPage,
        first: bool,
    }
    impl<R: Send + 'static> State<R> {
        /// Starts pages until `depth` are being fetched or the last one is.
        async fn start_pages(&mut self) {
            let depth = if self.export.page_end.is_some() { 2 } else { 1 };
            while self.fetching.len() < depth {
                let after = match std::mem::replace(&mut self.next, NextPage::None) {
                    NextPage::After(after) => after,
                    NextPage::Waiting(end) => match end.await {
                        Ok(Some(end)) => Some(end),
                        // The last page, or a failed one: its own result says.
                        Ok(None) | Err(_) => break,
                    },
                    NextPage::None => break,
                };
                let (end, next) = oneshot::channel();
                self.fetching.push_back(fetch_page(
                    &self.db,
                    self.export.clone(),
                    after,
                    None,
                    Some(end),
                ));
                self.next = NextPage::Waiting(next);
            }
        }
    }
    let export = Arc::new(export);
    let filename = export.filename;
    let state = State {
        fetching: VecDeque::new(),
        next: NextPage::After(None),
        db,
        export,
        first: true,
    };
    let body = stream::unfold(state, |mut state| async move {
        state.start_pages().await;
        let page = match state.fetching.pop_front()?.await {
            Ok(page) => page,
            Err(e) => Err(ApiError::Internal(format!("the export stopped: {e}"))),
        };
        let chunk = match page {
            Ok((rows, rest)) => {
                if let Some((after, down_to)) = rest {
                    let rest =
                        fetch_page(&state.db, state.export.clone(), Some(after), down_to, None);
                    state.fetching.push_front(rest);
                }
                state.start_pages().await;
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
            state.fetching.clear();
            state.next = NextPage::None;
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
