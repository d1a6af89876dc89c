//! The release gate's rules: a release's states, the quorum, who may decide,
//! expiry and the reminder. The server stores what these decide and decides
//! nothing of its own.
//!
//! * [`request`]: what a pipeline sends to register a release.
//! * [`approvers`]: who approves, read from an approver source or a file.

pub mod approvers;
pub mod request;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use approvers::{Approver, ApproverListError, StaticApprovers};
pub use request::{ReleaseKey, ReleaseRequest};

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReleaseState {
    /// Waiting for approvers (or for the approver source to answer).
    Pending,
    Approved,
    Rejected,
    /// Not decided before `expires_at`.
    Expired,
    /// No approver could be found: the source's list was empty or unreadable.
    Failed,
}

impl ReleaseState {
    pub const ALL: [ReleaseState; 5] = [
        ReleaseState::Pending,
        ReleaseState::Approved,
        ReleaseState::Rejected,
        ReleaseState::Expired,
        ReleaseState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseState::Pending => "pending",
            ReleaseState::Approved => "approved",
            ReleaseState::Rejected => "rejected",
            ReleaseState::Expired => "expired",
            ReleaseState::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether nothing can change it any more.
    pub fn is_final(self) -> bool {
        self != ReleaseState::Pending
    }
}

impl fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Verdict {
    Approve,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Reject => "reject",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "approve" => Some(Verdict::Approve),
            "reject" => Some(Verdict::Reject),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the gate is run; set by the server's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatePolicy {
    /// Whether a requester who is also an approver may approve their own
    /// release (off by default, as GitLab has it; on for teams of one).
    pub allow_self_approval: bool,
    /// How long before expiry approvers who have not answered are reminded.
    pub remind_before: Duration,
}

impl GatePolicy {
    pub const DEFAULT_REMIND_BEFORE: Duration = Duration::from_secs(24 * 3600);
    pub const DEFAULT: GatePolicy = GatePolicy {
        allow_self_approval: false,
        remind_before: Self::DEFAULT_REMIND_BEFORE,
    };

    /// Whether `approver` may approve a release `requested_by` asked for.
    pub fn may_approve(&self, approver: &Approver, requested_by: Option<&str>) -> bool {
        self.allow_self_approval || !requested_by.is_some_and(|who| approver.is(who))
    }

    /// When approvers who have not answered get their one reminder: `remind_before`
    /// ahead of expiry, if that is after the release was created (a release
    /// that expires sooner gets none).
    pub fn reminder_at(
        &self,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let before = chrono::Duration::from_std(self.remind_before).ok()?;
        let at = expires_at - before;
        (at > created_at).then_some(at)
    }
}

impl Default for GatePolicy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How many approvals a release needs once its approvers are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quorum {
    pub needed: u32,
    /// The approvers whose approval counts (the requester's does not, unless
    /// allowed).
    pub eligible: u32,
}

/// Why a release cannot be decided by the approvers found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumError {
    #[error("{needed} approvals are required but only {eligible} of the approvers may approve")]
    Unreachable { needed: u32, eligible: u32 },
}

/// The quorum of a release: `required` approvals (`None`: every eligible
/// approver), out of the approvers who may approve.
pub fn quorum(
    required: Option<u32>,
    approvers: &[Approver],
    requested_by: Option<&str>,
    policy: &GatePolicy,
) -> Result<Quorum, QuorumError> {
    let eligible = approvers
        .iter()
        .filter(|a| policy.may_approve(a, requested_by))
        .count();
    let eligible = u32::try_from(eligible).unwrap_or(u32::MAX);
    let needed = required.unwrap_or(eligible);
    if needed == 0 || needed > eligible {
        return Err(QuorumError::Unreachable {
            needed: needed.max(1),
            eligible,
        });
    }
    Ok(Quorum { needed, eligible })
}

/// What the decisions so far make of a release: one rejection rejects it;
/// `needed` approvals approve it; otherwise it waits.
pub fn outcome(quorum: Quorum, approvals: u32, rejections: u32) -> ReleaseState {
    if rejections > 0 {
        ReleaseState::Rejected
    } else if approvals >= quorum.needed {
        ReleaseState::Approved
    } else {
        ReleaseState::Pending
    }
}

