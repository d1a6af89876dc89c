//! Events: the `start` and `finish` calls a pipeline makes. Raw fields are read
//! into an [`EventInput`] (`input`), [`EventInput::validate`] (`validate`) applies
//! every rule and returns a [`NewEvent`] or every mistake at once (`errors`), and
//! `fingerprint` makes a retried call recognisable.

mod errors;
mod fingerprint;
mod input;
#[cfg(test)]
mod tests;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::commits::Commit;
use crate::names::{Component, Environment};

pub use errors::{FieldError, ValidationErrors};
pub use input::{EventInput, FIELDS};
pub(crate) use validate::checked_instant;
pub use validate::{
    MAX_ATTRIBUTE_KEY_CHARS, MAX_ATTRIBUTE_VALUE_CHARS, MAX_ATTRIBUTES, MAX_FUTURE_SKEW,
    MAX_STATUS_CHARS, MAX_TEXT_CHARS,
};

/// `start` opens a deployment, `finish` closes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Phase {
    Start,
    Finish,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Finish => "finish",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "start" => Some(Phase::Start),
            "finish" => Some(Phase::Finish),
            _ => None,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a deployment ended. Any code other than `success` and `cancelled` means it
/// failed, and the code is kept as the reason (`failed`, `exit-2`, `E4031`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Status {
    Success,
    Cancelled,
    Failed(String),
}

impl Status {
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "success" => Ok(Status::Success),
            "cancelled" => Ok(Status::Cancelled),
            code => {
                let chars = code.chars().count();
                if chars == 0 || chars > MAX_STATUS_CHARS {
                    return Err(format!(
                        "must be `success`, `cancelled` or an error code of 1 to {MAX_STATUS_CHARS} characters"
                    ));
                }
                if let Some(bad) = code
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
                {
                    return Err(format!(
                        "an error code may contain only letters, digits and . _ - (found {bad:?})"
                    ));
                }
                Ok(Status::Failed(code.to_owned()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Status::Success => "success",
            Status::Cancelled => "cancelled",
            Status::Failed(code) => code,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Status::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        Status::parse(value)
    }
}

/// finish without a status cannot be represented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    Start,
    Finish(Status),
}

impl EventKind {
    pub fn phase(&self) -> Phase {
        match self {
            EventKind::Start => Phase::Start,
            EventKind::Finish(_) => Phase::Finish,
        }
    }

    pub fn status(&self) -> Option<&Status> {
        match self {
            EventKind::Start => None,
            EventKind::Finish(status) => Some(status),
        }
    }
}

/// A validated event, ready to be paired and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The idempotency key, when the client gave one (the store assigns one otherwise).
    pub event_id: Option<Uuid>,
    /// `start`, or `finish` with the status it finished with.
    pub kind: EventKind,
    pub component: Component,
    pub environment: Environment,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub deployment_id: Option<Uuid>,
    /// When it happened: the client's timestamp, or the server's time of receipt.
    pub occurred_at: DateTime<Utc>,
    /// Whether `occurred_at` is the client's own timestamp. When it is not, the
    /// store may restamp the event with the time it is actually applied, so that
    /// server-assigned times follow the order in which events are paired.
    pub timestamp_given: bool,
    pub attributes: BTreeMap<String, String>,
    /// The commits the deployment ships, the deployed one first.
    pub commits: Vec<Commit>,
    /// The deployment is a rollback (to an earlier version).
    pub rollback: bool,
    /// SHA-256 of what the client sent (not of defaults the server filled in), so a
    /// retry of the same call is recognised even though it arrives later.
    pub fingerprint: String,
}

/// An event as it was recorded: the validated event, the deployment it was
/// applied to, and the times it happened and reached the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub kind: EventKind,
    pub component: Component,
    pub environment: Environment,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
}
