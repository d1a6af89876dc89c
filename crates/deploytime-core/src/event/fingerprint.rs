//! The fingerprint of a call: what makes a retry recognisable as the same call.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::EventInput;
use crate::names::Environment;
use crate::time::{format_rfc3339, truncate_to_micros};

impl EventInput {
    /// SHA-256 over a canonical form of what the client sent, except the
    /// idempotency key itself. Identifiers and timestamps are normalised so that
    /// `Z` and `+00:00`, or upper- and lower-case UUIDs, are the same content.
    pub(super) fn fingerprint(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            component: Option<&'a str>,
            phase: Option<&'a str>,
            status: Option<&'a str>,
            environment: &'a str,
            version: Option<&'a str>,
            owner: Option<&'a str>,
            deployment_id: Option<String>,
            timestamp: Option<String>,
            attributes: Option<&'a BTreeMap<String, String>>,
            // Left out when not sent, so that the fingerprints of calls
            // stored before these fields existed are unchanged.
            #[serde(skip_serializing_if = "Option::is_none")]
            commits: Option<Vec<(Option<String>, Option<String>)>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            rollback: Option<bool>,
        }
        let canonical = Canonical {
            component: self.component.as_deref(),
            phase: self.phase.as_deref(),
            status: self.status.as_deref(),
            environment: self.environment.as_deref().unwrap_or(Environment::DEFAULT),
            version: self.version.as_deref(),
            owner: self.owner.as_deref(),
            deployment_id: self
                .deployment_id
                .as_deref()
                .map(|d| Uuid::parse_str(d).map_or_else(|_| d.to_owned(), |u| u.to_string())),
            timestamp: self.timestamp.as_deref().map(|t| {
                DateTime::parse_from_rfc3339(t).map_or_else(
                    |_| t.to_owned(),
                    |at| format_rfc3339(truncate_to_micros(at.with_timezone(&Utc))),
                )
            }),
            attributes: self.attributes.as_ref().filter(|a| !a.is_empty()),
            commits: self
                .commits
                .as_ref()
                .filter(|c| !c.is_empty())
                .map(|c| c.iter().map(|commit| commit.canonical()).collect()),
            rollback: self.rollback.filter(|r| *r),
        };
        // Serialising plain strings and a BTreeMap cannot fail; an empty input
        // would still hash consistently if it somehow did.
        let bytes = serde_json::to_vec(&canonical).unwrap_or_default();
        hex::encode(Sha256::digest(&bytes))
    }
}
