//! Incidents: a component in an environment was broken from `started_at` until
//! `resolved_at`. How an opening call and a resolving (or correcting) call are
//! read and validated (every mistake at once), when a retried opening is the
//! same call, whether a cause deployment fits, and the incident-based time to
//! restore the statistics report beside the failure-streak figure.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::dora::{self, Level};
use crate::event::{FieldError, ValidationErrors, checked_instant};
use crate::names::{Component, Environment};
use crate::stats::nearest_rank;
use crate::time::{format_rfc3339, micros_to_seconds, to_micros, truncate_to_micros};

/// The fields an opening call accepts, in the order they are documented.
pub const FIELDS: &[&str] = &[
    "component",
    "environment",
    "started_at",
    "resolved_at",
    "title",
    "summary",
    "cause_deployment_id",
    "incident_id",
];
/// The fields a `PATCH` accepts.
pub const CHANGE_FIELDS: &[&str] = &[
    "resolved_at",
    "resolved",
    "title",
    "summary",
    "cause_deployment_id",
];
/// The longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 256;
/// The longest summary, in characters.
pub const MAX_SUMMARY_CHARS: usize = 4096;

/// The definition of the incident-based time to restore, as the statistics
/// name it.
pub const TIME_TO_RESTORE_DEFINITION: &str = "incidents started in the window: resolved_at − started_at; unresolved incidents are counted, not averaged";

/// Whether an incident is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum IncidentState {
    Open,
    Resolved,
}

impl IncidentState {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "open" => Some(IncidentState::Open),
            "resolved" => Some(IncidentState::Resolved),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Resolved => "resolved",
        }
    }
}

/// An incident as it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: Uuid,
    pub component: Component,
    pub environment: Environment,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub cause_deployment_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl Incident {
    pub fn state(&self) -> IncidentState {
        if self.resolved_at.is_some() {
            IncidentState::Resolved
        } else {
            IncidentState::Open
        }
    }

    /// How long it took to restore, in microseconds, once resolved.
    pub fn restore_time_us(&self) -> Option<i64> {
        self.resolved_at
            .map(|at| to_micros(at) - to_micros(self.started_at))
    }
}

/// A validated opening call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIncident {
    /// The client's id, for idempotent retries; the server draws one otherwise.
    pub incident_id: Option<Uuid>,
    pub component: Component,
    pub environment: Environment,
    pub started_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub cause_deployment_id: Option<Uuid>,
    /// What the call asked, to tell a retry from another incident under the
    /// same id. A default (`started_at` absent) is fingerprinted as absent, so
    /// a retry that leaves it out again is the same call.
    pub fingerprint: String,
}

impl NewIncident {
    /// The incident this call opens, under `id`.
    pub fn into_incident(self, id: Uuid) -> Incident {
        Incident {
            id,
            component: self.component,
            environment: self.environment,
            title: self.title,
            summary: self.summary,
            cause_deployment_id: self.cause_deployment_id,
            started_at: self.started_at,
            resolved_at: self.resolved_at,
        }
    }
}

fn unknown_field(unknown: &str, accepted: &[&str]) -> FieldError {
    let closest = accepted
        .iter()
        .map(|f| (strsim::damerau_levenshtein(unknown, f), *f))
        .min();
    let message = match closest {
        Some((distance, field)) if distance <= 2 => {
            format!("unknown field; did you mean `{field}`?")
        }
        _ => format!("unknown field; accepted fields are {}", accepted.join(", ")),
    };
    FieldError::new(unknown.chars().take(64).collect::<String>(), message)
}

fn object(body: Value) -> Result<Map<String, Value>, ValidationErrors> {
    match body {
        Value::Object(object) => Ok(object),
        _ => Err(ValidationErrors(vec![FieldError::new(
            "(body)",
            "must be a JSON object",
        )])),
    }
}

