//! Property tests of the pairing rules: random sequences of starts and finishes are
//! applied to an in-memory ledger the way the server applies them (the domain
//! names the target, the ledger looks it up, the domain pairs), and the
//! invariants every store must keep are checked after each step.

#![allow(clippy::unwrap_used, clippy::expect_used)] // helpers of a test binary: a panic is a failed test
use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use deploytime_core::pairing::{Target, pair, target};
use deploytime_core::{Deployment, DeploymentState, EventInput, NewEvent, Pairing, PairingError};
use proptest::prelude::*;
use uuid::Uuid;

#[derive(Debug, Clone)]
struct Step {
    component: usize,
    finish: Option<&'static str>,
    /// Index into the ids handed out so far, to name a deployment explicitly.
    named: Option<usize>,
    fresh_id: bool,
    offset_seconds: i64,
}

fn step() -> impl Strategy<Value = Step> {
    (
        0usize..3,
        prop_oneof![
            Just(None),
            Just(Some("success")),
            Just(Some("cancelled")),
            Just(Some("exit-1"))
        ],
        prop::option::of(0usize..8),
        any::<bool>(),
        0i64..600,
    )
        .prop_map(
            |(component, finish, named, fresh_id, offset_seconds)| Step {
                component,
                finish,
                named,
                fresh_id,
                offset_seconds,
            },
        )
}

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// The ledger: deployments in insertion order, as a store keeps them.
#[derive(Default)]
struct Ledger {
    deployments: Vec<Deployment>,
    ids: Vec<Uuid>,
}

impl Ledger {
    fn by_id(&self, id: Uuid) -> Option<&Deployment> {
        self.deployments.iter().find(|d| d.id == id)
    }

    /// The most recent running deployment, by start time then insertion order:
    /// `Target::LatestRunning` looked up as the stores look it up in SQL.
    fn latest_running(&self, event: &NewEvent) -> Option<&Deployment> {
        self.deployments
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                d.state == DeploymentState::Running
                    && d.component == event.component
                    && d.environment == event.environment
            })
            .max_by_key(|(i, d)| (d.started_at(), *i))
            .map(|(_, d)| d)
    }

    /// Looks up what the domain says the event targets.
    fn look_up(&self, event: &NewEvent) -> Option<Deployment> {
        match target(event) {
            Target::Named(id) => self.by_id(id).cloned(),
            Target::LatestRunning { .. } => self.latest_running(event).cloned(),
            Target::Nothing => None,
        }
    }

    fn apply(&mut self, event: &NewEvent) -> Result<Pairing, PairingError> {
        let found = self.look_up(event);
        let pairing = pair(event, found, Uuid::new_v4())?;
        match &pairing {
            Pairing::Insert(d) => {
                self.ids.push(d.id);
                self.deployments.push(d.clone());
            }
            Pairing::Update { before, after } => {
                let slot = self
                    .deployments
                    .iter_mut()
                    .find(|d| d.id == before.id)
                    .expect("an update names a stored deployment");
                assert_eq!(slot, before, "the update was computed from the stored row");
                *slot = after.clone();
            }
        }
        Ok(pairing)
    }
}

fn to_event(step: &Step, ledger: &Ledger) -> NewEvent {
    let deployment_id = if step.fresh_id {
        Some(Uuid::new_v4())
    } else {
        step.named
            .and_then(|i| ledger.ids.get(i % ledger.ids.len().max(1)).copied())
    };
    EventInput {
        component: Some(["api", "web", "worker"][step.component].into()),
        phase: Some(
            if step.finish.is_some() {
                "finish"
            } else {
                "start"
            }
            .into(),
        ),
        status: step.finish.map(Into::into),
        deployment_id: deployment_id.map(|d| d.to_string()),
        timestamp: Some(
            (base() + Duration::seconds(step.offset_seconds))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        ),
        ..Default::default()
    }
    .validate(base() + Duration::days(1))
    .expect("generated events are valid")
}

