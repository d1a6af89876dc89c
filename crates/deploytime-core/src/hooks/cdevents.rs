//! CDEvents (https://cdevents.dev), each carried by a CloudEvent whose data is
//! the CDEvent. The server reads the CloudEvents of a request (binary,
//! structured or batch mode); this maps each one.
//!
//! - `pipelinerun.started` and `taskrun.started` open a deployment;
//!   `pipelinerun.finished` and `taskrun.finished` close it by their
//!   `outcome` (`success`, `failure`, `error`, `cancel`). The deployment id is
//!   derived from the subject's source and id, so the two ends pair in any
//!   order.
//! - `service.deployed`, `service.upgraded` and `service.rolledback` are a
//!   finished deployment without a start: no duration, but counted in
//!   deployment frequency; a rollback is marked as one.
//! - Any other type is ignored (answered 2xx, counted in a metric), so that a
//!   sender broadcasting every CDEvent does not retry forever.
//!
//! Each event is dated by the CDEvent's `context.timestamp` (else the
//! CloudEvent's `time`); a `component` (also `environment`, `version`,
//! `owner`) in the CDEvent's `customData` overrides what the subject says,
//! and `customData.commits` is passed on as the store call's `commits`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{HookError, Mapped, StoreBody, derived_id, rfc3339, text};

/// The namespace of the ids derived from CDEvents.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x9e3b_6f02_d1a4_4c57_8b0e_51f7_2c6a_d8e3);

/// The attributes of a CloudEvent this mapping reads, and its data.
#[derive(Debug, Clone, Copy)]
pub struct CloudEvent<'a> {
    pub id: &'a str,
    pub source: &'a str,
    /// The CloudEvent's `type`: `dev.cdevents.pipelinerun.started.0.2.0`.
    pub kind: &'a str,
    pub time: Option<&'a str>,
    /// The CDEvent.
    pub data: &'a Value,
}

/// The event id of a CloudEvent: its `(source, id)` pair, unique by the
/// CloudEvents specification, so a resent event is a replay.
pub fn event_id(source: &str, id: &str) -> Uuid {
    derived_id(&NAMESPACE, &["event", source, id])
}

/// What a CDEvent records, if anything.
pub fn map(event: &CloudEvent<'_>) -> Result<Mapped, HookError> {
    let Some((subject, predicate)) = subject_and_predicate(event.kind) else {
        return Ok(Mapped::Ignored(format!(
            "{:?} is not a CDEvent deploytime records",
            event.kind
        )));
    };
    let end = match (subject, predicate) {
        ("pipelinerun" | "taskrun", "started") => End::Start,
        ("pipelinerun" | "taskrun", "finished") => End::Finish(outcome(event.data)?),
        ("service", "deployed" | "upgraded") => End::Service { rollback: false },
        ("service", "rolledback") => End::Service { rollback: true },
        _ => {
            return Ok(Mapped::Ignored(format!(
                "{subject}.{predicate} is not a CDEvent deploytime records"
            )));
        }
    };
    let data = event.data;
    let subject_id = text(data, "/subject/id").ok_or_else(|| HookError::missing("subject.id"))?;
    let subject_source = text(data, "/subject/source")
        .or_else(|| text(data, "/context/source"))
        .unwrap_or(event.source);
    let custom = |field: &str| text(data, &format!("/customData/{field}"));
    let component = match custom("component") {
        Some(component) => component,
        None => match subject {
            "pipelinerun" => text(data, "/subject/content/pipelineName")
                .ok_or_else(|| HookError::missing("subject.content.pipelineName"))?,
            "taskrun" => text(data, "/subject/content/taskName")
                .ok_or_else(|| HookError::missing("subject.content.taskName"))?,
            // A service's subject id is the service.
            _ => subject_id,
        },
    };
    let at = timestamp(event)?;

    let (mut body, deployment_id) = match end {
        End::Start => (
            StoreBody::start(component),
            derived_id(&NAMESPACE, &["run", subject_source, subject_id]),
        ),
        End::Finish(status) => (
            StoreBody::finish(component, status),
            derived_id(&NAMESPACE, &["run", subject_source, subject_id]),
        ),
        // Each service event is a deployment of its own: a service is
        // deployed many times under one subject id.
        End::Service { .. } => (
            StoreBody::finish(component, "success"),
            derived_id(&NAMESPACE, &["service", event.source, event.id]),
        ),
    };
    body.set("deployment_id", &deployment_id.to_string());
    body.set("event_id", &event_id(event.source, event.id).to_string());
    body.set("timestamp", &rfc3339(at));
    let environment =
        custom("environment").or_else(|| text(data, "/subject/content/environment/id"));
    body.set_text("environment", environment);
    body.set_text(
        "version",
        custom("version").or_else(|| text(data, "/subject/content/artifactId")),
    );
    body.set_text("owner", custom("owner"));
    body.attribute("provider", Some("cdevents"));
    body.attribute("cdevents.type", Some(event.kind));
    body.attribute("cdevents.source", Some(event.source));
    body.attribute("cdevents.subject", Some(subject_id));
    body.attribute("cdevents.uri", text(data, "/subject/content/uri"));
    body.attribute("cdevents.errors", text(data, "/subject/content/errors"));
    body.attribute(
        "cdevents.artifact_id",
        text(data, "/subject/content/artifactId"),
    );
    if matches!(end, End::Service { rollback: true }) {
        body.set_value("rollback", Value::Bool(true));
    }
    // The commits shipped, with their times, when the sender lists them
    // (`[{"sha": ..., "committed_at": ...}]`, as the store call takes them).
    if let Some(commits) = data.pointer("/customData/commits").filter(|c| c.is_array()) {
        body.set_value("commits", commits.clone());
    }
    Ok(Mapped::Events(vec![body.build()]))
}

