//! `GET /api/v1/commits/deployed`: the commit a component's latest successful
//! deployment deployed, so that a pipeline lists the commits its next
//! deployment ships from there (the lead time for changes).

use actix_web::{HttpResponse, web};
use deploytime_core::Environment;
use deploytime_core::access::Role;
use deploytime_core::access::check_scope;
use deploytime_core::time::from_micros;
use deploytime_core::wire::DeployedCommit;

use super::params::ParamErrors;
use super::query_schemas;
use crate::db::{Database, queries};
use crate::http::error::{AccessProblems, ApiError, QueryProblems};
use crate::http::guard::Authenticated;

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeployedQuery {
    /// Required; missing or empty, the answer is a 422 naming it.
    #[param(schema_with = query_schemas::component)]
    component: Option<String>,
    /// Default `production`.
    #[param(schema_with = query_schemas::environment)]
    environment: Option<String>,
}

/// The commit the latest successful deployment of a component in an
/// environment deployed (the first of the commits it carried).
#[utoipa::path(
    get,
    path = "/api/v1/commits/deployed",
    tag = "deployments",
    params(DeployedQuery),
    responses(
        (status = 200, description = "The commit deployed last", body = DeployedCommit),
        (status = 404, description = "The component never succeeded in this environment, or its latest successful deployment carried no commits", body = deploytime_core::wire::Problem, content_type = "application/problem+json"),
        QueryProblems,
        AccessProblems,
    ),
    security(("bearer" = []), ())
)]
#[tracing::instrument(skip(db, who))]
pub(crate) async fn deployed_commit(
    query: web::Query<DeployedQuery>,
    who: Authenticated,
    db: web::Data<Database>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let mut errors = ParamErrors::default();
    let given = query.component.as_deref().is_some_and(|c| !c.is_empty());
    let component = errors.component(query.component);
    if !given {
        errors.push("component", "is required");
    }
    let environment = match query.environment.filter(|e| !e.is_empty()) {
        None => Some(Environment::default_environment()),
        Some(name) => Environment::try_from(name)
            .map_err(|message| errors.push("environment", message))
            .ok(),
    };
    errors.finish()?;
    let (Some(component), Some(environment)) = (component, environment) else {
        return Err(ApiError::InvalidQuery(deploytime_core::ValidationErrors(
            vec![deploytime_core::FieldError::new("component", "is required")],
        )));
    };
    // An ingest token reads only what it may record.
    if !who.caller.role.grants(Role::Read) {
        check_scope(&who.caller, &component, &environment)?;
    }
    let (c, e) = (component.clone(), environment.clone());
    let latest = db
        .read(move |conn| queries::latest_shipped(conn, &c, &e))
        .await?;
    match latest {
        None => Err(ApiError::NotFound(format!(
            "{component} has no successful deployment in {environment}"
        ))),
        Some((id, _, None)) => Err(ApiError::NotFound(format!(
            "the latest successful deployment of {component} in {environment} ({id}) carried no commits"
        ))),
        Some((deployment_id, finished_at, Some(commit))) => {
            Ok(HttpResponse::Ok().json(DeployedCommit {
                component,
                environment,
                deployment_id,
                finished_at: from_micros(finished_at),
                commit,
            }))
        }
    }
}
