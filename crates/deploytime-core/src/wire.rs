//! The API's wire format: the store call's body, what the server answers
//! (deployments, events, pages, statistics, components) and its problem bodies.
//! Server, command line and ec2-runner all use these types, so none of them
//! re-types another's JSON, and a client tells problems apart by their `type`,
//! never by the text of a message.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::commits::Commit;
use crate::correction::Change;
use crate::deployment::Deployment;
use crate::event::{FieldError, Phase, RecordedEvent, Status};
use crate::incident::{Incident, IncidentState};
use crate::names::{Component, Environment};
use crate::release::{Ask, Release, ReleaseState, Verdict};
use crate::state::{AbandonCutoff, ReportedState};
use crate::stats::{Definitions, GroupBy, GroupStats};
use crate::time::{format_rfc3339, rfc3339};

/// Where each resource is, relative to the server's base URL.
pub mod paths {
    pub const EVENTS: &str = "/api/v1/events";
    pub const DEPLOYMENTS: &str = "/api/v1/deployments";
    pub const STATS: &str = "/api/v1/stats";
    pub const COMPONENTS: &str = "/api/v1/components";
    pub const DEPLOYED_COMMIT: &str = "/api/v1/commits/deployed";
    pub const RELEASES: &str = "/api/v1/releases";
    pub const APPROVALS: &str = "/api/v1/approvals";
    pub const INCIDENTS: &str = "/api/v1/incidents";
    /// The approver's page, `?token=…`: the link in the mail.
    pub const APPROVAL_PAGE: &str = "/approval";

    /// Escapes one segment of a path (a project or release id may hold spaces).
    fn segment(value: &str) -> String {
        percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
    }

    /// One release.
    pub fn release(team_project: &str, release_id: &str) -> String {
        format!(
            "{RELEASES}/{}/{}",
            segment(team_project),
            segment(release_id)
        )
    }

    /// One deployment.
    pub fn deployment(id: impl std::fmt::Display) -> String {
        format!("{DEPLOYMENTS}/{id}")
    }

    /// One incident.
    pub fn incident(id: impl std::fmt::Display) -> String {
        format!("{INCIDENTS}/{id}")
    }
}

/// The body of `POST /api/v1/events`, as a client sends it. The server reads a
/// body field by field (`EventInput`), so that every mistake is reported at
/// once; this type is what well-behaved clients write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventBody {
    /// 1–128 characters: ASCII letters, digits, `.` `_` `-` `/` `:`; starts with a letter or digit.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "api", pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
    )]
    pub component: String,
    pub phase: Phase,
    /// Required on `finish`, refused on `start`: `success`, `cancelled`, or an
    /// error code of 1–64 of `[A-Za-z0-9._-]` (the deploy failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, example = "success", pattern = r"^[A-Za-z0-9._-]{1,64}$")
    )]
    pub status: Option<Status>,
    /// Default `production`; same characters as `component`, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$")
    )]
    pub environment: Option<String>,
    /// At most 128 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub version: Option<String>,
    /// At most 128 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub owner: Option<String>,
    /// On `start` the id the deployment gets, on `finish` the deployment to close.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<Uuid>,
    /// The idempotency key (or the `Idempotency-Key` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// RFC 3339 with an offset; default: when the server stores it.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub timestamp: Option<DateTime<Utc>>,
    /// A flat object of strings: at most 32 keys of 1–64 characters, values of at most 512.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// The commits the deployment ships, the deployed one first (`git log`
    /// order), at most 500; on the start, the finish or both (the deployment
    /// ships their union). JSON bodies only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(max_items = 500))]
    pub commits: Vec<Commit>,
    /// The deployment rolls back to an earlier version (said by the start,
    /// the finish or both).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

/// A deployment as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentView {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub component: Component,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub environment: Environment,
    pub version: Option<String>,
    pub owner: Option<String>,
    /// running, succeeded, failed, cancelled or abandoned.
    pub state: ReportedState,
    /// The finish's status: success, cancelled or an error code.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub status: Option<Status>,
    /// RFC 3339, microseconds.
    #[serde(with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<DateTime<Utc>>,
    /// Present once both ends are known.
    pub duration_seconds: Option<f64>,
    /// A rollback to an earlier version.
    #[serde(default)]
    pub rollback: bool,
}

