//! Incidents: `POST /api/v1/incidents` opens one, `PATCH /api/v1/incidents/{id}`
//! resolves or corrects it, `GET` lists them or shows one. Their restore times
//! are reported by `GET /api/v1/stats` beside the failure-streak figure.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::access::check_scope;
use deploytime_core::incident::{ChangeRefused, IncidentChange, IncidentState, NewIncident};
use deploytime_core::time::truncate_to_micros;
use deploytime_core::wire::{IncidentBody, IncidentChangeBody, IncidentView, Page, Problem};
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, SchemaType, Type};
use uuid::Uuid;

use super::body::{BodyFormat, body_format, read_body};
use super::params::{ParamErrors, page};
use super::query_schemas;
use crate::db::Database;
use crate::db::queries::{self, Changed, IncidentFilter, Opened};
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::guard::Authenticated;

/// `schema` with each of `optional` also accepting `""` (read as absent, so
/// that a script passing an unset variable is not refused for it).
fn empty_allowed(schema: RefOr<Schema>, optional: &[&str]) -> RefOr<Schema> {
    let RefOr::T(Schema::Object(mut object)) = schema else {
        return schema;
    };
    let empty = || {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some([""]))
                .build(),
        )
    };
    for name in optional {
        if let Some(field) = object.properties.get_mut(*name) {
            let given = std::mem::replace(field, RefOr::T(empty()));
            *field = RefOr::T(Schema::AnyOf(
                AnyOfBuilder::new().item(given).item(empty()).build(),
            ));
        }
    }
    RefOr::T(Schema::Object(object))
}

/// The opening call's body as the OpenAPI description states it.
pub(crate) struct OpenBody;

impl utoipa::PartialSchema for OpenBody {
    fn schema() -> RefOr<Schema> {
        empty_allowed(
            <IncidentBody as utoipa::PartialSchema>::schema(),
            &[
                "environment",
                "started_at",
                "resolved_at",
                "cause_deployment_id",
                "incident_id",
            ],
        )
    }
}

impl utoipa::ToSchema for OpenBody {}

/// A change's body as the OpenAPI description states it: `resolved` is only
/// ever `true` (or `null`, absent), and something is to change.
pub(crate) struct ChangeBody;

impl utoipa::PartialSchema for ChangeBody {
    fn schema() -> RefOr<Schema> {
        let schema = empty_allowed(
            <IncidentChangeBody as utoipa::PartialSchema>::schema(),
            &["cause_deployment_id"],
        );
        let RefOr::T(Schema::Object(mut object)) = schema else {
            return schema;
        };
        object.properties.insert(
            "resolved".into(),
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::Boolean, Type::Null]))
                .enum_values(Some([
                    serde_json::Value::Bool(true),
                    serde_json::Value::Null,
                ]))
                .description(Some(
                    "`true`: resolved now (an incident resolved already keeps its time)",
                ))
                .into(),
        );
        object.min_properties = Some(1);
        RefOr::T(Schema::Object(object))
    }
}

impl utoipa::ToSchema for ChangeBody {}

/// Reads a JSON body (only JSON is accepted here).
async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<serde_json::Value, ApiError> {
    if !matches!(
        body_format(req.headers().get(header::CONTENT_TYPE))?,
        BodyFormat::Json
    ) {
        return Err(ApiError::UnsupportedMediaType(
            "incidents are sent as application/json".into(),
        ));
    }
    let body = read_body(req, payload).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::BadRequest(format!("incident ids are UUIDs; {raw:?} is not one")))
}

