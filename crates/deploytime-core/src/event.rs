//! Events: the `start` and `finish` calls a pipeline makes.
//!
//! Raw input (a JSON object or form fields) is first read into an [`EventInput`],
//! with a [`FieldError`] for every field of the wrong type or with an unknown name,
//! then [`EventInput::validate`] applies every rule and returns either a
//! [`NewEvent`] or the complete list of what was wrong. Nothing is rejected at the
//! first error: a pipeline author fixes their call once, not once per field.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

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

/// Every field name the store call accepts, in the order they are documented.
pub const FIELDS: &[&str] = &[
    "component",
    "phase",
    "status",
    "environment",
    "version",
    "owner",
    "deployment_id",
    "event_id",
    "timestamp",
    "attributes",
];

/// One thing wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// The field, as the client named it (`attributes.url` for one attribute).
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything wrong with an event, never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", summarise(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn summarise(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `start` opens a deployment, `finish` closes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Start,
    Finish,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Finish => "finish",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "start" => Some(Phase::Start),
            "finish" => Some(Phase::Finish),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a deployment ended. Any code other than `success` and `cancelled` means it
/// failed, and the code is kept as the reason (`failed`, `exit-2`, `E4031`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    Cancelled,
    Failed(String),
}

impl Status {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "success" => Ok(Status::Success),
            "cancelled" => Ok(Status::Cancelled),
            code => {
                let chars = code.chars().count();
                if chars == 0 || chars > MAX_STATUS_CHARS {
                    return Err(format!(
                        "must be `success`, `cancelled` or an error code of 1 to {MAX_STATUS_CHARS} characters"
                    ));
                }
                if let Some(bad) = code
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                {
                    return Err(format!(
                        "an error code may contain only letters, digits and . _ - (found {bad:?})"
                    ));
                }
                Ok(Status::Failed(code.to_owned()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Success => "success",
            Status::Cancelled => "cancelled",
            Status::Failed(code) => code,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// The fields of a store call as the client sent them, before validation.
/// Empty strings in optional fields count as absent, so that a pipeline passing an
/// unset variable (`version=$VERSION`) is not rejected for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventInput {
    pub component: Option<String>,
    pub phase: Option<String>,
    pub status: Option<String>,
    pub environment: Option<String>,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub deployment_id: Option<String>,
    pub event_id: Option<String>,
    pub timestamp: Option<String>,
    pub attributes: Option<BTreeMap<String, String>>,
    /// What was wrong while reading the raw fields (wrong types, unknown names);
    /// reported by [`EventInput::validate`] together with every other error.
    pub reading_errors: Vec<FieldError>,
}

/// The phase of an event, carrying the status a `finish` must have, so that a
/// finish without a status cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Start,
    Finish(Status),
}

impl EventKind {
    pub fn phase(&self) -> Phase {
        match self {
            EventKind::Start => Phase::Start,
            EventKind::Finish(_) => Phase::Finish,
        }
    }

    pub fn status(&self) -> Option<&Status> {
        match self {
            EventKind::Start => None,
            EventKind::Finish(status) => Some(status),
        }
    }
}

/// A validated event, ready to be paired and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The idempotency key, when the client gave one (the store assigns one otherwise).
    pub event_id: Option<Uuid>,
    /// `start`, or `finish` with the status it finished with.
    pub kind: EventKind,
    pub component: Component,
    pub environment: Environment,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub deployment_id: Option<Uuid>,
    /// When it happened: the client's timestamp, or the server's time of receipt.
    pub occurred_at: DateTime<Utc>,
    /// Whether `occurred_at` is the client's own timestamp. When it is not, the
    /// store may restamp the event with the time it is actually applied, so that
    /// server-assigned times follow the order in which events are paired.
    pub timestamp_given: bool,
    pub attributes: BTreeMap<String, String>,
    /// SHA-256 of what the client sent (not of defaults the server filled in), so a
    /// retry of the same call is recognised even though it arrives later.
    pub fingerprint: String,
}

fn suggestion(unknown: &str) -> String {
    let closest = FIELDS
        .iter()
        .map(|f| (strsim::damerau_levenshtein(unknown, f), *f))
        .min();
    match closest {
        Some((distance, field)) if distance <= 2 => {
            format!("unknown field; did you mean `{field}`?")
        }
        _ => format!("unknown field; accepted fields are {}", FIELDS.join(", ")),
    }
}

fn non_empty(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

impl EventInput {
    fn slot(&mut self, field: &str) -> Option<&mut Option<String>> {
        Some(match field {
            "component" => &mut self.component,
            "phase" => &mut self.phase,
            "status" => &mut self.status,
            "environment" => &mut self.environment,
            "version" => &mut self.version,
            "owner" => &mut self.owner,
            "deployment_id" => &mut self.deployment_id,
            "event_id" => &mut self.event_id,
            "timestamp" => &mut self.timestamp,
            _ => return None,
        })
    }

    /// Reads a JSON document. Anything but an object, fields of the wrong type and
    /// unknown fields are reported, all at once.
    pub fn from_json(value: Value) -> Result<Self, ValidationErrors> {
        let Value::Object(object) = value else {
            return Err(ValidationErrors(vec![FieldError::new(
                "(body)",
                "must be a JSON object",
            )]));
        };
        let mut input = EventInput::default();
        for (key, value) in object {
            let errors = &mut input.reading_errors;
            if key == "attributes" {
                match value {
                    Value::Null => {}
                    Value::Object(map) => {
                        let mut attributes = BTreeMap::new();
                        for (name, value) in map {
                            match value {
                                Value::String(s) => {
                                    attributes.insert(name, s);
                                }
                                _ => errors.push(FieldError::new(
                                    format!("attributes.{name}"),
                                    "must be a string (attributes are a flat object of strings)",
                                )),
                            }
                        }
                        input.attributes = Some(attributes);
                    }
                    _ => errors.push(FieldError::new(
                        "attributes",
                        "must be an object of string values",
                    )),
                }
                continue;
            }
            let Some(slot) = input.slot(&key) else {
                let message = suggestion(&key);
                input.reading_errors.push(FieldError::new(key, message));
                continue;
            };
            match value {
                Value::Null => {}
                Value::String(s) => *slot = non_empty(s),
                _ => input
                    .reading_errors
                    .push(FieldError::new(key, "must be a string")),
            }
        }
        Ok(input)
    }

    /// Reads `application/x-www-form-urlencoded` pairs. One attribute is written
    /// `attributes[name]=value` (or `attributes.name=value`); a field given twice
    /// is an error rather than a silent choice between the two values.
    pub fn from_form<I>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut input = EventInput::default();
        let mut errors = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (key, value) in pairs {
            if !seen.insert(key.clone()) {
                errors.push(FieldError::new(key, "given more than once"));
                continue;
            }
            let attribute = key
                .strip_prefix("attributes[")
                .and_then(|rest| rest.strip_suffix(']'))
                .or_else(|| key.strip_prefix("attributes."));
            if let Some(name) = attribute {
                input
                    .attributes
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name.to_owned(), value);
                continue;
            }
            match input.slot(&key) {
                Some(slot) => *slot = non_empty(value),
                None => {
                    let message = if key == "attributes" {
                        "in a form, write each attribute as attributes[name]=value".to_owned()
                    } else {
                        suggestion(&key)
                    };
                    errors.push(FieldError::new(key, message));
                }
            }
        }
        input.reading_errors = errors;
        input
    }

