//! `POST /api/v1/events`, the store call every pipeline makes, and
//! `GET /api/v1/events`, the raw ledger.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::EventInput;
use deploytime_core::access::check_scope;
use deploytime_core::wire::{DeploymentView, EventBody, EventView, Page, Problem, StoreResponse};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{
    AdditionalProperties, AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};

use super::body::{body_format, read_body, read_event_body};
use super::csv_export::{Export, stream_csv};
use super::params::{ParamErrors, page, wants_csv};
use super::query_schemas;
use crate::db::queries::{self, EventFilter};
use crate::db::{Database, DbConnection, StoreError, Stored};
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::guard::Authenticated;
use crate::http::metrics::Metrics;

/// The store call's body as the OpenAPI description states it: one shape per
/// phase (a `start` has no `status`, a `finish` requires one), no other field,
/// and an empty value counts as absent in an optional field. Built from
/// `wire::EventBody`, whose fields a unit test keeps equal to the ones the
/// domain reads.
pub(crate) struct StoreBody;

impl utoipa::PartialSchema for StoreBody {
    fn schema() -> RefOr<Schema> {
        let RefOr::T(Schema::Object(body)) = <EventBody as utoipa::PartialSchema>::schema() else {
            return <EventBody as utoipa::PartialSchema>::schema();
        };
        let empty = || {
            Schema::Object(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([""]))
                    .build(),
            )
        };
        let shape = |phase: &str, required: &[&str]| {
            let mut shape = body.clone();
            for optional in ["environment", "deployment_id", "event_id", "timestamp"] {
                if let Some(field) = shape.properties.get_mut(optional) {
                    let given = std::mem::replace(field, RefOr::T(empty()));
                    *field = RefOr::T(Schema::AnyOf(
                        AnyOfBuilder::new().item(given).item(empty()).build(),
                    ));
                }
            }
            if phase == "start" {
                // A start has no status; an empty one counts as absent.
                shape.properties.insert("status".into(), RefOr::T(empty()));
            }
            shape.properties.insert(
                "phase".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([phase]))
                    .into(),
            );
            shape.required = required.iter().map(|f| (*f).to_owned()).collect();
            shape.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            Schema::Object(shape)
        };
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(shape("start", &["component", "phase"]))
                .item(shape("finish", &["component", "phase", "status"]))
                .build(),
        ))
    }
}

impl utoipa::ToSchema for StoreBody {}

/// Stores one `start` or `finish` event and applies it to its deployment.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body(
        description = "The event, as JSON or form fields (`attributes[name]=value`); UTF-8, at most 64 KiB",
        content((inline(StoreBody) = "application/json"), (inline(StoreBody) = "application/x-www-form-urlencoded"))
    ),
    params(
        ("Idempotency-Key" = Option<String>, Header, nullable = false, description = "The event id, as a UUID (any form a UUID parser reads: hyphenated, simple, braced or URN), if not in the body"),
    ),
    responses(
        (status = 201, description = "Stored; `Location` names the deployment", body = StoreResponse),
        (status = 200, description = "This event_id was stored before with the same content: the original answer", body = StoreResponse),
        (status = 400, description = "The body is not JSON or not a form", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The deployment is already finished or belongs to another component, or the event_id was sent with other content", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON nor a form, or not UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule (all listed in `errors`), including the rules between fields: the `Idempotency-Key` header equal to `event_id` when both are given, a `timestamp` at most 5 minutes ahead of the server's clock; or a finish is earlier than its start", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(name = "store_event", skip_all)]
pub(crate) async fn store_event(
    req: HttpRequest,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
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
    let input = input.with_idempotency_key(idempotency_key)?;
    let stored = record(input, &who, &db, &metrics).await??;
    let location = deploytime_core::wire::paths::deployment(stored.deployment.id);
    let cutoff = settings.abandon.cutoff(Utc::now());
    let body = StoreResponse {
        event: EventView::from(stored.event),
        deployment: DeploymentView::new(stored.deployment, &cutoff),
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

/// Validates a store call's fields and stores the event: the one write path
/// of the store call and of the hook endpoints. The outer error refuses the
/// event before the store (its fields, the caller's scope); the inner result
/// is the store's own answer, which a hook reads before it becomes an error.
pub(super) async fn record(
    input: EventInput,
    who: &Authenticated,
    db: &Database,
    metrics: &Metrics,
) -> Result<Result<Stored, StoreError>, ApiError> {
    let received_at = deploytime_core::time::truncate_to_micros(Utc::now());
    let event = input.validate(received_at)?;
    check_scope(&who.caller, &event.component, &event.environment)?;

    let stored = match db.store(event, received_at, who.credential.clone()).await {
        Ok(stored) => stored,
        Err(refused) => return Ok(Err(refused)),
    };

    let phase = stored.event.kind.phase();
    if !stored.replayed {
        metrics.event_stored(phase, &stored.deployment);
    }
    tracing::info!(
        event_id = %stored.event.id,
        deployment_id = %stored.deployment.id,
        component = %stored.event.component,
        %phase,
        replayed = stored.replayed,
        caller = %who.caller.name,
        "event stored"
    );
    Ok(Ok(stored))
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    #[param(schema_with = query_schemas::environments)]
    environment: Option<String>,
    #[param(schema_with = query_schemas::phase)]
    phase: Option<String>,
    /// Inclusive, on the event's own time.
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
pub(crate) async fn list_events(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = wants_csv(&req, query.format.as_deref())?;
    let mut errors = ParamErrors::default();
    let phase = query.phase.filter(|p| !p.is_empty()).and_then(|p| {
        let phase = deploytime_core::Phase::parse(&p);
        if phase.is_none() {
            errors.push("phase", format!("must be start or finish (got {p:?})"));
        }
        phase
    });
    let filter = EventFilter {
        component: errors.component(query.component),
        environments: errors.environments(query.environment),
        phase,
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
                filename: "events.csv",
                header: &deploytime_core::export::EVENT_COLUMNS,
                fetch: Arc::new(move |conn, cursor, down_to, limit| {
                    queries::list_events(conn, &fetch_filter, cursor, down_to, limit)
                }),
                page_end: filter.orders_by_index_alone().then(|| {
                    Arc::new(move |conn: &mut DbConnection, cursor, limit| {
                        queries::events_page_end(conn, &filter, cursor, limit)
                    }) as Arc<_>
                }),
                record: Arc::new(|event| Vec::from(EventView::from(event).csv_record())),
            },
        ));
    }
    let rows = db
        .report(move |conn| queries::list_events(conn, &filter, cursor, None, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, EventView::from)))
}
