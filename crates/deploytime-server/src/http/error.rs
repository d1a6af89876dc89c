//! The API's errors and the one shape they all take, an RFC 9457 problem body.
//! Client mistakes are 4xx and say what to change; a database failure is 503, 404
//! or 500 by its class (`DbError::class`, decided once). Causes are logged once,
//! by the request log, never in these conversions (docs/architecture.md, "Errors").

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use deploytime_core::access::Denied;
use deploytime_core::wire::{Problem, ProblemType};
use deploytime_core::{PairingError, ValidationErrors};

use crate::access::AccessError;
use crate::db::{DbError, DbErrorClass, StoreError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    MalformedBody(String),
    #[error("{0}")]
    BadRequest(String),
    /// The store call's fields break a rule.
    #[error("{0}")]
    Validation(ValidationErrors),
    /// Query parameters break a rule.
    #[error("{0}")]
    InvalidQuery(ValidationErrors),
    /// A correction breaks a rule, or cannot apply to this deployment.
    #[error("{0}")]
    InvalidCorrection(ValidationErrors),
    /// A release request or an approval breaks a rule.
    #[error("{0}")]
    InvalidRelease(ValidationErrors),
    /// An incident, or a change of one, breaks a rule.
    #[error("{0}")]
    InvalidIncident(ValidationErrors),
    /// What was asked for existed but is no more (an expired link).
    #[error("{0}")]
    Gone(String),
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
    /// A database call that did not complete; its class decides the status.
    #[error("{}", database_detail(.0))]
    Database(#[source] DbError),
    #[error("{0}")]
    Internal(String),
}

/// What a client is told of a database failure: enough to act on, nothing of
/// the server's internals (the cause is in the server's log).
fn database_detail(error: &DbError) -> String {
    match error.class() {
        DbErrorClass::Unavailable if error.is_refusal() => format!("{error}; retry later"),
        DbErrorClass::Unavailable => "the database is unavailable; retry later".to_owned(),
        DbErrorClass::NotFound => "not found".to_owned(),
        DbErrorClass::Failed => {
            "the server could not complete the request; its log has the cause (see X-Request-Id)"
                .to_owned()
        }
    }
}

impl ApiError {
    /// The problem type of this error.
    fn kind(&self) -> ProblemType {
        match self {
            ApiError::MalformedBody(_) => ProblemType::MalformedBody,
            ApiError::BadRequest(_) => ProblemType::BadRequest,
            ApiError::Validation(_) => ProblemType::Validation,
            ApiError::InvalidQuery(_) => ProblemType::InvalidQuery,
            ApiError::InvalidCorrection(_) => ProblemType::InvalidCorrection,
            ApiError::InvalidRelease(_) => ProblemType::InvalidRelease,
            ApiError::InvalidIncident(_) => ProblemType::InvalidIncident,
            ApiError::Gone(_) => ProblemType::Gone,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::PayloadTooLarge { .. } => ProblemType::PayloadTooLarge,
            ApiError::Unauthorized(_) => ProblemType::Unauthorized,
            ApiError::Forbidden(_) => ProblemType::Forbidden,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::MethodNotAllowed { .. } => ProblemType::MethodNotAllowed,
            ApiError::Conflict(_) => ProblemType::Conflict,
            ApiError::Unprocessable(_) => ProblemType::Unprocessable,
            ApiError::Unavailable(_) => ProblemType::Unavailable,
            ApiError::Database(e) => match e.class() {
                DbErrorClass::Unavailable => ProblemType::Unavailable,
                DbErrorClass::NotFound => ProblemType::NotFound,
                DbErrorClass::Failed => ProblemType::Internal,
            },
            ApiError::Internal(_) => ProblemType::Internal,
        }
    }

    /// The problem body this error is answered with.
    pub fn problem(&self) -> Problem {
        let errors = match self {
            ApiError::Validation(v)
            | ApiError::InvalidQuery(v)
            | ApiError::InvalidCorrection(v)
            | ApiError::InvalidRelease(v)
            | ApiError::InvalidIncident(v) => Some(v.0.clone()),
            _ => None,
        };
        let detail = match self {
            ApiError::Validation(v)
            | ApiError::InvalidQuery(v)
            | ApiError::InvalidCorrection(v)
            | ApiError::InvalidRelease(v)
            | ApiError::InvalidIncident(v)
                if v.0.len() == 1 =>
            {
                format!("{v}")
            }
            ApiError::Validation(v)
            | ApiError::InvalidCorrection(v)
            | ApiError::InvalidRelease(v)
            | ApiError::InvalidIncident(v) => {
                format!("{} fields are invalid: {v}", v.0.len())
            }
            ApiError::InvalidQuery(v) => format!("{} parameters are invalid: {v}", v.0.len()),
            other => other.to_string(),
        };
        let kind = self.kind();
        Problem {
            title: kind.title().to_owned(),
            kind,
            status: self.status_code().as_u16(),
            detail,
            errors,
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedBody(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Validation(_)
            | ApiError::InvalidQuery(_)
            | ApiError::InvalidCorrection(_)
            | ApiError::InvalidRelease(_)
            | ApiError::InvalidIncident(_)
            | ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Database(e) => match e.class() {
                DbErrorClass::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                DbErrorClass::NotFound => StatusCode::NOT_FOUND,
                DbErrorClass::Failed => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static(Problem::MEDIA_TYPE),
        ));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        match self {
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
        let problem = self.problem();
        // Serialising strings and numbers cannot fail; the fallback keeps the
        // promise of a problem body regardless.
        response.body(serde_json::to_string(&problem).unwrap_or_else(|_| {
            format!(
                r#"{{"type":"{}","title":"{}","status":{}}}"#,
                problem.kind.uri(),
                problem.title,
                problem.status
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
        ApiError::Database(e)
    }
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Unauthenticated(detail) => ApiError::Unauthorized(detail),
            Denied::Forbidden(detail) => ApiError::Forbidden(detail),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Denied(denied) => denied.into(),
            AccessError::Database(e) => e.into(),
        }
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
            StoreError::Denied(denied) => denied.into(),
            StoreError::Database(d) => d.into(),
        }
    }
}

/// 401, 403 and 503: what any call that needs a token may answer (for the
/// OpenAPI description).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its description is used, never a value
pub(crate) enum AccessProblems {
    /// No token, or one that is unknown or revoked (`WWW-Authenticate: Bearer`).
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthorized(Problem),
    /// The token's role or scope does not allow this call.
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
    /// The database cannot be reached, the server is saturated, or the request
    /// took too long; retry after `Retry-After` seconds.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// 400 and 422: a query string the server cannot read, or values that break a
/// rule (for the OpenAPI description).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // only its description is used, never a value
pub(crate) enum QueryProblems {
    /// An unparseable query string or path, or an unknown parameter.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// Parameters that break a rule, each listed in `errors`.
    #[response(status = 422, content_type = "application/problem+json")]
    Invalid(Problem),
}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::result::{DatabaseErrorKind, Error as DieselError};

    #[test]
    fn a_database_failure_is_answered_by_its_class() {
        let unavailable = ApiError::from(DbError::from(DieselError::DatabaseError(
            DatabaseErrorKind::ClosedConnection,
            Box::new("gone away".to_owned()),
        )));
        assert_eq!(unavailable.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.problem().kind, ProblemType::Unavailable);
        let fault = ApiError::from(DbError::from(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new("Duplicate entry 'x' for key 'secret_index'".to_owned()),
        )));
        assert_eq!(fault.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        let detail = fault.problem().detail;
        assert!(
            !detail.contains("Duplicate"),
            "internals stay in the log: {detail}"
        );
        let missing = ApiError::from(DbError::from(DieselError::NotFound));
        assert_eq!(missing.status_code(), StatusCode::NOT_FOUND);
        let busy = ApiError::from(DbError::Busy(128));
        assert_eq!(busy.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.problem().detail.contains("128 database calls"));
    }
}
