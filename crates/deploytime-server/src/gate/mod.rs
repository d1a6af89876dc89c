//! The release gate's work after the pipeline has its answer: asking the
//! approver source, mailing each approver a one-time link, reminding them,
//! and recording expiry. Everything runs from the durable outbox
//! (`db::queries::gate_outbox`) on a worker task, so a slow or failing
//! approver source or mail server never holds up a request, and a restart
//! loses nothing.
//!
//! Layer: beside `access`, above the data layer; the HTTP layer uses its
//! [`Gate`] handle to wake the worker and to wait for changes (long polls).

mod mailer;
mod source;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use deploytime_core::release::{GatePolicy, StaticApprovers};
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts};
use tokio::sync::{Notify, watch};

use crate::access::Secret;

pub use mailer::MailSettingsError;
pub use worker::Worker;

/// What the gate needs of the server's settings.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// The approver source, with `{release_id}`, `{team_project}` and
    /// `{release_name}` put in for each release.
    pub approvers_url: Option<String>,
    /// Approvers per team project, read at start-up (asked before the source).
    pub approvers_file: Option<StaticApprovers>,
    /// `smtp://…` or `smtps://…` in lettre's form; holds a password.
    pub smtp_url: Option<Secret>,
    pub mail_from: String,
    /// The base URL put into the links (`https://deploytime.example.com`);
    /// default: the address the server listens on.
    pub public_url: Option<String>,
    pub policy: GatePolicy,
    /// How long the approver source and the mail server get per attempt.
    pub dependency_timeout: Duration,
    /// The first and the longest wait between attempts.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl GateSettings {
    pub const DEFAULT_MAIL_FROM: &'static str = "deploytime@localhost";
    pub const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(10);
    pub const DEFAULT_RETRY_MIN: Duration = Duration::from_secs(1);
    pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);

    /// No source, no mail server: releases fail with the reason until one is
    /// configured.
    pub fn new(public_url: Option<String>) -> Self {
        GateSettings {
            approvers_url: None,
            approvers_file: None,
            smtp_url: None,
            mail_from: Self::DEFAULT_MAIL_FROM.to_owned(),
            public_url,
            policy: GatePolicy::DEFAULT,
            dependency_timeout: Self::DEFAULT_DEPENDENCY_TIMEOUT,
            retry_min: Self::DEFAULT_RETRY_MIN,
            retry_max: Self::DEFAULT_RETRY_MAX,
        }
    }
}

/// The gate's metrics, registered by the HTTP layer with the others.
#[derive(Clone)]
pub struct GateMetrics {
    /// Mails by outcome (`sent`, `failed`) and kind (`request`, `reminder`).
    pub mails: IntCounterVec,
    /// From a release's request to its decision (approved or rejected).
    pub decision_seconds: Histogram,
}

impl GateMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(GateMetrics {
            mails: IntCounterVec::new(
                Opts::new(
                    "gate_mails_total",
                    "Approval mails by outcome (sent, failed) and kind (request, reminder)",
                ),
                &["outcome", "kind"],
            )?,
            decision_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "gate_decision_seconds",
                    "Time from a release's request to its approval or rejection",
                )
                .buckets(vec![
                    60.0,
                    300.0,
                    900.0,
                    3600.0,
                    4.0 * 3600.0,
                    12.0 * 3600.0,
                    86400.0,
                    3.0 * 86400.0,
                    7.0 * 86400.0,
                    30.0 * 86400.0,
                ]),
            )?,
        })
    }
}

/// The handle the rest of the server holds: wakes the worker when there is
/// new work, and tells waiting polls that a release may have changed.
#[derive(Clone)]
pub struct Gate {
    settings: Arc<GateSettings>,
    /// The base URL of the links.
    public_url: Arc<str>,
    wake: Arc<Notify>,
    changes: Arc<watch::Sender<u64>>,
    metrics: GateMetrics,
}

impl Gate {
    /// The gate of a server listening at `listening` (the links' base URL
    /// unless the settings name one).
    pub fn new(settings: GateSettings, listening: &str) -> Result<Self, prometheus::Error> {
        let public_url = settings
            .public_url
            .clone()
            .unwrap_or_else(|| listening.to_owned());
        Ok(Gate {
            public_url: public_url.trim_end_matches('/').into(),
            settings: Arc::new(settings),
            wake: Arc::new(Notify::new()),
            changes: Arc::new(watch::channel(0).0),
            metrics: GateMetrics::new()?,
        })
    }

    pub fn settings(&self) -> &GateSettings {
        &self.settings
    }

    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    pub fn policy(&self) -> &GatePolicy {
        &self.settings.policy
    }

    pub fn metrics(&self) -> &GateMetrics {
        &self.metrics
    }

    /// New work is queued: the worker looks now rather than at its next turn.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A release changed in this process (a decision, its approvers, expiry).
    pub fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Waits until a release changes in this process, or `limit` passes.
    /// Changes made by another server on the same database are seen when the
    /// limit passes, so callers re-read with a short limit.
    pub async fn wait_for_change(&self, limit: Duration) {
        let mut changes = self.changes.subscribe();
        let _ = tokio::time::timeout(limit, changes.changed()).await;
    }
}
