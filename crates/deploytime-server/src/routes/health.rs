//! Liveness and readiness.

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::db::Database;
use crate::error::ApiError;

/// How long readiness waits for the database before saying it is not ready.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The database answers a trivial query in time: the server can do real work.
pub async fn readyz(db: web::Data<Database>) -> Result<HttpResponse, ApiError> {
    db.is_ready(READY_TIMEOUT).await?;
    Ok(HttpResponse::Ok().json(json!({"status": "ready", "database": db.url().backend_name()})))
}
