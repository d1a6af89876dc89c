//! The deploytime domain, free of I/O so that every rule can be tested on its own.
//!
//! * [`event`]: what a pipeline sends (`start`/`finish`), how the raw JSON or form
//!   fields are read and validated, and the fingerprint used for idempotent replays.
//! * [`names`]: validated component and environment names.
//! * [`deployment`]: the deployment a pair of events describes, and the pairing
//!   rules that decide how a new event changes it.
//! * [`time`]: the one timestamp representation shared by the API and the stores
//!   (UTC, microsecond precision).

pub mod deployment;
pub mod event;
pub mod export;
pub mod names;
pub mod stats;
pub mod time;

pub use deployment::{Deployment, DeploymentState, Pairing, PairingError};
pub use event::{EventInput, EventKind, FieldError, NewEvent, Phase, Status, ValidationErrors};
pub use names::{Component, Environment};
