//! Liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use deploytime_core::access::Role;
use deploytime_core::wire::Problem;

use crate::db::Database;
use crate::http::HttpSettings;
use crate::http::error::{AccessProblems, ApiError};
use crate::http::guard::authorize;
use crate::http::metrics::Metrics;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Readiness {
    /// Always `ready`.
    status: &'static str,
    /// sqlite or mysql.
    database: &'static str,
}

/// The process is up and serving HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Serving", body = Health))
)]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// The database answers a trivial query in time (the database timeout, 2s by
/// default): the server can do real work.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers", body = Readiness),
        (status = 503, description = "The database does not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(db: web::Data<Database>) -> Result<HttpResponse, ApiError> {
    db.is_ready(db.limits().checkout_timeout).await?;
    Ok(HttpResponse::Ok().json(Readiness {
        status: "ready",
        database: db.url().backend_name(),
    }))
}

/// Prometheus metrics (text exposition format), open unless the server runs
/// with `--protect-metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"),
        AccessProblems,
    )
)]
pub(crate) async fn metrics(
    req: HttpRequest,
    metrics: web::Data<Metrics>,
    db: web::Data<Database>,
    settings: web::Data<HttpSettings>,
) -> Result<HttpResponse, ApiError> {
    if settings.protect_metrics {
        authorize(&req, Role::Read).await?;
    }
    // The gate's figures and the open incidents come from the database; when
    // it cannot answer, the rest of the metrics are still served (those keep
    // their last values).
    let now = chrono::Utc::now();
    match db
        .read(move |conn| {
            Ok((
                crate::db::queries::count_by_state(conn, now)?,
                crate::db::queries::queued(conn)?,
                crate::db::queries::count_open_incidents(conn)?,
            ))
        })
        .await
    {
        Ok((by_state, queued, incidents_open)) => {
            metrics.set_gate_state(&by_state, queued);
            metrics.set_incidents_open(incidents_open);
        }
        Err(e) => tracing::debug!(error = %e, "the release gate's figures are not current"),
    }
    let text = metrics
        .render(db.pool_state(), db.limits().pool_size.max(1))
        .map_err(|e| ApiError::Internal(format!("cannot render the metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