/// Opens an incident: a component in an environment is broken since
/// `started_at` (default: now).
#[utoipa::path(
    post,
    path = "/api/v1/incidents",
    tag = "incidents",
    request_body(
        description = "The incident, as JSON; UTF-8, at most 64 KiB",
        content((inline(OpenBody) = "application/json"))
    ),
    responses(
        (status = 201, description = "Opened; `Location` names it", body = IncidentView),
        (status = 200, description = "This incident_id was opened before with the same content: the incident as it now is", body = IncidentView),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The incident_id was sent before with other content", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON, or not UTF-8", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule (all listed in `errors`), including the rules between fields: times at most 5 minutes ahead of the server's clock, `resolved_at` not before `started_at`, a `cause_deployment_id` that is recorded and of the same component and environment", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(name = "open_incident", skip_all)]
pub(crate) async fn open_incident(
    req: HttpRequest,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let value = json_body(&req, payload).await?;
    let now = truncate_to_micros(Utc::now());
    let new = NewIncident::from_json(value, now).map_err(ApiError::InvalidIncident)?;
    check_scope(&who.caller, &new.component, &new.environment)?;
    let by = who.caller.name.clone();
    let opened = db
        .write(move |conn| queries::open_incident(conn, &new, Uuid::now_v7(), &by, now))
        .await?;
    let (incident, created) = match opened {
        Opened::Created(incident) => (incident, true),
        Opened::Replayed(incident) => (incident, false),
        Opened::Conflict(id) => {
            return Err(ApiError::Conflict(format!(
                "incident {id} was opened before with different content; a retry must resend exactly the same body, a new incident needs a new incident_id"
            )));
        }
        Opened::Refused(errors) => return Err(ApiError::InvalidIncident(errors)),
    };
    tracing::info!(
        incident_id = %incident.id,
        component = %incident.component,
        environment = %incident.environment,
        replayed = !created,
        by = %who.caller.name,
        "incident opened"
    );
    let location = deploytime_core::wire::paths::incident(incident.id);
    let mut response = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(response
        .insert_header((header::LOCATION, location))
        .json(IncidentView::from(incident)))
}

/// Resolves an incident (`resolved_at`, or `"resolved": true` for now), or
/// corrects its title, summary or cause.
#[utoipa::path(
    patch,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = uuid::Uuid, Path, description = "The incident's id")),
    request_body(content = inline(ChangeBody), content_type = "application/json"),
    responses(
        (status = 200, description = "Changed (or resolved already at that time): the incident as it now is", body = IncidentView),
        (status = 400, description = "The id is not a UUID, or the body not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Resolved already, at another time", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule (all listed in `errors`), including the rules between fields and against the incident: `resolved_at` at most 5 minutes ahead and not before `started_at`, not both `resolved` and `resolved_at`, something to change, a `cause_deployment_id` that is recorded and of the incident's component and environment", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all, fields(incident_id))]
pub(crate) async fn change_incident(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    tracing::Span::current().record("incident_id", tracing::field::display(id));
    let value = json_body(&req, payload).await?;
    let now = truncate_to_micros(Utc::now());
    let change = IncidentChange::from_json(value, now).map_err(ApiError::InvalidIncident)?;
    // The scope is the incident's, which a change never moves.
    let Some(incident) = db
        .read(move |conn| queries::find_incident(conn, id))
        .await?
    else {
        return Err(ApiError::NotFound(format!("no incident with id {id}")));
    };
    check_scope(&who.caller, &incident.component, &incident.environment)?;
    let changed = db
        .write(move |conn| queries::change_incident(conn, id, &change, now))
        .await?;
    let incident = match changed {
        Changed::Applied(incident) => incident,
        Changed::NotFound => return Err(ApiError::NotFound(format!("no incident with id {id}"))),
        Changed::Refused(ChangeRefused::Invalid(errors)) | Changed::CauseRefused(errors) => {
            return Err(ApiError::InvalidIncident(errors));
        }
        Changed::Refused(conflict @ ChangeRefused::ResolvedOtherwise { .. }) => {
            return Err(ApiError::Conflict(conflict.to_string()));
        }
    };
    tracing::info!(
        incident_id = %incident.id,
        state = incident.state().as_str(),
        by = %who.caller.name,
        "incident changed"
    );
    Ok(HttpResponse::Ok().json(IncidentView::from(incident)))
}

/// One incident.
#[utoipa::path(
    get,
    path = "/api/v1/incidents/{id}",
    tag = "incidents",
    params(("id" = uuid::Uuid, Path, description = "The incident's id")),
    responses(
        (status = 200, description = "The incident", body = IncidentView),
        (status = 400, description = "The id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such incident", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db))]
pub(crate) async fn get_incident(
    id: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id.into_inner())?;
    match db
        .read(move |conn| queries::find_incident(conn, id))
        .await?
    {
        Some(incident) => Ok(HttpResponse::Ok().json(IncidentView::from(incident))),
        None => Err(ApiError::NotFound(format!("no incident with id {id}"))),
    }
}

fn incident_state() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["open", "resolved", ""]))
        .description(Some("open or resolved"))
        .into()
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    #[param(schema_with = query_schemas::environments)]
    environment: Option<String>,
    #[param(schema_with = incident_state)]
    state: Option<String>,
    /// Inclusive, on `started_at`.
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
}

/// Incidents, newest start first, filtered, by pages.
#[utoipa::path(
    get,
    path = "/api/v1/incidents",
    tag = "incidents",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of incidents", body = Page<IncidentView>),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db))]
pub(crate) async fn list_incidents(
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut errors = ParamErrors::default();
    let state = query.state.filter(|s| !s.is_empty()).and_then(|s| {
        let state = IncidentState::parse(&s);
        if state.is_none() {
            errors.push("state", format!("must be open or resolved (got {s:?})"));
        }
        state
    });
    let filter = IncidentFilter {
        component: errors.component(query.component),
        environments: errors.environments(query.environment),
        state,
        since: errors.instant("since", query.since),
        until: errors.instant("until", query.until),
    };
    let limit = errors.limit(query.limit);
    let cursor = errors.cursor(query.cursor);
    errors.finish()?;
    let rows = db
        .report(move |conn| queries::list_incidents(conn, &filter, cursor, limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, IncidentView::from)))
}
