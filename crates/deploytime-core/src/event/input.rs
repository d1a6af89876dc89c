//! Reading a store call's raw fields, from a JSON object or form pairs, into an
//! [`EventInput`]: wrong types and unknown names become field errors, reported
//! later with every other mistake.

use std::collections::BTreeMap;

use serde_json::Value;
use uuid::Uuid;

use super::{FieldError, ValidationErrors};
use crate::commits::{self, CommitInput};

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
    "commits",
    "rollback",
];

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
    /// The commits the deployment ships (JSON only).
    pub commits: Option<Vec<CommitInput>>,
    /// Whether the deployment is a rollback.
    pub rollback: Option<bool>,
    /// What was wrong while reading the raw fields (wrong types, unknown names);
    /// reported by [`EventInput::validate`] together with every other error.
    pub reading_errors: Vec<FieldError>,
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
            if key == "commits" {
                if !value.is_null() {
                    input.commits = Some(commits::read_json(value, errors));
                }
                continue;
            }
            if key == "rollback" {
                match value {
                    Value::Null => {}
                    Value::Bool(b) => input.rollback = Some(b),
                    _ => errors.push(FieldError::new("rollback", "must be true or false")),
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
            if key == "rollback" {
                match value.as_str() {
                    "" => {}
                    "true" => input.rollback = Some(true),
                    "false" => input.rollback = Some(false),
                    _ => errors.push(FieldError::new(
                        "rollback",
                        format!("must be true or false (got {value:?})"),
                    )),
                }
                continue;
            }
            if key == "commits" {
                errors.push(FieldError::new(
                    "commits",
                    "commits can be sent in a JSON body only",
                ));
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
}