enum End {
    Start,
    Finish(&'static str),
    Service { rollback: bool },
}

/// `dev.cdevents.{subject}.{predicate}.{version}` → `(subject, predicate)`.
fn subject_and_predicate(kind: &str) -> Option<(&str, &str)> {
    let mut parts = kind.strip_prefix("dev.cdevents.")?.split('.');
    Some((parts.next()?, parts.next()?))
}

fn outcome(data: &Value) -> Result<&'static str, HookError> {
    match text(data, "/subject/content/outcome") {
        Some("success") => Ok("success"),
        Some("failure") => Ok("failure"),
        Some("error") => Ok("error"),
        Some("cancel" | "canceled" | "cancelled") => Ok("cancelled"),
        Some(other) => Err(HookError(format!(
            "subject.content.outcome must be success, failure, error or cancel (got {other:?})"
        ))),
        None => Err(HookError::missing(
            "subject.content.outcome (a finished run says how it ended)",
        )),
    }
}

fn timestamp(event: &CloudEvent<'_>) -> Result<DateTime<Utc>, HookError> {
    let (raw, name) = match text(event.data, "/context/timestamp") {
        Some(raw) => (raw, "context.timestamp"),
        None => (
            event
                .time
                .ok_or_else(|| HookError::missing("context.timestamp (nor a CloudEvent time)"))?,
            "time",
        ),
    };
    DateTime::parse_from_rfc3339(raw)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| HookError(format!("{name} is not an RFC 3339 date-time (got {raw:?})")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(kind: &str, content: Value) -> Value {
        json!({
            "context": {"id": "c-1", "source": "/tekton", "type": kind,
                        "timestamp": "2026-01-02T03:04:05.123456Z"},
            "subject": {"id": "run-7", "source": "/tekton", "content": content}
        })
    }

    fn one(mapped: Mapped) -> Value {
        match mapped {
            Mapped::Events(mut events) if events.len() == 1 => events.remove(0),
            other => panic!("expected one event, got {other:?}"),
        }
    }

    fn event<'a>(kind: &'a str, id: &'a str, data: &'a Value) -> CloudEvent<'a> {
        CloudEvent {
            id,
            source: "/tekton",
            kind,
            time: None,
            data,
        }
    }

    #[test]
    fn a_pipeline_run_opens_and_closes_one_deployment() {
        let started = run(
            "dev.cdevents.pipelinerun.started.0.2.0",
            json!({"pipelineName": "deploy-api"}),
        );
        let finished = run(
            "dev.cdevents.pipelinerun.finished.0.2.0",
            json!({"pipelineName": "deploy-api", "outcome": "failure"}),
        );
        let start = one(map(&event(
            "dev.cdevents.pipelinerun.started.0.2.0",
            "1",
            &started,
        ))
        .unwrap());
        let finish = one(map(&event(
            "dev.cdevents.pipelinerun.finished.0.2.0",
            "2",
            &finished,
        ))
        .unwrap());
        assert_eq!(start["component"], "deploy-api");
        assert_eq!(start["timestamp"], "2026-01-02T03:04:05.123456Z");
        assert_eq!(finish["status"], "failure");
        assert_eq!(start["deployment_id"], finish["deployment_id"]);
        assert_ne!(start["event_id"], finish["event_id"]);
    }

    #[test]
    fn custom_data_names_the_component() {
        let mut data = run(
            "dev.cdevents.pipelinerun.started.0.2.0",
            json!({"pipelineName": "deploy"}),
        );
        data["customData"] = json!({"component": "billing/api", "environment": "staging"});
        let start = one(map(&event("dev.cdevents.pipelinerun.started.0.2.0", "1", &data)).unwrap());
        assert_eq!(start["component"], "billing/api");
        assert_eq!(start["environment"], "staging");
    }

    #[test]
    fn service_events_are_finished_deployments_and_rollbacks_are_marked() {
        let data = run(
            "dev.cdevents.service.rolledback.0.2.0",
            json!({"environment": {"id": "prod"}, "artifactId": "pkg:oci/app@sha256%3Aabc"}),
        );
        let a = one(map(&event("dev.cdevents.service.rolledback.0.2.0", "1", &data)).unwrap());
        let b = one(map(&event("dev.cdevents.service.rolledback.0.2.0", "2", &data)).unwrap());
        assert_eq!(a["phase"], "finish");
        assert_eq!(a["status"], "success");
        assert_eq!(a["component"], "run-7");
        assert_eq!(a["environment"], "prod");
        assert_eq!(a["rollback"], true);
        assert_ne!(
            a["deployment_id"], b["deployment_id"],
            "each is a deployment of its own"
        );
    }

    #[test]
    fn other_types_are_ignored_and_finishes_need_an_outcome() {
        let data = run("dev.cdevents.build.started.0.2.0", json!({}));
        assert!(matches!(
            map(&event("dev.cdevents.build.started.0.2.0", "1", &data)),
            Ok(Mapped::Ignored(_))
        ));
        assert!(matches!(
            map(&event("com.example.other", "1", &data)),
            Ok(Mapped::Ignored(_))
        ));
        let finished = run(
            "dev.cdevents.taskrun.finished.0.2.0",
            json!({"taskName": "t"}),
        );
        assert!(
            map(&event(
                "dev.cdevents.taskrun.finished.0.2.0",
                "1",
                &finished
            ))
            .is_err()
        );
    }
}
