//! `deploytime-server seed`: writes realistic synthetic history straight into the
//! database, for the reporting benchmark. Deterministic for a given seed, so two
//! runs measure the same data.
//!
//! The history has incidents too: some failed production deployments break
//! their component, from the failure until a restore between 5 minutes and 8
//! hours later (spread evenly on a log scale); one whose restore would lie in
//! the future is still open.

use chrono::{Duration, Utc};
use deploytime_core::DeploymentState;
use deploytime_core::time::to_micros;
use diesel::{Connection, ExpressionMethods, RunQueryDsl};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use super::connection::{DatabaseUrl, DbConnection};
use super::error::SetupError;
use super::migrations::migrate;
use super::models::{DeploymentRow, EventRow};
use super::schema::{deployments, events, incidents};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedPlan {
    /// How many deployments to write.
    pub deployments: u64,
    /// How many components they belong to.
    pub components: u32,
    /// How many environments each component is deployed to.
    pub environments: u32,
    /// How far back the history goes, in days.
    pub days: i64,
    /// Seed of the pseudo-random generator.
    pub seed: u64,
}

impl SeedPlan {
    /// The history the reporting benchmark measures.
    pub const BENCHMARK: SeedPlan = SeedPlan {
        deployments: 1_000_000,
        components: 200,
        environments: 3,
        days: 730,
        seed: 42,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("cannot connect: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("cannot write: {0}")]
    Write(#[from] diesel::result::Error),
}

const ENVIRONMENTS: &[&str] = &["production", "staging", "qa", "dev", "eu", "us"];
/// Rows per insert statement and per transaction.
const BATCH: usize = 500;
/// The share of failed production deployments that open an incident.
const INCIDENT_CHANCE: f64 = 0.3;
/// The shortest and the longest time to restore, in seconds.
const RESTORE_SECONDS: (f64, f64) = (300.0, 8.0 * 3600.0);

/// What a seeding run wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seeded {
    pub deployments: u64,
    pub incidents: u64,
}

/// Writes the history.
pub fn seed(url: &DatabaseUrl, args: &SeedPlan) -> Result<Seeded, SeedError> {
    migrate(url)?;
    let mut conn = url.establish()?;
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let now = Utc::now();
    let span_us = Duration::days(args.days.max(1))
        .num_microseconds()
        .unwrap_or(i64::MAX);
    let start_us = to_micros(now) - span_us;
    let environments = args.environments.clamp(1, ENVIRONMENTS.len() as u32) as usize;
    // Each component has its own typical duration, between 30 s and 20 min.
    let typical: Vec<f64> = (0..args.components.max(1))
        .map(|_| rng.random_range(30.0..1200.0))
        .collect();
    let step = span_us / i64::try_from(args.deployments.max(1)).unwrap_or(i64::MAX);
    let now_us = to_micros(now);
    let mut written = 0u64;
    let mut incidents_written = 0u64;
    while written < args.deployments {
        let n = (args.deployments - written).min(BATCH as u64);
        let mut deployment_rows = Vec::with_capacity(n as usize);
        let mut event_rows = Vec::with_capacity(2 * n as usize);
        let mut incident_rows = Vec::new();
        for i in 0..n {
            let index = written + i;
            let component_index = rng.random_range(0..typical.len());
            let component = format!("service-{component_index:03}");
            let environment = ENVIRONMENTS[rng.random_range(0..environments)].to_owned();
            let started = start_us
                + step * i64::try_from(index).unwrap_or(0)
                + rng.random_range(0..step.max(1));
            // Durations spread around the component's typical one, with a long tail.
            let factor: f64 =
                rng.random_range(0.5f64..1.5) * if rng.random_bool(0.05) { 4.0 } else { 1.0 };
            let duration = (typical[component_index] * factor * 1e6) as i64;
            let roll: f64 = rng.random();
            let (state, status) = if roll < 0.85 {
                (DeploymentState::Succeeded, "success".to_owned())
            } else if roll < 0.95 {
                (
                    DeploymentState::Failed,
                    format!("exit-{}", rng.random_range(1..4)),
                )
            } else {
                (DeploymentState::Cancelled, "cancelled".to_owned())
            };
            let id = Uuid::new_v4().to_string();
            let finished = started + duration;
            if state == DeploymentState::Failed
                && environment == "production"
                && rng.random_bool(INCIDENT_CHANCE)
            {
                let (shortest, longest) = RESTORE_SECONDS;
                let restore = (rng.random_range(shortest.ln()..longest.ln()).exp() * 1e6) as i64;
                let resolved = Some(finished + restore).filter(|at| *at <= now_us);
                let incident_id = Uuid::new_v4().to_string();
                incident_rows.push((
                    incidents::id.eq(incident_id.clone()),
                    incidents::component.eq(component.clone()),
                    incidents::environment.eq(environment.clone()),
                    incidents::title.eq(Some("Deployment failed")),
                    incidents::summary.eq(None::<String>),
                    incidents::cause_deployment_id.eq(Some(id.clone())),
                    incidents::started_at.eq(finished),
                    incidents::resolved_at.eq(resolved),
                    incidents::fingerprint.eq(incident_id),
                    incidents::created_by.eq("seed"),
                    incidents::created_at.eq(finished),
                    incidents::updated_at.eq(resolved.unwrap_or(finished)),
                ));
            }
            deployment_rows.push(DeploymentRow {
                id: id.clone(),
                component: component.clone(),
                environment: environment.clone(),
                version: Some(format!(
                    "v{}.{}.{}",
                    index / 10_000,
                    index / 100 % 100,
                    index % 100
                )),
                owner: None,
                state,
                status: Some(status.clone()),
                started_at: Some(started),
                finished_at: Some(finished),
                duration_us: Some(duration),
                anchor_at: started,
                revision: 1,
                created_at: started,
                updated_at: finished,
                rollback: 0,
            });
            for (phase, at, status) in
                [("start", started, None), ("finish", finished, Some(status))]
            {
                event_rows.push(EventRow {
                    id: Uuid::new_v4().to_string(),
                    deployment_id: id.clone(),
                    phase: phase.to_owned(),
                    component: component.clone(),
                    environment: environment.clone(),
                    status,
                    version: None,
                    owner: None,
                    occurred_at: at,
                    received_at: at,
                    attributes: "{}".to_owned(),
                    fingerprint: format!(
                        "{:064x}",
                        u128::from(index) * 2 + u128::from(phase == "finish")
                    ),
                });
            }
        }
        // Multi-row inserts are backend-specific in diesel, so each backend's own
        // connection runs them: this is bulk loading, not a query the API uses.
        macro_rules! insert_batch {
            ($c:expr) => {
                $c.transaction(|c| {
                    diesel::insert_into(deployments::table)
                        .values(deployment_rows)
                        .execute(c)?;
                    diesel::insert_into(events::table)
                        .values(&event_rows)
                        .execute(c)?;
                    if !incident_rows.is_empty() {
                        diesel::insert_into(incidents::table)
                            .values(&incident_rows)
                            .execute(c)?;
                    }
                    Ok::<_, diesel::result::Error>(())
                })
            };
        }
        match &mut conn {
            DbConnection::Sqlite(c) => insert_batch!(c)?,
            #[cfg(feature = "mysql")]
            DbConnection::Mysql(c) => insert_batch!(c)?,
        }
        written += n;
        incidents_written += incident_rows.len() as u64;
        if written % 100_000 < n {
            tracing::info!(written, "seeding");
        }
    }
    Ok(Seeded {
        deployments: written,
        incidents: incidents_written,
    })
}
