//! The event rules, from raw JSON or form fields to a validated event.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{Value, json};

use super::*;
use crate::time::format_rfc3339;

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
        let event = validate_json(json!({"component": "api", "phase": "finish", "status": status}))
            .unwrap();
        assert_eq!(event.kind.status(), Some(&expected));
    }
    assert!(Status::parse(&"x".repeat(65)).is_err());
    assert!(Status::parse("exit 2").is_err());
    assert!(Status::parse(&"x".repeat(64)).is_ok());
}

#[test]
fn unknown_fields_are_rejected_with_a_suggestion() {
    let err = validate_json(json!({"component": "api", "phase": "finish", "stauts": "success"}))
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
        validate_json(json!({"component": "api", "phase": "start", "version": "é".repeat(128)}))
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
    let base = json!({"component": "api", "phase": "start", "timestamp": "2026-11-22T10:00:00Z"});
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

#[test]
fn a_call_without_commits_keeps_the_fingerprint_it_had() {
    // The canonical form of calls stored before `commits` and `rollback`
    // existed, written out by hand: their replays must still match.
    let canonical = r#"{"component":"api","phase":"start","status":null,"environment":"production","version":null,"owner":null,"deployment_id":null,"timestamp":"2026-11-22T10:00:00.000000Z","attributes":null}"#;
    use sha2::Digest;
    let expected = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
    let event = validate_json(
        json!({"component": "api", "phase": "start", "timestamp": "2026-11-22T10:00:00Z"}),
    )
    .unwrap();
    assert_eq!(event.fingerprint, expected);
    let not_a_rollback = validate_json(json!({
        "component": "api", "phase": "start", "timestamp": "2026-11-22T10:00:00Z",
        "rollback": false, "commits": []
    }))
    .unwrap();
    assert_eq!(not_a_rollback.fingerprint, expected);
}

#[test]
fn commits_and_rollback_are_read_and_fingerprinted() {
    let body = json!({
        "component": "api", "phase": "finish", "status": "success", "rollback": true,
        "commits": [
            {"sha": "9FCEB02D0AE598E95DC970B74767F19372D61AF8", "committed_at": "2026-11-22T09:00:00Z"},
            {"sha": "3b18e51", "committed_at": "2026-11-22T08:30:00+01:00"}
        ]
    });
    let event = validate_json(body.clone()).unwrap();
    assert!(event.rollback);
    assert_eq!(event.commits.len(), 2);
    assert_eq!(
        event.commits[0].sha,
        "9fceb02d0ae598e95dc970b74767f19372d61af8"
    );
    let mut other = body.clone();
    other["commits"][1]["sha"] = json!("3b18e52");
    assert_ne!(
        validate_json(other).unwrap().fingerprint,
        event.fingerprint,
        "other commits are other content"
    );
    let mut not_rollback = body;
    not_rollback["rollback"] = json!(false);
    assert_ne!(
        validate_json(not_rollback).unwrap().fingerprint,
        event.fingerprint
    );
}

#[test]
fn bad_commits_and_rollback_are_named() {
    let err = validate_json(json!({
        "component": "api", "phase": "start", "rollback": "yes",
        "commits": [{"sha": "xyz", "committed_at": "2026-11-22T09:00:00Z", "author": "ann"}]
    }))
    .unwrap_err();
    assert_eq!(
        fields(&err),
        vec!["rollback", "commits[0].author", "commits[0].sha"]
    );
    let err =
        validate_json(json!({"component": "api", "phase": "start", "commits": "abc"})).unwrap_err();
    assert_eq!(fields(&err), vec!["commits"]);
    let form = EventInput::from_form(vec![
        ("component".to_owned(), "a".to_owned()),
        ("phase".to_owned(), "start".to_owned()),
        ("rollback".to_owned(), "true".to_owned()),
    ])
    .validate(now())
    .unwrap();
    assert!(form.rollback);
    let err = EventInput::from_form(vec![
        ("component".to_owned(), "a".to_owned()),
        ("phase".to_owned(), "start".to_owned()),
        ("commits".to_owned(), "abc".to_owned()),
    ])
    .validate(now())
    .unwrap_err();
    assert_eq!(fields(&err), vec!["commits"]);
}
