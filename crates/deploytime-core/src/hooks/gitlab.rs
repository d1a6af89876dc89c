//! GitLab's deployment events (`X-Gitlab-Event: Deployment Hook`).
//!
//! `running` opens the deployment; `success`, `failed` and `canceled` close
//! it. Each event is dated by GitLab's `status_changed_at` (written
//! `2021-04-28 21:50:00 +0200`, not RFC 3339), never by its delivery.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{HookError, Mapped, StoreBody, derived_id, id_text, rfc3339, text};

/// The namespace of GitLab's derived ids.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x2a7d_91c4_0f3e_4b8a_a5d2_7c61_e9b0_3f44);

/// The event id of a delivery: from GitLab's `Idempotency-Key` (kept across
/// its retries) or `X-Gitlab-Event-UUID`, else from the body itself, so that
/// a delivery resent unchanged is a replay.
pub fn event_id(delivery_id: Option<&str>, body: &[u8]) -> Uuid {
    match delivery_id.map(str::trim).filter(|d| !d.is_empty()) {
        Some(id) => derived_id(&NAMESPACE, &["delivery", id]),
        None => derived_id(&NAMESPACE, &["body", &hex::encode(Sha256::digest(body))]),
    }
}

/// What a GitLab delivery records, if anything. `event` is the
/// `X-Gitlab-Event` header.
pub fn map(event: &str, event_id: Uuid, payload: &Value) -> Result<Mapped, HookError> {
    let kind = text(payload, "/object_kind");
    if event != "Deployment Hook" && kind != Some("deployment") {
        return Ok(Mapped::Ignored(format!(
            "GitLab {event:?} events are not recorded; select Deployment events"
        )));
    }
    let state = text(payload, "/status").ok_or_else(|| HookError::missing("status"))?;
    let status = match state {
        "running" => None,
        "success" => Some("success"),
        "failed" => Some("failed"),
        "canceled" => Some("cancelled"),
        other => {
            return Ok(Mapped::Ignored(format!(
                "the deployment status {other:?} is neither a start nor a finish"
            )));
        }
    };
    let gitlab_id =
        id_text(payload, "/deployment_id").ok_or_else(|| HookError::missing("deployment_id"))?;
    let project = text(payload, "/project/path_with_namespace")
        .ok_or_else(|| HookError::missing("project.path_with_namespace"))?;
    let project_id = id_text(payload, "/project/id").unwrap_or_else(|| project.to_owned());
    // Two GitLab instances number their deployments apart; the host keeps
    // their ids apart too.
    let host = text(payload, "/project/web_url")
        .and_then(|u| u.split('/').nth(2))
        .unwrap_or("gitlab");
    let at = status_changed_at(payload)?;
    // The commit URL ends with the full sha; `short_sha` is the fallback.
    let sha = text(payload, "/commit_url")
        .and_then(|u| u.rsplit('/').next())
        .filter(|s| s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()))
        .or_else(|| text(payload, "/short_sha"));

    let mut body = match status {
        None => StoreBody::start(project),
        Some(status) => StoreBody::finish(project, status),
    };
    body.set(
        "deployment_id",
        &derived_id(&NAMESPACE, &["deployment", host, &project_id, &gitlab_id]).to_string(),
    );
    body.set("event_id", &event_id.to_string());
    body.set("timestamp", &rfc3339(at));
    body.set_text("environment", text(payload, "/environment"));
    body.set_text("version", sha);
    body.set_text(
        "owner",
        text(payload, "/user/username").or_else(|| text(payload, "/user/name")),
    );
    body.attribute("provider", Some("gitlab"));
    body.attribute("gitlab.project", Some(project));
    body.attribute("gitlab.deployment_id", Some(&gitlab_id));
    body.attribute("gitlab.status", Some(state));
    body.attribute("gitlab.job_url", text(payload, "/deployable_url"));
    body.attribute("gitlab.commit_url", text(payload, "/commit_url"));
    body.attribute(
        "gitlab.environment_url",
        text(payload, "/environment_external_url"),
    );
    Ok(Mapped::Events(vec![body.build()]))
}

