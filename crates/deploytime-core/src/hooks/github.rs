//! GitHub's `deployment` and `deployment_status` webhooks.
//!
//! `deployment` (created) and the statuses `queued`, `pending` and
//! `in_progress` open the deployment; `success` closes it as a success,
//! `failure` and `error` as failed with that code. Whichever start arrives
//! first is the one kept (normally `deployment`, dated by the deployment's
//! `created_at`); later ones are answered without being stored. Every event is
//! dated by GitHub's own timestamp, never by its delivery.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{HookError, Mapped, StoreBody, derived_id, id_text, rfc3339, text};

/// The namespace of GitHub's derived ids.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x5c0f_4b1e_8a61_4d3a_9c1e_6b7f_0d2e_91a1);

/// The headers a GitHub delivery is read with.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// `X-GitHub-Event`: `deployment`, `deployment_status`, `ping`, ...
    pub event: &'a str,
    /// `X-GitHub-Delivery`: the same on a redelivery.
    pub id: &'a str,
}

/// What GitHub's delivery `payload` records, if anything.
pub fn map(delivery: Delivery<'_>, payload: &Value) -> Result<Mapped, HookError> {
    match delivery.event {
        "deployment" => map_deployment(delivery, payload),
        "deployment_status" => map_status(delivery, payload),
        other => Ok(Mapped::Ignored(format!(
            "GitHub {other:?} events are not recorded; select the Deployments and Deployment statuses events"
        ))),
    }
}

/// The event id of a delivery: the same for a redelivery of it.
pub fn event_id(delivery_id: &str) -> Uuid {
    derived_id(&NAMESPACE, &["delivery", delivery_id])
}

fn map_deployment(delivery: Delivery<'_>, payload: &Value) -> Result<Mapped, HookError> {
    let action = text(payload, "/action").unwrap_or("created");
    if action != "created" {
        return Ok(Mapped::Ignored(format!(
            "deployment {action:?} events are not recorded; only \"created\" opens a deployment"
        )));
    }
    let deployment = Deployment::read(payload)?;
    let mut body = deployment.body(delivery, None, "deployment");
    body.set("timestamp", &rfc3339(deployment.created_at));
    Ok(Mapped::Events(vec![body.build()]))
}

fn map_status(delivery: Delivery<'_>, payload: &Value) -> Result<Mapped, HookError> {
    let state = text(payload, "/deployment_status/state")
        .ok_or_else(|| HookError::missing("deployment_status.state"))?;
    let status = match state {
        "queued" | "pending" | "in_progress" => None,
        "success" => Some("success"),
        "failure" => Some("failure"),
        "error" => Some("error"),
        "inactive" => {
            return Ok(Mapped::Ignored(
                "an inactive deployment status only says a newer deployment replaced this one"
                    .into(),
            ));
        }
        other => {
            return Ok(Mapped::Ignored(format!(
                "the deployment status {other:?} is neither a start nor a finish"
            )));
        }
    };
    let deployment = Deployment::read(payload)?;
    let at = timestamp(
        payload,
        "/deployment_status/created_at",
        "deployment_status.created_at",
    )?;
    let mut body = deployment.body(delivery, status, state);
    body.set("timestamp", &rfc3339(at));
    body.attribute("github.status_url", text(payload, "/deployment_status/url"));
    body.attribute(
        "github.log_url",
        text(payload, "/deployment_status/log_url")
            .or_else(|| text(payload, "/deployment_status/target_url")),
    );
    Ok(Mapped::Events(vec![body.build()]))
}

/// What every event of one GitHub deployment shares.
struct Deployment<'a> {
    id: Uuid,
    component: String,
    environment: Option<&'a str>,
    sha: Option<&'a str>,
    git_ref: Option<&'a str>,
    task: Option<&'a str>,
    creator: Option<&'a str>,
    commits: Option<&'a Value>,
    url: Option<&'a str>,
    repository: &'a str,
    created_at: DateTime<Utc>,
}