/// A string field; `null` and `""` count as absent.
fn string<'a>(field: &str, value: &'a Value, errors: &mut Vec<FieldError>) -> Option<&'a str> {
    match value {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s),
        _ => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// A text of at most `max` characters without control characters.
fn text(field: &str, value: &str, max: usize) -> Result<String, FieldError> {
    let chars = value.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters (got {chars})"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters (newlines, tabs, escapes)",
        ));
    }
    Ok(value.to_owned())
}

fn uuid(field: &str, value: &str) -> Result<Uuid, FieldError> {
    match Uuid::parse_str(value) {
        Ok(id) if !id.is_nil() => Ok(id),
        Ok(_) => Err(FieldError::new(field, "must not be the nil UUID")),
        Err(_) => Err(FieldError::new(
            field,
            format!("must be a UUID, e.g. 0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10 (got {value:?})"),
        )),
    }
}

fn resolved_before_started(started_at: DateTime<Utc>) -> FieldError {
    FieldError::new(
        "resolved_at",
        format!(
            "must not be earlier than the incident's started_at ({})",
            format_rfc3339(started_at)
        ),
    )
}

impl NewIncident {
    /// Reads and validates an opening call's JSON body. `now` is the server's
    /// clock: the default `started_at` and the bound on future times.
    pub fn from_json(body: Value, now: DateTime<Utc>) -> Result<Self, ValidationErrors> {
        let now = truncate_to_micros(now);
        let object = object(body)?;
        let mut errors = Vec::new();
        for key in object.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
            errors.push(unknown_field(key, FIELDS));
        }
        let field = |name: &str| object.get(name).unwrap_or(&Value::Null);
        let component = match string("component", field("component"), &mut errors) {
            None if errors.iter().any(|e| e.field == "component") => None,
            None => {
                errors.push(FieldError::new("component", "is required"));
                None
            }
            Some(c) => Component::parse(c)
                .map_err(|m| errors.push(FieldError::new("component", m)))
                .ok(),
        };
        let environment = match string("environment", field("environment"), &mut errors) {
            None => Some(Environment::default_environment()),
            Some(e) => Environment::parse(e)
                .map_err(|m| errors.push(FieldError::new("environment", m)))
                .ok(),
        };
        let given_start = string("started_at", field("started_at"), &mut errors).and_then(|t| {
            checked_instant("started_at", t, now)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let resolved_at = string("resolved_at", field("resolved_at"), &mut errors).and_then(|t| {
            checked_instant("resolved_at", t, now)
                .map_err(|e| errors.push(e))
                .ok()
        });
        let started_at = given_start.unwrap_or(now);
        if let Some(resolved) = resolved_at
            && resolved < started_at
        {
            errors.push(resolved_before_started(started_at));
        }
        let mut optional_text = |name: &str, max: usize| {
            string(name, field(name), &mut errors)
                .map(|t| text(name, t, max))
                .transpose()
                .unwrap_or_else(|e| {
                    errors.push(e);
                    None
                })
        };
        let title = optional_text("title", MAX_TITLE_CHARS);
        let summary = optional_text("summary", MAX_SUMMARY_CHARS);
        let mut optional_uuid = |name: &str| {
            string(name, field(name), &mut errors)
                .map(|t| uuid(name, t))
                .transpose()
                .unwrap_or_else(|e| {
                    errors.push(e);
                    None
                })
        };
        let cause_deployment_id = optional_uuid("cause_deployment_id");
        let incident_id = optional_uuid("incident_id");
        match (component, environment) {
            (Some(component), Some(environment)) if errors.is_empty() => {
                let canonical = serde_json::json!({
                    "component": component.as_str(),
                    "environment": environment.as_str(),
                    "started_at": given_start.map(to_micros),
                    "resolved_at": resolved_at.map(to_micros),
                    "title": title,
                    "summary": summary,
                    "cause_deployment_id": cause_deployment_id,
                });
                Ok(NewIncident {
                    incident_id,
                    component,
                    environment,
                    started_at,
                    resolved_at,
                    title,
                    summary,
                    cause_deployment_id,
                    fingerprint: hex::encode(Sha256::digest(canonical.to_string().as_bytes())),
                })
            }
            _ => Err(ValidationErrors(errors)),
        }
    }
}

/// Whether a cause deployment fits the incident: it must exist (`found` is its
/// component and environment, `None` when there is no such deployment) and be
/// of the incident's component and environment.
pub fn check_cause(
    component: &Component,
    environment: &Environment,
    cause: Uuid,
    found: Option<(&str, &str)>,
) -> Result<(), ValidationErrors> {
    let refuse = |message: String| {
        Err(ValidationErrors(vec![FieldError::new(
            "cause_deployment_id",
            message,
        )]))
    };
    match found {
        None => refuse(format!("no deployment with id {cause} is recorded")),
        Some((c, e)) if c == component.as_str() && e == environment.as_str() => Ok(()),
        Some((c, e)) => refuse(format!(
            "deployment {cause} is of component {c} in environment {e}, not of the incident's component {component} in environment {environment}"
        )),
    }
}

/// A change of an optional field: set it, or clear it (`null` or `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit<T> {
    Set(T),
    Clear,
}

