//! Deployments: the listing (JSON pages or a CSV export), one deployment with its
//! events, and removal by an operator.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::time::to_micros;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::queries::{self, Cursor, DeploymentFilter};
use crate::db::{Database, DbConnection, DbError};
use crate::error::{ApiError, Problem};
use crate::openapi::{AccessProblems, QueryProblems};
use crate::routes::csv_export::{Export, stream_csv};
use crate::routes::params::{ParamErrors, encode_cursor, wants_csv};
use crate::routes::views::{DEPLOYMENT_CSV_HEADER, DeploymentDetail, DeploymentView, EventView};
use crate::startup::Reporting;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    component: Option<String>,
    environment: Option<String>,
    /// running, succeeded, failed, cancelled or abandoned.
    state: Option<String>,
    /// RFC 3339, inclusive, on the start time (the finish time without a start).
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
    /// 1–1000, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// json (default) or csv: every matching deployment, streamed.
    format: Option<String>,
}

/// One page of a listing.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    items: Vec<T>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Deployments, newest first, filtered; JSON pages or, with `format=csv` or
/// `Accept: text/csv`, every matching row as CSV.
#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    tag = "deployments",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of deployments, or with `format=csv` (or `Accept: text/csv`) all of them",
            content((Page<DeploymentView> = "application/json"), (String = "text/csv"))),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db, req, reporting))]
pub async fn list_deployments(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = wants_csv(&req, query.format.as_deref())?;
    let mut errors = ParamErrors::default();
    let cutoff = reporting.abandon_cutoff();
    let filter = DeploymentFilter {
        component: errors.component(query.component),
        environment: errors.environment(query.environment),
        state: errors.state(query.state),
        since: errors.instant("since", query.since),
        until: errors.instant("until", query.until),
        abandon_cutoff: cutoff,
    };
    let limit = errors.limit(query.limit);
    let cursor = errors.cursor(query.cursor);
    errors.finish()?;

    if csv {
        let fetch_filter = filter.clone();
        return Ok(stream_csv(
            db.get_ref().clone(),
            Export {
                filename: "deployments.csv",
                header: DEPLOYMENT_CSV_HEADER,
                fetch: Arc::new(move |conn, cursor, down_to, limit| {
                    queries::list_deployments(conn, &fetch_filter, cursor, down_to, limit)
                }),
                page_end: filter.orders_by_index_alone().then(|| {
                    let filter = filter.clone();
                    Arc::new(move |conn: &mut DbConnection, cursor, limit| {
                        queries::deployments_page_end(conn, &filter, cursor, limit)
                    }) as Arc<_>
                }),
                cursor_of: |seq, row| Cursor {
                    at: row.anchor_at,
                    seq,
                },
                record: Arc::new(move |row| DeploymentView::of(row, cutoff).csv_record()),
            },
        ));
    }

    let rows = db
        .read(move |conn| queries::list_deployments(conn, &filter, cursor, None, limit + 1))
        .await?
        .map_err(DbError::from)?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |seq, row| Cursor {
            at: row.anchor_at,
            seq,
        },
        |row| DeploymentView::of(row, cutoff),
    )))
}

/// Turns `limit + 1` fetched rows into a page and the cursor of the next one.
pub fn page<R, T>(
    mut rows: Vec<(i64, R)>,
    limit: i64,
    cursor_of: impl Fn(i64, &R) -> Cursor,
    view: impl Fn(&R) -> T,
) -> impl Serialize
where
    T: Serialize,
{
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| {
            rows.last()
                .map(|(seq, row)| encode_cursor(cursor_of(*seq, row)))
        })
        .flatten();
    Page {
        items: rows.iter().map(|(_, row)| view(row)).collect(),
        next_cursor,
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("deployment ids are UUIDs; {raw:?} is not one")))
}

/// One deployment with its events, in the order they were stored.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment and its events", body = DeploymentDetail),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db, reporting))]
pub async fn get_deployment(
    id: web::Path<String>,
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    let key = id.to_string();
    let found = db
        .read(move |conn| {
            let Some(deployment) = queries::find_deployment(conn, &key)? else {
                return Ok(None);
            };
            let events = queries::events_of_deployment(conn, &key)?;
            Ok::<_, diesel::result::Error>(Some((deployment, events)))
        })
        .await?
        .map_err(DbError::from)?;
    let Some((deployment, events)) = found else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    Ok(HttpResponse::Ok().json(DeploymentDetail {
        deployment: DeploymentView::of(&deployment, reporting.abandon_cutoff()),
        events: events.iter().map(EventView::from).collect(),
    }))
}

/// Removes a deployment and its events (admin); the removal is recorded, with a
/// snapshot of what was removed, and logged.
#[utoipa::path(
    delete,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db))]
pub async fn delete_deployment(
    id: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    let key = id.to_string();
    let deleted_at = to_micros(Utc::now());
    let removed = db
        .write(move |conn| queries::delete_deployment(conn, &key, deleted_at))
        .await?
        .map_err(DbError::from)?;
    let Some((row, events_removed)) = removed else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    tracing::warn!(
        deployment_id = %row.id,
        component = %row.component,
        environment = %row.environment,
        state = %row.state,
        events_removed,
        "deployment deleted"
    );
    Ok(HttpResponse::NoContent().finish())
}
