//! `POST /api/v1/events`: the store call every pipeline makes.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::EventInput;
use futures_util::StreamExt;
use serde::Serialize;

use std::sync::Arc;

use crate::auth::{Caller, Credential, check_scope};
use crate::db::queries::{self, Cursor, EventFilter};
use crate::db::{Database, DbConnection, DbError};
use crate::error::{ApiError, Problem};
use crate::metrics::Metrics;
use crate::openapi::{AccessProblems, QueryProblems};
use crate::routes::csv_export::{Export, stream_csv};
use crate::routes::deployments::{Page, page};
use crate::routes::params::{ParamErrors, wants_csv};
use crate::routes::views::{DeploymentView, EVENT_CSV_HEADER, EventView};
use crate::startup::Reporting;

/// Request bodies larger than this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

enum BodyFormat {
    Json,
    Form,
}

/// What a store call answers: the stored event and its deployment as it now is.
#[derive(Serialize, utoipa::ToSchema)]
pub struct StoreResponse {
    event: EventView,
    deployment: DeploymentView,
}

/// `start` opens a deployment, `finish` closes one.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PhaseName {
    Start,
    Finish,
}

/// The fields of a store call, as a JSON object or as form fields. This type
/// only describes them: the body is read field by field by
/// `deploytime_core::EventInput`, which reports every mistake at once, and a test
/// keeps this list equal to the fields it accepts.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct EventBody {
    /// 1–128 characters: ASCII letters, digits, `.` `_` `-` `/` `:`; starts with a letter or digit.
    #[schema(example = "api", pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")]
    component: String,
    phase: PhaseName,
    /// Required on `finish`, refused on `start`: `success`, `cancelled`, or an
    /// error code of 1–64 of `[A-Za-z0-9._-]` (the deploy failed).
    #[schema(example = "success", pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    status: Option<String>,
    /// Default `production`; same characters as `component`, at most 64.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$")]
    environment: Option<String>,
    /// At most 128 characters, no control characters.
    #[schema(max_length = 128)]
    version: Option<String>,
    /// At most 128 characters, no control characters.
    #[schema(max_length = 128)]
    owner: Option<String>,
    /// On `start` the id the deployment gets, on `finish` the deployment to close.
    #[schema(format = Uuid)]
    deployment_id: Option<String>,
    /// The idempotency key (or the `Idempotency-Key` header).
    #[schema(format = Uuid)]
    event_id: Option<String>,
    /// RFC 3339 with an offset; default: when the server received the call.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// A flat object of strings: at most 32 keys of 1–64 characters, values of at most 512.
    attributes: Option<std::collections::BTreeMap<String, String>>,
}

fn body_format(content_type: Option<&HeaderValue>) -> Result<BodyFormat, ApiError> {
    let unsupported = |given: &str| {
        ApiError::UnsupportedMediaType(format!(
            "send application/json or application/x-www-form-urlencoded (got {given})"
        ))
    };
    let Some(value) = content_type else {
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

/// Reads a store call's body by its content type into the fields the client
/// sent, before validation. Pure, so that it can be fuzzed without HTTP.
pub fn read_event_body(
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Result<EventInput, ApiError> {
    match body_format(content_type)? {
        BodyFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
            Ok(EventInput::from_json(value)?)
        }
        BodyFormat::Form => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
                ApiError::MalformedBody(format!("the body is not a valid form: {e}"))
            })?;
            Ok(EventInput::from_form(pairs))
        }
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
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body(
        description = "The event, as JSON or form fields (`attributes[name]=value`); UTF-8, at most 64 KiB",
        content((EventBody = "application/json"), (EventBody = "application/x-www-form-urlencoded"))
    ),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The event id, as a UUID, if not in the body"),
    ),
    responses(
        (status = 201, description = "Stored; `Location` names the deployment", body = StoreResponse),
        (status = 200, description = "This event_id was stored before with the same content: the original answer", body = StoreResponse),
        (status = 400, description = "The body is not JSON or not a form", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment is already finished or belongs to another component, or the event_id was sent with other content", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON nor a form, or not UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule (all listed in `errors`), or a finish is earlier than its start", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(name = "store_event", skip_all)]
pub async fn store_event(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Database>,
    reporting: web::Data<Reporting>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    // The content type is checked before the body is read: a wrong one is
    // refused without reading up to 64 KiB first.
    body_format(req.headers().get(header::CONTENT_TYPE))?;
    let body = read_body(&req, payload).await?;
    let input = read_event_body(req.headers().get(header::CONTENT_TYPE), &body)?;
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
    let not_checked = || ApiError::Internal("the access check did not run".into());
    let credential = req
        .extensions()
        .get::<Credential>()
        .cloned()
        .ok_or_else(not_checked)?;
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(not_checked)?;
    check_scope(
        &caller,
        event.component.as_str(),
        event.environment.as_str(),
    )?;

    let stored = db.store(event, received_at, credential).await??;

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

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    component: Option<String>,
    environment: Option<String>,
    /// start or finish.
    phase: Option<String>,
    /// RFC 3339, inclusive, on the event's own time.
    since: Option<String>,
    /// RFC 3339, exclusive.
    until: Option<String>,
    /// 1–1000, default 50.
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// json (default) or csv: every matching event, streamed.
    format: Option<String>,
}

/// The raw ledger, newest event time first; JSON pages or a CSV export.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of events, or with `format=csv` (or `Accept: text/csv`) all of them",
            content((Page<EventView> = "application/json"), (String = "text/csv"))),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
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
        let fetch_filter = filter.clone();
        return Ok(stream_csv(
            db.get_ref().clone(),
            Export {
                filename: "events.csv",
                header: EVENT_CSV_HEADER,
                fetch: Arc::new(move |conn, cursor, down_to, limit| {
                    queries::list_events(conn, &fetch_filter, cursor, down_to, limit)
                }),
                page_end: filter.orders_by_index_alone().then(|| {
                    Arc::new(move |conn: &mut DbConnection, cursor, limit| {
                        queries::events_page_end(conn, &filter, cursor, limit)
                    }) as Arc<_>
                }),
                cursor_of,
                record: Arc::new(|row| EventView::from(row).csv_record()),
            },
        ));
    }
    let rows = db
        .read(move |conn| queries::list_events(conn, &filter, cursor, None, limit + 1))
        .await?
        .map_err(DbError::from)?;
    Ok(HttpResponse::Ok().json(page(rows, limit, cursor_of, |row| EventView::from(row))))
}