impl<T: Clone> Edit<T> {
    fn apply(&self) -> Option<T> {
        match self {
            Edit::Set(value) => Some(value.clone()),
            Edit::Clear => None,
        }
    }
}

/// How a `PATCH` resolves an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// At this time (`resolved_at`).
    At(DateTime<Utc>),
    /// Now (`"resolved": true`), the server's clock when the call was read; an
    /// incident resolved already keeps its time.
    Now(DateTime<Utc>),
}

/// A validated `PATCH`: resolve, and correct the title, summary or cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentChange {
    pub resolve: Option<Resolve>,
    pub title: Option<Edit<String>>,
    pub summary: Option<Edit<String>>,
    pub cause_deployment_id: Option<Edit<Uuid>>,
}

/// Why a valid change cannot be applied to this incident.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeRefused {
    /// A rule between the change and the incident (resolved before started).
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// Resolved already, at another time.
    #[error(
        "incident {id} is resolved already, at {}; it is not resolved again at {}",
        format_rfc3339(*resolved_at),
        format_rfc3339(*asked)
    )]
    ResolvedOtherwise {
        id: Uuid,
        resolved_at: DateTime<Utc>,
        asked: DateTime<Utc>,
    },
}

impl IncidentChange {
    /// Reads and validates a `PATCH` body; `now` is the server's clock.
    pub fn from_json(body: Value, now: DateTime<Utc>) -> Result<Self, ValidationErrors> {
        let now = truncate_to_micros(now);
        let object = object(body)?;
        let mut errors = Vec::new();
        for key in object
            .keys()
            .filter(|k| !CHANGE_FIELDS.contains(&k.as_str()))
        {
            errors.push(unknown_field(key, CHANGE_FIELDS));
        }
        let mut resolve = match object.get("resolved_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => checked_instant("resolved_at", t, now)
                .map(Resolve::At)
                .map_err(|e| errors.push(e))
                .ok(),
            Some(_) => {
                errors.push(FieldError::new(
                    "resolved_at",
                    "must be an RFC 3339 date-time with an offset, e.g. 2026-11-22T10:15:00Z",
                ));
                None
            }
        };
        match object.get("resolved") {
            None | Some(Value::Null) => {}
            Some(Value::Bool(true)) if object.get("resolved_at").is_some_and(|v| !v.is_null()) => {
                errors.push(FieldError::new(
                    "resolved",
                    "give resolved_at or resolved, not both",
                ));
                resolve = None;
            }
            Some(Value::Bool(true)) => resolve = Some(Resolve::Now(now)),
            Some(Value::Bool(false)) => errors.push(FieldError::new(
                "resolved",
                "only `true` is accepted: a resolved incident is not reopened; open a new one",
            )),
            Some(_) => errors.push(FieldError::new("resolved", "must be `true`")),
        }
        let edit_text = |name: &str, max: usize, errors: &mut Vec<FieldError>| {
            let value = object.get(name)?;
            match value {
                Value::Null => Some(Edit::Clear),
                Value::String(s) if s.is_empty() => Some(Edit::Clear),
                Value::String(s) => text(name, s, max)
                    .map(Edit::Set)
                    .map_err(|e| errors.push(e))
                    .ok(),
                _ => {
                    errors.push(FieldError::new(name, "must be a string or null"));
                    None
                }
            }
        };
        let title = edit_text("title", MAX_TITLE_CHARS, &mut errors);
        let summary = edit_text("summary", MAX_SUMMARY_CHARS, &mut errors);
        let cause_deployment_id = match object.get("cause_deployment_id") {
            None => None,
            Some(Value::Null) => Some(Edit::Clear),
            Some(Value::String(s)) if s.is_empty() => Some(Edit::Clear),
            Some(Value::String(s)) => uuid("cause_deployment_id", s)
                .map(Edit::Set)
                .map_err(|e| errors.push(e))
                .ok(),
            Some(_) => {
                errors.push(FieldError::new(
                    "cause_deployment_id",
                    "must be a UUID or null",
                ));
                None
            }
        };
        let change = IncidentChange {
            resolve,
            title,
            summary,
            cause_deployment_id,
        };
        if errors.is_empty() && change.changes_nothing() {
            errors.push(FieldError::new(
                "(body)",
                "nothing to change: give resolved_at (or \"resolved\": true), title, summary or cause_deployment_id",
            ));
        }
        if errors.is_empty() {
            Ok(change)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    fn changes_nothing(&self) -> bool {
        self.resolve.is_none()
            && self.title.is_none()
            && self.summary.is_none()
            && self.cause_deployment_id.is_none()
    }

    /// The cause this change sets, to be checked with [`check_cause`].
    pub fn new_cause(&self) -> Option<Uuid> {
        match self.cause_deployment_id {
            Some(Edit::Set(id)) => Some(id),
            _ => None,
        }
    }

    /// What the incident becomes. Resolving at the time it was resolved
    /// already changes nothing (a retry); at another time it is refused.
    pub fn apply(&self, incident: &Incident) -> Result<Incident, ChangeRefused> {
        let mut after = incident.clone();
        match (self.resolve, incident.resolved_at) {
            (None, _) => {}
            (Some(Resolve::Now(_)), Some(_)) => {}
            (Some(Resolve::At(asked)), Some(resolved_at)) if asked != resolved_at => {
                return Err(ChangeRefused::ResolvedOtherwise {
                    id: incident.id,
                    resolved_at,
                    asked,
                });
            }
            (Some(Resolve::At(_)), Some(_)) => {}
            (Some(Resolve::At(at) | Resolve::Now(at)), None) => {
                if at < incident.started_at {
                    return Err(ChangeRefused::Invalid(ValidationErrors(vec![
                        resolved_before_started(incident.started_at),
                    ])));
                }
                after.resolved_at = Some(at);
            }
        }
        if let Some(edit) = &self.title {
            after.title = edit.apply();
        }
        if let Some(edit) = &self.summary {
            after.summary = edit.apply();
        }
        if let Some(edit) = &self.cause_deployment_id {
            after.cause_deployment_id = edit.apply();
        }
        Ok(after)
    }
}

/// An incident reduced to what the statistics need; times in microseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentSample {
    pub component: String,
    pub environment: String,
    pub started_at: i64,
    pub resolved_at: Option<i64>,
}

/// The incident-based time to restore of one group (see
/// [`TIME_TO_RESTORE_DEFINITION`]). Seconds; `None` when no incident of the
/// group is resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentStats {
    /// Incidents started in the window.
    pub count: usize,
    pub resolved: usize,
    /// Still open: counted here, left out of the mean and percentiles.
    pub unresolved: usize,
    pub mean_time_to_restore_seconds: Option<f64>,
    /// Nearest-rank, as every percentile of the statistics.
    pub median_time_to_restore_seconds: Option<f64>,
    pub p90_time_to_restore_seconds: Option<f64>,
    /// The DORA level of the mean, by the rule of the failure-streak figure's.
    pub level: Option<Level>,
}

