//! Pairing: which stored deployment an event applies to ([`target`]), when an
//! event without a timestamp happened ([`stamped`]), and what the event makes of
//! its deployment ([`pair`]). The store looks the target up and applies the
//! decision; docs/architecture.md states the rules in full.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::deployment::{Deployment, Ends};
use crate::event::{EventKind, NewEvent, Phase};
use crate::names::{Component, Environment};
use crate::state::DeploymentState;
use crate::time::truncate_to_micros;

/// The stored deployment an event applies to, as the store must look it up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The deployment the event names by id. A start opens it when it is not
    /// stored; a finish that finds nothing is kept as a deployment without a
    /// start, under that id.
    Named(Uuid),
    /// The most recently started running deployment of this component and
    /// environment; of two started at the same instant, the one stored last.
    /// None: the finish is kept as a deployment without a start.
    LatestRunning {
        component: &'a Component,
        environment: &'a Environment,
    },
    /// Nothing to look up: a start without an id opens a new deployment.
    Nothing,
}

/// Which deployment `event` applies to.
pub fn target(event: &NewEvent) -> Target<'_> {
    match (event.deployment_id, event.kind.phase()) {
        (Some(id), _) => Target::Named(id),
        (None, Phase::Finish) => Target::LatestRunning {
            component: &event.component,
            environment: &event.environment,
        },
        (None, Phase::Start) => Target::Nothing,
    }
}

/// The event with the time it happened. A client's own timestamp is kept.
/// Without one, the event happened when it is applied (`applied_at`), but never
/// before it was received and never before the start it closes: a finish that
/// waited behind its own start (or raced it on another connection) must not be
/// refused as earlier than that start, and server-assigned times follow the
/// order in which events are paired.
pub fn stamped<'a>(
    event: &'a NewEvent,
    target: Option<&Deployment>,
    applied_at: DateTime<Utc>,
) -> Cow<'a, NewEvent> {
    if event.timestamp_given {
        return Cow::Borrowed(event);
    }
    let applied = truncate_to_micros(applied_at);
    let started = target.and_then(Deployment::started_at);
    Cow::Owned(NewEvent {
        occurred_at: applied
            .max(event.occurred_at)
            .max(started.unwrap_or(applied)),
        ..event.clone()
    })
}

/// Why an event cannot be applied to the deployment it targets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingError {
    #[error(
        "deployment {id} has already started (at {started_at}); a deployment id can be started once"
    )]
    AlreadyStarted { id: Uuid, started_at: DateTime<Utc> },
    #[error("deployment {id} is already finished ({state}); a deployment is closed once")]
    AlreadyFinished { id: Uuid, state: &'static str },
    #[error(
        "deployment {id} belongs to {component} in {environment}, not to {event_component} in {event_environment}"
    )]
    DifferentComponent {
        id: Uuid,
        component: Component,
        environment: Environment,
        event_component: Component,
        event_environment: Environment,
    },
    #[error(
        "the finish ({finished_at}) is earlier than the start ({started_at}) of deployment {id}"
    )]
    FinishBeforeStart {
        id: Uuid,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    },
}

/// What the store must do to apply an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pairing {
    /// Create this deployment.
    Insert(Deployment),
    /// Replace `before` with `after`, provided nobody changed it in the meantime.
    Update {
        before: Deployment,
        after: Deployment,
    },
}

impl Pairing {
    /// The deployment as it is once the event is applied.
    pub fn deployment(&self) -> &Deployment {
        match self {
            Pairing::Insert(d) => d,
            Pairing::Update { after, .. } => after,
        }
    }
}

fn check_same_component(target: &Deployment, event: &NewEvent) -> Result<(), PairingError> {
    if target.component == event.component && target.environment == event.environment {
        Ok(())
    } else {
        Err(PairingError::DifferentComponent {
            id: target.id,
            component: target.component.clone(),
            environment: target.environment.clone(),
            event_component: event.component.clone(),
            event_environment: event.environment.clone(),
        })
    }
}

fn new_deployment(event: &NewEvent, id: Uuid) -> Deployment {
    let (state, status, ends) = match &event.kind {
        EventKind::Finish(status) => (
            DeploymentState::from_status(status),
            Some(status.clone()),
            Ends::Finished(event.occurred_at),
        ),
        EventKind::Start => (
            DeploymentState::Running,
            None,
            Ends::Started(event.occurred_at),
        ),
    };
    Deployment {
        id,
        component: event.component.clone(),
        environment: event.environment.clone(),
        version: event.version.clone(),
        owner: event.owner.clone(),
        state,
        status,
        ends,
        rollback: event.rollback,
    }
}