impl DeploymentView {
    /// The deployment as reported at this abandonment cut-off.
    pub fn new(deployment: Deployment, cutoff: &AbandonCutoff) -> Self {
        DeploymentView {
            state: deployment.reported_state(cutoff),
            started_at: deployment.started_at(),
            finished_at: deployment.finished_at(),
            duration_seconds: deployment.duration_seconds(),
            id: deployment.id,
            component: deployment.component,
            environment: deployment.environment,
            version: deployment.version,
            owner: deployment.owner,
            status: deployment.status,
            rollback: deployment.rollback,
        }
    }

    /// The cells of its CSV row, in the order of `export::DEPLOYMENT_COLUMNS`.
    pub fn csv_record(&self) -> [String; 11] {
        [
            self.id.to_string(),
            self.component.to_string(),
            self.environment.to_string(),
            self.version.clone().unwrap_or_default(),
            self.owner.clone().unwrap_or_default(),
            self.state.as_str().to_owned(),
            self.status
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            self.started_at.map(format_rfc3339).unwrap_or_default(),
            self.finished_at.map(format_rfc3339).unwrap_or_default(),
            self.duration_seconds
                .map(|d| d.to_string())
                .unwrap_or_default(),
            self.rollback.to_string(),
        ]
    }
}

/// An event as stored in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    pub id: Uuid,
    pub deployment_id: Uuid,
    pub phase: Phase,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub component: Component,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub environment: Environment,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub status: Option<Status>,
    pub version: Option<String>,
    pub owner: Option<String>,
    /// When it happened, RFC 3339 with microseconds.
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: DateTime<Utc>,
    /// When the server received it.
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub received_at: DateTime<Utc>,
    pub attributes: BTreeMap<String, String>,
}

impl From<RecordedEvent> for EventView {
    fn from(event: RecordedEvent) -> Self {
        EventView {
            id: event.id,
            deployment_id: event.deployment_id,
            phase: event.kind.phase(),
            status: event.kind.status().cloned(),
            component: event.component,
            environment: event.environment,
            version: event.version,
            owner: event.owner,
            timestamp: event.occurred_at,
            received_at: event.received_at,
            attributes: event.attributes,
        }
    }
}

impl EventView {
    /// The cells of its CSV row, in the order of `export::EVENT_COLUMNS`.
    pub fn csv_record(&self) -> [String; 11] {
        [
            self.id.to_string(),
            self.deployment_id.to_string(),
            self.phase.as_str().to_owned(),
            self.component.to_string(),
            self.environment.to_string(),
            self.status
                .as_ref()
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default(),
            self.version.clone().unwrap_or_default(),
            self.owner.clone().unwrap_or_default(),
            format_rfc3339(self.timestamp),
            format_rfc3339(self.received_at),
            // A map of strings always serialises.
            serde_json::to_string(&self.attributes).unwrap_or_default(),
        ]
    }
}

/// A deployment with the events that made it, in the order they were stored,
/// and the corrections made to it since.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeploymentDetail {
    #[serde(flatten)]
    pub deployment: DeploymentView,
    /// Changes with every write; also the response's `ETag`. A correction sent
    /// with `If-Match` applies only while it is unchanged.
    #[serde(default)]
    pub revision: u32,
    pub events: Vec<EventView>,
    #[serde(default)]
    pub corrections: Vec<CorrectionView>,
    /// The commits it ships, the deployed one first.
    #[serde(default)]
    pub commits: Vec<Commit>,
}

/// The body of `PATCH /api/v1/deployments/{id}`: what to change, and why.
/// Absent fields are left as they are; `null` or `""` clears version or owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CorrectionBody {
    /// At most 128 characters, no control characters; `null` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub version: Option<String>,
    /// At most 128 characters, no control characters; `null` clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub owner: Option<String>,
    /// The final status (`success`, `cancelled` or an error code); closing a
    /// running deployment needs `finished_at` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(value_type = Option<String>, pattern = r"^[A-Za-z0-9._-]{1,64}$")
    )]
    pub status: Option<Status>,
    /// When it finished: never before its start, at most 5 minutes ahead.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the record is corrected (1–512 characters), kept in the audit.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 512))]
    pub reason: String,
}