impl<'a> Deployment<'a> {
    fn read(payload: &'a Value) -> Result<Self, HookError> {
        let github_id = id_text(payload, "/deployment/id")
            .ok_or_else(|| HookError::missing("deployment.id"))?;
        let repository = text(payload, "/repository/full_name")
            .ok_or_else(|| HookError::missing("repository.full_name"))?;
        let repository_id = id_text(payload, "/repository/id").unwrap_or_else(|| repository.into());
        // GitHub Enterprise Server and github.com number their deployments
        // apart; the API host keeps their ids apart too.
        let host = text(payload, "/deployment/url")
            .and_then(|u| u.split('/').nth(2))
            .unwrap_or("api.github.com");
        // A deployment created with `"payload": {"component": "..."}` names
        // its component; otherwise the repository is the component.
        let component = text(payload, "/deployment/payload/component")
            .unwrap_or(repository)
            .to_owned();
        Ok(Deployment {
            id: derived_id(
                &NAMESPACE,
                &["deployment", host, &repository_id, &github_id],
            ),
            component,
            environment: text(payload, "/deployment/environment"),
            sha: text(payload, "/deployment/sha"),
            git_ref: text(payload, "/deployment/ref"),
            task: text(payload, "/deployment/task"),
            creator: text(payload, "/deployment/creator/login"),
            commits: payload
                .pointer("/deployment/payload/commits")
                .filter(|c| c.is_array()),
            url: text(payload, "/deployment/url"),
            repository,
            created_at: timestamp(payload, "/deployment/created_at", "deployment.created_at")?,
        })
    }

    fn body(&self, delivery: Delivery<'_>, status: Option<&str>, state: &str) -> StoreBody {
        let mut body = match status {
            None => StoreBody::start(&self.component),
            Some(status) => StoreBody::finish(&self.component, status),
        };
        body.set("deployment_id", &self.id.to_string());
        body.set("event_id", &event_id(delivery.id).to_string());
        body.set_text("environment", self.environment);
        // The commit deployed; the ref it was asked for is kept beside it.
        body.set_text("version", self.sha.or(self.git_ref));
        body.set_text("owner", self.creator);
        // GitHub gives the deployed sha without its commit time, and no time
        // is invented: the commits shipped are recorded only when whoever
        // created the deployment listed them in its payload.
        if let Some(commits) = self.commits {
            body.set_value("commits", commits.clone());
        }
        body.attribute("provider", Some("github"));
        body.attribute("github.repository", Some(self.repository));
        body.attribute("github.deployment_url", self.url);
        body.attribute("github.ref", self.git_ref);
        body.attribute("github.task", self.task);
        body.attribute("github.state", Some(state));
        body.attribute("github.delivery", Some(delivery.id));
        body
    }
}