/// Applies a `start`. `existing` is the deployment already stored under the id the
/// event names, if any; `new_id` is used when the event names none.
pub fn pair_start(
    event: &NewEvent,
    existing: Option<Deployment>,
    new_id: Uuid,
) -> Result<Pairing, PairingError> {
    let Some(before) = existing else {
        return Ok(Pairing::Insert(new_deployment(
            event,
            event.deployment_id.unwrap_or(new_id),
        )));
    };
    check_same_component(&before, event)?;
    if let Some(started_at) = before.started_at() {
        return Err(PairingError::AlreadyStarted {
            id: before.id,
            started_at,
        });
    }
    // The finish arrived first; join this start to it.
    if let Some(finished_at) = before.finished_at()
        && finished_at < event.occurred_at
    {
        return Err(PairingError::FinishBeforeStart {
            id: before.id,
            started_at: event.occurred_at,
            finished_at,
        });
    }
    let mut after = before.clone();
    after.ends = after.ends.with_start(event.occurred_at);
    // The start's description of the deployment wins over the finish's.
    after.version = event.version.clone().or(after.version);
    after.owner = event.owner.clone().or(after.owner);
    after.rollback |= event.rollback;
    Ok(Pairing::Update { before, after })
}

/// Applies a `finish` to the deployment it closes: the one its id names, or the
/// most recent running one of its component and environment (`target`), or none,
/// in which case it is kept as a deployment without a start.
pub fn pair_finish_with_start(
    event: &NewEvent,
    target: Option<Deployment>,
    new_id: Uuid,
) -> Result<Pairing, PairingError> {
    let Some(before) = target else {
        return Ok(Pairing::Insert(new_deployment(
            event,
            event.deployment_id.unwrap_or(new_id),
        )));
    };
    check_same_component(&before, event)?;
    if before.state.is_final() {
        return Err(PairingError::AlreadyFinished {
            id: before.id,
            state: before.state.as_str(),
        });
    }
    let EventKind::Finish(status) = event.kind.clone() else {
        // A start sent here opens its own deployment instead of closing this one.
        return pair_start(event, None, new_id);
    };
    if let Some(started_at) = before.started_at()
        && event.occurred_at < started_at
    {
        return Err(PairingError::FinishBeforeStart {
            id: before.id,
            started_at,
            finished_at: event.occurred_at,
        });
    }
    let mut after = before.clone();
    after.state = DeploymentState::from_status(&status);
    after.status = Some(status);
    after.ends = after.ends.with_finish(event.occurred_at);
    after.version = after.version.or_else(|| event.version.clone());
    after.owner = after.owner.or_else(|| event.owner.clone());
    after.rollback |= event.rollback;
    Ok(Pairing::Update { before, after })
}

