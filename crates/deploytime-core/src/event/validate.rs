//! The rules of the store call, applied all at once to an [`EventInput`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::{EventInput, EventKind, FieldError, NewEvent, Phase, Status, ValidationErrors};
use crate::names::{Component, Environment};
use crate::time::{format_rfc3339, truncate_to_micros};

/// How far ahead of the server's clock an event may be dated (clock skew allowance).
pub const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);
/// Limits on free-text and attribute fields.
pub const MAX_TEXT_CHARS: usize = 128;
pub const MAX_STATUS_CHARS: usize = 64;
pub const MAX_ATTRIBUTES: usize = 32;
pub const MAX_ATTRIBUTE_KEY_CHARS: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_CHARS: usize = 512;

impl EventInput {
    /// Applies every rule of the store call. `now` is the server's clock, used for
    /// the default timestamp and the future-skew limit.
    pub fn validate(self, now: DateTime<Utc>) -> Result<NewEvent, ValidationErrors> {
        let now = truncate_to_micros(now);
        let fingerprint = self.fingerprint();
        let mut errors = self.reading_errors;

        let component = match self.component.as_deref() {
            None => {
                errors.push(FieldError::new("component", "is required"));
                None
            }
            Some(c) => Component::parse(c)
                .map_err(|m| errors.push(FieldError::new("component", m)))
                .ok(),
        };
        let environment = match self.environment.as_deref() {
            None => Some(Environment::default_environment()),
            Some(e) => Environment::parse(e)
                .map_err(|m| errors.push(FieldError::new("environment", m)))
                .ok(),
        };
        let phase = match self.phase.as_deref() {
            None => {
                errors.push(FieldError::new("phase", "is required: `start` or `finish`"));
                None
            }
            Some(p) => Phase::parse(p).or_else(|| {
                errors.push(FieldError::new(
                    "phase",
                    format!("must be `start` or `finish` (got {p:?})"),
                ));
                None
            }),
        };
        let status = match (phase, self.status.as_deref()) {
            (Some(Phase::Start), Some(_)) => {
                errors.push(FieldError::new(
                    "status",
                    "is not accepted on `start`: a deployment's status is known when it finishes",
                ));
                None
            }
            (Some(Phase::Finish), None) => {
                errors.push(FieldError::new(
                    "status",
                    "is required on `finish`: `success`, `cancelled` or an error code",
                ));
                None
            }
            (_, Some(s)) => Status::parse(s)
                .map_err(|m| errors.push(FieldError::new("status", m)))
                .ok(),
            (_, None) => None,
        };
        let version = check_text("version", self.version, &mut errors);
        let owner = check_text("owner", self.owner, &mut errors);
        let deployment_id = check_uuid("deployment_id", self.deployment_id.as_deref(), &mut errors);
        let event_id = check_uuid("event_id", self.event_id.as_deref(), &mut errors);
        let occurred_at = match self.timestamp.as_deref() {
            None => Some(now),
            Some(t) => checked_instant("timestamp", t, now)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        let timestamp_given = self.timestamp.is_some();
        let attributes = self.attributes.unwrap_or_default();
        check_attributes(&attributes, &mut errors);
        let commits = crate::commits::validate(self.commits.unwrap_or_default(), now, &mut errors);
        let rollback = self.rollback.unwrap_or(false);
        // A field that could not be read is not also reported as missing.
        let mut reported = std::collections::BTreeSet::new();
        errors.retain(|e| reported.insert(e.field.clone()));

        let kind = match (phase, status) {
            (Some(Phase::Start), None) => Some(EventKind::Start),
            (Some(Phase::Finish), Some(status)) => Some(EventKind::Finish(status)),
            _ => None,
        };
        match (component, environment, kind, occurred_at) {
            (Some(component), Some(environment), Some(kind), Some(occurred_at))
                if errors.is_empty() =>
            {
                Ok(NewEvent {
                    event_id,
                    kind,
                    component,
                    environment,
                    version,
                    owner,
                    deployment_id,
                    occurred_at,
                    timestamp_given,
                    attributes,
                    commits,
                    rollback,
                    fingerprint,
                })
            }
            _ => Err(ValidationErrors(errors)),
        }
    }
}

/// An RFC 3339 date-time with an offset, at most [`MAX_FUTURE_SKEW`] ahead of
/// `now` (the past is accepted: backfills), in microseconds: the rule of every
/// time a client sends (an event's timestamp, a commit's, an incident's).
pub(crate) fn checked_instant(
    field: &str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, FieldError> {
    let at = DateTime::parse_from_rfc3339(value).map_err(|_| {
        FieldError::new(
            field,
            format!(
                "must be an RFC 3339 date-time with an offset, e.g. 2026-11-22T10:15:00Z (got {value:?})"
            ),
        )
    })?;
    let at = truncate_to_micros(at.with_timezone(&Utc));
    if at > now + MAX_FUTURE_SKEW {
        return Err(FieldError::new(
            field,
            format!(
                "is more than 5 minutes in the future (server time is {})",
                format_rfc3339(now)
            ),
        ));
    }
    Ok(at)
}

fn check_text(field: &str, value: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let value = value?;
    let chars = value.chars().count();
    if chars > MAX_TEXT_CHARS {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters (got {chars})"),
        ));
        return None;
    }
    if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters (newlines, tabs, escapes)",
        ));
        return None;
    }
    Some(value)
}

fn check_uuid(field: &str, value: Option<&str>, errors: &mut Vec<FieldError>) -> Option<Uuid> {
    let value = value?;
    match Uuid::parse_str(value) {
        Ok(id) if !id.is_nil() => Some(id),
        Ok(_) => {
            errors.push(FieldError::new(field, "must not be the nil UUID"));
            None
        }
        Err(_) => {
            errors.push(FieldError::new(
                field,
                format!(
                    "must be a UUID, e.g. 0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10 (got {value:?})"
                ),
            ));
            None
        }
    }
}

fn check_attributes(attributes: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if attributes.len() > MAX_ATTRIBUTES {
        errors.push(FieldError::new(
            "attributes",
            format!(
                "must have at most {MAX_ATTRIBUTES} keys (got {})",
                attributes.len()
            ),
        ));
    }
    for (key, value) in attributes {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_ATTRIBUTE_KEY_CHARS {
            errors.push(FieldError::new(
                format!("attributes.{key}"),
                format!("a key must be 1 to {MAX_ATTRIBUTE_KEY_CHARS} characters"),
            ));
        } else if key.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("attributes.{key}"),
                "a key must not contain control characters",
            ));
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_ATTRIBUTE_VALUE_CHARS {
            errors.push(FieldError::new(
                format!("attributes.{key}"),
                format!(
                    "a value must be at most {MAX_ATTRIBUTE_VALUE_CHARS} characters (got {value_chars})"
                ),
            ));
        }
    }
}
