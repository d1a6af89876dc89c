//! Webhook and CloudEvents ingestion: a provider's delivery turned into the
//! bodies of ordinary store calls (`POST /api/v1/events`), so that a delivery
//! goes through the same validation, pairing and idempotency as any pipeline's
//! call. Pure: the server verifies the sender, reads the body and the few
//! headers named here, and stores what these functions return.
//!
//! Every id is derived, never drawn: the event id from the provider's delivery
//! id (a redelivery is a replay), the deployment id from the provider's own
//! identity of the run (the start and the finish pair in either order), each a
//! name-based UUID (v5) under a namespace of the provider's own.

pub mod cdevents;
pub mod github;
pub mod gitlab;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{MAX_ATTRIBUTE_VALUE_CHARS, MAX_ATTRIBUTES, MAX_TEXT_CHARS};
use crate::pairing::PairingError;

/// What a delivery becomes.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Nothing to record (an event type or state deploytime does not track);
    /// the reason is told to the sender, which must not retry.
    Ignored(String),
    /// Store-call bodies, in the order they are to be stored.
    Events(Vec<Value>),
}

/// A delivery that claims to be of a handled kind but lacks what its mapping
/// needs (answered 422: the sender's payload is wrong, retrying will not help).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

impl HookError {
    fn missing(what: &str) -> Self {
        HookError(format!("the payload has no usable {what}"))
    }
}

/// Whether a refusal of the store only says that the event has nothing new to
/// tell: a second start of a deployment already started (GitHub's `queued`
/// then `in_progress`, or its `deployment` then `deployment_status`), or a
/// second finish of one already finished. A provider must not see those as
/// failed deliveries, or it retries them forever.
pub fn already_recorded(error: &PairingError) -> bool {
    matches!(
        error,
        PairingError::AlreadyStarted { .. } | PairingError::AlreadyFinished { .. }
    )
}

/// A name-based UUID under a provider's namespace, from the parts that
/// identify something at that provider. The parts are joined with a character
/// none of them can hold unescaped, so that two different lists never give
/// the same name.
pub(crate) fn derived_id(namespace: &Uuid, parts: &[&str]) -> Uuid {
    let name = parts
        .iter()
        .map(|p| p.replace('%', "%25").replace('\n', "%0A"))
        .collect::<Vec<_>>()
        .join("\n");
    Uuid::new_v5(namespace, name.as_bytes())
}

/// The string at a JSON pointer, if it is a non-empty string.
pub(crate) fn text<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// The value at a JSON pointer as text: a non-empty string, or a number
/// (providers' ids are numbers).
pub(crate) fn id_text(value: &Value, pointer: &str) -> Option<String> {
    match value.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An instant in the store call's form (RFC 3339, UTC).
pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Cuts a free-text field to what the store call accepts, on a character
/// boundary, so that a long ref or login is kept rather than refused.
pub(crate) fn bounded(value: &str, max_chars: usize) -> String {
    value.chars().take(max_chars).collect()
}

/// The body of one store call, built field by field.
#[derive(Debug, Default)]
pub(crate) struct StoreBody {
    fields: Map<String, Value>,
    attributes: BTreeMap<String, String>,
}

impl StoreBody {
    pub(crate) fn start(component: &str) -> Self {
        let mut body = StoreBody::default();
        body.set("component", component);
        body.set("phase", "start");
        body
    }

    pub(crate) fn finish(component: &str, status: &str) -> Self {
        let mut body = StoreBody::default();
        body.set("component", component);
        body.set("phase", "finish");
        body.set("status", status);
        body
    }

    pub(crate) fn set(&mut self, field: &str, value: &str) {
        self.fields
            .insert(field.to_owned(), Value::String(value.to_owned()));
    }

    /// A free-text field (`version`, `owner`), cut to the accepted length.
    pub(crate) fn set_text(&mut self, field: &str, value: Option<&str>) {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            self.set(field, &bounded(value, MAX_TEXT_CHARS));
        }
    }

    /// A field given as JSON (`commits`, `rollback`), passed on as it is: the
    /// store call's validation judges it.
    pub(crate) fn set_value(&mut self, field: &str, value: Value) {
        self.fields.insert(field.to_owned(), value);
    }

    /// An attribute, cut to the accepted length; beyond the accepted number
    /// of attributes, further ones are left out rather than refused.
    pub(crate) fn attribute(&mut self, name: &str, value: Option<&str>) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        if self.attributes.len() < MAX_ATTRIBUTES || self.attributes.contains_key(name) {
            self.attributes
                .insert(name.to_owned(), bounded(value, MAX_ATTRIBUTE_VALUE_CHARS));
        }
    }

    pub(crate) fn build(mut self) -> Value {
        if !self.attributes.is_empty() {
            let attributes = self
                .attributes
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            self.fields
                .insert("attributes".into(), Value::Object(attributes));
        }
        Value::Object(self.fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_do_not_collide_across_splits() {
        let ns = Uuid::from_u128(1);
        assert_eq!(derived_id(&ns, &["a", "b"]), derived_id(&ns, &["a", "b"]));
        assert_ne!(derived_id(&ns, &["a\nb"]), derived_id(&ns, &["a", "b"]));
        assert_ne!(derived_id(&ns, &["ab"]), derived_id(&ns, &["a", "b"]));
        assert_ne!(
            derived_id(&ns, &["a", "b"]),
            derived_id(&Uuid::from_u128(2), &["a", "b"])
        );
        assert_eq!(derived_id(&ns, &["x"]).get_version_num(), 5);
    }

    #[test]
    fn long_values_are_cut_on_character_boundaries() {
        let mut body = StoreBody::start("api");
        body.set_text("version", Some(&"é".repeat(300)));
        body.attribute("url", Some(&"u".repeat(1000)));
        let built = body.build();
        assert_eq!(
            built["version"].as_str().unwrap().chars().count(),
            MAX_TEXT_CHARS
        );
        assert_eq!(
            built["attributes"]["url"].as_str().unwrap().len(),
            MAX_ATTRIBUTE_VALUE_CHARS
        );
    }
}
