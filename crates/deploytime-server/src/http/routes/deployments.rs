//! Deployments: the listing (JSON pages or a CSV export), one deployment with its
//! events, and removal by an operator.

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::time::to_micros;
use deploytime_core::wire::{DeploymentDetail, DeploymentView, EventView, Page, Problem};
use serde::Deserialize;
use uuid::Uuid;

use super::csv_export::{Export, stream_csv};
use super::params::{ParamErrors, page, wants_csv};
use super::query_schemas;
use crate::db::queries::{self, DeploymentFilter};
use crate::db::{Database, DbConnection};
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError, QueryProblems};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    #[param(schema_with = query_schemas::environment)]
    environment: Option<String>,
    #[param(schema_with = query_schemas::state)]
    state: Option<String>,
    /// Inclusive, on the start time (the finish time without a start).
    #[param(schema_with = query_schemas::instant)]
    since: Option<String>,
    /// Exclusive.
    #[param(schema_with = query_schemas::instant)]
    until: Option<String>,
    /// 1–1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(schema_with = query_schemas::cursor)]
    cursor: Option<String>,
    #[param(schema_with = query_schemas::format)]
    format: Option<String>,
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
#[tracing::instrument(skip(db, req, settings))]
pub(crate) async fn list_deployments(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = wants_csv(&req, query.format.as_deref())?;
    let mut errors = ParamErrors::default();
    let cutoff = settings.abandon.cutoff(Utc::now());
    let filter = DeploymentFilter {
        component: errors.component(query.component),
        environment: errors.environment(query.environment),
        state: errors.state(query.state).map(|state| cutoff.selects(state)),
        since: errors.instant("since", query.since),
        until: errors.instant("until", query.until),
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
                header: &deploytime_core::export::DEPLOYMENT_COLUMNS,
                fetch: Arc::new(move |conn, cursor, down_to, limit| {
                    queries::list_deployments(conn, &fetch_filter, cursor, down_to, limit)
                }),
                page_end: filter.orders_by_index_alone().then(|| {
                    let filter = filter.clone();
                    Arc::new(move |conn: &mut DbConnection, cursor, limit| {
                        queries::deployments_page_end(conn, &filter, cursor, limit)
                    }) as Arc<_>
                }),
                record: Arc::new(move |deployment| {
                    Vec::from(DeploymentView::new(deployment, &cutoff).csv_record())
                }),
            },
        ));
    }

    let rows = db
        .read(move |conn| queries::list_deployments(conn, &filter, cursor, None, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |deployment| {
        DeploymentView::new(deployment, &cutoff)
    })))
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
#[tracing::instrument(skip(db, settings))]
pub(crate) async fn get_deployment(
    id: web::Path<String>,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    let key = id.to_string();
    let found = db
        .read(move |conn| {
            let Some(deployment) = queries::find_deployment(conn, &key)? else {
                return Ok(None);
            };
            let events = queries::events_of_deployment(conn, &key)?;
            Ok(Some((deployment, events)))
        })
        .await?;
    let Some((deployment, events)) = found else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    let cutoff = settings.abandon.cutoff(Utc::now());
    Ok(HttpResponse::Ok().json(DeploymentDetail {
        deployment: DeploymentView::new(deployment, &cutoff),
        events: events.into_iter().map(EventView::from).collect(),
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
pub(crate) async fn delete_deployment(
    id: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    let key = id.to_string();
    let deleted_at = to_micros(Utc::now());
    let removed = db
        .write(move |conn| queries::delete_deployment(conn, &key, deleted_at))
        .await?;
    let Some((deployment, events_removed)) = removed else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    tracing::warn!(
        deployment_id = %deployment.id,
        component = %deployment.component,
        environment = %deployment.environment,
        state = %deployment.state,
        events_removed,
        "deployment deleted"
    );
    Ok(HttpResponse::NoContent().finish())
}
