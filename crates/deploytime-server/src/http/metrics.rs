//! Prometheus metrics, served at `GET /metrics` in the text exposition format.
//! Each application has a registry of its own (not the process-wide default), so
//! two servers in one process, as in the tests, do not count each other's calls.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::ReplicaHealth;

use deploytime_core::{Deployment, Phase};

/// Route label of a request no route matched: the raw path would let any client
/// create label values without bound.
pub(crate) const UNMATCHED_ROUTE: &str = "unmatched";

/// Buckets of deploy durations, in seconds: from seconds to hours.
const DEPLOY_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

/// Where a hook delivery came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HookSource {
    Github,
    Gitlab,
    Cdevents,
}

impl HookSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookSource::Github => "github",
            HookSource::Gitlab => "gitlab",
            HookSource::Cdevents => "cdevents",
        }
    }
}

/// What became of a hook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HookOutcome {
    /// Nothing recorded: an event deploytime does not track.
    Ignored,
    /// Recorded before (a redelivery, a second start or finish).
    Replayed,
    /// Recorded now.
    Stored,
    /// Refused: no or a wrong signature, a body that cannot be read or mapped.
    Rejected,
}

impl HookOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookOutcome::Ignored => "ignored",
            HookOutcome::Replayed => "replayed",
            HookOutcome::Stored => "stored",
            HookOutcome::Rejected => "rejected",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    events_stored: IntCounterVec,
    hook_deliveries: IntCounterVec,
    deploy_duration: HistogramVec,
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
    releases: IntGaugeVec,
    mails_queued: IntGauge,
    commit_sizes: Histogram,
    incidents_open: IntGauge,
    replica: ReplicaMetrics,
}

/// The read replica's figures, exposed only when there is one.
#[derive(Clone)]
struct ReplicaMetrics {
    up: IntGauge,
    lag_seconds: Gauge,
    serving_reports: IntGauge,
    fallbacks: IntCounter,
}

impl ReplicaMetrics {
    fn new() -> Result<Self, prometheus::Error> {
        Ok(ReplicaMetrics {
            up: IntGauge::new(
                "read_replica_up",
                "1 when the read replica answered when last looked at",
            )?,
            lag_seconds: Gauge::new(
                "read_replica_lag_seconds",
                "How far the read replica is behind the primary (NaN: unknown; while \
                 replication is stopped, a lower bound)",
            )?,
            serving_reports: IntGauge::new(
                "read_replica_serving_reports",
                "1 when reports are read on the read replica, 0 when on the primary",
            )?,
            fallbacks: IntCounter::new(
                "read_replica_fallbacks_total",
                "Reports read on the primary because the read replica was down or too far behind",
            )?,
        })
    }
}

