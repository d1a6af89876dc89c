//! The CloudEvents v1.0 HTTP protocol binding, as far as deploytime reads it:
//! binary mode (attributes in `ce-*` headers, the data as the body), structured
//! mode (`application/cloudevents+json`, one event as a JSON object) and batch
//! mode (`application/cloudevents-batch+json`, an array of them).
//!
//! Read with serde_json rather than the `cloudevents-sdk` crate: its actix
//! integration covers binary and structured mode but not batch mode, and reads
//! the body through its own extractor, whereas this endpoint reads it once,
//! within its 1 MiB limit, like the other hook endpoints.

use actix_web::http::header::{self, HeaderMap};
use base64::Engine;
use serde_json::Value;

use crate::http::error::ApiError;

/// The most events one batch may carry: each is a store call.
pub(crate) const MAX_BATCH_EVENTS: usize = 100;

/// One CloudEvent as read from a request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ReceivedEvent {
    pub id: String,
    pub source: String,
    pub kind: String,
    pub time: Option<String>,
    pub data: Value,
}

/// The CloudEvents of a request, in whichever mode it was sent.
pub(crate) fn read(headers: &HeaderMap, body: &[u8]) -> Result<Vec<ReceivedEvent>, ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/cloudevents+json") => Ok(vec![structured(json(body)?, "the body")?]),
        Some("application/cloudevents-batch+json") => {
            let Value::Array(events) = json(body)? else {
                return Err(ApiError::MalformedBody(
                    "a batch must be a JSON array of CloudEvents".into(),
                ));
            };
            if events.len() > MAX_BATCH_EVENTS {
                return Err(ApiError::Unprocessable(format!(
                    "a batch may carry at most {MAX_BATCH_EVENTS} events (got {})",
                    events.len()
                )));
            }
            events
                .into_iter()
                .enumerate()
                .map(|(i, event)| structured(event, &format!("event {i} of the batch")))
                .collect()
        }
        _ if headers.contains_key("ce-specversion") => Ok(vec![binary(headers, body)?]),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "send a CloudEvent: application/cloudevents+json, application/cloudevents-batch+json, \
             or the data with ce-specversion, ce-id, ce-source and ce-type headers (got {})",
            other.unwrap_or("no Content-Type")
        ))),
    }
}

fn json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::MalformedBody(format!("the body is not valid JSON: {e}")))
}

fn check_version(version: Option<&str>, what: &str) -> Result<(), ApiError> {
    match version {
        Some("1.0") => Ok(()),
        Some(other) => Err(ApiError::MalformedBody(format!(
            "{what}: specversion must be 1.0 (got {other:?})"
        ))),
        None => Err(ApiError::MalformedBody(format!(
            "{what}: specversion is missing"
        ))),
    }
}

fn required(value: Option<&str>, attribute: &str, what: &str) -> Result<String, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::MalformedBody(format!("{what}: the {attribute} attribute is missing"))
        })
}

fn structured(event: Value, what: &str) -> Result<ReceivedEvent, ApiError> {
    let Value::Object(mut event) = event else {
        return Err(ApiError::MalformedBody(format!(
            "{what} must be a JSON object"
        )));
    };
    let attribute = |name: &str| event.get(name).and_then(Value::as_str);
    check_version(attribute("specversion"), what)?;
    let id = required(attribute("id"), "id", what)?;
    let source = required(attribute("source"), "source", what)?;
    let kind = required(attribute("type"), "type", what)?;
    let time = attribute("time").map(str::to_owned);
    let data = match (event.remove("data"), event.remove("data_base64")) {
        // JSON data is carried as JSON; a sender that wrote it as a string
        // of JSON is read too.
        (Some(Value::String(text)), None) => serde_json::from_str(&text).map_err(|e| {
            ApiError::MalformedBody(format!("{what}: data is not a CDEvent in JSON: {e}"))
        })?,
        (Some(data), None) => data,
        (None, Some(Value::String(encoded))) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|e| {
                    ApiError::MalformedBody(format!("{what}: data_base64 is not base64: {e}"))
                })?;
            serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::MalformedBody(format!(
                    "{what}: data_base64 is not a CDEvent in JSON: {e}"
                ))
            })?
        }
        (None, None) => Value::Null,
        _ => {
            return Err(ApiError::MalformedBody(format!(
                "{what}: give data or data_base64, not both"
            )));
        }
    };
    Ok(ReceivedEvent {
        id,
        source,
        kind,
        time,
        data,
    })
}

fn binary(headers: &HeaderMap, body: &[u8]) -> Result<ReceivedEvent, ApiError> {
    let what = "the ce- headers";
    let attribute = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    check_version(attribute("ce-specversion"), what)?;
    Ok(ReceivedEvent {
        id: required(attribute("ce-id"), "ce-id", what)?,
        source: required(attribute("ce-source"), "ce-source", what)?,
        kind: required(attribute("ce-type"), "ce-type", what)?,
        time: attribute("ce-time").map(str::to_owned),
        data: if body.is_empty() {
            Value::Null
        } else {
            json(body)?
        },
    })
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};
    use serde_json::json;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_three_modes_read_the_same_event() {
        let data = json!({"context": {"id": "1"}});
        let binary = read(
            &headers(&[
                ("content-type", "application/json"),
                ("ce-specversion", "1.0"),
                ("ce-id", "1"),
                ("ce-source", "/s"),
                ("ce-type", "t"),
            ]),
            data.to_string().as_bytes(),
        )
        .unwrap();
        let envelope = json!({"specversion": "1.0", "id": "1", "source": "/s", "type": "t",
                              "datacontenttype": "application/json", "data": data});
        let structured = read(
            &headers(&[(
                "content-type",
                "application/cloudevents+json; charset=utf-8",
            )]),
            envelope.to_string().as_bytes(),
        )
        .unwrap();
        let batch = read(
            &headers(&[("content-type", "application/cloudevents-batch+json")]),
            json!([envelope]).to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(binary, structured);
        assert_eq!(structured, batch);
        assert_eq!(binary[0].data, data);
    }

    #[test]
    fn what_is_missing_is_named() {
        let refused = |pairs: &[(&str, &str)], body: &str| {
            read(&headers(pairs), body.as_bytes())
                .unwrap_err()
                .to_string()
        };
        let structured = [("content-type", "application/cloudevents+json")];
        assert!(
            refused(&structured, r#"{"specversion":"1.0","id":"1","type":"t"}"#).contains("source")
        );
        assert!(
            refused(
                &structured,
                r#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#
            )
            .contains("1.0")
        );
        assert!(refused(&structured, "[").contains("JSON"));
        assert!(refused(&[("content-type", "application/json")], "{}").contains("CloudEvent"));
        let batch = [("content-type", "application/cloudevents-batch+json")];
        assert!(refused(&batch, "{}").contains("array"));
        let many = format!("[{}]", vec!["{}"; MAX_BATCH_EVENTS + 1].join(","));
        assert!(refused(&batch, &many).contains("at most"));
    }
}
