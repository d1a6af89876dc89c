//! Query parameters shared by the listings, the exports and the statistics:
//! names, time windows, states, limits and opaque cursors, each validated with a
//! field error that names the parameter.

use chrono::{DateTime, Utc};
use deploytime_core::{Component, Environment, FieldError, ReportedState, ValidationErrors};

use deploytime_core::wire::Page;

use crate::db::queries::{Cursor, Listed};
use crate::http::error::ApiError;

pub(crate) const DEFAULT_LIMIT: i64 = 50;
pub(crate) const MAX_LIMIT: i64 = 1000;

/// Collects every parameter error of a request, to report them together.
#[derive(Default)]
pub(crate) struct ParamErrors(Vec<FieldError>);

impl ParamErrors {
    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::InvalidQuery(ValidationErrors(self.0)))
        }
    }

    pub fn component(&mut self, value: Option<String>) -> Option<Component> {
        let value = value.filter(|v| !v.is_empty())?;
        Component::try_from(value)
            .map_err(|message| self.push("component", message))
            .ok()
    }

    /// One environment or several, comma-separated (a comma is never part of
    /// a name); none when absent or empty.
    pub fn environments(&mut self, value: Option<String>) -> Vec<Environment> {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return Vec::new();
        };
        let mut environments = Vec::new();
        for name in value.split(',') {
            match Environment::parse(name) {
                Ok(environment) if !environments.contains(&environment) => {
                    environments.push(environment)
                }
                Ok(_) => {}
                Err(message) => {
                    self.push("environment", format!("{message} (in {name:?})"));
                    return Vec::new();
                }
            }
        }
        environments
    }

    /// An RFC 3339 instant.
    pub fn instant(&mut self, field: &str, value: Option<String>) -> Option<DateTime<Utc>> {
        let value = value.filter(|v| !v.is_empty())?;
        match DateTime::parse_from_rfc3339(&value) {
            Ok(at) => Some(at.to_utc()),
            Err(_) => {
                self.push(
                    field,
                    format!("must be an RFC 3339 date-time with an offset, e.g. 2026-11-01T00:00:00Z (got {value:?})"),
                );
                None
            }
        }
    }

    pub fn limit(&mut self, value: Option<i64>) -> i64 {
        let limit = value.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            self.push(
                "limit",
                format!("must be between 1 and {MAX_LIMIT} (got {limit})"),
            );
        }
        limit
    }

    pub fn state(&mut self, value: Option<String>) -> Option<ReportedState> {
        let value = value.filter(|v| !v.is_empty())?;
        let state = ReportedState::parse(&value);
        if state.is_none() {
            self.push(
                "state",
                format!(
                    "must be running, succeeded, failed, cancelled or abandoned (got {value:?})"
                ),
            );
        }
        state
    }

    pub fn cursor(&mut self, value: Option<String>) -> Option<Cursor> {
        let value = value.filter(|v| !v.is_empty())?;
        let cursor = decode_cursor(&value);
        if cursor.is_none() {
            self.push(
                "cursor",
                "is not a cursor this server issued; pass next_cursor back unchanged",
            );
        }
        cursor
    }
}

/// A cursor is the position of the last row of a page: its time and its
/// sequence number, `AT_SEQ`. Every string of that form is a position, so the
/// OpenAPI description states exactly what the server accepts
/// ([`CURSOR_PATTERN`]); clients pass `next_cursor` back unchanged.
pub(crate) fn encode_cursor(cursor: Cursor) -> String {
    format!("{}_{}", cursor.at, cursor.seq)
}

/// The cursors the server reads: at most 18 digits each, so both fit an i64.
pub(crate) const CURSOR_PATTERN: &str = "^$|^-?[0-9]{1,18}_[0-9]{1,18}$";

fn decode_cursor(value: &str) -> Option<Cursor> {
    let (at, seq) = value.split_once('_')?;
    let digits =
        |text: &str| (1..=18).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    let at_digits = at.strip_prefix('-').unwrap_or(at);
    if !digits(at_digits) || !digits(seq) {
        return None;
    }
    Some(Cursor {
        at: at.parse().ok()?,
        seq: seq.parse().ok()?,
    })
}

/// Turns `limit + 1` fetched items into a page and the cursor of the next one.
pub(crate) fn page<T, V>(mut items: Vec<Listed<T>>, limit: i64, view: impl Fn(T) -> V) -> Page<V> {
    let more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(0));
    let next_cursor = more
        .then(|| items.last().map(|listed| encode_cursor(listed.cursor)))
        .flatten();
    Page {
        items: items.into_iter().map(|listed| view(listed.item)).collect(),
        next_cursor,
    }
}

/// Whether the client asked for CSV, by `format=csv` or `Accept: text/csv`.
pub(crate) fn wants_csv(
    req: &actix_web::HttpRequest,
    format: Option<&str>,
) -> Result<bool, ApiError> {
    match format {
        Some("csv") => return Ok(true),
        Some("json") => return Ok(false),
        Some(other) if !other.is_empty() => {
            return Err(ApiError::InvalidQuery(ValidationErrors(vec![
                FieldError::new("format", format!("must be json or csv (got {other:?})")),
            ])));
        }
        _ => {}
    }
    Ok(req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv")))
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let cursor = Cursor { at: -5, seq: 42 };
        assert_eq!(decode_cursor(&encode_cursor(cursor)), Some(cursor));
        assert_eq!(decode_cursor("nonsense"), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("v1:1")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("v1:1:2:3")), None);
        assert_eq!(decode_cursor(&URL_SAFE_NO_PAD.encode("v2:1:2")), None);
        for bad in [
            "1_",
            "_2",
            "1_-2",
            "1__2",
            "a_2",
            "1234567890123456789_1",
            "+1_2",
        ] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
        let pattern_bound = "-999999999999999999_999999999999999999";
        assert!(
            decode_cursor(pattern_bound).is_some(),
            "the longest the pattern allows fits"
        );
    }
}