impl Metrics {
    pub fn new(backend: &str) -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("deploytime".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &["method", "route", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer an HTTP request (until the response head)",
            ),
            &["method", "route", "status"],
        )?;
        let events_stored = IntCounterVec::new(
            Opts::new(
                "events_stored_total",
                "Events stored (idempotent replays are not counted again)",
            ),
            &["phase"],
        )?;
        let hook_deliveries = IntCounterVec::new(
            Opts::new(
                "hook_deliveries_total",
                "Webhook and CloudEvents deliveries by source (github, gitlab, cdevents) and \
                 outcome (stored, replayed, ignored, rejected); a CloudEvents batch counts each event",
            ),
            &["source", "outcome"],
        )?;
        let deploy_duration = HistogramVec::new(
            HistogramOpts::new(
                "deploy_duration_seconds",
                "Durations of deployments as they finish (both ends known)",
            )
            .buckets(DEPLOY_BUCKETS.to_vec()),
            &["component", "environment", "state"],
        )?;
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database connections of the pool, by state (in_use, idle)",
            ),
            &["state"],
        )?;
        let pool_max = IntGauge::new(
            "db_pool_max_connections",
            "Database connections the pool may open",
        )?;
        let commit_sizes = Histogram::with_opts(
            HistogramOpts::new(
                "store_commit_events",
                "Events per committed transaction of store calls (group commit)",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0]),
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new(
                "build_info",
                "Always 1; the labels say which version serves which database",
            ),
            &["version", "backend"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), backend])
            .set(1);
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(events_stored.clone()))?;
        registry.register(Box::new(hook_deliveries.clone()))?;
        registry.register(Box::new(deploy_duration.clone()))?;
        registry.register(Box::new(pool_connections.clone()))?;
        registry.register(Box::new(pool_max.clone()))?;
        registry.register(Box::new(commit_sizes.clone()))?;
        registry.register(Box::new(build_info))?;
        let incidents_open = IntGauge::new(
            "incidents_open",
            "Incidents opened and not resolved yet, as stored now",
        )?;
        registry.register(Box::new(incidents_open.clone()))?;
        let releases = IntGaugeVec::new(
            Opts::new("releases", "Releases by the state a poll is told now"),
            &["state"],
        )?;
        let mails_queued = IntGauge::new(
            "gate_mails_queued",
            "Approval mails and reminders not sent yet, reminders waiting for their time included",
        )?;
        Ok(Metrics {
            releases,
            mails_queued,
            registry,
            http_requests,
            http_duration,
            events_stored,
            hook_deliveries,
            deploy_duration,
            pool_connections,
            pool_max,
            commit_sizes,
            incidents_open,
            replica: ReplicaMetrics::new()?,
        })
    }

    /// Adds the read replica's metrics to the exposition.
    pub fn register_replica(&self) -> Result<(), prometheus::Error> {
        let replica = &self.replica;
        self.registry.register(Box::new(replica.up.clone()))?;
        self.registry
            .register(Box::new(replica.lag_seconds.clone()))?;
        self.registry
            .register(Box::new(replica.serving_reports.clone()))?;
        self.registry.register(Box::new(replica.fallbacks.clone()))
    }

    /// The read replica as last looked at.
    pub fn set_replica(&self, health: &ReplicaHealth) {
        let replica = &self.replica;
        replica.up.set(i64::from(health.up));
        replica
            .lag_seconds
            .set(health.lag_seconds.unwrap_or(f64::NAN));
        replica
            .serving_reports
            .set(i64::from(health.serving_reports));
        // The data layer counts; the counter follows it.
        let counted = replica.fallbacks.get();
        if health.fallbacks > counted {
            replica.fallbacks.inc_by(health.fallbacks - counted);
        }
    }

    /// Adds the release gate's metrics to the exposition.
    pub fn register_gate(&self, gate: &crate::gate::GateMetrics) -> Result<(), prometheus::Error> {
        self.registry.register(Box::new(gate.mails.clone()))?;
        self.registry
            .register(Box::new(gate.decision_seconds.clone()))?;
        self.registry.register(Box::new(self.releases.clone()))?;
        self.registry.register(Box::new(self.mails_queued.clone()))
    }

    /// The release gate's state as of now: releases by state, mails queued.
    pub fn set_gate_state(
        &self,
        by_state: &[(deploytime_core::release::ReleaseState, i64)],
        queued: i64,
    ) {
        for (state, count) in by_state {
            self.releases
                .with_label_values(&[state.as_str()])
                .set(*count);
        }
        self.mails_queued.set(queued);
    }

    /// The incidents open now, as the database has them.
    pub fn set_incidents_open(&self, open: i64) {
        self.incidents_open.set(open);
    }

    /// The histogram the group commit records its transactions' sizes in.
    pub fn commit_sizes(&self) -> prometheus::Histogram {
        self.commit_sizes.clone()
    }

    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One delivery to a hook endpoint and what became of it.
    pub(crate) fn hook_delivery(&self, source: HookSource, outcome: HookOutcome) {
        self.hook_deliveries
            .with_label_values(&[source.as_str(), outcome.as_str()])
            .inc();
    }

    /// A newly stored event; when it finished its deployment with both ends
    /// known, the deployment's duration too.
    pub fn event_stored(&self, phase: Phase, deployment: &Deployment) {
        self.events_stored
            .with_label_values(&[phase.as_str()])
            .inc();
        if phase == Phase::Finish
            && deployment.state.is_final()
            && let Some(seconds) = deployment.duration_seconds()
        {
            self.deploy_duration
                .with_label_values(&[
                    deployment.component.as_str(),
                    deployment.environment.as_str(),
                    deployment.state.as_str(),
                ])
                .observe(seconds);
        }
    }

    /// The exposition, with the pool's state as of now.
    pub fn render(
        &self,
        (connections, idle): (u32, u32),
        max_size: u32,
    ) -> Result<String, prometheus::Error> {
        let idle = i64::from(idle);
        let total = i64::from(connections);
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(total - idle);
        self.pool_connections.with_label_values(&["idle"]).set(idle);
        self.pool_max.set(i64::from(max_size));
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        String::from_utf8(buffer).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
