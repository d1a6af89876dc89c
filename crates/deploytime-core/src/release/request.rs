//! What a pipeline asks for when it registers a release: read from either of
//! the two accepted bodies, validated field by field (every mistake at once),
//! and fingerprinted so that a repeated call with different content is told
//! apart from a poll.

use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::event::{FieldError, ValidationErrors};
use crate::names::{Component, Environment};

/// A release is known by its project and its id within that project.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseKey {
    pub team_project: String,
    pub release_id: String,
}

impl std::fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.team_project, self.release_id)
    }
}

/// A validated request for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseRequest {
    pub key: ReleaseKey,
    pub release_name: String,
    pub component: Option<Component>,
    pub environment: Option<Environment>,
    pub version: Option<String>,
    /// Who asked (an e-mail address or a user name): they may not approve
    /// their own release unless the server allows it.
    pub requested_by: Option<String>,
    /// Approvals needed; `None`: every approver who may approve.
    pub required_approvals: Option<u32>,
    /// How long approvers have before the release expires.
    pub expires_in: Duration,
}

/// The limits of a release's fields.
pub mod limits {
    use std::time::Duration;

    pub const RELEASE_ID_CHARS: usize = 128;
    pub const TEAM_PROJECT_CHARS: usize = 128;
    pub const RELEASE_NAME_CHARS: usize = 256;
    pub const VERSION_CHARS: usize = 128;
    pub const REQUESTED_BY_CHARS: usize = 254;
    pub const MAX_REQUIRED_APPROVALS: u32 = 100;
    /// Three days: a weekend's pause does not expire a release asked for on Friday.
    pub const DEFAULT_EXPIRES_IN: Duration = Duration::from_secs(72 * 3600);
    /// Thirty days, GitHub's longest wait for a review.
    pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(30 * 24 * 3600);
    pub const MIN_EXPIRES_IN: Duration = Duration::from_secs(1);
}

/// The fields of each body, by the name the client uses.
const SNAKE_FIELDS: [&str; 9] = [
    "release_name",
    "release_id",
    "team_project",
    "component",
    "environment",
    "version",
    "requested_by",
    "required_approvals",
    "expires_in",
];
const PASCAL_FIELDS: [&str; 3] = ["ReleaseName", "ReleaseId", "TeamProject"];

/// A text of 1–`max` characters without control characters; `slash` says
/// whether `/` may appear (not in the parts of a release's URL).
fn text(field: &str, value: &Value, max: usize, slash: bool) -> Result<String, FieldError> {
    let Some(raw) = value.as_str() else {
        // Pipelines written against the original contract send numeric ids.
        if let Some(n) = value.as_u64().filter(|_| field == "ReleaseId") {
            return Ok(n.to_string());
        }
        return Err(FieldError::new(field, "must be a string"));
    };
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {chars})"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters (newlines, tabs, escapes)",
        ));
    }
    if !slash && trimmed.contains('/') {
        return Err(FieldError::new(
            field,
            "must not contain `/` (it is part of the release's URL)",
        ));
    }
    Ok(trimmed.to_owned())
}

/// `expires_in`: seconds as a number, or a duration such as `72h`, `90m`, `2d`.
fn duration(field: &str, value: &Value) -> Result<Duration, FieldError> {
    let parsed = match value {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| FieldError::new(field, "must be a whole number of seconds")),
        Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            FieldError::new(
                field,
                format!("must be a duration such as 72h, 90m or 2d ({e})"),
            )
        }),
        _ => Err(FieldError::new(
            field,
            "must be seconds or a duration such as 72h",
        )),
    }?;
    if parsed < limits::MIN_EXPIRES_IN || parsed > limits::MAX_EXPIRES_IN {
        return Err(FieldError::new(
            field,
            "must be between 1 second and 30 days",
        ));
    }
    Ok(parsed)
}

