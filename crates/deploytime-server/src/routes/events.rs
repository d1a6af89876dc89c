//! `POST /api/v1/events`: the store call every pipeline makes.

use actix_web::http::header;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::EventInput;
use futures_util::StreamExt;
use serde::Serialize;

use std::sync::Arc;

use crate::auth::Caller;
use crate::db::queries::{self, Cursor, EventFilter};
use crate::db::store::store_event as store_in_db;
use crate::db::{Database, DbError};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::routes::csv_export::{Export, stream_csv};
use crate::routes::deployments::page;
use crate::routes::params::{ParamErrors, wants_csv};
use crate::routes::views::{DeploymentView, EVENT_CSV_HEADER, EventView};
use crate::startup::Reporting;

/// Request bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

enum BodyFormat {
    Json,
    Form,
}

#[derive(Serialize)]
struct StoreResponse {
    event: EventView,
    deployment: DeploymentView,
}

fn body_format(req: &HttpRequest) -> Result<BodyFormat, ApiError> {
    let unsupported = |given: &str| {
        ApiError::UnsupportedMediaType(format!(
            "send application/json or application/x-www-form-urlencoded (got {given})"
        ))
    };
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(unsupported("no Content-Type"));
    };
    let value = value
        .to_str()
        .map_err(|_| unsupported("an unreadable Content-Type"))?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for parameter in parts {
        if let Some((name, charset)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
            && !charset
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8")
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "bodies must be UTF-8 (got charset {})",
                charset.trim()
            )));
        }
    }
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(BodyFormat::Json),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        _ => Err(unsupported(value)),
    }
}

/// Reads the body, refusing it as soon as it is known to be too large.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    let too_large = ApiError::PayloadTooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedBody(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Stores one `start` or `finish` event and applies it to its deployment.
#[tracing::instrument(name = "store_event", skip_all)]
pub async fn store_event(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let format = body_format(&req)?;
    let body = read_body(&req, payload).await?;
    let input = match format {
        BodyFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
            EventInput::from_json(value)?
        }
        BodyFormat::Form => {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(&body).map_err(|e| {
                    ApiError::MalformedBody(format!("the body is not a valid form: {e}"))
                })?;
            EventInput::from_form(pairs)
        }
    };
    let idempotency_key = req
        .headers()
        .get("Idempotency-Key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::BadRequest("the Idempotency-Key header is not readable text".into())
            })
        })
        .transpose()?;
    let received_at = deploytime_core::time::truncate_to_micros(Utc::now());
    let event = input
        .with_idempotency_key(idempotency_key)?
        .validate(received_at)?;
    if let Some(caller) = req.extensions().get::<Caller>()
        && !caller
            .scope
            .allows(event.component.as_str(), event.environment.as_str())
    {
        return Err(ApiError::Forbidden(format!(
            "the token {:?} may record events for {} only (got component {}, environment {})",
            caller.name, caller.scope, event.component, event.environment
        )));
    }

    let stored = db
        .write(move |conn| store_in_db(conn, &event, received_at))
        .await??;

    if !stored.replayed {
        metrics.event_stored(&stored.event.phase, &stored.deployment);
    }
    tracing::info!(
        event_id = %stored.event.id,
        deployment_id = %stored.deployment.id,
        component = %stored.event.component,
        phase = %stored.event.phase,
        replayed = stored.replayed,
        "event stored"
    );
    let location = format!("/api/v1/deployments/{}", stored.deployment.id);
    let body = StoreResponse {
        event: EventView::from(&stored.event),
        deployment: DeploymentView::of(&stored.deployment, reporting.abandon_cutoff()),
    };
    let mut response = if stored.replayed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Created()
    };
    Ok(response
        .insert_header((header::LOCATION, location))
        .json(body))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    component: Option<String>,
    environment: Option<String>,
    phase: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
    format: Option<String>,
}

/// The raw ledger, newest event time first; JSON pages or a CSV export.
#[tracing::instrument(skip(db, req))]
pub async fn list_events(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = wants_csv(&req, query.format.as_deref())?;
    let mut errors = ParamErrors::default();
    let phase = query.phase.filter(|p| !p.is_empty());
    if let Some(p) = &phase
        && deploytime_core::Phase::parse(p).is_none()
    {
        errors.push("phase", format!("must be start or finish (got {p:?})"));
    }
    let filter = EventFilter {
        component: errors.component(query.component),
        environment: errors.environment(query.environment),
        phase,
        since: errors.instant("since", query.since),
        until: errors.instant("until", query.until),
    };
    let limit = errors.limit(query.limit);
    let cursor = errors.cursor(query.cursor);
    errors.finish()?;
    let cursor_of = |seq, row: &crate::db::models::EventRow| Cursor {
        at: row.occurred_at,
        seq,
    };
    if csv {
        return Ok(stream_csv(
            db.get_ref().clone(),
            Export {
                filename: "events.csv",
                header: EVENT_CSV_HEADER,
                fetch: Arc::new(move |conn, cursor, limit| {
                    queries::list_events(conn, &filter, cursor, limit)
                }),
                cursor_of,
                record: Arc::new(|row| EventView::from(row).csv_record()),
            },
        ));
    }
    let rows = db
        .read(move |conn| queries::list_events(conn, &filter, cursor, limit + 1))
        .await?
        .map_err(DbError::from)?;
    Ok(HttpResponse::Ok().json(page(rows, limit, cursor_of, |row| EventView::from(row))))
}