/// One correction of a deployment, as the audit keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CorrectionView {
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub corrected_at: DateTime<Utc>,
    /// The token's name (or `anonymous`, `bootstrap-admin`).
    pub corrected_by: String,
    pub reason: String,
    /// Each changed field's value before and after.
    pub changes: BTreeMap<String, Change>,
}

/// What a store call answers: the stored event and its deployment as it now is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreResponse {
    pub event: EventView,
    pub deployment: DeploymentView,
}

/// What became of one event of a hook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HookResult {
    /// Recorded now.
    Stored,
    /// Nothing new: a redelivery, or a second start or finish of a deployment
    /// already started or finished.
    Replayed,
    /// Not something deploytime records (another event type or state).
    Ignored,
}

/// One event of a hook delivery: what became of it, and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookEventReceipt {
    pub result: HookResult,
    /// Why it was replayed or ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<Uuid>,
}

/// What a webhook or CloudEvents endpoint answers: the delivery's overall
/// result (`stored` if any event was recorded now) and each event's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HookReceipt {
    pub result: HookResult,
    pub events: Vec<HookEventReceipt>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The window statistics cover, `[since, until)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Window {
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub since: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub until: DateTime<Utc>,
}

/// `GET /api/v1/stats`: the statistics of each group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsResponse {
    pub window: Window,
    /// component, environment, component,environment or none.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub group_by: GroupBy,
    pub groups: Vec<GroupStats>,
    /// How the figures are defined, the change failure rate's as asked.
    pub definitions: Definitions,
    /// Present when the window holds no deployment but older ones match the
    /// filters: when the latest of them started, to widen the window by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The body of `POST /api/v1/incidents`, as a client sends it. The server
/// reads it field by field (`NewIncident::from_json`), so that every mistake
/// is reported at once; this type is what well-behaved clients write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidentBody {
    /// 1–128 characters: ASCII letters, digits, `.` `_` `-` `/` `:`; starts with a letter or digit.
    #[cfg_attr(
        feature = "openapi",
        schema(example = "api", pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
    )]
    pub component: String,
    /// Default `production`; same characters as `component`, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$")
    )]
    pub environment: Option<String>,
    /// When the service broke: RFC 3339 with an offset, at most 5 minutes
    /// ahead of the server's clock; default: when the server reads the call.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub started_at: Option<DateTime<Utc>>,
    /// When it was restored, if it is already: never before `started_at`.
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub resolved_at: Option<DateTime<Utc>>,
    /// At most 256 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub title: Option<String>,
    /// At most 4096 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub summary: Option<String>,
    /// The deployment that caused it: recorded, of the same component and environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_deployment_id: Option<Uuid>,
    /// The idempotency key: a retry with the same id and content answers the
    /// incident again (200); other content under it is refused (409).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<Uuid>,
}

/// The body of `PATCH /api/v1/incidents/{id}`: resolve it, or correct its
/// title, summary or cause. Absent fields are left as they are; `null` (or
/// `""`) clears a title, a summary or a cause.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IncidentChangeBody {
    /// When it was restored: never before `started_at`, at most 5 minutes
    /// ahead. Resolving again at the same time changes nothing; at another
    /// time it is refused (409).
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub resolved_at: Option<DateTime<Utc>>,
    /// `true`: resolved now (an incident resolved already keeps its time).
    /// Not together with `resolved_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 256))]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause_deployment_id: Option<Uuid>,
}

/// An incident as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentView {
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub component: Component,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub environment: Environment,
    pub state: IncidentState,
    pub title: Option<String>,
    pub summary: Option<String>,
    pub cause_deployment_id: Option<Uuid>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub started_at: DateTime<Utc>,
    #[serde(with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub resolved_at: Option<DateTime<Utc>>,
    /// `resolved_at − started_at`, once resolved.
    pub time_to_restore_seconds: Option<f64>,
}

