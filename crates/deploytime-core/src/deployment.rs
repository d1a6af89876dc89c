//! A deployment: what a start and a finish describe together, or one of them so
//! far. Its time on the timeline (its anchor) and its duration are decided here,
//! once, for the stores, the listings and the statistics.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::event::Status;
use crate::names::{Component, Environment};
use crate::state::{AbandonCutoff, DeploymentState, ReportedState};
use crate::time::micros_to_seconds;

/// The ends of a deployment that are known: at least one always is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ends {
    /// Running, or a start whose finish was never seen.
    Started(DateTime<Utc>),
    /// A finish whose start was never seen (or not yet).
    Finished(DateTime<Utc>),
    Both {
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    },
}

impl Ends {
    /// The ends from two optional instants; `None` when neither is known.
    pub fn from_parts(
        started: Option<DateTime<Utc>>,
        finished: Option<DateTime<Utc>>,
    ) -> Option<Self> {
        match (started, finished) {
            (Some(started), Some(finished)) => Some(Ends::Both { started, finished }),
            (Some(started), None) => Some(Ends::Started(started)),
            (None, Some(finished)) => Some(Ends::Finished(finished)),
            (None, None) => None,
        }
    }

    pub fn started_at(self) -> Option<DateTime<Utc>> {
        match self {
            Ends::Started(at) | Ends::Both { started: at, .. } => Some(at),
            Ends::Finished(_) => None,
        }
    }

    pub fn finished_at(self) -> Option<DateTime<Utc>> {
        match self {
            Ends::Finished(at) | Ends::Both { finished: at, .. } => Some(at),
            Ends::Started(_) => None,
        }
    }

    /// These ends with the start known.
    pub fn with_start(self, started: DateTime<Utc>) -> Self {
        match self.finished_at() {
            Some(finished) => Ends::Both { started, finished },
            None => Ends::Started(started),
        }
    }

    /// These ends with the finish known.
    pub fn with_finish(self, finished: DateTime<Utc>) -> Self {
        match self.started_at() {
            Some(started) => Ends::Both { started, finished },
            None => Ends::Finished(finished),
        }
    }
}

/// One deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    pub id: Uuid,
    pub component: Component,
    pub environment: Environment,
    pub version: Option<String>,
    pub owner: Option<String>,
    pub state: DeploymentState,
    pub status: Option<Status>,
    pub ends: Ends,
    /// A rollback to an earlier version: said by its start or its finish.
    pub rollback: bool,
}

impl Deployment {
    pub fn started_at(&self) -> Option<DateTime<Utc>> {
        self.ends.started_at()
    }

    pub fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.ends.finished_at()
    }

    /// How long it took; known only when both ends are.
    pub fn duration(&self) -> Option<Duration> {
        match self.ends {
            Ends::Both { started, finished } => Some(finished - started),
            _ => None,
        }
    }

    /// How long it took, in seconds, as the API reports it.
    pub fn duration_seconds(&self) -> Option<f64> {
        self.duration()
            .and_then(|d| d.num_microseconds())
            .map(micros_to_seconds)
    }

    /// The instant a deployment is listed, filtered and counted by: its start,
    /// or its finish when the start was never seen.
    pub fn anchor_at(&self) -> DateTime<Utc> {
        match self.ends {
            Ends::Started(at) | Ends::Finished(at) => at,
            Ends::Both { started, .. } => started,
        }
    }

    /// How the deployment is reported at this cut-off.
    pub fn reported_state(&self, cutoff: &AbandonCutoff) -> ReportedState {
        cutoff.report(self.state, self.started_at())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap() + Duration::seconds(seconds)
    }

    fn deployment(ends: Ends) -> Deployment {
        Deployment {
            id: Uuid::now_v7(),
            component: Component::parse("api").unwrap(),
            environment: Environment::default_environment(),
            version: None,
            owner: None,
            state: DeploymentState::Running,
            status: None,
            ends,
            rollback: false,
        }
    }

    #[test]
    fn the_anchor_is_the_start_or_else_the_finish() {
        assert_eq!(deployment(Ends::Started(at(0))).anchor_at(), at(0));
        assert_eq!(deployment(Ends::Finished(at(9))).anchor_at(), at(9));
        let both = Ends::Both {
            started: at(0),
            finished: at(9),
        };
        assert_eq!(deployment(both).anchor_at(), at(0));
    }

    #[test]
    fn a_duration_needs_both_ends() {
        assert_eq!(deployment(Ends::Started(at(0))).duration(), None);
        assert_eq!(deployment(Ends::Finished(at(0))).duration_seconds(), None);
        let both = Ends::Finished(at(192)).with_start(at(0));
        assert_eq!(deployment(both).duration_seconds(), Some(192.0));
        assert_eq!(
            Ends::Started(at(0)).with_finish(at(5)),
            Ends::Both {
                started: at(0),
                finished: at(5)
            }
        );
        assert_eq!(Ends::from_parts(None, None), None);
    }
}
