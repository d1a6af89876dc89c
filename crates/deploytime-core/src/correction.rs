//! Correcting a recorded deployment: an operator's change of its version,
//! owner, final status or finish time, with the reason for it. The body is read
//! field by field (every mistake reported at once) into a [`Correction`], and
//! [`Correction::apply`] decides what the deployment becomes, or why it cannot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::deployment::Deployment;
use crate::event::{FieldError, MAX_FUTURE_SKEW, MAX_TEXT_CHARS, Status, ValidationErrors};
use crate::state::DeploymentState;
use crate::time::{format_rfc3339, truncate_to_micros};

/// The fields a correction accepts.
pub const FIELDS: &[&str] = &["version", "owner", "status", "finished_at", "reason"];
/// The longest reason accepted, in characters.
pub const MAX_REASON_CHARS: usize = 512;

/// A change of an optional text: set it, or clear it (`null` or `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TextChange {
    Set(String),
    Clear,
}

/// What an operator asks to change, validated field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    pub version: Option<TextChange>,
    pub owner: Option<TextChange>,
    pub status: Option<Status>,
    pub finished_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// Why a valid correction cannot be applied to this deployment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CorrectionRefused(pub ValidationErrors);

fn refused(field: &str, message: impl Into<String>) -> CorrectionRefused {
    CorrectionRefused(ValidationErrors(vec![FieldError::new(field, message)]))
}

fn text(field: &str, value: &Value, errors: &mut Vec<FieldError>) -> Option<TextChange> {
    match value {
        Value::Null => Some(TextChange::Clear),
        Value::String(s) if s.is_empty() => Some(TextChange::Clear),
        Value::String(s) if s.chars().count() > MAX_TEXT_CHARS => {
            errors.push(FieldError::new(
                field,
                format!("must be at most {MAX_TEXT_CHARS} characters"),
            ));
            None
        }
        Value::String(s) if s.chars().any(char::is_control) => {
            errors.push(FieldError::new(
                field,
                "must not contain control characters",
            ));
            None
        }
        Value::String(s) => Some(TextChange::Set(s.clone())),
        _ => {
            errors.push(FieldError::new(field, "must be a string or null"));
            None
        }
    }
}