impl From<Incident> for IncidentView {
    fn from(incident: Incident) -> Self {
        IncidentView {
            state: incident.state(),
            time_to_restore_seconds: incident
                .restore_time_us()
                .map(crate::time::micros_to_seconds),
            id: incident.id,
            component: incident.component,
            environment: incident.environment,
            title: incident.title,
            summary: incident.summary,
            cause_deployment_id: incident.cause_deployment_id,
            started_at: incident.started_at,
            resolved_at: incident.resolved_at,
        }
    }
}

/// `GET /api/v1/commits/deployed`: the commit the latest successful
/// deployment of a component in an environment deployed, from which the next
/// deployment's commits are listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeployedCommit {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub component: Component,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub environment: Environment,
    pub deployment_id: Uuid,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub finished_at: DateTime<Utc>,
    pub commit: Commit,
}

/// One component in one environment, as `GET /api/v1/components` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentSummary {
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub component: Component,
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub environment: Environment,
    pub deployments: u64,
    /// Over the deployments with both a start and a finish.
    pub mean_duration_seconds: Option<f64>,
    pub last_deployment: DeploymentView,
}

/// `GET /api/v1/components`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ComponentsResponse {
    pub items: Vec<ComponentSummary>,
}

/// The body of `POST /api/v1/releases` as this project's clients write it
/// (the server also reads the original contract's
/// `{"ReleaseName", "ReleaseId", "TeamProject"}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseBody {
    /// 1–256 characters, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "Desafio-CD",
            min_length = 1,
            max_length = 256,
            pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
        )
    )]
    pub release_name: String,
    /// 1–128 characters, no control characters, no `/`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "386",
            min_length = 1,
            max_length = 128,
            pattern = r"^[^/\x00-\x1f\x7f-\x9f]+$"
        )
    )]
    pub release_id: String,
    /// 1–128 characters, no control characters, no `/`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "Devx",
            min_length = 1,
            max_length = 128,
            pattern = r"^[^/\x00-\x1f\x7f-\x9f]+$"
        )
    )]
    pub team_project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}$")
    )]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._/:-]{0,63}$")
    )]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub version: Option<String>,
    /// Who asks (an address or a name): they may not approve it themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub requested_by: Option<String>,
    /// 1–100; default: every approver who may approve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub required_approvals: Option<u32>,
    /// Seconds, or a duration such as `72h` (default), at most 30 days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "72h"))]
    pub expires_in: Option<String>,
}

/// One approver asked, and their answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApproverView {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// False for the requester, who may only reject.
    pub may_approve: bool,
    pub decision: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(
        default,
        with = "rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<Ask> for ApproverView {
    fn from(ask: Ask) -> Self {
        ApproverView {
            email: ask.approver.email,
            name: ask.approver.name,
            may_approve: ask.may_approve,
            decision: ask.verdict,
            comment: ask.comment,
            decided_at: ask.decided_at,
        }
    }
}

/// A release as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseView {
    pub team_project: String,
    pub release_id: String,
    pub release_name: String,
    pub state: ReleaseState,
    /// Why it failed, or why it still waits (the approver source is down…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Its URL, relative to the server.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Approvals needed, once the approvers are known.
    pub required_approvals: Option<u32>,
    pub approvals: u32,
    pub rejections: u32,
    /// Who was asked (empty until the approvers are known).
    pub approvers: Vec<ApproverView>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: DateTime<Utc>,
    /// When it was approved, rejected, failed or expired.
    #[serde(default, with = "rfc3339::option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub decided_at: Option<DateTime<Utc>>,
    /// From the request to the decision (so far, while pending).
    pub waited_seconds: f64,
}

impl ReleaseView {
    pub fn new(release: Release, asks: Vec<Ask>, now: DateTime<Utc>) -> Self {
        let state = release.state_at(now);
        let decided_at = release.closed_at(now);
        let count = |verdict: Verdict| {
            u32::try_from(asks.iter().filter(|a| a.verdict == Some(verdict)).count())
                .unwrap_or(u32::MAX)
        };
        let (approvals, rejections) = (count(Verdict::Approve), count(Verdict::Reject));
        let request = release.request;
        ReleaseView {
            url: paths::release(&request.key.team_project, &request.key.release_id),
            team_project: request.key.team_project,
            release_id: request.key.release_id,
            release_name: request.release_name,
            state,
            reason: release.reason,
            component: request.component.map(|c| c.as_str().to_owned()),
            environment: request.environment.map(|e| e.as_str().to_owned()),
            version: request.version,
            requested_by: request.requested_by,
            required_approvals: release.needed,
            approvals,
            rejections,
            approvers: asks.into_iter().map(ApproverView::from).collect(),
            created_at: release.created_at,
            expires_at: release.expires_at,
            decided_at,
            waited_seconds: crate::time::seconds_between(
                release.created_at,
                decided_at.unwrap_or(now).max(release.created_at),
            ),
        }
    }
}

