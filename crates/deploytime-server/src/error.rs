//! The API's errors, and the one shape they all take: an RFC 9457 problem body
//! (`application/problem+json`) with `type`, `title`, `status`, `detail`, and for
//! validation errors an `errors` list naming each bad field.
//!
//! Policy: client mistakes are 4xx and say what to change; a database that cannot
//! be reached is 503 with `Retry-After`, never a success and never a 500. A 500 is
//! kept for stored data the server cannot read, which no request can cause.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use deploytime_core::{FieldError, PairingError, ValidationErrors};
use serde::Serialize;

use crate::db::DbError;
use crate::db::store::StoreError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(ValidationErrors),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("request bodies are limited to {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{method} is not allowed here; allowed: {allowed}")]
    MethodNotAllowed { method: String, allowed: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// An RFC 9457 problem: every error the API answers has this shape.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The kind of problem, a URI relative to the API (`/problems/validation`).
    #[serde(rename = "type")]
    kind: String,
    title: String,
    /// The HTTP status, repeated.
    status: u16,
    /// What went wrong and what to change.
    detail: String,
    /// For invalid fields or parameters: each one with its message.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldError>>,
}

impl ApiError {
    /// The problem type (a URI relative to the API) and its title.
    fn kind(&self) -> (&'static str, &'static str) {
        match self {
            ApiError::MalformedBody(_) => ("/problems/malformed-body", "Malformed request body"),
            ApiError::BadRequest(_) => ("/problems/bad-request", "Bad request"),
            ApiError::Validation(_) => ("/problems/validation", "Invalid event"),
            ApiError::UnsupportedMediaType(_) => {
                ("/problems/unsupported-media-type", "Unsupported media type")
            }
            ApiError::PayloadTooLarge { .. } => {
                ("/problems/payload-too-large", "Payload too large")
            }
            ApiError::Unauthorized(_) => ("/problems/unauthorized", "Unauthorized"),
            ApiError::Forbidden(_) => ("/problems/forbidden", "Forbidden"),
            ApiError::NotFound(_) => ("/problems/not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => {
                ("/problems/method-not-allowed", "Method not allowed")
            }
            ApiError::Conflict(_) => ("/problems/conflict", "Conflict"),
            ApiError::Unprocessable(_) => ("/problems/unprocessable", "Unprocessable event"),
            ApiError::Unavailable(_) => ("/problems/unavailable", "Service unavailable"),
            ApiError::Internal(_) => ("/problems/internal", "Internal error"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedBody(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) | ApiError::Unprocessable(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let (kind, title) = self.kind();
        let errors = match self {
            ApiError::Validation(v) => Some(v.0.clone()),
            _ => None,
        };
        let detail = match self {
            ApiError::Validation(v) if v.0.len() == 1 => format!("{v}"),
            ApiError::Validation(v) => format!("{} fields are invalid: {v}", v.0.len()),
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(status);
        response.insert_header((header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON)));
        match self {
            ApiError::Unavailable(_) => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
            }
            ApiError::Unauthorized(_) => {
                response.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"deploytime\""),
                ));
            }
            ApiError::MethodNotAllowed { allowed, .. } => {
                if let Ok(value) = HeaderValue::from_str(allowed) {
                    response.insert_header((header::ALLOW, value));
                }
            }
            _ => {}
        }
        let body = Problem {
            kind: kind.to_owned(),
            title: title.to_owned(),
            status: status.as_u16(),
            detail,
            errors,
        };
        // Serialising strings and numbers cannot fail; the fallback keeps the
        // promise of a problem body regardless.
        response.body(serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{kind}","title":"{title}","status":{}}}"#,
                status.as_u16()
            )
        }))
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match &e {
            // Overload and abandoned calls are the limits working, not failures;
            // under load they would flood the log at error level.
            DbError::Busy(_) | DbError::Abandoned => {
                tracing::warn!(error = %e, "database call refused")
            }
            DbError::Unavailable(_) => tracing::error!(error = %e, "database failure"),
        }
        ApiError::Unavailable(e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Pairing(p @ PairingError::FinishBeforeStart { .. }) => {
                ApiError::Unprocessable(p.to_string())
            }
            StoreError::Pairing(p) => ApiError::Conflict(p.to_string()),
            StoreError::IdempotencyConflict { .. } => ApiError::Conflict(format!(
                "{e}; a retry must resend exactly the same event, a new event needs a new event_id"
            )),
            StoreError::Contended => ApiError::Unavailable(format!("{e}; retry the call")),
            StoreError::Denied(denied) => ApiError::from(denied),
            StoreError::Corrupt(c) => {
                tracing::error!(error = %c, "unreadable stored row");
                ApiError::Internal(c.to_string())
            }
            StoreError::Database(d) => ApiError::from(DbError::from(d)),
        }
    }
}
