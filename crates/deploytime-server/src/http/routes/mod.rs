//! The route table, one module per resource. [`configure`] is used by the
//! production server and by the tests alike, so both serve the same application.

pub(super) mod body;
mod cloudevents;
pub(super) mod commits;
pub(super) mod csv_export;
pub(super) mod deployments;
pub(super) mod events;
pub(super) mod health;
pub(super) mod hooks;
pub(super) mod incidents;
pub(super) mod openapi;
pub(super) mod params;
mod query_schemas;
pub(crate) mod releases;
pub(super) mod stats;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpRequest, HttpResponse, web};

use super::HttpSettings;
use super::error::ApiError;
use super::guard::{
    require_deployment_access, require_ingest_or_read, require_ingest_to_post,
    require_ingest_to_write, require_read,
};

/// Every route of the API, with JSON-shaped errors for the cases actix answers
/// by itself (unknown path, wrong method, unparseable query or path).
pub(crate) fn configure(cfg: &mut web::ServiceConfig, settings: &HttpSettings) {
    cfg.app_data(web::Data::new(settings.clone()));
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _req| {
        ApiError::BadRequest(format!("invalid query string: {err}")).into()
    }))
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _req| ApiError::BadRequest(format!("invalid path: {err}")).into()),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(health::healthz))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(health::readyz))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(method_not_allowed("GET")),
    )
    .service(
        web::resource("/release")
            .wrap(from_fn(require_ingest_to_post))
            .route(web::post().to(releases::create_release))
            .default_service(method_not_allowed("POST")),
    )
    .service(
        web::scope("/api/v1")
            .service(
                web::resource("/openapi.json")
                    .route(web::get().to(openapi::openapi_json))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/events")
                    .wrap(from_fn(require_ingest_to_post))
                    .route(web::post().to(events::store_event))
                    .route(web::get().to(events::list_events))
                    .default_service(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/deployments")
                    .wrap(from_fn(require_read))
                    .route(web::get().to(deployments::list_deployments))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/deployments/{id}")
                    .wrap(from_fn(require_deployment_access))
                    .route(web::get().to(deployments::get_deployment))
                    .route(web::patch().to(deployments::correct_deployment))
                    .route(web::delete().to(deployments::delete_deployment))
                    .default_service(method_not_allowed("GET, PATCH, DELETE")),
            )
            .service(
                web::resource("/commits/deployed")
                    .wrap(from_fn(require_ingest_or_read))
                    .route(web::get().to(commits::deployed_commit))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/incidents")
                    .wrap(from_fn(require_ingest_to_write))
                    .route(web::post().to(incidents::open_incident))
                    .route(web::get().to(incidents::list_incidents))
                    .default_service(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/incidents/{id}")
                    .wrap(from_fn(require_ingest_to_write))
                    .route(web::get().to(incidents::get_incident))
                    .route(web::patch().to(incidents::change_incident))
                    .default_service(method_not_allowed("GET, PATCH")),
            )
            .service(
                web::resource("/stats")
                    .wrap(from_fn(require_read))
                    .route(web::get().to(stats::get_stats))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/releases")
                    .wrap(from_fn(require_ingest_to_post))
                    .route(web::post().to(releases::create_release))
                    .route(web::get().to(releases::list_releases))
                    .default_service(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/releases/{team_project}/{release_id}")
                    .wrap(from_fn(require_read))
                    .route(web::get().to(releases::get_release))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/releases/{team_project}/{release_id}/audit")
                    .wrap(from_fn(require_read))
                    .route(web::get().to(releases::release_audit))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/approvals")
                    .route(web::post().to(releases::post_approval))
                    .default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/cdevents")
                    .wrap(from_fn(require_ingest_to_post))
                    .route(web::post().to(hooks::cdevents))
                    .default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/hooks/github")
                    .route(web::post().to(hooks::github))
                    .default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/hooks/gitlab")
                    .route(web::post().to(hooks::gitlab))
                    .default_service(method_not_allowed("POST")),
            )
            .service(
                web::resource("/components")
                    .wrap(from_fn(require_read))
                    .route(web::get().to(stats::list_components))
                    .default_service(method_not_allowed("GET")),
            ),
    )
    .default_service(web::to(not_found));
}

fn method_not_allowed(allowed: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allowed: allowed.to_owned(),
        })
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no resource at {}", req.path())))
}

/// Answers 503 when the handler has not produced a response within the request
/// timeout. A database call the request was still waiting for is then skipped
/// (see `Database`), so a timed-out store call stores nothing. A streamed
/// body (CSV exports) is not limited once its first bytes are out.
pub(crate) async fn limit_time<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let Some(limit) = req
        .app_data::<web::Data<HttpSettings>>()
        .map(|s| s.request_timeout + releases::long_poll_allowance(&req))
    else {
        return next.call(req).await;
    };
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(response) => response,
        Err(_) => Err(ApiError::Unavailable(format!(
            "the request took longer than {}; retry later",
            humantime::format_duration(limit)
        ))
        .into()),
    }
}