/// The incident figures of the incidents that started in `[since, until)`
/// (microseconds) among `incidents`.
pub fn restore_figures<'a>(
    incidents: impl IntoIterator<Item = &'a IncidentSample>,
    since: i64,
    until: i64,
) -> IncidentStats {
    let inside: Vec<&IncidentSample> = incidents
        .into_iter()
        .filter(|i| i.started_at >= since && i.started_at < until)
        .collect();
    let mut restores: Vec<i64> = inside
        .iter()
        .filter_map(|i| i.resolved_at.map(|at| at - i.started_at))
        .collect();
    restores.sort_unstable();
    let mean = (!restores.is_empty()).then(|| {
        let sum: i128 = restores.iter().map(|&r| i128::from(r)).sum();
        sum as f64 / restores.len() as f64 / 1e6
    });
    IncidentStats {
        count: inside.len(),
        resolved: restores.len(),
        unresolved: inside.len() - restores.len(),
        mean_time_to_restore_seconds: mean,
        median_time_to_restore_seconds: nearest_rank(&restores, 50.0).map(micros_to_seconds),
        p90_time_to_restore_seconds: nearest_rank(&restores, 90.0).map(micros_to_seconds),
        level: mean.map(dora::time_to_restore),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .to_utc()
    }

    fn fields(errors: &ValidationErrors) -> Vec<&str> {
        errors.0.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn an_opening_takes_defaults_and_reads_every_field() {
        let minimal = NewIncident::from_json(json!({"component": "api"}), now()).unwrap();
        assert_eq!(minimal.environment, Environment::default_environment());
        assert_eq!(minimal.started_at, now());
        assert_eq!(minimal.resolved_at, None);
        let cause = Uuid::new_v4();
        let full = NewIncident::from_json(
            json!({
                "component": "api", "environment": "staging",
                "started_at": "2026-12-01T10:00:00+01:00",
                "resolved_at": "2026-12-01T09:30:00Z",
                "title": "5xx on checkout", "summary": "",
                "cause_deployment_id": cause.to_string(),
                "incident_id": "0192f6a4-6c53-7d0e-9d8f-2f4b7c1e5a10"
            }),
            now(),
        )
        .unwrap();
        assert_eq!(full.started_at.to_rfc3339(), "2026-12-01T09:00:00+00:00");
        assert_eq!(
            full.resolved_at.map(|r| r - full.started_at),
            Some(chrono::Duration::minutes(30))
        );
        assert_eq!(full.summary, None, "an empty text is absent");
        assert_eq!(full.cause_deployment_id, Some(cause));
    }

    #[test]
    fn every_mistake_of_an_opening_is_reported_at_once() {
        let errors = NewIncident::from_json(
            json!({
                "component": "not valid!", "environment": "",
                "started_at": "yesterday", "resolved_at": "2026-12-02T00:00:00Z",
                "title": "a\nb", "summary": "x".repeat(MAX_SUMMARY_CHARS + 1),
                "cause_deployment_id": "nope", "incident_id": Uuid::nil().to_string(),
                "strated_at": "2026-12-01T10:00:00Z", "colour": 1
            }),
            now(),
        )
        .unwrap_err();
        let mut got = fields(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "cause_deployment_id",
                "colour",
                "component",
                "incident_id",
                "resolved_at",
                "started_at",
                "strated_at",
                "summary",
                "title"
            ]
        );
        let typo = errors.0.iter().find(|e| e.field == "strated_at").unwrap();
        assert!(
            typo.message.contains("did you mean `started_at`"),
            "{typo:?}"
        );
        let missing = NewIncident::from_json(json!({}), now()).unwrap_err();
        assert_eq!(fields(&missing), ["component"]);
        let wrong_type = NewIncident::from_json(json!({"component": 3}), now()).unwrap_err();
        assert_eq!(fields(&wrong_type), ["component"], "reported once");
        assert!(NewIncident::from_json(json!([1]), now()).is_err());
    }

    #[test]
    fn an_opening_resolved_before_it_started_is_refused() {
        let errors = NewIncident::from_json(
            json!({"component": "api", "started_at": "2026-12-01T10:00:00Z",
                   "resolved_at": "2026-12-01T09:59:59.999999Z"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(fields(&errors), ["resolved_at"]);
        let future = NewIncident::from_json(
            json!({"component": "api", "started_at": "2026-12-01T12:05:00.000001Z"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(fields(&future), ["started_at"]);
        assert!(
            NewIncident::from_json(
                json!({"component": "api", "started_at": "2026-12-01T12:05:00Z"}),
                now()
            )
            .is_ok(),
            "five minutes ahead is within the skew allowed"
        );
    }

    #[test]
    fn a_retry_has_the_fingerprint_of_the_first_call() {
        let body = json!({"component": "api", "title": "down"});
        let first = NewIncident::from_json(body.clone(), now()).unwrap();
        let later = now() + chrono::Duration::seconds(30);
        let retry = NewIncident::from_json(body, later).unwrap();
        assert_eq!(
            first.fingerprint, retry.fingerprint,
            "the default start is not content"
        );
        let other =
            NewIncident::from_json(json!({"component": "api", "title": "up"}), now()).unwrap();
        assert_ne!(first.fingerprint, other.fingerprint);
        let same_instant = NewIncident::from_json(
            json!({"component": "api", "started_at": "2026-12-01T11:00:00+01:00"}),
            now(),
        )
        .unwrap();
        let in_utc = NewIncident::from_json(
            json!({"component": "api", "started_at": "2026-12-01T10:00:00Z"}),
            now(),
        )
        .unwrap();
        assert_eq!(same_instant.fingerprint, in_utc.fingerprint);
    }

    fn open_incident() -> Incident {
        NewIncident::from_json(
            json!({"component": "api", "started_at": "2026-12-01T10:00:00Z"}),
            now(),
        )
        .unwrap()
        .into_incident(Uuid::new_v4())
    }

    #[test]
    fn resolving_twice_at_the_same_time_is_a_retry() {
        let incident = open_incident();
        let change =
            IncidentChange::from_json(json!({"resolved_at": "2026-12-01T11:00:00Z"}), now())
                .unwrap();
        let resolved = change.apply(&incident).unwrap();
        assert_eq!(resolved.restore_time_us(), Some(3_600_000_000));
        assert_eq!(resolved.state(), IncidentState::Resolved);
        assert_eq!(change.apply(&resolved).unwrap(), resolved, "a retry");
        let other =
            IncidentChange::from_json(json!({"resolved_at": "2026-12-01T11:00:01Z"}), now())
                .unwrap();
        assert!(matches!(
            other.apply(&resolved),
            Err(ChangeRefused::ResolvedOtherwise { .. })
        ));
        let now_again = IncidentChange::from_json(json!({"resolved": true}), now()).unwrap();
        assert_eq!(
            now_again.apply(&resolved).unwrap(),
            resolved,
            "resolved: true keeps the time it has"
        );
        let at_now = now_again.apply(&incident).unwrap();
        assert_eq!(at_now.resolved_at, Some(now()));
    }

    #[test]
    fn resolving_before_the_start_is_refused() {
        let change =
            IncidentChange::from_json(json!({"resolved_at": "2026-12-01T09:00:00Z"}), now())
                .unwrap();
        match change.apply(&open_incident()) {
            Err(ChangeRefused::Invalid(errors)) => assert_eq!(fields(&errors), ["resolved_at"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_mistake_of_a_change_is_reported_at_once() {
        let errors = IncidentChange::from_json(
            json!({"resolved": false, "resolved_at": 5, "title": 1,
                   "cause_deployment_id": "x", "reslved": true}),
            now(),
        )
        .unwrap_err();
        let mut got = fields(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            [
                "cause_deployment_id",
                "reslved",
                "resolved",
                "resolved_at",
                "title"
            ]
        );
        let both = IncidentChange::from_json(
            json!({"resolved": true, "resolved_at": "2026-12-01T11:00:00Z"}),
            now(),
        )
        .unwrap_err();
        assert_eq!(fields(&both), ["resolved"]);
        let nothing = IncidentChange::from_json(json!({}), now()).unwrap_err();
        assert_eq!(fields(&nothing), ["(body)"]);
    }

    #[test]
    fn a_change_corrects_the_texts_and_the_cause() {
        let cause = Uuid::new_v4();
        let change = IncidentChange::from_json(
            json!({"title": "checkout down", "summary": null,
                   "cause_deployment_id": cause.to_string()}),
            now(),
        )
        .unwrap();
        assert_eq!(change.new_cause(), Some(cause));
        let after = change.apply(&open_incident()).unwrap();
        assert_eq!(after.title.as_deref(), Some("checkout down"));
        assert_eq!(after.cause_deployment_id, Some(cause));
        assert_eq!(after.resolved_at, None, "still open");
        let clear = IncidentChange::from_json(json!({"cause_deployment_id": null}), now()).unwrap();
        assert_eq!(clear.apply(&after).unwrap().cause_deployment_id, None);
    }

    #[test]
    fn a_cause_must_exist_and_be_of_the_same_component_and_environment() {
        let (api, prod) = (
            Component::parse("api").unwrap(),
            Environment::parse("production").unwrap(),
        );
        let id = Uuid::new_v4();
        assert!(check_cause(&api, &prod, id, Some(("api", "production"))).is_ok());
        let missing = check_cause(&api, &prod, id, None).unwrap_err();
        assert_eq!(fields(&missing), ["cause_deployment_id"]);
        let elsewhere = check_cause(&api, &prod, id, Some(("web", "staging"))).unwrap_err();
        let message = &elsewhere.0[0].message;
        assert!(message.contains("web") && message.contains("staging") && message.contains("api"));
    }

    fn sample(started_s: i64, restore_s: Option<i64>) -> IncidentSample {
        IncidentSample {
            component: "api".into(),
            environment: "production".into(),
            started_at: started_s * 1_000_000,
            resolved_at: restore_s.map(|r| (started_s + r) * 1_000_000),
        }
    }

    #[test]
    fn restore_figures_follow_the_definition() {
        let incidents = [
            sample(100, Some(600)),
            sample(200, Some(60)),
            sample(300, Some(7_200)),
            sample(400, None),
            sample(50, Some(10)),    // before the window
            sample(1_000, Some(10)), // at its end: outside
        ];
        let figures = restore_figures(&incidents, 100 * 1_000_000, 1_000 * 1_000_000);
        assert_eq!(figures.count, 4);
        assert_eq!(figures.resolved, 3);
        assert_eq!(figures.unresolved, 1);
        assert_eq!(figures.mean_time_to_restore_seconds, Some(2_620.0));
        assert_eq!(figures.median_time_to_restore_seconds, Some(600.0));
        assert_eq!(figures.p90_time_to_restore_seconds, Some(7_200.0));
        assert_eq!(figures.level, Some(Level::Elite), "a mean under an hour");
        let none = restore_figures(&[sample(100, None)], 0, i64::MAX);
        assert_eq!((none.count, none.unresolved), (1, 1));
        assert_eq!(none.mean_time_to_restore_seconds, None);
        assert_eq!(none.level, None);
        assert_eq!(restore_figures(&[], 0, 1), IncidentStats::default());
    }
}
