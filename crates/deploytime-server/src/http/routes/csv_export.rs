//! Streaming CSV exports: every matching row, fetched page by page with the same
//! keyset pagination as the JSON listings, so memory stays flat however large the
//! export is. How pages are read ahead is described in docs/architecture.md
//! ("Pagination").

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::HttpResponse;
use actix_web::rt::task::JoinHandle;
use actix_web::web::Bytes;
use futures_util::stream;
use tokio::sync::oneshot;

use crate::db::queries::{Cursor, Listed};
use crate::db::{Database, DbConnection};
use crate::http::error::ApiError;

/// Rows fetched per database round trip while exporting.
const PAGE: i64 = 5_000;

/// Fetches up to `limit` rows after the first cursor and not past the second.
type FetchPage<R> = dyn Fn(
        &mut DbConnection,
        Option<Cursor>,
        Option<Cursor>,
        i64,
    ) -> diesel::QueryResult<Vec<Listed<R>>>
    + Send
    + Sync;

/// Finds where the page of `limit` rows after the cursor ends (`None`: fewer
/// rows are left).
type FindPageEnd = dyn Fn(&mut DbConnection, Option<Cursor>, i64) -> diesel::QueryResult<Option<Cursor>>
    + Send
    + Sync;

type RecordFn<R> = dyn Fn(R) -> Vec<String> + Send + Sync;

/// How to export one kind of row.
pub(crate) struct Export<R> {
    pub filename: &'static str,
    pub header: &'static [&'static str],
    pub fetch: Arc<FetchPage<R>>,
    /// Given when an index answers it alone (see [`stream_csv`]).
    pub page_end: Option<Arc<FindPageEnd>>,
    pub record: Arc<RecordFn<R>>,
}

fn encode<R>(
    rows: Vec<Listed<R>>,
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
    for row in rows {
        for cell in record(row.item) {
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
type FetchedPage<R> = Result<(Vec<Listed<R>>, Option<(Cursor, Option<Cursor>)>), ApiError>;

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
        let read = db.report(move |conn| {
            let (down_to, end) = match (end, &export.page_end) {
                (Some(end), Some(page_end)) => {
                    let found = page_end(conn, after, PAGE)?;
                    // The receiver only goes when the export has ended.
                    let _ = end.send(found);
                    (found, None)
                }
                (end, _) => (down_to, end),
            };
            let rows = (export.fetch)(conn, after, down_to, PAGE)?;
            let last = rows.last().map(|row| row.cursor);
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
        });
        Ok(read.await?)
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
pub(crate) fn stream_csv<R: Send + 'static>(db: Database, export: Export<R>) -> HttpResponse {
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
                actix_web::web::block(move || encode(rows, header, export.record.as_ref()))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use chrono::Utc;
    use deploytime_core::AbandonPolicy;
    use deploytime_core::wire::DeploymentView;

    use super::{Export, stream_csv};
    use crate::backend_tests;
    use crate::db::DbConnection;
    use crate::db::queries::{self, DeploymentFilter};
    use crate::db::seed::{SeedPlan, seed};
    use crate::testing::{Backend, RunningServer, TestDatabase, settings};

    /// An export reads a page's rows after it has found where the page ends, on
    /// another connection than the page before; rows stored in between make the
    /// page hold more than a page's worth. Simulated deterministically by page ends
    /// found too far (as if a page of rows had come into every page's range) and too
    /// near (as if rows had been removed): the export must come out byte for byte
    /// as the one the server streams.
    async fn exports_read_the_rest_of_a_page_that_grew(backend: Backend) {
        let database = TestDatabase::create(backend).unwrap();
        let plan = SeedPlan {
            deployments: 12_345,
            components: 7,
            environments: 2,
            days: 30,
            seed: 7,
        };
        let url = database.url.clone();
        tokio::task::spawn_blocking(move || seed(&url, &plan))
            .await
            .unwrap()
            .unwrap();
        let server = RunningServer::start(&settings(&database.url)).unwrap();
        let expected = reqwest::get(format!("{}/api/v1/deployments?format=csv", server.url))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        // The server's default: running for more than 24 hours is abandoned.
        let cutoff = AbandonPolicy::default().cutoff(Utc::now());
        for (name, stretch) in [("too far", 2.0), ("too near", 0.5)] {
            let all = DeploymentFilter::default();
            let export = Export {
                filename: "deployments.csv",
                header: &deploytime_core::export::DEPLOYMENT_COLUMNS,
                fetch: Arc::new(|conn, cursor, down_to, limit| {
                    queries::list_deployments(
                        conn,
                        &DeploymentFilter::default(),
                        cursor,
                        down_to,
                        limit,
                    )
                }),
                page_end: Some(Arc::new(move |conn: &mut DbConnection, cursor, limit| {
                    let offset = (limit as f64 * stretch) as i64;
                    queries::deployments_page_end(conn, &all, cursor, offset)
                })),
                record: Arc::new(move |deployment| {
                    Vec::from(DeploymentView::new(deployment, &cutoff).csv_record())
                }),
            };
            let db = server.db.clone();
            // Exports run their page fetches as tasks of the server's workers.
            let body = tokio::task::LocalSet::new()
                .run_until(async move {
                    actix_web::body::to_bytes(stream_csv(db, export).into_body())
                        .await
                        .unwrap()
                })
                .await;
            assert!(body.len() > 1_000_000, "{name}: {} bytes", body.len());
            assert!(body == expected, "{name}: the export differs");
        }
    }

    backend_tests!(exports_read_the_rest_of_a_page_that_grew);
}
