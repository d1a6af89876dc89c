//! The release gate's API: a pipeline registers a release and polls it (or
//! waits on it), lists releases and reads their audit; an approver's tool
//! sends a decision with the token of its link.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use deploytime_core::access::check_release_scope;
use deploytime_core::release::{
    LinkDigest, Refusal, ReleaseKey, ReleaseRequest, ReleaseState, Verdict,
};
use deploytime_core::time::to_micros;
use deploytime_core::wire::{
    AUDIT_COLUMNS, ApprovalBody, AuditEntry, Page, Problem, ReleaseBody, ReleaseDetail, ReleaseView,
};
use deploytime_core::{FieldError, ValidationErrors};
use serde::Deserialize;

use std::sync::Arc;

use super::body::{BodyFormat, body_format, read_body};
use super::csv_export::{Export, stream_csv};
use super::params::{ParamErrors, page, wants_csv};
use super::query_schemas;
use crate::db::Database;
use crate::db::queries::{self, Decided, Decision, Registered, ReleaseFilter};
use crate::gate::Gate;
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::guard::Authenticated;

/// The longest a poll may wait for a change (`?wait=`).
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(300);

/// How much longer than the request timeout a long poll may take: its wait.
pub(crate) fn long_poll_allowance(req: &actix_web::dev::ServiceRequest) -> Duration {
    if !req
        .path()
        .starts_with(deploytime_core::wire::paths::RELEASES)
    {
        return Duration::ZERO;
    }
    web::Query::<WaitQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| {
            q.wait
                .as_deref()
                .and_then(|w| humantime::parse_duration(w).ok())
        })
        .map_or(Duration::ZERO, |wait| wait.min(MAX_WAIT))
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<String>,
}

/// Reads a JSON body (a release request or an approval).
async fn json_body(
    req: &HttpRequest,
    payload: web::Payload,
    what: &str,
) -> Result<serde_json::Value, ApiError> {
    if !matches!(
        body_format(req.headers().get(header::CONTENT_TYPE))?,
        BodyFormat::Json
    ) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "{what} is sent as application/json"
        )));
    }
    let body = read_body(req, payload).await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))
}

/// A release as the API shows it, read now.
async fn read_view(db: &Database, key: ReleaseKey) -> Result<Option<(i64, ReleaseView)>, ApiError> {
    let found = db
        .read(move |conn| queries::find_release(conn, &key))
        .await?;
    Ok(found.map(|(seq, release, asks)| (seq, ReleaseView::new(release, asks, Utc::now()))))
}

/// Registers a release for approval, or answers its state when it is known
/// (polling is repeating the call). Accepts this API's body and the original
/// contract's `{"ReleaseName", "ReleaseId", "TeamProject"}`; also served at
/// `POST /release`. Approvers are asked after the answer, never before it.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    tag = "releases",
    request_body(content = ReleaseBody, content_type = "application/json",
        description = "Or the original contract's exact `{\"ReleaseName\", \"ReleaseId\", \"TeamProject\"}`"),
    responses(
        (status = 201, description = "Registered, pending; `Location` is its URL", body = ReleaseView),
        (status = 200, description = "Known already: its current state", body = ReleaseView),
        (status = 400, description = "The body is not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A different request under a known release id", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule, each in `errors`", body = Problem, content_type = "application/problem+json"),
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_release(
    req: HttpRequest,
    payload: web::Payload,
    who: Authenticated,
    db: web::Data<Database>,
    gate: web::Data<Gate>,
) -> Result<HttpResponse, ApiError> {
    let body = json_body(&req, payload, "a release").await?;
    let request = ReleaseRequest::from_json(&body).map_err(ApiError::InvalidRelease)?;
    check_release_scope(
        &who.caller,
        &request.key.team_project,
        request.component.as_ref(),
        request.environment.as_ref(),
    )
    .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let by = who.caller.name.clone();
    let now = Utc::now();
    let registering = request.clone();
    let outcome = db
        .write(move |conn| queries::register(conn, &registering, &by, now))
        .await?;
    let key = request.key.clone();
    match outcome {
        Registered::Created(release) => {
            gate.wake();
            tracing::info!(release = %key, by = %who.caller.name, "release registered");
            let view = ReleaseView::new(*release, Vec::new(), now);
            Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, view.url.clone()))
                .json(view))
        }
        Registered::Known => {
            let (_, view) = read_view(&db, key.clone())
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no release {key}")))?;
            Ok(HttpResponse::Ok()
                .insert_header((header::LOCATION, view.url.clone()))
                .json(view))
        }
        Registered::Conflict => Err(ApiError::Conflict(format!(
            "release {key} is registered already with different content; poll it with the same body, or use another release_id"
        ))),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DetailQuery {
    /// Hold the answer until the state changes or this long passes (e.g.
    /// `30s`; at most `5m`). Without it the answer is immediate.
    #[param(
        example = "30s",
        pattern = r"^$|^[0-9]{1,6} ?(s|sec|secs|m|min|mins|ms)$"
    )]
    wait: Option<String>,
}

