//! Where a deployment stands: the state it is stored in, and the state it is
//! reported in, which adds `abandoned` for one left running too long. An
//! [`AbandonPolicy`] applied at an instant ([`AbandonCutoff`]) decides the reported
//! state and what a filter on a reported state asks of stored rows.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::Status;

/// The state a deployment is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeploymentState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeploymentState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Running => "running",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::Failed => "failed",
            DeploymentState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "running" => Some(DeploymentState::Running),
            "succeeded" => Some(DeploymentState::Succeeded),
            "failed" => Some(DeploymentState::Failed),
            "cancelled" => Some(DeploymentState::Cancelled),
            _ => None,
        }
    }

    /// The final state a finishing status leads to.
    pub fn from_status(status: &Status) -> Self {
        match status {
            Status::Success => DeploymentState::Succeeded,
            Status::Cancelled => DeploymentState::Cancelled,
            Status::Failed(_) => DeploymentState::Failed,
        }
    }

    pub fn is_final(self) -> bool {
        self != DeploymentState::Running
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored state that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown deployment state {0:?}")]
pub struct UnknownState(pub String);

impl TryFrom<String> for DeploymentState {
    type Error = UnknownState;

    fn try_from(value: String) -> Result<Self, UnknownState> {
        DeploymentState::parse(&value).ok_or(UnknownState(value))
    }
}

impl From<DeploymentState> for String {
    fn from(state: DeploymentState) -> String {
        state.as_str().to_owned()
    }
}

/// The state a deployment is reported in: its stored state, or `abandoned` for
/// one still running past the cut-off. Statistics, listings, filters, views and
/// the command line all speak of these five.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReportedState {
    Running,
    Abandoned,
    Succeeded,
    Failed,
    Cancelled,
}

impl ReportedState {
    /// Every reported state, in the order the documentation lists them.
    pub const ALL: [ReportedState; 5] = [
        ReportedState::Running,
        ReportedState::Succeeded,
        ReportedState::Failed,
        ReportedState::Cancelled,
        ReportedState::Abandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportedState::Running => "running",
            ReportedState::Abandoned => "abandoned",
            ReportedState::Succeeded => "succeeded",
            ReportedState::Failed => "failed",
            ReportedState::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for ReportedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a running deployment counts as abandoned: once it has been running for
/// longer than `after` (24 hours unless the server is told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbandonPolicy {
    after: std::time::Duration,
}

impl AbandonPolicy {
    /// How long a deployment may run before it is reported as abandoned, unless
    /// configured otherwise.
    pub const DEFAULT_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    pub fn new(after: std::time::Duration) -> Self {
        AbandonPolicy { after }
    }

    pub fn after(&self) -> std::time::Duration {
        self.after
    }

    /// The policy applied at `now`.
    pub fn cutoff(&self, now: DateTime<Utc>) -> AbandonCutoff {
        let after = Duration::from_std(self.after).unwrap_or(Duration::MAX);
        AbandonCutoff {
            at: now
                .checked_sub_signed(after)
                .unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

impl Default for AbandonPolicy {
    fn default() -> Self {
        AbandonPolicy::new(Self::DEFAULT_AFTER)
    }
}

/// The abandonment rule at one instant: a deployment still running that started
/// before [`AbandonCutoff::at`] is abandoned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbandonCutoff {
    at: DateTime<Utc>,
}

/// What a filter on one reported state asks of stored deployments: this stored
/// state, and for `running` and `abandoned` a bound on the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredCondition {
    pub state: DeploymentState,
    pub started: Option<StartedBound>,
}

/// A bound on a deployment's start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartedBound {
    Before(DateTime<Utc>),
    AtOrAfter(DateTime<Utc>),
}

impl AbandonCutoff {
    /// A cut-off before every possible start: nothing is abandoned.
    pub const NEVER: AbandonCutoff = AbandonCutoff {
        at: DateTime::<Utc>::MIN_UTC,
    };

    /// Running deployments started before this instant are abandoned.
    pub fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// How a deployment stored in `state`, started at `started_at`, is reported.
    pub fn report(
        &self,
        state: DeploymentState,
        started_at: Option<DateTime<Utc>>,
    ) -> ReportedState {
        match state {
            DeploymentState::Running if started_at.is_some_and(|s| s < self.at) => {
                ReportedState::Abandoned
            }
            DeploymentState::Running => ReportedState::Running,
            DeploymentState::Succeeded => ReportedState::Succeeded,
            DeploymentState::Failed => ReportedState::Failed,
            DeploymentState::Cancelled => ReportedState::Cancelled,
        }
    }

    /// The stored deployments that [`AbandonCutoff::report`] reports in `state`.
    /// A running deployment always has a start, so bounding the start splits the
    /// stored `running` state exactly.
    pub fn selects(&self, state: ReportedState) -> StoredCondition {
        let stored = |state| StoredCondition {
            state,
            started: None,
        };
        match state {
            ReportedState::Running => StoredCondition {
                state: DeploymentState::Running,
                started: Some(StartedBound::AtOrAfter(self.at)),
            },
            ReportedState::Abandoned => StoredCondition {
                state: DeploymentState::Running,
                started: Some(StartedBound::Before(self.at)),
            },
            ReportedState::Succeeded => stored(DeploymentState::Succeeded),
            ReportedState::Failed => stored(DeploymentState::Failed),
            ReportedState::Cancelled => stored(DeploymentState::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_deployment_running_longer_than_the_policy_allows_is_abandoned() {
        let cutoff = AbandonPolicy::default().cutoff(now());
        assert_eq!(
            cutoff.at(),
            Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
        );
        let day_ago = now() - Duration::hours(24);
        let running = DeploymentState::Running;
        assert_eq!(
            cutoff.report(running, Some(day_ago - Duration::microseconds(1))),
            ReportedState::Abandoned
        );
        assert_eq!(
            cutoff.report(running, Some(day_ago)),
            ReportedState::Running
        );
        assert_eq!(cutoff.report(running, None), ReportedState::Running);
        assert_eq!(
            cutoff.report(DeploymentState::Failed, Some(day_ago - Duration::days(9))),
            ReportedState::Failed,
            "only running deployments are ever abandoned"
        );
    }

    #[test]
    fn a_state_filter_selects_exactly_what_is_reported_in_that_state() {
        let cutoff = AbandonPolicy::new(std::time::Duration::from_secs(3600)).cutoff(now());
        let starts = [
            now() - Duration::hours(2),
            now() - Duration::hours(1),
            now() - Duration::minutes(1),
        ];
        for state in [
            DeploymentState::Running,
            DeploymentState::Succeeded,
            DeploymentState::Failed,
            DeploymentState::Cancelled,
        ] {
            for started in starts {
                let reported = cutoff.report(state, Some(started));
                for asked in ReportedState::ALL {
                    let condition = cutoff.selects(asked);
                    let matches = condition.state == state
                        && match condition.started {
                            None => true,
                            Some(StartedBound::Before(at)) => started < at,
                            Some(StartedBound::AtOrAfter(at)) => started >= at,
                        };
                    assert_eq!(matches, reported == asked, "{state} at {started}, {asked}");
                }
            }
        }
    }

    #[test]
    fn states_read_back_from_their_names() {
        for state in ReportedState::ALL {
            assert_eq!(ReportedState::parse(state.as_str()), Some(state));
        }
        assert_eq!(ReportedState::parse("done"), None);
        assert_eq!(
            DeploymentState::try_from("failed".to_owned()),
            Ok(DeploymentState::Failed)
        );
        assert!(DeploymentState::try_from("abandoned".to_owned()).is_err());
    }
}
