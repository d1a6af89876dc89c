//! The OpenAPI description of the API, served at `GET /api/v1/openapi.json`.
//! It is derived from the handlers and the types they return (`#[utoipa::path]`,
//! `ToSchema`, `IntoParams`), so it changes with them; nothing is written twice.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{commits, deployments, events, health, hooks, incidents, releases, stats};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "deploytime",
        description = "Stores deploy start/finish events, pairs them into deployments and reports how long they take. \
                       Calls need `Authorization: Bearer TOKEN` (roles ingest, read, admin) unless the server runs \
                       in anonymous mode (loopback address, no token created)."
    ),
    paths(
        events::store_event,
        events::list_events,
        deployments::list_deployments,
        deployments::get_deployment,
        deployments::correct_deployment,
        deployments::delete_deployment,
        stats::get_stats,
        stats::list_components,
        commits::deployed_commit,
        incidents::open_incident,
        incidents::list_incidents,
        incidents::get_incident,
        incidents::change_incident,
        releases::create_release,
        releases::list_releases,
        releases::get_release,
        releases::release_audit,
        releases::post_approval,
        hooks::github,
        hooks::gitlab,
        hooks::cdevents,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json,
    ),
    modifiers(&BearerAuth)
)]
pub(crate) struct ApiDoc;

static SPEC: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|e| format!(r#"{{"error":"cannot serialise the description: {e}"}}"#))
});

/// This description.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI description", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(SPEC.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described() {
        let spec = ApiDoc::openapi();
        let paths: Vec<&str> = spec.paths.paths.keys().map(String::as_str).collect();
        for path in [
            "/api/v1/events",
            "/api/v1/deployments",
            "/api/v1/deployments/{id}",
            "/api/v1/stats",
            "/api/v1/components",
            "/api/v1/incidents",
            "/api/v1/incidents/{id}",
            "/api/v1/openapi.json",
            "/api/v1/hooks/github",
            "/api/v1/hooks/gitlab",
            "/api/v1/cdevents",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            assert!(paths.contains(&path), "{path} is not described: {paths:?}");
        }
    }

    /// The description is as strict as the server: what a generated client
    /// believes valid, the server accepts.
    #[test]
    fn parameters_and_bodies_are_described_as_strictly_as_they_are_checked() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let parameter = |path: &str, name: &str| {
            spec["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{path} has no parameter {name}"))["schema"]
                .clone()
        };
        for listing in ["/api/v1/deployments", "/api/v1/events", "/api/v1/incidents"] {
            let limit = parameter(listing, "limit");
            assert_eq!(limit["minimum"], 1, "{listing}: {limit}");
            assert_eq!(limit["maximum"], 1000, "{listing}: {limit}");
            assert!(parameter(listing, "cursor")["pattern"].is_string());
        }
        assert_eq!(
            parameter("/api/v1/stats", "status")["enum"],
            serde_json::json!(["success", ""])
        );
        assert_eq!(
            parameter("/api/v1/deployments", "state")["enum"],
            serde_json::json!([
                "running",
                "succeeded",
                "failed",
                "cancelled",
                "abandoned",
                ""
            ])
        );
        let body = &spec["paths"]["/api/v1/events"]["post"]["requestBody"]["content"];
        for media in ["application/json", "application/x-www-form-urlencoded"] {
            let shapes = body[media]["schema"]["oneOf"].as_array().unwrap();
            let (start, finish) = (&shapes[0], &shapes[1]);
            assert_eq!(
                start["properties"]["phase"]["enum"],
                serde_json::json!(["start"])
            );
            assert_eq!(
                start["properties"]["status"]["enum"],
                serde_json::json!([""]),
                "a start has no status (an empty one counts as absent)"
            );
            assert_eq!(
                finish["properties"]["phase"]["enum"],
                serde_json::json!(["finish"])
            );
            assert!(
                finish["required"]
                    .as_array()
                    .unwrap()
                    .contains(&"status".into())
            );
            for shape in shapes {
                assert_eq!(shape["additionalProperties"], false, "{media}");
            }
        }
    }

    #[test]
    fn the_store_body_lists_exactly_the_fields_the_domain_accepts() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(deploytime_core::wire::EventBody::schema()).unwrap();
        let mut described: Vec<String> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        described.sort();
        let mut accepted: Vec<String> = deploytime_core::event::FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        accepted.sort();
        assert_eq!(described, accepted);
    }

    /// The incidents' bodies refuse what the server refuses: unknown fields,
    /// a `resolved` other than `true`, an empty change.
    #[test]
    fn incident_bodies_are_described_as_strictly_as_they_are_read() {
        let spec = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let body = |path: &str, method: &str| {
            spec["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
                .clone()
        };
        let open = body("/api/v1/incidents", "post");
        assert_eq!(open["additionalProperties"], false, "{open}");
        assert_eq!(open["required"], serde_json::json!(["component"]), "{open}");
        let change = body("/api/v1/incidents/{id}", "patch");
        assert_eq!(change["additionalProperties"], false, "{change}");
        assert_eq!(change["minProperties"], 1, "{change}");
        assert_eq!(
            change["properties"]["resolved"]["enum"],
            serde_json::json!([true, null]),
            "{change}"
        );
    }
}
