//! Liveness and readiness.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use deploytime_core::access::Role;
use deploytime_core::wire::Problem;

use crate::db::{Database, REPLICA_CHECK_WAIT, ReplicaHealth};
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
    /// `ready`, or `degraded` when the read replica is down or further behind
    /// than `--max-replica-lag` (reports are then read on the primary).
    #[schema(example = "ready")]
    status: &'static str,
    /// sqlite or mysql.
    database: &'static str,
    /// The read replica, when the server has one (`--read-database-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    read_replica: Option<ReplicaReadiness>,
}

/// The read replica as `/readyz` saw it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReplicaReadiness {
    /// The replica answered.
    up: bool,
    /// Seconds behind the primary; null when unknown (down, or its user may
    /// not read the replication status). While replication is stopped, the
    /// time since it was first seen stopped: a lower bound.
    lag_seconds: Option<f64>,
    /// `--max-replica-lag`, in seconds.
    max_lag_seconds: f64,
    /// Whether reports are read on the replica now, rather than the primary.
    serving_reports: bool,
    /// What is wrong, when something is.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

impl From<ReplicaHealth> for ReplicaReadiness {
    fn from(health: ReplicaHealth) -> Self {
        ReplicaReadiness {
            up: health.up,
            lag_seconds: health.lag_seconds,
            max_lag_seconds: health.max_lag_seconds,
            serving_reports: health.serving_reports,
            problem: health.problem,
        }
    }
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
/// default): the server can do real work. With a read replica, the answer
/// says how it is; a replica that is down or behind makes the server
/// `degraded`, still ready (reports are then read on the primary).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The database answers (`degraded`: the read replica does not serve reports)", body = Readiness),
        (status = 503, description = "The database does not answer in time", body = Problem, content_type = "application/problem+json"),
    )
)]
pub(crate) async fn readyz(
    db: web::Data<Database>,
    metrics: web::Data<Metrics>,
) -> Result<HttpResponse, ApiError> {
    let timeout = db.limits().checkout_timeout;
    let (primary, replica) =
        tokio::join!(db.is_ready(timeout), db.check_replica(REPLICA_CHECK_WAIT));
    primary?;
    if let Some(health) = &replica {
        metrics.set_replica(health);
    }
    let degraded = replica.as_ref().is_some_and(|health| health.degraded);
    Ok(HttpResponse::Ok().json(Readiness {
        status: if degraded { "degraded" } else { "ready" },
        database: db.url().backend_name(),
        read_replica: replica.map(ReplicaReadiness::from),
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
    if let Some(health) = db.check_replica(REPLICA_CHECK_WAIT).await {
        metrics.set_replica(&health);
    }
    let text = metrics
        .render(db.pool_state(), db.limits().pool_size.max(1))
        .map_err(|e| ApiError::Internal(format!("cannot render the metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type(prometheus::TEXT_FORMAT)
        .body(text))
}