/// The state a reader is told: a pending release past its expiry is expired,
/// whether or not the server has recorded it yet.
pub fn reported_state(
    stored: ReleaseState,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ReleaseState {
    if stored == ReleaseState::Pending && now >= expires_at {
        ReleaseState::Expired
    } else {
        stored
    }
}

/// Why a decision is not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this link has already been used: the decision was recorded")]
    AlreadyAnswered,
    #[error("the release has expired; it can no longer be approved or rejected")]
    Expired,
    #[error("the release is already {0}; it can no longer be approved or rejected")]
    Closed(ReleaseState),
    #[error("you requested this release: someone else must approve it (you may still reject it)")]
    SelfApproval,
}

/// What an approver's link points at when they answer.
#[derive(Debug, Clone)]
pub struct Ballot {
    pub answered: bool,
    /// As decided when the approver was asked ([`GatePolicy::may_approve`]),
    /// so that a change of the server's policy meanwhile does not make the
    /// quorum and the ballots disagree.
    pub may_approve: bool,
    pub release_state: ReleaseState,
    pub expires_at: DateTime<Utc>,
}

/// Whether `verdict` may be recorded on `ballot` now.
pub fn admit(ballot: &Ballot, verdict: Verdict, now: DateTime<Utc>) -> Result<(), Refusal> {
    if ballot.answered {
        return Err(Refusal::AlreadyAnswered);
    }
    match reported_state(ballot.release_state, ballot.expires_at, now) {
        ReleaseState::Pending => {}
        ReleaseState::Expired => return Err(Refusal::Expired),
        closed => return Err(Refusal::Closed(closed)),
    }
    if verdict == Verdict::Approve && !ballot.may_approve {
        return Err(Refusal::SelfApproval);
    }
    Ok(())
}

/// The stored form of an approver's one-time link: the SHA-256 of the token.
/// The token itself (256 bits from the OS) is only ever in the mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkDigest([u8; 32]);

