//! The request guard: middleware that admits a call by the role it needs (by
//! resource and method) through the access layer, and the [`Authenticated`]
//! extractor that gives a handler the caller it admitted.

use std::future::{Ready, ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use deploytime_core::access::{Caller, Credential, Role};

use super::error::ApiError;
use crate::access::{self, AccessPolicy};
use crate::db::Database;

/// The caller of an admitted request, and what it presented.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub caller: Caller,
    pub credential: Credential,
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Authenticated>()
                .cloned()
                .ok_or_else(|| ApiError::Internal("the access check did not run".into())),
        )
    }
}

/// Admits the request if its caller's role allows `needed`, and leaves the
/// caller in its extensions.
pub(crate) async fn authorize(req: &HttpRequest, needed: Role) -> Result<(), ApiError> {
    let missing = || ApiError::Internal("the access policy is not configured".into());
    let policy = req
        .app_data::<web::Data<AccessPolicy>>()
        .ok_or_else(missing)?;
    let db = req.app_data::<web::Data<Database>>().ok_or_else(missing)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.as_bytes());
    let (caller, credential) = access::authorize(policy, db, authorization, needed).await?;
    req.extensions_mut()
        .insert(Authenticated { caller, credential });
    Ok(())
}

async fn guard<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
    needed: Role,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match authorize(req.request(), needed).await {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Middleware of the read-only resources: `read` for every method (a method the
/// resource does not have is then answered 405).
pub(crate) async fn require_read<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    guard(req, next, Role::Read).await
}

/// Middleware of the resources a pipeline writes to: `ingest` to `POST` (an
/// event, a release), `read` for the rest (to list them).
pub(crate) async fn require_ingest_to_post<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let needed = if req.method() == Method::POST {
        Role::Ingest
    } else {
        Role::Read
    };
    guard(req, next, needed).await
}

/// Middleware of what a pipeline reads back for its own next call (the
/// commit its component last shipped): `ingest` or `read` admit it. The
/// handler checks an `ingest` token's scope.
pub(crate) async fn require_ingest_or_read<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let admitted = match authorize(req.request(), Role::Ingest).await {
        Ok(()) => Ok(()),
        Err(ingest_refused) => authorize(req.request(), Role::Read)
            .await
            .map_err(|_| ingest_refused),
    };
    match admitted {
        Ok(()) => Ok(next.call(req).await?.map_into_left_body()),
        Err(e) => Ok(req.error_response(e).map_into_right_body()),
    }
}

/// Middleware of `/api/v1/deployments/{id}`: `admin` to correct or delete,
/// `read` to look.
pub(crate) async fn require_deployment_access<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let needed = if req.method() == Method::DELETE || req.method() == Method::PATCH {
        Role::Admin
    } else {
        Role::Read
    };
    guard(req, next, needed).await
}
