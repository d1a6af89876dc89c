//! The deploytime domain, free of I/O so that every rule can be tested on its own.
//! The server persists what these rules decide; it does not decide again.
//!
//! * [`event`]: what a pipeline sends (`start`/`finish`), how the raw JSON or form
//!   fields are read and validated, and the fingerprint used for idempotent replays.
//! * [`names`]: validated component and environment names.
//! * [`deployment`]: a deployment, its anchor time and its duration.
//! * [`pairing`]: which deployment an event targets, when an event without a
//!   timestamp happened, and what the event makes of its deployment.
//! * [`state`]: stored and reported states, and the abandonment rule.
//! * [`access`]: roles, scopes and who may record an event.
//! * [`hooks`]: GitHub, GitLab and CDEvents deliveries as store calls.
//! * [`release`]: the release gate: requests, approvers, quorum, expiry.
//! * [`commits`]: the commits a deployment ships, and the lead time for changes.
//! * [`correction`]: an operator's correction of a recorded deployment.
//! * [`incident`]: incidents, their validation and the incident-based time to restore.
//! * [`stats`]: duration statistics and DORA figures; [`dora`]: their levels.
//! * [`wire`]: the API's request and response bodies, shared by every client.
//! * [`time`]: the one timestamp representation shared by the API and the stores
//!   (UTC, microsecond precision); [`export`]: the CSV columns.

pub mod access;
pub mod commits;
pub mod correction;
pub mod deployment;
pub mod dora;
pub mod event;
pub mod export;
pub mod hooks;
pub mod incident;
pub mod names;
pub mod pairing;
pub mod release;
pub mod state;
pub mod stats;
pub mod time;
pub mod wire;

pub use deployment::{Deployment, Ends};
pub use event::{
    EventInput, EventKind, FieldError, NewEvent, Phase, RecordedEvent, Status, ValidationErrors,
};
pub use names::{Component, Environment};
pub use pairing::{Pairing, PairingError, Target};
pub use state::{AbandonCutoff, AbandonPolicy, DeploymentState, ReportedState};