impl LinkDigest {
    pub fn of(token: &str) -> Self {
        LinkDigest(Sha256::digest(token.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Whether `token` can be a link token at all (43 URL-safe base64
    /// characters, 256 bits): anything else is refused before a lookup.
    pub fn looks_like_token(token: &str) -> bool {
        token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }
}

/// A release as stored: what was asked, and where it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Release {
    pub request: ReleaseRequest,
    /// The state as recorded; readers are told [`Release::state_at`].
    pub state: ReleaseState,
    /// Why it is failed, or why it still waits (the approver source is down).
    pub reason: Option<String>,
    /// Approvals needed, once the approvers are known.
    pub needed: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl Release {
    /// The state a reader is told now (see [`reported_state`]).
    pub fn state_at(&self, now: DateTime<Utc>) -> ReleaseState {
        reported_state(self.state, self.expires_at, now)
    }

    /// When it was decided, expired included.
    pub fn closed_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.decided_at
            .or_else(|| (self.state_at(now) == ReleaseState::Expired).then_some(self.expires_at))
    }
}

/// One approver asked about a release, and their answer if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub approver: Approver,
    /// False for the requester (unless self-approval is allowed): they may
    /// only reject.
    pub may_approve: bool,
    pub verdict: Option<Verdict>,
    pub comment: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

/// The longest comment kept with a decision, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// A decision's comment: trimmed, at most [`MAX_COMMENT_CHARS`], line breaks
/// kept and other control characters refused; empty is none.
pub fn comment(raw: Option<&str>) -> Result<Option<String>, String> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let chars = text.chars().count();
    if chars > MAX_COMMENT_CHARS {
        return Err(format!(
            "the comment must be at most {MAX_COMMENT_CHARS} characters (got {chars})"
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        return Err("the comment must not contain control characters".into());
    }
    Ok(Some(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn approver(email: &str) -> Approver {
        Approver {
            email: email.into(),
            name: None,
        }
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, hour, 0, 0).unwrap()
    }

    #[test]
    fn the_quorum_defaults_to_every_eligible_approver() {
        let three = [approver("a@x.io"), approver("b@x.io"), approver("c@x.io")];
        let policy = GatePolicy::DEFAULT;
        assert_eq!(
            quorum(None, &three, None, &policy),
            Ok(Quorum {
                needed: 3,
                eligible: 3
            })
        );
        assert_eq!(
            quorum(Some(2), &three, Some("A@x.io"), &policy),
            Ok(Quorum {
                needed: 2,
                eligible: 2
            }),
            "the requester's approval does not count"
        );
        assert_eq!(
            quorum(Some(3), &three, Some("a@x.io"), &policy),
            Err(QuorumError::Unreachable {
                needed: 3,
                eligible: 2
            })
        );
        let alone = [approver("a@x.io")];
        assert!(quorum(None, &alone, Some("a@x.io"), &policy).is_err());
        let team_of_one = GatePolicy {
            allow_self_approval: true,
            ..policy
        };
        assert_eq!(
            quorum(None, &alone, Some("a@x.io"), &team_of_one),
            Ok(Quorum {
                needed: 1,
                eligible: 1
            })
        );
    }

    #[test]
    fn one_rejection_rejects_and_the_quorum_approves() {
        let q = Quorum {
            needed: 2,
            eligible: 3,
        };
        assert_eq!(outcome(q, 0, 0), ReleaseState::Pending);
        assert_eq!(outcome(q, 1, 0), ReleaseState::Pending);
        assert_eq!(outcome(q, 2, 0), ReleaseState::Approved);
        assert_eq!(outcome(q, 2, 1), ReleaseState::Rejected);
        assert_eq!(outcome(q, 0, 1), ReleaseState::Rejected);
    }

    #[test]
    fn decisions_are_admitted_while_the_release_is_open() {
        let open = Ballot {
            answered: false,
            may_approve: true,
            release_state: ReleaseState::Pending,
            expires_at: at(12),
        };
        assert_eq!(admit(&open, Verdict::Approve, at(11)), Ok(()));
        assert_eq!(
            admit(&open, Verdict::Approve, at(12)),
            Err(Refusal::Expired)
        );
        let used = Ballot {
            answered: true,
            ..open.clone()
        };
        assert_eq!(
            admit(&used, Verdict::Reject, at(11)),
            Err(Refusal::AlreadyAnswered)
        );
        let closed = Ballot {
            release_state: ReleaseState::Rejected,
            ..open.clone()
        };
        assert_eq!(
            admit(&closed, Verdict::Approve, at(11)),
            Err(Refusal::Closed(ReleaseState::Rejected))
        );
        let own = Ballot {
            may_approve: false,
            ..open
        };
        assert_eq!(
            admit(&own, Verdict::Approve, at(11)),
            Err(Refusal::SelfApproval)
        );
        assert_eq!(admit(&own, Verdict::Reject, at(11)), Ok(()));
    }

    #[test]
    fn expiry_and_the_reminder() {
        assert_eq!(
            reported_state(ReleaseState::Pending, at(12), at(12)),
            ReleaseState::Expired
        );
        assert_eq!(
            reported_state(ReleaseState::Approved, at(12), at(13)),
            ReleaseState::Approved
        );
        let policy = GatePolicy {
            remind_before: Duration::from_secs(3600),
            ..GatePolicy::DEFAULT
        };
        assert_eq!(policy.reminder_at(at(1), at(12)), Some(at(11)));
        assert_eq!(policy.reminder_at(at(11), at(12)), None);
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(LinkDigest::looks_like_token(&"A".repeat(43)));
        assert!(!LinkDigest::looks_like_token(&"0f".repeat(32)));
        assert!(!LinkDigest::looks_like_token("garbage"));
        assert!(!LinkDigest::looks_like_token(&"+".repeat(43)));
        assert_ne!(LinkDigest::of("a").to_hex(), LinkDigest::of("b").to_hex());
    }
}
