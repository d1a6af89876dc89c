//! `GET /api/v1/deployments` and `GET /api/v1/deployments/{id}`.

use actix_web::{HttpResponse, web};
use deploytime_core::{Component, Environment};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::queries::{self, DeploymentFilter};
use crate::db::{Database, DbError};
use crate::error::ApiError;
use crate::routes::views::{DeploymentDetail, DeploymentView, EventView};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    component: Option<String>,
    environment: Option<String>,
    limit: Option<i64>,
}

#[derive(Serialize)]
struct ListResponse {
    items: Vec<DeploymentView>,
}

/// Deployments, newest first.
#[tracing::instrument(skip(db))]
pub async fn list_deployments(
    query: web::Query<ListQuery>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut errors = Vec::new();
    if let Some(c) = query.component.as_deref().filter(|c| !c.is_empty()) {
        Component::parse(c)
            .map_err(|m| errors.push(deploytime_core::FieldError::new("component", m)))
            .ok();
    }
    if let Some(e) = query.environment.as_deref().filter(|e| !e.is_empty()) {
        Environment::parse(e)
            .map_err(|m| errors.push(deploytime_core::FieldError::new("environment", m)))
            .ok();
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        errors.push(deploytime_core::FieldError::new(
            "limit",
            format!("must be between 1 and {MAX_LIMIT} (got {limit})"),
        ));
    }
    if !errors.is_empty() {
        return Err(deploytime_core::ValidationErrors(errors).into());
    }
    let filter = DeploymentFilter {
        component: query.component.filter(|c| !c.is_empty()),
        environment: query.environment.filter(|e| !e.is_empty()),
        limit,
    };
    let rows = db
        .read(move |conn| queries::list_deployments(conn, &filter))
        .await?
        .map_err(DbError::from)?;
    Ok(HttpResponse::Ok().json(ListResponse {
        items: rows.iter().map(DeploymentView::from).collect(),
    }))
}

/// One deployment with its events.
#[tracing::instrument(skip(db))]
pub async fn get_deployment(
    id: web::Path<String>,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let raw = id.into_inner();
    let id = Uuid::parse_str(&raw).map_err(|_| {
        ApiError::BadRequest(format!("deployment ids are UUIDs; {raw:?} is not one"))
    })?;
    let key = id.to_string();
    let found = db
        .read(move |conn| {
            let Some(deployment) = queries::find_deployment(conn, &key)? else {
                return Ok(None);
            };
            let events = queries::events_of_deployment(conn, &key)?;
            Ok::<_, diesel::result::Error>(Some((deployment, events)))
        })
        .await?
        .map_err(DbError::from)?;
    let Some((deployment, events)) = found else {
        return Err(ApiError::NotFound(format!("no deployment with id {id}")));
    };
    Ok(HttpResponse::Ok().json(DeploymentDetail {
        deployment: DeploymentView::from(&deployment),
        events: events.iter().map(EventView::from).collect(),
    }))
}
