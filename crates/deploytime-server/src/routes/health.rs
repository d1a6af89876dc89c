//! Liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::auth::{Role, authorize};
use crate::db::Database;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::startup::Limits;

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers a trivial query in time (the database timeout, 2s by
/// default): the server can do real work.
pub async fn readyz(db: web::Data<Database>) -> Result<HttpResponse, ApiError> {
    db.is_ready(db.limits().checkout_timeout).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": db.url().backend_name()})))
}

/// Prometheus metrics, open unless the server runs with `--protect-metrics`.
pub async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    db: web::Data<Database>,
    limits: web::Data<Limits>,
) -> Result<HttpResponse, ApiError> {
    if limits.protect_metrics {
        authorize(&req, Role::Read).await?;
    }
    let text = metrics
        .render(db.pool().state(), db.limits().pool_size.max(1))
        .map_err(|e| ApiError::Internal(format!("cannot render the metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
