//! The one log line every request gets (method, route, status, latency, request
//! id, and for a 5xx its cause), and the HTTP metrics. The route is the
//! pattern, never the path with its query string, nor a header: tokens cannot
//! reach the log this way.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use super::error::ApiError;
use super::metrics::{Metrics, UNMATCHED_ROUTE};

pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A client's request id is kept when it is short and plain (so it cannot forge
/// log lines); otherwise the server makes one.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 128
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// One line per request and the HTTP metrics. Everything the handler logs is
/// inside the request's span, so it carries the request id too.
pub(crate) async fn log_request<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let span = tracing::info_span!("request", request_id = %id);
    // The request must not be cloned before routing (the router needs it
    // unshared), so an error that comes back instead of a response (the
    // request timeout) is logged from the error, and goes out without the id.
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let (status, route, cause) = match &result {
        Ok(response) => (
            response.status().as_u16(),
            response
                .request()
                .match_pattern()
                .unwrap_or_else(|| UNMATCHED_ROUTE.to_owned()),
            response.response().error().map(cause_of),
        ),
        Err(error) => (
            error.as_response_error().status_code().as_u16(),
            UNMATCHED_ROUTE.to_owned(),
            Some(cause_of(error)),
        ),
    };
    if let Some(metrics) = metrics {
        metrics.observe_request(&method, &route, status, elapsed);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    span.in_scope(|| match cause.filter(|_| status >= 500) {
        Some(error) => tracing::warn!(%method, %route, status, latency_ms, %error, "request"),
        None if status >= 500 => tracing::warn!(%method, %route, status, latency_ms, "request"),
        None => tracing::info!(%method, %route, status, latency_ms, "request"),
    });
    let mut response = result?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    Ok(response)
}

/// An error and its causes on one line: what a 5xx is logged with.
fn cause_of(error: &actix_web::Error) -> String {
    let Some(api) = error.as_error::<ApiError>() else {
        return error.to_string();
    };
    let mut text = api.to_string();
    let mut source = std::error::Error::source(api);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    use super::*;
    use crate::db::DbError;

    #[test]
    fn a_failure_is_logged_with_its_causes() {
        let error =
            actix_web::Error::from(ApiError::from(DbError::from(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                Box::new("UNIQUE constraint failed: events.id".to_owned()),
            ))));
        let logged = cause_of(&error);
        assert!(
            logged.contains("a database statement failed: UNIQUE constraint failed: events.id"),
            "{logged}"
        );
    }
}