/// One entry of a release's audit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: DateTime<Utc>,
    /// `created`, `approvers` (who the source named), `approvers-unavailable`,
    /// `mail-sent`, `mail-failed`, `reminder-sent`, `decision`, `approved`,
    /// `rejected`, `expired`, `failed`.
    pub event: String,
    /// Who acted: the token's name, an approver's address, or `server`.
    pub actor: String,
    /// The client's address, for decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// What happened, in words (what the source answered, the mail error…).
    pub detail: String,
}

impl AuditEntry {
    /// Its CSV record, in the order of [`AUDIT_COLUMNS`].
    pub fn csv_record(&self) -> [String; 5] {
        [
            format_rfc3339(self.at),
            self.event.clone(),
            self.actor.clone(),
            self.client_address.clone().unwrap_or_default(),
            self.detail.clone(),
        ]
    }
}

/// The CSV columns of an audit export.
pub const AUDIT_COLUMNS: [&str; 5] = ["at", "event", "actor", "client_address", "detail"];

/// A release with its audit, newest last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub release: ReleaseView,
    pub audit: Vec<AuditEntry>,
}

/// `POST /api/v1/approvals`: an approver's decision, with the token of their link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApprovalBody {
    /// The token of the link in the mail.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_-]{43}$"))]
    pub token: String,
    pub decision: Verdict,
    /// At most 2000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_length = 2000))]
    pub comment: Option<String>,
}

/// The kind of a problem: its `type` URI, relative to the API. Clients decide
/// what to do by this, never by a problem's title or detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProblemType {
    MalformedBody,
    BadRequest,
    Validation,
    /// Query parameters that break a rule (a listing's, the statistics').
    InvalidQuery,
    /// A correction of a deployment that breaks a rule.
    InvalidCorrection,
    /// A release request or an approval that breaks a rule.
    InvalidRelease,
    /// An incident, or a change of one, that breaks a rule.
    InvalidIncident,
    /// What was asked for existed but is no more (an expired approval link).
    Gone,
    UnsupportedMediaType,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    Unprocessable,
    Unavailable,
    Internal,
    /// A type this version does not know (a newer server's, or `about:blank`
    /// for an answer that is not one of the server's problems).
    Other(String),
}

impl ProblemType {
    const KNOWN: [ProblemType; 18] = [
        ProblemType::MalformedBody,
        ProblemType::BadRequest,
        ProblemType::Validation,
        ProblemType::InvalidQuery,
        ProblemType::InvalidCorrection,
        ProblemType::InvalidRelease,
        ProblemType::InvalidIncident,
        ProblemType::Gone,
        ProblemType::UnsupportedMediaType,
        ProblemType::PayloadTooLarge,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::Conflict,
        ProblemType::Unprocessable,
        ProblemType::Unavailable,
        ProblemType::Internal,
    ];

    pub fn uri(&self) -> &str {
        match self {
            ProblemType::MalformedBody => "/problems/malformed-body",
            ProblemType::BadRequest => "/problems/bad-request",
            ProblemType::Validation => "/problems/validation",
            ProblemType::InvalidQuery => "/problems/invalid-query",
            ProblemType::InvalidCorrection => "/problems/invalid-correction",
            ProblemType::InvalidRelease => "/problems/invalid-release",
            ProblemType::InvalidIncident => "/problems/invalid-incident",
            ProblemType::Gone => "/problems/gone",
            ProblemType::UnsupportedMediaType => "/problems/unsupported-media-type",
            ProblemType::PayloadTooLarge => "/problems/payload-too-large",
            ProblemType::Unauthorized => "/problems/unauthorized",
            ProblemType::Forbidden => "/problems/forbidden",
            ProblemType::NotFound => "/problems/not-found",
            ProblemType::MethodNotAllowed => "/problems/method-not-allowed",
            ProblemType::Conflict => "/problems/conflict",
            ProblemType::Unprocessable => "/problems/unprocessable",
            ProblemType::Unavailable => "/problems/unavailable",
            ProblemType::Internal => "/problems/internal",
            ProblemType::Other(uri) => uri,
        }
    }

