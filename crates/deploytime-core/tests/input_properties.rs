//! Hostile-input properties of the store call's reading and validation: for
//! arbitrary JSON documents and arbitrary form fields, `EventInput::from_json`,
//! `from_form`, `with_idempotency_key` and `validate` never panic, always report
//! what is wrong by field, and whatever they accept keeps every invariant of a
//! valid event. Bounded like every proptest (256 cases per property, or
//! `PROPTEST_CASES`), so it runs in CI; a deeper run:
//!
//!     PROPTEST_CASES=100000 cargo test -p deploytime-core --test input_properties

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

use chrono::{DateTime, TimeZone, Utc};
use deploytime_core::event::FIELDS;
use deploytime_core::{Component, Environment, EventInput, EventKind, NewEvent, ValidationErrors};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names: the real ones most of the time, near misses and noise otherwise.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => prop::sample::select(&["stauts", "Component", "phase ", "attributes[x]", "", "event-id"][..])
            .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Text that reaches the interesting branches: valid values, boundaries, and
/// arbitrary Unicode (control characters, NULs, surrogates' neighbours).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(&[
            "start", "finish", "success", "cancelled", "exit-2", "api", "web/front:v2",
            "production", "staging", "", " ", "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10",
            "not-a-uuid", "2026-11-01T00:00:00Z", "2026-11-01T00:00:00+02:00",
            "9999-12-31T23:59:59.999999Z", "0000-01-01T00:00:00Z", "2026-13-01T00:00:00Z",
            "2026-11-01 00:00:00", "+002026-11-01T00:00:00Z",
        ][..]).prop_map(str::to_owned),
        2 => "[A-Za-z0-9._/:-]{0,140}",
        2 => ".{0,40}",
        1 => prop::collection::vec(any::<char>(), 0..600).prop_map(|c| c.into_iter().collect()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(prop_oneof![key(), text()], inner, 0..40)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Mostly objects with real field names, so that validation is reached.
fn document() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::collection::btree_map(key(), json_value(), 0..12)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        1 => json_value(),
    ]
}

fn form_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        4 => key(),
        2 => "[a-z]{0,70}".prop_map(|n| format!("attributes[{n}]")),
        1 => "[a-z]{0,8}".prop_map(|n| format!("attributes.{n}")),
    ];
    prop::collection::vec((name, text()), 0..40)
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
}

/// What every accepted event must be, whatever was sent.
fn assert_valid(event: &NewEvent) {
    assert!(Component::parse(event.component.as_str()).is_ok());
    assert!(Environment::parse(event.environment.as_str()).is_ok());
    match &event.kind {
        EventKind::Start => {}
        EventKind::Finish(status) => assert!(!status.as_str().is_empty()),
    }
    assert!(event.attributes.len() <= 32);
    for (name, value) in &event.attributes {
        assert!((1..=64).contains(&name.chars().count()), "{name:?}");
        assert!(value.chars().count() <= 512);
    }
    for text in [&event.version, &event.owner].into_iter().flatten() {
        assert!(text.chars().count() <= 128);
        assert!(!text.chars().any(char::is_control), "{text:?}");
    }
    assert!(event.occurred_at <= now() + chrono::Duration::minutes(5));
    assert_eq!(event.fingerprint.len(), 64);
    assert!(event.fingerprint.chars().all(|c| c.is_ascii_hexdigit()));
}

fn assert_reported(errors: &ValidationErrors) {
    assert!(!errors.0.is_empty(), "an error without a field");
    for error in &errors.0 {
        assert!(!error.message.is_empty(), "{error:?}");
    }
    assert!(!errors.to_string().is_empty());
}

/// Validates twice: the outcome, the fingerprint included, must not depend on
/// anything but the input and the clock.
fn check(input: EventInput, idempotency_key: Option<&str>) {
    let input = match input.with_idempotency_key(idempotency_key) {
        Ok(input) => input,
        Err(errors) => return assert_reported(&errors),
    };
    let again = input.clone().validate(now());
    match input.validate(now()) {
        Ok(event) => {
            assert_valid(&event);
            assert_eq!(Ok(event), again);
        }
        Err(errors) => {
            assert_reported(&errors);
            assert_eq!(Err(errors), again);
        }
    }
}

proptest! {
    #[test]
    fn any_json_document_is_read_and_validated_without_panicking(
        doc in document(),
        header in prop::option::of(text()),
    ) {
        match EventInput::from_json(doc.clone()) {
            Ok(input) => check(input, header.as_deref()),
            Err(errors) => {
                assert_reported(&errors);
                prop_assert!(!doc.is_object());
            }
        }
    }

    #[test]
    fn any_form_is_read_and_validated_without_panicking(
        pairs in form_pairs(),
        header in prop::option::of(text()),
    ) {
        check(EventInput::from_form(pairs), header.as_deref());
    }

    #[test]
    fn any_bytes_as_json_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            && let Ok(input) = EventInput::from_json(value)
        {
            check(input, None);
        }
    }

    #[test]
    fn a_well_formed_event_is_accepted_whatever_else_it_carries(
        component in "[a-z][a-z0-9._/:-]{0,30}",
        finish in prop::option::of(prop::sample::select(&["success", "cancelled", "E4031"][..])),
        attributes in prop::collection::btree_map("[a-z]{1,10}", ".{0,40}", 0..8),
    ) {
        let mut doc = serde_json::json!({"component": component, "attributes": attributes});
        match finish {
            Some(status) => {
                doc["phase"] = "finish".into();
                doc["status"] = status.into();
            }
            None => doc["phase"] = "start".into(),
        }
        let event = EventInput::from_json(doc).unwrap().validate(now()).unwrap();
        assert_valid(&event);
        prop_assert_eq!(event.component.as_str(), component.as_str());
    }
}