proptest! {
    #[test]
    fn pairing_keeps_the_ledger_consistent(steps in prop::collection::vec(step(), 1..60)) {
        let mut ledger = Ledger::default();
        let mut inserts = 0usize;
        for step in &steps {
            let event = to_event(step, &ledger);
            let finals_before: BTreeMap<Uuid, Deployment> = ledger
                .deployments
                .iter()
                .filter(|d| d.state.is_final())
                .map(|d| (d.id, d.clone()))
                .collect();
            let expected_target = if event.deployment_id.is_none() && step.finish.is_some() {
                ledger.latest_running(&event).map(|d| d.id)
            } else {
                None
            };
            match ledger.apply(&event) {
                Ok(Pairing::Insert(d)) => {
                    inserts += 1;
                    prop_assert!(expected_target.is_none(), "a finish with a running deployment to close must close it");
                    if let Some(id) = event.deployment_id { prop_assert_eq!(d.id, id); }
                }
                Ok(Pairing::Update { before, after }) => {
                    if let Some(id) = expected_target { prop_assert_eq!(before.id, id); }
                    prop_assert!(!finals_before.contains_key(&before.id) || before.started_at().is_none(),
                        "only a start may join a finished deployment, and only one without a start");
                    prop_assert_eq!(before.id, after.id);
                }
                Err(PairingError::AlreadyFinished { id, .. }) => prop_assert!(finals_before.contains_key(&id)),
                Err(PairingError::AlreadyStarted { id, .. }) => {
                    prop_assert!(ledger.by_id(id).and_then(|d| d.started_at()).is_some());
                }
                Err(PairingError::FinishBeforeStart { started_at, finished_at, .. }) => {
                    prop_assert!(finished_at < started_at);
                }
                Err(PairingError::DifferentComponent { component, event_component, environment, event_environment, .. }) => {
                    prop_assert!(component != event_component || environment != event_environment);
                }
            }
            prop_assert_eq!(ledger.deployments.len(), inserts);
            for d in &ledger.deployments {
                prop_assert!(d.started_at().is_some() || d.finished_at().is_some());
                prop_assert_eq!(d.state.is_final(), d.finished_at().is_some());
                prop_assert_eq!(d.status.is_some(), d.finished_at().is_some());
                if let Some(seconds) = d.duration_seconds() {
                    prop_assert!(seconds >= 0.0);
                    let (s, f) = (d.started_at().unwrap(), d.finished_at().unwrap());
                    prop_assert_eq!(seconds, (f - s).num_microseconds().unwrap() as f64 / 1e6);
                }
                // Once both ends are known a deployment never changes again.
                if let Some(old) = finals_before.get(&d.id) && old.started_at().is_some() {
                    prop_assert_eq!(old, d);
                }
            }
            let ids: std::collections::BTreeSet<_> = ledger.deployments.iter().map(|d| d.id).collect();
            prop_assert_eq!(ids.len(), ledger.deployments.len(), "deployment ids are unique");
        }
    }

    #[test]
    fn validation_never_panics_on_arbitrary_json(value in arb_json()) {
        if let Ok(input) = EventInput::from_json(value) {
            let _ = input.validate(Utc::now());
        }
    }

    #[test]
    fn validation_never_panics_on_arbitrary_form(pairs in prop::collection::vec((".{0,20}", ".{0,80}"), 0..12)) {
        let _ = EventInput::from_form(pairs).validate(Utc::now());
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let field = prop_oneof![
        Just("component".to_owned()),
        Just("phase".to_owned()),
        Just("status".to_owned()),
        Just("environment".to_owned()),
        Just("version".to_owned()),
        Just("timestamp".to_owned()),
        Just("deployment_id".to_owned()),
        Just("event_id".to_owned()),
        Just("attributes".to_owned()),
        ".{0,12}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("start".to_owned()),
            Just("finish".to_owned()),
            Just("success".to_owned()),
            Just("2026-01-01T00:00:00Z".to_owned()),
            Just("+275760-09-13T00:00:00Z".to_owned()),
            ".{0,200}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 40, 10, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(field.clone(), inner, 0..10)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