fn status_changed_at(payload: &Value) -> Result<DateTime<Utc>, HookError> {
    let raw = text(payload, "/status_changed_at")
        .ok_or_else(|| HookError::missing("status_changed_at"))?;
    DateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S %z")
        .or_else(|_| DateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S %Z"))
        .or_else(|_| DateTime::parse_from_rfc3339(raw))
        .map(|at| at.with_timezone(&Utc))
        .or_else(|_| {
            // `2021-04-28 19:50:00 UTC`, as some GitLab versions write it.
            raw.strip_suffix(" UTC")
                .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S").ok())
                .map(|t| t.and_utc())
                .ok_or(())
        })
        .map_err(|()| {
            HookError(format!(
                "status_changed_at is not a date-time GitLab writes (got {raw:?})"
            ))
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn payload(status: &str, at: &str) -> Value {
        json!({
            "object_kind": "deployment",
            "status": status,
            "status_changed_at": at,
            "deployment_id": 15,
            "environment": "staging",
            "project": {"id": 30, "path_with_namespace": "root/app",
                        "web_url": "http://gitlab.example.com/root/app"},
            "short_sha": "279484c0",
            "user": {"username": "root"},
            "commit_url": "http://gitlab.example.com/root/app/-/commit/279484c09fbe69ededfced8c1bb6e6d24616b468"
        })
    }

    fn one(mapped: Mapped) -> Value {
        match mapped {
            Mapped::Events(mut events) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    #[test]
    fn running_opens_and_success_closes_with_gitlab_times() {
        let id = event_id(Some("a"), b"");
        let start = one(map(
            "Deployment Hook",
            id,
            &payload("running", "2021-04-28 21:45:00 +0200"),
        )
        .unwrap());
        assert_eq!(start["phase"], "start");
        assert_eq!(start["timestamp"], "2021-04-28T19:45:00Z");
        assert_eq!(start["component"], "root/app");
        assert_eq!(start["version"], "279484c09fbe69ededfced8c1bb6e6d24616b468");
        assert_eq!(start["owner"], "root");
        let finish = one(map(
            "Deployment Hook",
            event_id(Some("b"), b""),
            &payload("success", "2021-04-28 21:50:00 +0200"),
        )
        .unwrap());
        assert_eq!(finish["status"], "success");
        assert_eq!(finish["deployment_id"], start["deployment_id"]);
    }

    #[test]
    fn failed_and_canceled_finish_other_states_are_ignored() {
        let id = event_id(None, b"x");
        let failed = one(map(
            "Deployment Hook",
            id,
            &payload("failed", "2021-04-28 21:50:00 UTC"),
        )
        .unwrap());
        assert_eq!(failed["status"], "failed");
        assert_eq!(failed["timestamp"], "2021-04-28T21:50:00Z");
        let canceled = one(map(
            "Deployment Hook",
            id,
            &payload("canceled", "2021-04-28T21:50:00Z"),
        )
        .unwrap());
        assert_eq!(canceled["status"], "cancelled");
        assert!(matches!(
            map(
                "Deployment Hook",
                id,
                &payload("created", "2021-04-28 21:50:00 +0200")
            ),
            Ok(Mapped::Ignored(_))
        ));
        assert!(matches!(
            map("Push Hook", id, &json!({"object_kind": "push"})),
            Ok(Mapped::Ignored(_))
        ));
        assert!(map("Deployment Hook", id, &payload("running", "yesterday")).is_err());
    }

    #[test]
    fn without_a_delivery_id_the_body_identifies_the_event() {
        assert_eq!(event_id(None, b"same"), event_id(None, b"same"));
        assert_ne!(event_id(None, b"same"), event_id(None, b"other"));
        assert_ne!(event_id(Some("k"), b"same"), event_id(None, b"same"));
    }
}