/// A release: its state, who was asked, each decision with its time and
/// comment, the time it took, and its audit. `?wait=30s` holds the request
/// until the state changes or the time passes (a long poll).
#[utoipa::path(
    get,
    path = "/api/v1/releases/{team_project}/{release_id}",
    tag = "releases",
    params(
        ("team_project" = String, Path, description = "The release's team project"),
        ("release_id" = String, Path, description = "The release's id"),
        DetailQuery,
    ),
    responses(
        (status = 200, description = "The release and its audit", body = ReleaseDetail),
        (status = 404, description = "No such release", body = Problem, content_type = "application/problem+json"),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_release(
    path: web::Path<(String, String)>,
    query: web::Query<DetailQuery>,
    db: web::Data<Database>,
    gate: web::Data<Gate>,
) -> Result<HttpResponse, ApiError> {
    let (team_project, release_id) = path.into_inner();
    let mut errors = ParamErrors::default();
    let wait = match query.into_inner().wait.filter(|w| !w.is_empty()) {
        None => Duration::ZERO,
        Some(text) => match humantime::parse_duration(&text) {
            Ok(wait) if wait <= MAX_WAIT => wait,
            _ => {
                errors.push(
                    "wait",
                    format!("must be a duration of at most 5m, such as 30s (got {text:?})"),
                );
                Duration::ZERO
            }
        },
    };
    errors.finish()?;
    let key = ReleaseKey {
        team_project,
        release_id,
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut first_state: Option<ReleaseState> = None;
    loop {
        let Some((seq, view)) = read_view(&db, key.clone()).await? else {
            return Err(ApiError::NotFound(format!("no release {key}")));
        };
        let state = view.state;
        let initial = *first_state.get_or_insert(state);
        let now = tokio::time::Instant::now();
        if state != initial || state.is_final() || now >= deadline {
            let audit = db.read(move |conn| queries::audit_of(conn, seq)).await?;
            return Ok(HttpResponse::Ok().json(ReleaseDetail {
                release: view,
                audit,
            }));
        }
        // Woken by a change in this server; otherwise a look every second
        // sees changes made by another server, and expiry.
        gate.wait_for_change((deadline - now).min(Duration::from_secs(1)))
            .await;
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// pending, approved, rejected, expired or failed.
    #[param(pattern = "^$|^(pending|approved|rejected|expired|failed)$")]
    state: Option<String>,
    #[param(max_length = 128)]
    team_project: Option<String>,
    /// Registered at or after.
    #[param(schema_with = query_schemas::instant)]
    since: Option<String>,
    /// 1–1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    #[param(schema_with = query_schemas::cursor)]
    cursor: Option<String>,
    #[param(schema_with = query_schemas::format)]
    format: Option<String>,
}

/// The CSV columns of the releases export.
const RELEASE_COLUMNS: [&str; 11] = [
    "team_project",
    "release_id",
    "release_name",
    "state",
    "requested_by",
    "required_approvals",
    "approvals",
    "rejections",
    "created_at",
    "decided_at",
    "waited_seconds",
];

fn release_record(view: &ReleaseView) -> Vec<String> {
    vec![
        view.team_project.clone(),
        view.release_id.clone(),
        view.release_name.clone(),
        view.state.to_string(),
        view.requested_by.clone().unwrap_or_default(),
        view.required_approvals
            .map(|n| n.to_string())
            .unwrap_or_default(),
        view.approvals.to_string(),
        view.rejections.to_string(),
        deploytime_core::time::format_rfc3339(view.created_at),
        view.decided_at
            .map(deploytime_core::time::format_rfc3339)
            .unwrap_or_default(),
        format!("{:.3}", view.waited_seconds),
    ]
}

/// Writes rows as a CSV document (a release's audit, bounded by its events).
fn csv_document(
    filename: &str,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> Result<HttpResponse, ApiError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let failed = |e: csv::Error| ApiError::Internal(format!("cannot write CSV: {e}"));
    writer.write_record(columns).map_err(failed)?;
    for row in rows {
        // A cell a spreadsheet would evaluate is neutralised, as in every export.
        writer
            .write_record(
                row.iter()
                    .map(|cell| deploytime_core::export::neutralise(cell).into_owned()),
            )
            .map_err(failed)?;
    }
    let body = writer
        .into_inner()
        .map_err(|e| ApiError::Internal(format!("cannot write CSV: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .body(body))
}

/// Releases, newest first, filtered; JSON pages, or with `format=csv` (or
/// `Accept: text/csv`) every matching release as CSV.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    tag = "releases",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of releases, or with `format=csv` all of them",
            content((Page<ReleaseView> = "application/json"), (String = "text/csv"))),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_releases(
    req: HttpRequest,
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let csv = wants_csv(&req, query.format.as_deref())?;
    let mut errors = ParamErrors::default();
    let now = Utc::now();
    let state = query.state.filter(|s| !s.is_empty()).and_then(|s| {
        let state = ReleaseState::parse(&s);
        if state.is_none() {
            errors.push(
                "state",
                format!("must be pending, approved, rejected, expired or failed (got {s:?})"),
            );
        }
        state
    });
    let team_project = query.team_project.filter(|p| !p.is_empty());
    if team_project.as_ref().is_some_and(|p| {
        p.chars().count() > deploytime_core::release::request::limits::TEAM_PROJECT_CHARS
    }) {
        errors.push("team_project", "must be at most 128 characters");
    }
    let filter = ReleaseFilter {
        state: state.map(|s| (s, to_micros(now))),
        team_project: team_project.clone(),
        since: errors.instant("since", query.since).map(to_micros),
    };
    let limit = errors.limit(query.limit);
    let cursor = errors.cursor(query.cursor);
    errors.finish()?;
    if csv {
        let fetch_filter = filter.clone();
        return Ok(stream_csv(
            db.get_ref().clone(),
            Export {
                filename: "releases.csv",
                header: &RELEASE_COLUMNS,
                fetch: Arc::new(move |conn, cursor, _, limit| {
                    queries::list_releases(conn, &fetch_filter, cursor, limit)
                }),
                page_end: None,
                record: Arc::new(move |(release, asks)| {
                    release_record(&ReleaseView::new(release, asks, now))
                }),
            },
        ));
    }
    let rows = db
        .read(move |conn| queries::list_releases(conn, &filter, cursor, limit + 1))
        .await?;
    Ok(
        HttpResponse::Ok().json(page(rows, limit, |(release, asks)| {
            ReleaseView::new(release, asks, now)
        })),
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    #[param(schema_with = query_schemas::format)]
    format: Option<String>,
}

/// A release's audit, oldest first: created, approvers fetched (what the
/// source said), each mail sent or failed, each decision with its time,
/// approver and client address, the outcome, expiry. JSON, or CSV.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{team_project}/{release_id}/audit",
    tag = "releases",
    params(
        ("team_project" = String, Path, description = "The release's team project"),
        ("release_id" = String, Path, description = "The release's id"),
        AuditQuery,
    ),
    responses(
        (status = 200, description = "The audit, oldest first",
            content((Vec<AuditEntry> = "application/json"), (String = "text/csv"))),
        (status = 404, description = "No such release", body = Problem, content_type = "application/problem+json"),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn release_audit(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<AuditQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let csv = wants_csv(&req, query.format.as_deref())?;
    let (team_project, release_id) = path.into_inner();
    let key = ReleaseKey {
        team_project,
        release_id,
    };
    let Some((seq, _)) = read_view(&db, key.clone()).await? else {
        return Err(ApiError::NotFound(format!("no release {key}")));
    };
    let audit = db.read(move |conn| queries::audit_of(conn, seq)).await?;
    if csv {
        return csv_document(
            "audit.csv",
            &AUDIT_COLUMNS,
            audit.iter().map(|e| Vec::from(e.csv_record())),
        );
    }
    Ok(HttpResponse::Ok().json(audit))
}

/// Why a decision was not recorded, as an API error.
pub(crate) fn refusal_error(refusal: &Refusal) -> ApiError {
    match refusal {
        Refusal::AlreadyAnswered | Refusal::Closed(_) => ApiError::Conflict(refusal.to_string()),
        Refusal::Expired => ApiError::Gone(refusal.to_string()),
        Refusal::SelfApproval => ApiError::Forbidden(refusal.to_string()),
    }
}

/// The client's address, as the audit records it: the connection's peer.
pub(crate) fn client_address(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|addr| addr.ip().to_string())
}

/// Records a decision made with an approver's link, for tools (the link's
/// page does the same for people). Needs no API token: the link's token is
/// the approver's credential.
#[utoipa::path(
    post,
    path = "/api/v1/approvals",
    tag = "releases",
    request_body(content = ApprovalBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded: the release as it now is", body = ReleaseView),
        (status = 400, description = "The body is not JSON, or the token was put in the URL", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The requester may not approve their own release", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No link has this token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The link was used already, or the release is decided", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "The release has expired", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break a rule, each in `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The database is unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn post_approval(
    req: HttpRequest,
    payload: web::Payload,
    db: web::Data<Database>,
    gate: web::Data<Gate>,
) -> Result<HttpResponse, ApiError> {
    if !req.query_string().is_empty() {
        return Err(ApiError::BadRequest(
            "the token goes in the JSON body, never in the URL".into(),
        ));
    }
    let body = json_body(&req, payload, "an approval").await?;
    let approval: ApprovalBody = serde_json::from_value(body).map_err(|e| {
        ApiError::InvalidRelease(ValidationErrors(vec![FieldError::new(
            "body",
            format!("{e}; send {{\"token\", \"decision\": \"approve\"|\"reject\", \"comment\"}}"),
        )]))
    })?;
    let comment = deploytime_core::release::comment(approval.comment.as_deref()).map_err(|e| {
        ApiError::InvalidRelease(ValidationErrors(vec![FieldError::new("comment", e)]))
    })?;
    if !LinkDigest::looks_like_token(&approval.token) {
        return Err(ApiError::NotFound("no approval link has this token".into()));
    }
    let decided = record_decision(
        &db,
        &gate,
        &approval.token,
        approval.decision,
        comment,
        client_address(&req),
    )
    .await?;
    match decided {
        Decided::Recorded { key, .. } => {
            let (_, view) = read_view(&db, key.clone())
                .await?
                .ok_or_else(|| ApiError::NotFound(format!("no release {key}")))?;
            Ok(HttpResponse::Ok().json(view))
        }
        Decided::UnknownToken => Err(ApiError::NotFound("no approval link has this token".into())),
        Decided::Refused { refusal, .. } => Err(refusal_error(&refusal)),
    }
}

/// Records a decision and tells the gate (waiting polls, metrics); shared by
/// the API and the approver's page.
pub(crate) async fn record_decision(
    db: &Database,
    gate: &Gate,
    token: &str,
    verdict: Verdict,
    comment: Option<String>,
    client_address: Option<String>,
) -> Result<Decided, ApiError> {
    let digest = LinkDigest::of(token);
    let now = Utc::now();
    let decided = db
        .write(move |conn| {
            queries::decide(
                conn,
                &Decision {
                    digest,
                    verdict,
                    comment: comment.as_deref(),
                    client_address: client_address.as_deref(),
                    now,
                },
            )
        })
        .await?;
    if let Decided::Recorded {
        key,
        approver,
        state,
    } = &decided
    {
        tracing::info!(release = %key, approver = %approver.email, %verdict, %state, "decision recorded");
        gate.changed();
        if state.is_final() {
            let key = key.clone();
            if let Some((_, view)) = read_view(db, key).await? {
                gate.metrics().decision_seconds.observe(view.waited_seconds);
            }
        }
    }
    Ok(decided)
}