    /// The title every problem of this type carries.
    pub fn title(&self) -> &'static str {
        match self {
            ProblemType::MalformedBody => "Malformed request body",
            ProblemType::BadRequest => "Bad request",
            ProblemType::Validation => "Invalid event",
            ProblemType::InvalidQuery => "Invalid query parameters",
            ProblemType::InvalidCorrection => "Invalid correction",
            ProblemType::InvalidRelease => "Invalid release",
            ProblemType::InvalidIncident => "Invalid incident",
            ProblemType::Gone => "Gone",
            ProblemType::UnsupportedMediaType => "Unsupported media type",
            ProblemType::PayloadTooLarge => "Payload too large",
            ProblemType::Unauthorized => "Unauthorized",
            ProblemType::Forbidden => "Forbidden",
            ProblemType::NotFound => "Not found",
            ProblemType::MethodNotAllowed => "Method not allowed",
            ProblemType::Conflict => "Conflict",
            ProblemType::Unprocessable => "Unprocessable event",
            ProblemType::Unavailable => "Service unavailable",
            ProblemType::Internal => "Internal error",
            ProblemType::Other(_) => "Error",
        }
    }

    pub fn from_uri(uri: &str) -> Self {
        Self::KNOWN
            .into_iter()
            .find(|known| known.uri() == uri)
            .unwrap_or_else(|| ProblemType::Other(uri.to_owned()))
    }
}

impl Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.uri())
    }
}

impl<'de> Deserialize<'de> for ProblemType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(ProblemType::from_uri(&String::deserialize(deserializer)?))
    }
}

/// An RFC 9457 problem (`application/problem+json`): every error the API
/// answers has this shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// The kind of problem, a URI relative to the API (`/problems/validation`).
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub kind: ProblemType,
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong and what to change.
    #[serde(default)]
    pub detail: String,
    /// For invalid fields or parameters: each one with its message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl Problem {
    /// The media type of a problem body.
    pub const MEDIA_TYPE: &'static str = "application/problem+json";
}

/// `422 Invalid event: component: must not be empty`, and one line per field.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        for error in self.errors.iter().flatten() {
            write!(f, "\n  {}: {}", error.field, error.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn problem_types_travel_as_their_uris() {
        let problem: Problem = serde_json::from_value(json!({
            "type": "/problems/conflict", "title": "Conflict", "status": 409,
            "detail": "deployment x is already finished"
        }))
        .unwrap();
        assert_eq!(problem.kind, ProblemType::Conflict);
        assert_eq!(problem.errors, None);
        let unknown: Problem = serde_json::from_value(
            json!({"type": "about:blank", "title": "Bad Gateway", "status": 502}),
        )
        .unwrap();
        assert_eq!(unknown.kind, ProblemType::Other("about:blank".into()));
        assert_eq!(
            serde_json::to_value(&problem).unwrap()["type"],
            "/problems/conflict"
        );
        for known in ProblemType::KNOWN {
            assert_eq!(ProblemType::from_uri(known.uri()), known);
        }
    }

    #[test]
    fn times_are_written_with_microseconds_and_read_with_any_offset() {
        let body: EventBody = serde_json::from_value(json!({
            "component": "api", "phase": "finish", "status": "exit-2",
            "timestamp": "2026-11-22T12:00:00+02:00"
        }))
        .unwrap();
        assert_eq!(body.status, Some(Status::Failed("exit-2".into())));
        let written = serde_json::to_value(&body).unwrap();
        assert_eq!(written["timestamp"], "2026-11-22T10:00:00.000000Z");
        assert_eq!(written.get("event_id"), None, "absent fields are not sent");
        let bad = serde_json::from_value::<EventBody>(json!({
            "component": "api", "phase": "finish", "status": "exit 2"
        }));
        assert!(bad.is_err(), "a status is read by the domain's own rule");
    }
}