impl Correction {
    /// Reads a JSON body. `now` bounds how far ahead a finish may be dated.
    pub fn from_json(body: Value, now: DateTime<Utc>) -> Result<Self, ValidationErrors> {
        let Value::Object(object) = body else {
            return Err(ValidationErrors(vec![FieldError::new(
                "(body)",
                "must be a JSON object",
            )]));
        };
        let mut errors = Vec::new();
        let mut correction = Correction {
            version: None,
            owner: None,
            status: None,
            finished_at: None,
            reason: String::new(),
        };
        let mut reason = None;
        for (key, value) in &object {
            match key.as_str() {
                "version" => correction.version = text("version", value, &mut errors),
                "owner" => correction.owner = text("owner", value, &mut errors),
                "status" => match value.as_str().map(Status::parse) {
                    Some(Ok(status)) => correction.status = Some(status),
                    Some(Err(message)) => errors.push(FieldError::new("status", message)),
                    None => errors.push(FieldError::new("status", "must be a string")),
                },
                "finished_at" => match value.as_str().map(DateTime::parse_from_rfc3339) {
                    Some(Ok(at)) => {
                        let at = truncate_to_micros(at.to_utc());
                        if at > now + MAX_FUTURE_SKEW {
                            errors.push(FieldError::new(
                                "finished_at",
                                format!(
                                    "is more than 5 minutes in the future (server time is {})",
                                    format_rfc3339(now)
                                ),
                            ));
                        } else {
                            correction.finished_at = Some(at);
                        }
                    }
                    _ => errors.push(FieldError::new(
                        "finished_at",
                        "must be an RFC 3339 date-time with an offset, e.g. 2026-11-22T10:15:00Z",
                    )),
                },
                "reason" => reason = Some(value),
                other => errors.push(FieldError::new(
                    other,
                    format!("unknown field; accepted fields are {}", FIELDS.join(", ")),
                )),
            }
        }
        match reason.map(|r| r.as_str().map(str::trim)) {
            None | Some(Some("")) => errors.push(FieldError::new(
                "reason",
                "is required: say why the record is corrected",
            )),
            Some(None) => errors.push(FieldError::new("reason", "must be a string")),
            Some(Some(r)) if r.chars().count() > MAX_REASON_CHARS => errors.push(FieldError::new(
                "reason",
                format!("must be at most {MAX_REASON_CHARS} characters"),
            )),
            Some(Some(r)) if r.chars().any(|c| c.is_control() && c != '\n') => errors.push(
                FieldError::new("reason", "must not contain control characters"),
            ),
            Some(Some(r)) => correction.reason = r.to_owned(),
        }
        if errors.is_empty() && correction.changes_nothing() {
            errors.push(FieldError::new(
                "(body)",
                "nothing to correct: give version, owner, status or finished_at",
            ));
        }
        if errors.is_empty() {
            Ok(correction)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    fn changes_nothing(&self) -> bool {
        self.version.is_none()
            && self.owner.is_none()
            && self.status.is_none()
            && self.finished_at.is_none()
    }

    /// What `deployment` becomes. A running (or abandoned) deployment is closed
    /// by giving both its status and its finish time; a finished one can have
    /// either changed. A finish is never before the start.
    pub fn apply(&self, deployment: &Deployment) -> Result<Deployment, CorrectionRefused> {
        let mut after = deployment.clone();
        let apply_text = |current: &mut Option<String>, change: &Option<TextChange>| match change {
            Some(TextChange::Set(value)) => *current = Some(value.clone()),
            Some(TextChange::Clear) => *current = None,
            None => {}
        };
        apply_text(&mut after.version, &self.version);
        apply_text(&mut after.owner, &self.owner);
        let running = !deployment.state.is_final();
        match (running, &self.status, self.finished_at) {
            (true, Some(_), None) => {
                return Err(refused(
                    "finished_at",
                    "is required to close a running deployment: give its status and when it finished",
                ));
            }
            (true, None, Some(_)) => {
                return Err(refused(
                    "status",
                    "is required to close a running deployment: give its status and when it finished",
                ));
            }
            _ => {}
        }
        if let Some(status) = &self.status {
            after.state = DeploymentState::from_status(status);
            after.status = Some(status.clone());
        }
        if let Some(finished_at) = self.finished_at {
            if let Some(started_at) = deployment.started_at()
                && finished_at < started_at
            {
                return Err(refused(
                    "finished_at",
                    format!(
                        "is earlier than the start of the deployment ({})",
                        format_rfc3339(started_at)
                    ),
                ));
            }
            after.ends = after.ends.with_finish(finished_at);
        }
        if &after == deployment {
            return Err(refused(
                "(body)",
                "nothing to correct: the deployment already has these values",
            ));
        }
        Ok(after)
    }
}

/// One field's value before and after a correction, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Change {
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What a correction changed, field by field (only the fields that changed).
pub fn changes(before: &Deployment, after: &Deployment) -> BTreeMap<String, Change> {
    let fields = |d: &Deployment| {
        [
            ("version", d.version.clone()),
            ("owner", d.owner.clone()),
            ("state", Some(d.state.as_str().to_owned())),
            ("status", d.status.as_ref().map(|s| s.as_str().to_owned())),
            ("finished_at", d.finished_at().map(format_rfc3339)),
        ]
    };
    fields(before)
        .into_iter()
        .zip(fields(after))
        .filter(|((_, b), (_, a))| b != a)
        .map(|((name, before), (_, after))| (name.to_owned(), Change { before, after }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Ends;
    use crate::names::{Component, Environment};
    use chrono::{Duration, TimeZone};
    use serde_json::json;
    use uuid::Uuid;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn running() -> Deployment {
        Deployment {
            id: Uuid::now_v7(),
            component: Component::parse("api").unwrap(),
            environment: Environment::default_environment(),
            version: Some("v1".into()),
            owner: None,
            state: DeploymentState::Running,
            status: None,
            ends: Ends::Started(t0()),
            rollback: false,
        }
    }

    fn read(body: Value) -> Result<Correction, ValidationErrors> {
        Correction::from_json(body, t0() + Duration::days(1))
    }

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_running_deployment_is_closed_with_a_status_and_a_time() {
        let finished = t0() + Duration::seconds(90);
        let correction = read(json!({
            "status": "cancelled", "finished_at": "2026-11-22T10:01:30Z",
            "reason": "runner crashed"
        }))
        .unwrap();
        let after = correction.apply(&running()).unwrap();
        assert_eq!(after.state, DeploymentState::Cancelled);
        assert_eq!(after.finished_at(), Some(finished));
        assert_eq!(after.duration_seconds(), Some(90.0));
        let changed = changes(&running(), &after);
        assert_eq!(
            changed.keys().collect::<Vec<_>>(),
            ["finished_at", "state", "status"]
        );
        assert_eq!(changed["state"].before.as_deref(), Some("running"));
        // Half of it is not enough to close it.
        let half = read(json!({"status": "success", "reason": "x"})).unwrap();
        assert_eq!(
            fields(&half.apply(&running()).unwrap_err().0),
            ["finished_at"]
        );
        let half = read(json!({"finished_at": "2026-11-22T10:01:30Z", "reason": "x"})).unwrap();
        assert_eq!(fields(&half.apply(&running()).unwrap_err().0), ["status"]);
    }

    #[test]
    fn a_finished_deployment_gets_a_new_status_or_finish_never_before_its_start() {
        let done = read(
            json!({"status": "success", "finished_at": "2026-11-22T10:05:00Z", "reason": "r"}),
        )
        .unwrap()
        .apply(&running())
        .unwrap();
        let failed = read(json!({"status": "exit-3", "reason": "wrong status sent"}))
            .unwrap()
            .apply(&done)
            .unwrap();
        assert_eq!(failed.state, DeploymentState::Failed);
        assert_eq!(
            failed.finished_at(),
            done.finished_at(),
            "the finish time is kept"
        );
        let early = read(json!({"finished_at": "2026-11-22T09:59:59Z", "reason": "r"}))
            .unwrap()
            .apply(&done)
            .unwrap_err();
        assert_eq!(fields(&early.0), ["finished_at"]);
        let renamed = read(json!({"version": "v2", "owner": null, "reason": "mislabelled"}))
            .unwrap()
            .apply(&running())
            .unwrap();
        assert_eq!(renamed.version.as_deref(), Some("v2"));
        assert_eq!(
            renamed.state,
            DeploymentState::Running,
            "only what was asked changes"
        );
    }

    #[test]
    fn every_mistake_is_named_at_once() {
        let errors = read(json!({
            "status": "exit 2", "finished_at": "yesterday", "version": 5, "colour": "red"
        }))
        .unwrap_err();
        let mut named = fields(&errors);
        named.sort();
        assert_eq!(
            named,
            ["colour", "finished_at", "reason", "status", "version"]
        );
        let nothing = read(json!({"reason": "just because"})).unwrap_err();
        assert_eq!(fields(&nothing), ["(body)"]);
        let future =
            read(json!({"finished_at": "2026-11-24T00:00:00Z", "reason": "r"})).unwrap_err();
        assert_eq!(fields(&future), ["finished_at"]);
        assert_eq!(fields(&read(json!([1])).unwrap_err()), ["(body)"]);
    }
}
