//! Reading the store call's body: its media type (JSON or a form, UTF-8), its
//! size (refused as soon as it is known to be too large), and its fields.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, web};
use deploytime_core::EventInput;
use futures_util::StreamExt;

use crate::http::error::ApiError;

/// Request bodies larger than this are refused with 413 before they are parsed.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

pub(crate) enum BodyFormat {
    Json,
    Form,
}

pub(crate) fn body_format(content_type: Option<&HeaderValue>) -> Result<BodyFormat, ApiError> {
    let unsupported = |given: &str| {
        ApiError::UnsupportedMediaType(format!(
            "send application/json or application/x-www-form-urlencoded (got {given})"
        ))
    };
    let Some(value) = content_type else {
        return Err(unsupported("no Content-Type"));
    };
    let value = value
        .to_str()
        .map_err(|_| unsupported("an unreadable Content-Type"))?;
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    for parameter in parts {
        if let Some((name, charset)) = parameter.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
            && !charset
                .trim()
                .trim_matches('"')
                .eq_ignore_ascii_case("utf-8")
        {
            return Err(ApiError::UnsupportedMediaType(format!(
                "bodies must be UTF-8 (got charset {})",
                charset.trim()
            )));
        }
    }
    match essence.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        e if e.starts_with("application/") && e.ends_with("+json") => Ok(BodyFormat::Json),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        _ => Err(unsupported(value)),
    }
}

/// Reads a store call's body by its content type into the fields the client
/// sent, before validation. Pure, so that it can be fuzzed without HTTP.
pub(crate) fn read_event_body(
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Result<EventInput, ApiError> {
    match body_format(content_type)? {
        BodyFormat::Json => {
            let value: serde_json::Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))?;
            Ok(EventInput::from_json(value)?)
        }
        BodyFormat::Form => {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
                ApiError::MalformedBody(format!("the body is not a valid form: {e}"))
            })?;
            Ok(EventInput::from_form(pairs))
        }
    }
}

/// Reads the body, refusing it as soon as it is known to be too large.
pub(crate) async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<web::BytesMut, ApiError> {
    read_body_up_to(req, payload, MAX_BODY_BYTES).await
}

/// Reads a body of at most `limit` bytes, refusing it as soon as it is known
/// to be larger (by its `Content-Length`, or while it streams in).
pub(crate) async fn read_body_up_to(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::MalformedBody(format!("could not read the body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    //! Hostile bodies, without HTTP: arbitrary content types and arbitrary bytes
    //! through `read_event_body` and validation never panic and are only ever
    //! refused with a 4xx problem. Bounded (proptest's 256 cases, or
    //! `PROPTEST_CASES`), so it runs in CI.

    use actix_web::ResponseError;
    use proptest::prelude::*;

    use super::*;

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
}
