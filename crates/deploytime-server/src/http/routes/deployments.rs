//! Deployments: the listing (JSON pages or a CSV export), one deployment with its
//! events, and removal by an operator.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::correction::Correction;
use deploytime_core::time::to_micros;
use deploytime_core::wire::{
    CorrectionBody, DeploymentDetail, DeploymentView, EventView, Page, Problem,
};
use serde::Deserialize;
use uuid::Uuid;

use super::body::{BodyFormat, body_format, read_body};
use super::csv_export::{Export, stream_csv};
use super::params::{ParamErrors, page, wants_csv};
use super::query_schemas;
use crate::db::queries::{self, Corrected, DeploymentFilter};
use crate::db::{Database, DbConnection};
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::guard::Authenticated;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    #[param(schema_with = query_schemas::environments)]
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
        environments: errors.environments(query.environment),
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

/// A deployment with its events and corrections, and its revision.
async fn read_detail(
    db: &Database,
    id: Uuid,
    settings: &HttpSettings,
) -> Result<Option<(DeploymentDetail, i32)>, ApiError> {
    let key = id.to_string();
    let found = db
        .read(move |conn| {
            let Some(row) = queries::find_deployment_row(conn, &key)? else {
                return Ok(None);
            };
            let revision = row.revision;
            let deployment = row.into_deployment()?;
            let events = queries::events_of_deployment(conn, &key)?;
            let corrections = queries::corrections_of(conn, &key)?;
            let commits = queries::commits_of(conn, &key)?;
            Ok(Some((deployment, revision, events, corrections, commits)))
        })
        .await?;
    let cutoff = settings.abandon.cutoff(Utc::now());
    Ok(
        found.map(|(deployment, revision, events, corrections, commits)| {
            let detail = DeploymentDetail {
                deployment: DeploymentView::new(deployment, &cutoff),
                revision: u32::try_from(revision).unwrap_or_default(),
                events: events.into_iter().map(EventView::from).collect(),
                corrections,
                commits,
            };
            (detail, revision)
        }),
    )
}

/// The `ETag` of a deployment at a revision.
fn etag(revision: i32) -> (actix_web::http::header::HeaderName, String) {
    (actix_web::http::header::ETAG, format!("\"{revision}\""))
}

/// One deployment with its events, in the order they were stored, and the
/// corrections made to it.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    params(("id" = uuid::Uuid, Path, description = "The deployment's id")),
    responses(
        (status = 200, description = "The deployment, its events and corrections; `ETag` is its revision", body = DeploymentDetail),
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
    let Some((detail, revision)) = read_detail(&db, id, &settings).await? else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    Ok(HttpResponse::Ok()
        .insert_header(etag(revision))
        .json(detail))
}

/// The revision an `If-Match` header asks for: `"3"`, `W/"3"` or `3`.
fn expected_revision(req: &HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = req.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default().trim();
    if value == "*" {
        return Ok(None);
    }
    let tag = value.strip_prefix("W/").unwrap_or(value);
    let digits = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag);
    (1..=9)
        .contains(&digits.len())
        .then(|| digits.parse::<i32>().ok())
        .flatten()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(
                "If-Match must be the deployment's ETag, e.g. \"3\" (its revision)".into(),
            )
        })
}

/// Corrects a deployment (admin): its version, owner, final status or finish
/// time, with a reason. Applied with the revision check (with `If-Match`, only
/// while the deployment is at that revision), kept in its corrections with the
/// values before and after, and reflected in every statistic.
#[utoipa::path(
    patch,
    path = "/api/v1/deployments/{id}",
    tag = "deployments",
    params(
        ("id" = uuid::Uuid, Path, description = "The deployment's id"),
        ("If-Match" = Option<String>, Header, nullable = false, description = "Its `ETag` (revision): correct it only if unchanged since; `*`: whatever its revision", pattern = r#"^\*$|^(W/)?"[0-9]{1,9}"$|^[0-9]{1,9}$"#),
    ),
    request_body(content = CorrectionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Corrected: the deployment as it now is", body = DeploymentDetail),
        (status = 400, description = "The id is not a UUID, the body not JSON, or If-Match not a revision", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment changed since the revision given in If-Match, or while it was corrected", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule (each in `errors`), or the correction cannot apply to this deployment: closing a running one needs both status and finished_at; a finish is never before the start", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all, fields(deployment_id))]
pub(crate) async fn correct_deployment(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    tracing::Span::current().record("deployment_id", tracing::field::display(id));
    if !matches!(
        body_format(req.headers().get(header::CONTENT_TYPE))?,
        BodyFormat::Json
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "a correction is sent as application/json".into(),
        ));
    }
    let expected = expected_revision(&req)?;
    let body = read_body(&req, payload).await?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
    let now = Utc::now();
    let correction = Correction::from_json(value, now).map_err(ApiError::InvalidCorrection)?;
    let (key, by, at) = (id.to_string(), who.caller.name.clone(), to_micros(now));
    let reason = correction.reason.clone();
    let outcome = db
        .write(move |conn| queries::correct_deployment(conn, &key, &correction, expected, &by, at))
        .await?;
    match outcome {
        Corrected::Applied {
            deployment,
            revision,
        } => {
            tracing::warn!(
                deployment_id = %deployment.id,
                component = %deployment.component,
                state = %deployment.state,
                revision,
                by = %who.caller.name,
                %reason,
                "deployment corrected"
            );
        }
        Corrected::NotFound => {
            return Err(ApiError::NotFound(format!("no deployment with id {id}")));
        }
        Corrected::Stale { current } => {
            return Err(ApiError::Conflict(format!(
                "deployment {id} changed meanwhile (it is at revision {current}{}); read it again and resend the correction",
                expected.map(|e| format!(", not {e}")).unwrap_or_default()
            )));
        }
        Corrected::Refused(refused) => return Err(ApiError::InvalidCorrection(refused.0)),
    }
    let Some((detail, revision)) = read_detail(&db, id, &settings).await? else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    Ok(HttpResponse::Ok()
        .insert_header(etag(revision))
        .json(detail))
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
