//! Hostile bodies for the store call, without HTTP: arbitrary content types and
//! arbitrary bytes through `read_event_body` and validation never panic and are
//! only ever refused with a 4xx problem. Bounded (proptest's 256 cases, or
//! `PROPTEST_CASES`), so it runs in CI.

use actix_web::ResponseError;
use actix_web::http::header::HeaderValue;
use deploytime_server::routes::events::read_event_body;
use proptest::prelude::*;

fn content_type() -> impl Strategy<Value = Option<HeaderValue>> {
    let given = prop_oneof![
        4 => prop::sample::select(&[
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=\"UTF-8\"",
            "application/json; charset=latin1",
            "application/vnd.deploytime+json",
            "application/x-www-form-urlencoded",
            "APPLICATION/X-WWW-FORM-URLENCODED; charset=utf-8",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/json;;;charset",
            "",
        ][..])
        .prop_map(|v| v.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ];
    prop::option::of(given.prop_filter_map("a header value", |bytes| {
        HeaderValue::from_bytes(&bytes).ok()
    }))
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => prop::collection::vec(any::<u8>(), 0..1024),
        2 => ".{0,200}".prop_map(String::into_bytes),
        2 => prop::collection::btree_map(
            prop::sample::select(&[
                "component", "phase", "status", "environment", "version", "owner",
                "deployment_id", "event_id", "timestamp", "attributes", "attributes[a]", "x",
            ][..]),
            ".{0,40}",
            0..10,
        )
        .prop_map(|fields| serde_urlencoded::to_string(&fields).unwrap().into_bytes()),
        2 => prop::collection::btree_map("[a-z_]{0,12}", ".{0,40}", 0..10)
            .prop_map(|fields| serde_json::to_vec(&fields).unwrap()),
    ]
}

proptest! {
    #[test]
    fn any_body_is_read_or_refused_with_a_4xx(
        content_type in content_type(),
        body in body(),
    ) {
        match read_event_body(content_type.as_ref(), &body) {
            Ok(input) => {
                if let Err(errors) = input.validate(chrono::Utc::now()) {
                    prop_assert!(!errors.0.is_empty());
                }
            }
            Err(error) => {
                let status = error.status_code().as_u16();
                prop_assert!(matches!(status, 400 | 415 | 422), "{status}: {error}");
                // Every refusal is a problem body.
                let response = error.error_response();
                prop_assert_eq!(
                    response.headers().get("content-type").unwrap(),
                    "application/problem+json"
                );
            }
        }
    }
}