impl ReleaseRequest {
    /// Reads a request from either body: `{"release_name", "release_id",
    /// "team_project", …}` or the original contract's exact
    /// `{"ReleaseName", "ReleaseId", "TeamProject"}`. Unknown fields, and a
    /// body that mixes the two, are refused.
    pub fn from_json(body: &Value) -> Result<Self, ValidationErrors> {
        let Some(object) = body.as_object() else {
            return Err(ValidationErrors(vec![FieldError::new(
                "body",
                "must be a JSON object",
            )]));
        };
        let pascal = object.keys().any(|k| PASCAL_FIELDS.contains(&k.as_str()));
        let snake = object.keys().any(|k| SNAKE_FIELDS.contains(&k.as_str()));
        let mut errors = Vec::new();
        if pascal && snake {
            errors.push(FieldError::new(
                "body",
                "use either release_name/release_id/team_project or ReleaseName/ReleaseId/TeamProject, not both",
            ));
            return Err(ValidationErrors(errors));
        }
        let known: &[&str] = if pascal {
            &PASCAL_FIELDS
        } else {
            &SNAKE_FIELDS
        };
        for key in object.keys().filter(|k| !known.contains(&k.as_str())) {
            errors.push(FieldError::new(
                key.chars().take(64).collect::<String>(),
                "unknown field",
            ));
        }
        let names: [&str; 3] = if pascal {
            PASCAL_FIELDS
        } else {
            ["release_name", "release_id", "team_project"]
        };
        let mut required = |name: &str, max: usize, slash: bool| -> Option<String> {
            match object.get(name) {
                None | Some(Value::Null) => {
                    errors.push(FieldError::new(name, "is required"));
                    None
                }
                Some(v) => text(name, v, max, slash).map_err(|e| errors.push(e)).ok(),
            }
        };
        let release_name = required(names[0], limits::RELEASE_NAME_CHARS, true);
        let release_id = required(names[1], limits::RELEASE_ID_CHARS, false);
        let team_project = required(names[2], limits::TEAM_PROJECT_CHARS, false);
        let optional = |object: &Map<String, Value>, name: &str| {
            object.get(name).filter(|v| !v.is_null()).cloned()
        };
        let mut component = None;
        let mut environment = None;
        let mut version = None;
        let mut requested_by = None;
        let mut required_approvals = None;
        let mut expires_in = limits::DEFAULT_EXPIRES_IN;
        if !pascal {
            if let Some(v) = optional(object, "component") {
                match v.as_str().map(Component::parse) {
                    Some(Ok(c)) => component = Some(c),
                    Some(Err(e)) => errors.push(FieldError::new("component", e)),
                    None => errors.push(FieldError::new("component", "must be a string")),
                }
            }
            if let Some(v) = optional(object, "environment") {
                match v.as_str().map(Environment::parse) {
                    Some(Ok(e)) => environment = Some(e),
                    Some(Err(e)) => errors.push(FieldError::new("environment", e)),
                    None => errors.push(FieldError::new("environment", "must be a string")),
                }
            }
            if let Some(v) = optional(object, "version") {
                match text("version", &v, limits::VERSION_CHARS, true) {
                    Ok(t) => version = Some(t),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(v) = optional(object, "requested_by") {
                match text("requested_by", &v, limits::REQUESTED_BY_CHARS, true) {
                    Ok(t) => requested_by = Some(t),
                    Err(e) => errors.push(e),
                }
            }
            if let Some(v) = optional(object, "required_approvals") {
                match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if (1..=limits::MAX_REQUIRED_APPROVALS).contains(&n) => {
                        required_approvals = Some(n)
                    }
                    _ => errors.push(FieldError::new(
                        "required_approvals",
                        format!(
                            "must be a whole number from 1 to {}",
                            limits::MAX_REQUIRED_APPROVALS
                        ),
                    )),
                }
            }
            if let Some(v) = optional(object, "expires_in") {
                match duration("expires_in", &v) {
                    Ok(d) => expires_in = d,
                    Err(e) => errors.push(e),
                }
            }
        }
        match (release_name, release_id, team_project) {
            (Some(release_name), Some(release_id), Some(team_project)) if errors.is_empty() => {
                Ok(ReleaseRequest {
                    key: ReleaseKey {
                        team_project,
                        release_id,
                    },
                    release_name,
                    component,
                    environment,
                    version,
                    requested_by,
                    required_approvals,
                    expires_in,
                })
            }
            _ => Err(ValidationErrors(errors)),
        }
    }

    /// A digest of everything the request asks, to tell a poll (the same
    /// request again) from a different request under a known id.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::json!({
            "release_name": self.release_name,
            "component": self.component.as_ref().map(Component::as_str),
            "environment": self.environment.as_ref().map(Environment::as_str),
            "version": self.version,
            "requested_by": self.requested_by,
            "required_approvals": self.required_approvals,
            "expires_in": self.expires_in.as_secs(),
        });
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// Whether `other` is the same request, as far as a poll is concerned: a
    /// pipeline polling with the original contract's body (name, id and
    /// project only) polls a release registered with more fields.
    pub fn same_as(&self, stored_fingerprint: &str, stored_name: &str) -> bool {
        let minimal = self.component.is_none()
            && self.environment.is_none()
            && self.version.is_none()
            && self.requested_by.is_none()
            && self.required_approvals.is_none()
            && self.expires_in == limits::DEFAULT_EXPIRES_IN;
        self.fingerprint() == stored_fingerprint || (minimal && self.release_name == stored_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn both_bodies_read_the_same_release() {
        let pascal = ReleaseRequest::from_json(
            &json!({"ReleaseName": "Desafio-CD", "ReleaseId": "386", "TeamProject": "Devx"}),
        )
        .unwrap();
        let snake = ReleaseRequest::from_json(
            &json!({"release_name": "Desafio-CD", "release_id": "386", "team_project": "Devx"}),
        )
        .unwrap();
        assert_eq!(pascal, snake);
        assert_eq!(pascal.key.to_string(), "Devx/386");
        assert_eq!(pascal.expires_in, Duration::from_secs(72 * 3600));
        assert_eq!(pascal.required_approvals, None);
        let numeric = ReleaseRequest::from_json(
            &json!({"ReleaseName": "x", "ReleaseId": 386, "TeamProject": "Devx"}),
        )
        .unwrap();
        assert_eq!(numeric.key.release_id, "386");
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let errors = ReleaseRequest::from_json(&json!({
            "release_name": "",
            "release_id": "38\u{7}6",
            "team_project": "a/b",
            "required_approvals": 0,
            "expires_in": "forever",
            "colour": "red"
        }))
        .unwrap_err();
        let mut got = fields(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "colour",
                "expires_in",
                "release_id",
                "release_name",
                "required_approvals",
                "team_project"
            ]
        );
        let long = "x".repeat(257);
        let errors = ReleaseRequest::from_json(
            &json!({"ReleaseName": long, "ReleaseId": "1", "TeamProject": "p", "Colour": "red"}),
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["Colour", "ReleaseName"]);
        assert!(ReleaseRequest::from_json(&json!([1])).is_err());
        let mixed = ReleaseRequest::from_json(
            &json!({"ReleaseName": "a", "release_id": "1", "TeamProject": "p"}),
        )
        .unwrap_err();
        assert_eq!(fields(&mixed), ["body"]);
    }

    #[test]
    fn optional_fields_are_read_by_their_rules() {
        let request = ReleaseRequest::from_json(&json!({
            "release_name": "R", "release_id": "1", "team_project": "P",
            "component": "api", "environment": "production", "version": "1.2.3",
            "requested_by": "ana@example.com", "required_approvals": 2, "expires_in": "90m"
        }))
        .unwrap();
        assert_eq!(request.required_approvals, Some(2));
        assert_eq!(request.expires_in, Duration::from_secs(5400));
        assert_eq!(request.component.unwrap().as_str(), "api");
        let seconds = ReleaseRequest::from_json(&json!({
            "release_name": "R", "release_id": "1", "team_project": "P", "expires_in": 60
        }))
        .unwrap();
        assert_eq!(seconds.expires_in, Duration::from_secs(60));
        let too_long = ReleaseRequest::from_json(&json!({
            "release_name": "R", "release_id": "1", "team_project": "P", "expires_in": "31d"
        }));
        assert!(too_long.is_err());
    }

    #[test]
    fn a_poll_with_the_original_body_matches_a_fuller_registration() {
        let full = ReleaseRequest::from_json(&json!({
            "release_name": "R", "release_id": "1", "team_project": "P", "required_approvals": 1
        }))
        .unwrap();
        let poll = ReleaseRequest::from_json(
            &json!({"ReleaseName": "R", "ReleaseId": "1", "TeamProject": "P"}),
        )
        .unwrap();
        assert!(poll.same_as(&full.fingerprint(), "R"));
        assert!(full.same_as(&full.fingerprint(), "R"));
        let renamed = ReleaseRequest::from_json(
            &json!({"ReleaseName": "S", "ReleaseId": "1", "TeamProject": "P"}),
        )
        .unwrap();
        assert!(!renamed.same_as(&full.fingerprint(), "R"));
        let other_quorum = ReleaseRequest::from_json(&json!({
            "release_name": "R", "release_id": "1", "team_project": "P", "required_approvals": 2
        }))
        .unwrap();
        assert!(!other_quorum.same_as(&full.fingerprint(), "R"));
    }
}