    /// Takes the idempotency key from the `Idempotency-Key` header, which must agree
    /// with `event_id` when both are given.
    pub fn with_idempotency_key(mut self, header: Option<&str>) -> Result<Self, ValidationErrors> {
        let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
            return Ok(self);
        };
        match &self.event_id {
            None => self.event_id = Some(header.to_owned()),
            Some(body) => {
                let same = match (Uuid::parse_str(body), Uuid::parse_str(header)) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => body == header,
                };
                if !same {
                    return Err(ValidationErrors(vec![FieldError::new(
                        "Idempotency-Key",
                        "differs from the event_id in the body; send one or make them equal",
                    )]));
                }
            }
        }
        Ok(self)
    }

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
            Some(t) => match DateTime::parse_from_rfc3339(t) {
                Err(_) => {
                    errors.push(FieldError::new(
                        "timestamp",
                        format!(
                            "must be an RFC 3339 date-time with an offset, e.g. 2026-11-22T10:15:00Z (got {t:?})"
                        ),
                    ));
                    None
                }
                Ok(at) => {
                    let at = truncate_to_micros(at.with_timezone(&Utc));
                    if at > now + MAX_FUTURE_SKEW {
                        errors.push(FieldError::new(
                            "timestamp",
                            format!(
                                "is more than 5 minutes in the future (server time is {})",
                                format_rfc3339(now)
                            ),
                        ));
                        None
                    } else {
                        Some(at)
                    }
                }
            },
        };
        let timestamp_given = self.timestamp.is_some();
        let attributes = self.attributes.unwrap_or_default();
        check_attributes(&attributes, &mut errors);
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
                    fingerprint,
                })
            }
            _ => Err(ValidationErrors(errors)),
        }
    }

    /// SHA-256 over a canonical form of what the client sent, except the
    /// idempotency key itself. Identifiers and timestamps are normalised so that
    /// `Z` and `+00:00`, or upper- and lower-case UUIDs, are the same content.
    fn fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            component: Option<&'a str>,
            phase: Option<&'a str>,
            status: Option<&'a str>,
            environment: &'a str,
            version: Option<&'a str>,
            owner: Option<&'a str>,
            deployment_id: Option<String>,
            timestamp: Option<String>,
            attributes: Option<&'a BTreeMap<String, String>>,
        }
        let canonical = Canonical {
            component: self.component.as_deref(),
            phase: self.phase.as_deref(),
            status: self.status.as_deref(),
            environment: self.environment.as_deref().unwrap_or(Environment::DEFAULT),
            version: self.version.as_deref(),
            owner: self.owner.as_deref(),
            deployment_id: self
                .deployment_id
                .as_deref()
                .map(|d| Uuid::parse_str(d).map_or_else(|_| d.to_owned(), |u| u.to_string())),
            timestamp: self.timestamp.as_deref().map(|t| {
                DateTime::parse_from_rfc3339(t).map_or_else(
                    |_| t.to_owned(),
                    |at| format_rfc3339(truncate_to_micros(at.with_timezone(&Utc))),
                )
            }),
            attributes: self.attributes.as_ref().filter(|a| !a.is_empty()),
        };
        // Serialising plain strings and a BTreeMap cannot fail; an empty input
        // would still hash consistently if it somehow did.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    fn validate_json(value: Value) -> Result<NewEvent, ValidationErrors> {
        EventInput::from_json(value)?.validate(now())
    }

    fn fields(err: &ValidationErrors) -> Vec<&str> {
        err.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn minimal_start_gets_defaults() {
        let event = validate_json(json!({"component": "api", "phase": "start"})).unwrap();
        assert_eq!(event.component.as_str(), "api");
        assert_eq!(event.environment.as_str(), "production");
        assert_eq!(event.kind, EventKind::Start);
        assert_eq!(event.occurred_at, now());
        assert!(event.attributes.is_empty());
        assert_eq!(event.event_id, None);
    }

    #[test]
    fn full_finish_is_read_field_by_field() {
        let event = validate_json(json!({
            "component": "billing/worker", "phase": "finish", "status": "E4031",
            "environment": "staging", "version": "v1.2.3", "owner": "Zoë",
            "deployment_id": "0192F6A4-6C53-7D0E-9D8F-2F4B7C1E5A10",
            "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11",
            "timestamp": "2026-11-22T13:00:00.1234567+02:00",
            "attributes": {"pipeline_url": "https://ci.example/1"}
        }))
        .unwrap();
        assert_eq!(
            event.kind,
            EventKind::Finish(Status::Failed("E4031".into()))
        );
        assert_eq!(event.environment.as_str(), "staging");
        assert_eq!(event.owner.as_deref(), Some("Zoë"));
        assert_eq!(
            event.deployment_id.unwrap().to_string(),
            "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10"
        );
        // 13:00 at +02:00 is 11:00 UTC; the 7th fractional digit is dropped.
        assert_eq!(
            format_rfc3339(event.occurred_at),
            "2026-11-22T11:00:00.123456Z"
        );
        assert_eq!(event.attributes["pipeline_url"], "https://ci.example/1");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let err = validate_json(json!({
            "component": "-bad", "phase": "begin", "environment": "prod env",
            "version": "a\nb", "deployment_id": "nope", "timestamp": "yesterday"
        }))
        .unwrap_err();
        assert_eq!(
            fields(&err),
            vec![
                "component",
                "environment",
                "phase",
                "version",
                "deployment_id",
                "timestamp"
            ]
        );
    }

    #[test]
    fn status_rules_depend_on_phase() {
        let err = validate_json(json!({"component": "api", "phase": "start", "status": "success"}))
            .unwrap_err();
        assert_eq!(fields(&err), vec!["status"]);
        let err = validate_json(json!({"component": "api", "phase": "finish"})).unwrap_err();
        assert_eq!(fields(&err), vec!["status"]);
        for (status, expected) in [
            ("success", Status::Success),
            ("cancelled", Status::Cancelled),
            ("exit-2", Status::Failed("exit-2".into())),
        ] {
            let event =
                validate_json(json!({"component": "api", "phase": "finish", "status": status}))
                    .unwrap();
            assert_eq!(event.kind.status(), Some(&expected));
        }
        assert!(Status::parse(&"x".repeat(65)).is_err());
        assert!(Status::parse("exit 2").is_err());
        assert!(Status::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_suggestion() {
        let err =
            validate_json(json!({"component": "api", "phase": "finish", "stauts": "success"}))
                .unwrap_err();
        assert_eq!(err.0[0].field, "stauts");
        assert!(err.0[0].message.contains("did you mean `status`"), "{err}");
        let input = EventInput::from_json(json!({"component": "api", "colour": "red"})).unwrap();
        assert!(
            input.reading_errors[0]
                .message
                .contains("accepted fields are")
        );
    }

    #[test]
    fn wrong_json_types_are_field_errors() {
        let err = validate_json(json!({
            "component": 5, "phase": "start", "attributes": {"a": 1, "b": "ok"}, "timestamp": true
        }))
        .unwrap_err();
        let mut got = fields(&err);
        got.sort();
        assert_eq!(got, vec!["attributes.a", "component", "timestamp"]);
        let err = EventInput::from_json(json!(["component"])).unwrap_err();
        assert_eq!(fields(&err), vec!["(body)"]);
        let err = validate_json(json!({"attributes": ["a"]})).unwrap_err();
        assert_eq!(fields(&err), vec!["attributes", "component", "phase"]);
    }

    #[test]
    fn timestamps_may_be_past_but_not_far_future() {
        let ok = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2020-01-01T00:00:00Z"
        }));
        assert!(ok.is_ok());
        let edge = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2026-11-22T12:05:00Z"
        }));
        assert!(
            edge.is_ok(),
            "exactly 5 minutes ahead is within the allowance"
        );
        let err = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2026-11-22T12:05:00.000001Z"
        }))
        .unwrap_err();
        assert!(err.0[0].message.contains("future"));
        let err = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2026-11-22T12:00:00"
        }))
        .unwrap_err();
        assert!(
            err.0[0].message.contains("offset"),
            "no offset is ambiguous"
        );
    }

    #[test]
    fn text_and_attribute_limits() {
        assert!(
            validate_json(
                json!({"component": "api", "phase": "start", "version": "é".repeat(128)})
            )
            .is_ok()
        );
        assert!(
            validate_json(json!({"component": "api", "phase": "start", "owner": "x".repeat(129)}))
                .is_err()
        );
        let many: serde_json::Map<String, Value> = (0..33)
            .map(|i| (format!("k{i}"), Value::String("v".into())))
            .collect();
        let err = validate_json(json!({"component": "api", "phase": "start", "attributes": many}))
            .unwrap_err();
        assert_eq!(fields(&err), vec!["attributes"]);
        let err = validate_json(json!({"component": "api", "phase": "start", "attributes": {
            "k".repeat(65): "v", "long": "v".repeat(513), "ok": "v".repeat(512)
        }}))
        .unwrap_err();
        assert_eq!(err.0.len(), 2);
    }

    #[test]
    fn uuids_must_be_real_and_not_nil() {
        let err = validate_json(json!({
            "component": "api", "phase": "start",
            "event_id": "00000000-0000-0000-0000-000000000000"
        }))
        .unwrap_err();
        assert!(err.0[0].message.contains("nil"));
    }

    #[test]
    fn form_fields_and_attributes() {
        let pairs = vec![
            ("component".to_owned(), "api".to_owned()),
            ("phase".to_owned(), "finish".to_owned()),
            ("status".to_owned(), "cancelled".to_owned()),
            ("version".to_owned(), "".to_owned()),
            ("attributes[commit]".to_owned(), "abc".to_owned()),
            ("attributes.run".to_owned(), "7".to_owned()),
        ];
        let event = EventInput::from_form(pairs).validate(now()).unwrap();
        assert_eq!(event.kind, EventKind::Finish(Status::Cancelled));
        assert_eq!(event.version, None, "an empty optional value is absent");
        assert_eq!(event.attributes.len(), 2);
        assert_eq!(event.attributes["commit"], "abc");

        let err = EventInput::from_form(vec![
            ("component".to_owned(), "a".to_owned()),
            ("component".to_owned(), "b".to_owned()),
            ("phase".to_owned(), "start".to_owned()),
            ("stauts".to_owned(), "x".to_owned()),
        ])
        .validate(now())
        .unwrap_err();
        assert_eq!(fields(&err), vec!["component", "stauts"]);
    }

    #[test]
    fn idempotency_header_fills_or_must_agree() {
        let id = "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11";
        let input = EventInput {
            component: Some("api".into()),
            phase: Some("start".into()),
            ..Default::default()
        };
        let event = input
            .clone()
            .with_idempotency_key(Some(id))
            .unwrap()
            .validate(now())
            .unwrap();
        assert_eq!(event.event_id.unwrap().to_string(), id);
        let with_body = EventInput {
            event_id: Some(id.to_uppercase()),
            ..input.clone()
        };
        assert!(with_body.clone().with_idempotency_key(Some(id)).is_ok());
        let err = with_body
            .with_idempotency_key(Some("0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a12"))
            .unwrap_err();
        assert_eq!(fields(&err), vec!["Idempotency-Key"]);
    }

    #[test]
    fn fingerprint_ignores_defaults_and_spelling_but_not_content() {
        let base =
            json!({"component": "api", "phase": "start", "timestamp": "2026-11-22T10:00:00Z"});
        let a = validate_json(base.clone()).unwrap();
        let later = EventInput::from_json(base.clone())
            .unwrap()
            .validate(now() + Duration::minutes(1))
            .unwrap();
        assert_eq!(
            a.fingerprint, later.fingerprint,
            "a retry later is the same call"
        );
        let respelled = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2026-11-22T12:00:00+02:00",
            "environment": "production", "event_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a11"
        }))
        .unwrap();
        assert_eq!(a.fingerprint, respelled.fingerprint);
        let different = validate_json(json!({
            "component": "api", "phase": "start", "timestamp": "2026-11-22T10:00:00Z",
            "version": "v2"
        }))
        .unwrap();
        assert_ne!(a.fingerprint, different.fingerprint);
        assert_eq!(a.fingerprint.len(), 64);
    }
}