fn timestamp(payload: &Value, pointer: &str, name: &str) -> Result<DateTime<Utc>, HookError> {
    let raw = text(payload, pointer).ok_or_else(|| HookError::missing(name))?;
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| HookError(format!("{name} is not an RFC 3339 date-time (got {raw:?})")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment_payload() -> Value {
        json!({
            "action": "created",
            "deployment": {
                "url": "https://api.github.com/repos/acme/shop/deployments/42",
                "id": 42,
                "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                "ref": "main",
                "task": "deploy",
                "payload": {},
                "environment": "production",
                "creator": {"login": "octocat"},
                "created_at": "2026-01-02T03:04:05Z"
            },
            "repository": {"id": 7, "full_name": "acme/shop"}
        })
    }

    fn status_payload(state: &str, at: &str) -> Value {
        let mut payload = deployment_payload();
        payload["deployment_status"] = json!({"state": state, "created_at": at});
        payload
    }

    fn one(mapped: Mapped) -> Value {
        match mapped {
            Mapped::Events(mut events) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn delivery<'a>(event: &'a str, id: &'a str) -> Delivery<'a> {
        Delivery { event, id }
    }

    #[test]
    fn a_deployment_opens_and_a_success_closes_the_same_deployment() {
        let start = one(map(delivery("deployment", "d-1"), &deployment_payload()).unwrap());
        assert_eq!(start["phase"], "start");
        assert_eq!(start["component"], "acme/shop");
        assert_eq!(start["environment"], "production");
        assert_eq!(start["version"], "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
        assert_eq!(start["owner"], "octocat");
        assert_eq!(start["timestamp"], "2026-01-02T03:04:05Z");
        assert_eq!(start["attributes"]["github.ref"], "main");
        assert!(start.get("status").is_none());

        let finish = one(map(
            delivery("deployment_status", "d-2"),
            &status_payload("success", "2026-01-02T03:09:05Z"),
        )
        .unwrap());
        assert_eq!(finish["phase"], "finish");
        assert_eq!(finish["status"], "success");
        assert_eq!(finish["timestamp"], "2026-01-02T03:09:05Z");
        assert_eq!(finish["deployment_id"], start["deployment_id"]);
        assert_ne!(finish["event_id"], start["event_id"]);
    }

    #[test]
    fn states_map_to_starts_finishes_or_nothing() {
        for state in ["queued", "pending", "in_progress"] {
            let event = one(map(
                delivery("deployment_status", "x"),
                &status_payload(state, "2026-01-02T03:05:00Z"),
            )
            .unwrap());
            assert_eq!(event["phase"], "start", "{state}");
        }
        for state in ["failure", "error"] {
            let event = one(map(
                delivery("deployment_status", "x"),
                &status_payload(state, "2026-01-02T03:05:00Z"),
            )
            .unwrap());
            assert_eq!(event["status"], state);
        }
        for state in ["inactive", "waiting"] {
            assert!(matches!(
                map(
                    delivery("deployment_status", "x"),
                    &status_payload(state, "2026-01-02T03:05:00Z")
                ),
                Ok(Mapped::Ignored(_))
            ));
        }
        assert!(matches!(
            map(delivery("push", "x"), &json!({})),
            Ok(Mapped::Ignored(_))
        ));
    }

    #[test]
    fn a_redelivery_is_the_same_event() {
        let a = map(delivery("deployment", "same"), &deployment_payload()).unwrap();
        let b = map(delivery("deployment", "same"), &deployment_payload()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn the_deployment_payload_may_name_the_component() {
        let mut payload = deployment_payload();
        payload["deployment"]["payload"] = json!({"component": "shop/worker"});
        let event = one(map(delivery("deployment", "x"), &payload).unwrap());
        assert_eq!(event["component"], "shop/worker");
    }

    #[test]
    fn commits_are_taken_only_with_their_times_from_the_deployment_payload() {
        let event = one(map(delivery("deployment", "x"), &deployment_payload()).unwrap());
        assert!(
            event.get("commits").is_none(),
            "a bare sha has no commit time"
        );
        let mut payload = deployment_payload();
        let commits = json!([{"sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
                              "committed_at": "2026-01-02T02:00:00Z"}]);
        payload["deployment"]["payload"] = json!({"commits": commits});
        let event = one(map(delivery("deployment", "x"), &payload).unwrap());
        assert_eq!(event["commits"], commits);
    }

    #[test]
    fn what_a_mapping_needs_is_named_when_missing() {
        let mut payload = deployment_payload();
        payload["deployment"]
            .as_object_mut()
            .unwrap()
            .remove("created_at");
        let error = map(delivery("deployment", "x"), &payload).unwrap_err();
        assert!(error.0.contains("deployment.created_at"), "{error}");
        let error = map(delivery("deployment_status", "x"), &deployment_payload()).unwrap_err();
        assert!(error.0.contains("deployment_status.state"), "{error}");
    }
}
