//! The HTTP routes, one module per resource. [`config`] is used by the production
//! server and by the tests alike, so both serve the same application.

pub mod csv_export;
pub mod deployments;
pub mod events;
pub mod health;
pub mod params;
pub mod stats;
pub mod views;

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// Every route of the API, with JSON-shaped errors for the cases actix answers
/// by itself (unknown path, wrong method, unparseable query or path).
pub fn config(cfg: &mut web::ServiceConfig) {
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
        web::scope("/api/v1")
            .service(
                web::resource("/events")
                    .route(web::post().to(events::store_event))
                    .route(web::get().to(events::list_events))
                    .default_service(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/deployments")
                    .route(web::get().to(deployments::list_deployments))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/deployments/{id}")
                    .route(web::get().to(deployments::get_deployment))
                    .route(web::delete().to(deployments::delete_deployment))
                    .default_service(method_not_allowed("GET, DELETE")),
            )
            .service(
                web::resource("/stats")
                    .route(web::get().to(stats::get_stats))
                    .default_service(method_not_allowed("GET")),
            )
            .service(
                web::resource("/components")
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