/// Applies either kind of event.
pub fn pair(
    event: &NewEvent,
    target: Option<Deployment>,
    new_id: Uuid,
) -> Result<Pairing, PairingError> {
    match event.kind {
        EventKind::Start => pair_start(event, target, new_id),
        EventKind::Finish(_) => pair_finish_with_start(event, target, new_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventInput, Status};
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
    }

    fn event(phase: &str, status: Option<&str>, at: DateTime<Utc>, id: Option<Uuid>) -> NewEvent {
        EventInput {
            component: Some("api".into()),
            phase: Some(phase.into()),
            status: status.map(Into::into),
            timestamp: Some(crate::time::format_rfc3339(at)),
            deployment_id: id.map(|i| i.to_string()),
            version: Some(format!("{phase}-version")),
            ..Default::default()
        }
        .validate(at + Duration::days(1))
        .unwrap()
    }

    #[test]
    fn start_opens_a_running_deployment() {
        let id = Uuid::now_v7();
        let pairing = pair_start(&event("start", None, t0(), None), None, id).unwrap();
        let Pairing::Insert(d) = pairing else {
            panic!("expected an insert")
        };
        assert_eq!(d.id, id);
        assert_eq!(d.state, DeploymentState::Running);
        assert_eq!(d.started_at(), Some(t0()));
        assert_eq!(d.duration_seconds(), None);
    }

    #[test]
    fn start_uses_the_client_chosen_id() {
        let chosen = Uuid::now_v7();
        let pairing = pair_start(
            &event("start", None, t0(), Some(chosen)),
            None,
            Uuid::now_v7(),
        )
        .unwrap();
        assert_eq!(pairing.deployment().id, chosen);
    }

    #[test]
    fn finish_closes_and_measures() {
        let start = new_deployment(&event("start", None, t0(), None), Uuid::now_v7());
        let finish = event(
            "finish",
            Some("exit-3"),
            t0() + Duration::seconds(192),
            None,
        );
        let pairing = pair_finish_with_start(&finish, Some(start.clone()), Uuid::now_v7()).unwrap();
        let Pairing::Update { before, after } = pairing else {
            panic!("expected an update")
        };
        assert_eq!(before, start);
        assert_eq!(after.state, DeploymentState::Failed);
        assert_eq!(after.status, Some(Status::Failed("exit-3".into())));
        assert_eq!(after.duration_seconds(), Some(192.0));
        assert_eq!(after.version.as_deref(), Some("start-version"));
    }

    #[test]
    fn finish_without_target_is_kept_as_orphan() {
        let id = Uuid::now_v7();
        let pairing =
            pair_finish_with_start(&event("finish", Some("success"), t0(), None), None, id)
                .unwrap();
        let d = pairing.deployment();
        assert_eq!(d.state, DeploymentState::Succeeded);
        assert_eq!(d.started_at(), None);
        assert_eq!(d.finished_at(), Some(t0()));
        assert_eq!(d.duration_seconds(), None);
        assert_eq!(d.anchor_at(), t0());
    }

    #[test]
    fn closing_twice_is_a_conflict() {
        let start = new_deployment(&event("start", None, t0(), None), Uuid::now_v7());
        let done = pair_finish_with_start(
            &event("finish", Some("success"), t0() + Duration::seconds(1), None),
            Some(start),
            Uuid::now_v7(),
        )
        .unwrap()
        .deployment()
        .clone();
        let err = pair_finish_with_start(
            &event("finish", Some("success"), t0() + Duration::seconds(2), None),
            Some(done),
            Uuid::now_v7(),
        )
        .unwrap_err();
        assert!(matches!(
            err,
            PairingError::AlreadyFinished {
                state: "succeeded",
                ..
            }
        ));
    }

    #[test]
    fn finish_before_start_is_rejected() {
        let start = new_deployment(&event("start", None, t0(), None), Uuid::now_v7());
        let err = pair_finish_with_start(
            &event(
                "finish",
                Some("success"),
                t0() - Duration::microseconds(1),
                None,
            ),
            Some(start),
            Uuid::now_v7(),
        )
        .unwrap_err();
        assert!(matches!(err, PairingError::FinishBeforeStart { .. }));
    }

    #[test]
    fn a_late_start_joins_its_orphan_finish() {
        let id = Uuid::now_v7();
        let orphan = pair_finish_with_start(
            &event(
                "finish",
                Some("cancelled"),
                t0() + Duration::seconds(30),
                Some(id),
            ),
            None,
            Uuid::now_v7(),
        )
        .unwrap()
        .deployment()
        .clone();
        assert_eq!(orphan.id, id);
        let joined = pair_start(&event("start", None, t0(), Some(id)), Some(orphan), id).unwrap();
        let d = joined.deployment();
        assert_eq!(d.state, DeploymentState::Cancelled);
        assert_eq!(d.duration_seconds(), Some(30.0));
        assert_eq!(d.version.as_deref(), Some("start-version"));
        // A start after the finish it would join is as wrong as a finish before its start.
        let orphan = new_deployment(&event("finish", Some("success"), t0(), Some(id)), id);
        let err = pair_start(
            &event("start", None, t0() + Duration::seconds(1), Some(id)),
            Some(orphan),
            id,
        )
        .unwrap_err();
        assert!(matches!(err, PairingError::FinishBeforeStart { .. }));
    }

    #[test]
    fn a_start_id_is_used_once() {
        let id = Uuid::now_v7();
        let running = new_deployment(&event("start", None, t0(), Some(id)), id);
        let err = pair_start(&event("start", None, t0(), Some(id)), Some(running), id).unwrap_err();
        assert!(matches!(err, PairingError::AlreadyStarted { .. }));
    }

    #[test]
    fn an_event_targets_the_deployment_it_names_or_else_the_latest_running_one() {
        let id = Uuid::now_v7();
        let named = event("finish", Some("success"), t0(), Some(id));
        assert_eq!(target(&named), Target::Named(id));
        let start_named = event("start", None, t0(), Some(id));
        assert_eq!(target(&start_named), Target::Named(id));
        let finish = event("finish", Some("success"), t0(), None);
        assert_eq!(
            target(&finish),
            Target::LatestRunning {
                component: &finish.component,
                environment: &finish.environment
            }
        );
        assert_eq!(target(&event("start", None, t0(), None)), Target::Nothing);
    }

    #[test]
    fn a_server_stamped_finish_is_never_before_its_start_nor_its_receipt() {
        let received = t0();
        let finish = EventInput {
            component: Some("api".into()),
            phase: Some("finish".into()),
            status: Some("success".into()),
            ..Default::default()
        }
        .validate(received)
        .unwrap();
        assert!(!finish.timestamp_given);
        // Applied later than received: the time it is applied.
        let later = received + Duration::seconds(3);
        assert_eq!(stamped(&finish, None, later).occurred_at, later);
        // A clock that went back: never before the receipt.
        let earlier = received - Duration::seconds(3);
        assert_eq!(stamped(&finish, None, earlier).occurred_at, received);
        // The start it closes was stamped after this finish was received.
        let start = new_deployment(
            &event("start", None, received + Duration::seconds(1), None),
            Uuid::now_v7(),
        );
        assert_eq!(
            stamped(&finish, Some(&start), received).occurred_at,
            received + Duration::seconds(1)
        );
        // A client's timestamp is kept as given.
        let given = event("finish", Some("success"), earlier, None);
        assert_eq!(stamped(&given, Some(&start), later).occurred_at, earlier);
    }

    #[test]
    fn ids_cannot_cross_components() {
        let id = Uuid::now_v7();
        let mut running = new_deployment(&event("start", None, t0(), Some(id)), id);
        running.component = Component::parse("web").unwrap();
        let err = pair_finish_with_start(
            &event("finish", Some("success"), t0(), Some(id)),
            Some(running),
            id,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("belongs to web in production"),
            "{err}"
        );
    }
}
