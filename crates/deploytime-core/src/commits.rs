//! The commits a deployment ships, and the lead time for changes measured from
//! them: from each commit's time to the successful finish that shipped it.
//!
//! A store call may carry `commits` (on its start, its finish, or both: the
//! deployment ships the union). The first commit listed is the one deployed
//! (`git log` order, newest first); the server answers it back as the latest
//! shipped commit, from which the next deployment's list starts.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{FieldError, checked_instant};
use crate::stats::DurationSummary;
use crate::time::{format_rfc3339, truncate_to_micros};

/// The most commits one store call may carry: a deploy of more is recorded
/// with its newest ones (the command line keeps the newest and says so).
/// 500 commits fit in the store call's 64 KiB body with SHA-256 ids.
pub const MAX_COMMITS: usize = 500;

/// One commit a deployment ships.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Commit {
    /// The commit id: 7 to 64 hexadecimal digits (SHA-1 or SHA-256,
    /// abbreviated or not), lower case.
    pub sha: String,
    /// The commit's time (the committer date), RFC 3339.
    #[serde(with = "crate::time::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub committed_at: DateTime<Utc>,
}

/// A commit as the client sent it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitInput {
    pub sha: Option<String>,
    pub committed_at: Option<String>,
    /// Wrong types and unknown names, found while reading.
    pub reading_errors: Vec<FieldError>,
}

impl CommitInput {
    /// The canonical form of what was sent, for the call's fingerprint.
    pub(crate) fn canonical(&self) -> (Option<String>, Option<String>) {
        (
            self.sha.as_deref().map(str::to_ascii_lowercase),
            self.committed_at.as_deref().map(|t| {
                DateTime::parse_from_rfc3339(t).map_or_else(
                    |_| t.to_owned(),
                    |at| format_rfc3339(truncate_to_micros(at.with_timezone(&Utc))),
                )
            }),
        )
    }
}

/// Reads `commits` from a JSON value: an array of `{sha, committed_at}` objects.
pub(crate) fn read_json(
    value: serde_json::Value,
    errors: &mut Vec<FieldError>,
) -> Vec<CommitInput> {
    use serde_json::Value;
    let Value::Array(items) = value else {
        errors.push(FieldError::new(
            "commits",
            "must be an array of {\"sha\", \"committed_at\"} objects",
        ));
        return Vec::new();
    };
    if items.len() > MAX_COMMITS {
        errors.push(FieldError::new(
            "commits",
            format!(
                "must hold at most {MAX_COMMITS} commits (got {}); send the newest",
                items.len()
            ),
        ));
        return Vec::new();
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let mut commit = CommitInput::default();
            let Value::Object(fields) = item else {
                commit.reading_errors.push(FieldError::new(
                    format!("commits[{i}]"),
                    "must be an object with `sha` and `committed_at`",
                ));
                return commit;
            };
            for (key, value) in fields {
                let slot = match key.as_str() {
                    "sha" => &mut commit.sha,
                    "committed_at" => &mut commit.committed_at,
                    _ => {
                        commit.reading_errors.push(FieldError::new(
                            format!("commits[{i}].{key}"),
                            "unknown field; a commit has `sha` and `committed_at`",
                        ));
                        continue;
                    }
                };
                match value {
                    Value::String(s) => *slot = Some(s),
                    _ => commit.reading_errors.push(FieldError::new(
                        format!("commits[{i}].{key}"),
                        "must be a string",
                    )),
                }
            }
            commit
        })
        .collect()
}

/// Applies the rules to the commits sent: each needs a hexadecimal `sha` of 7
/// to 64 digits and an RFC 3339 `committed_at` no later than the clock allows
/// for a timestamp; a sha is listed once.
pub(crate) fn validate(
    inputs: Vec<CommitInput>,
    now: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> Vec<Commit> {
    let mut seen = BTreeSet::new();
    let mut commits = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        let before = errors.len();
        errors.extend(input.reading_errors);
        let sha = match input.sha {
            None => {
                errors.push(FieldError::new(format!("commits[{i}].sha"), "is required"));
                None
            }
            Some(sha) => {
                let valid =
                    (7..=64).contains(&sha.len()) && sha.bytes().all(|b| b.is_ascii_hexdigit());
                if !valid {
                    errors.push(FieldError::new(
                        format!("commits[{i}].sha"),
                        format!("must be a commit id of 7 to 64 hexadecimal digits (got {sha:?})"),
                    ));
                    None
                } else {
                    let sha = sha.to_ascii_lowercase();
                    if seen.insert(sha.clone()) {
                        Some(sha)
                    } else {
                        errors.push(FieldError::new(
                            format!("commits[{i}].sha"),
                            format!("{sha} is listed more than once"),
                        ));
                        None
                    }
                }
            }
        };
        let committed_at = match input.committed_at {
            None => {
                errors.push(FieldError::new(
                    format!("commits[{i}].committed_at"),
                    "is required: the commit's time, RFC 3339",
                ));
                None
            }
            Some(t) => checked_instant(&format!("commits[{i}].committed_at"), &t, now)
                .map_err(|e| errors.push(e))
                .ok(),
        };
        if let (Some(sha), Some(committed_at)) = (sha, committed_at)
            && errors.len() == before
        {
            commits.push(Commit { sha, committed_at });
        }
    }
    commits
}

/// One commit shipped by a successful deployment, as the lead time reads it
/// (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipped {
    pub sha: String,
    pub committed_at: i64,
    /// The start of the deployment that shipped it, when it was seen.
    pub started_at: Option<i64>,
    /// The successful finish that shipped it.
    pub finished_at: i64,
    /// When the deployment that shipped it is anchored (its start, or its
    /// finish without one): what the statistics' window selects by.
    pub anchor_at: i64,
}

/// Lead time for changes: per commit, from its time to the successful finish
/// that shipped it, and its two parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeadTime {
    /// Commit → the successful finish that shipped it (count, mean and
    /// nearest-rank percentiles over the commits, seconds).
    pub total: DurationSummary,
    /// Commit → the start of the deployment that shipped it (commits whose
    /// deployment's start was seen).
    pub waiting_to_deploy: DurationSummary,
    /// That deployment's start → its finish, counted once per commit it shipped.
    pub deploying: DurationSummary,
}

/// The lead time of the commits shipped in one component and environment
/// (or several: `shipped` may hold many series, each deduplicated apart).
///
/// A commit shipped more than once (a redeploy of the same commits) counts
/// once, at its first successful finish. A commit dated after the finish that
/// shipped it (a clock skewed, a rebased history) counts as zero, never as a
/// negative time.
pub fn lead_time<'a, S>(series: impl IntoIterator<Item = S>) -> LeadTime
where
    S: IntoIterator<Item = &'a Shipped>,
{
    let mut total = Vec::new();
    let mut waiting = Vec::new();
    let mut deploying = Vec::new();
    for shipped in series {
        let mut first: HashMap<&str, &Shipped> = HashMap::new();
        for commit in shipped {
            first
                .entry(commit.sha.as_str())
                .and_modify(|kept| {
                    if commit.finished_at < kept.finished_at {
                        *kept = commit;
                    }
                })
                .or_insert(commit);
        }
        for commit in first.values() {
            total.push((commit.finished_at - commit.committed_at).max(0));
            if let Some(started) = commit.started_at {
                waiting.push((started - commit.committed_at).max(0));
                deploying.push((commit.finished_at - started).max(0));
            }
        }
    }
    LeadTime {
        total: DurationSummary::of(&mut total),
        waiting_to_deploy: DurationSummary::of(&mut waiting),
        deploying: DurationSummary::of(&mut deploying),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
    }

    fn input(sha: &str, at: &str) -> CommitInput {
        CommitInput {
            sha: Some(sha.into()),
            committed_at: Some(at.into()),
            reading_errors: Vec::new(),
        }
    }

    #[test]
    fn valid_commits_are_normalised() {
        let mut errors = Vec::new();
        let commits = validate(
            vec![input("9FCEB02", "2026-11-30T10:00:00+02:00")],
            now(),
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(commits[0].sha, "9fceb02");
        assert_eq!(
            commits[0].committed_at,
            Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()
        );
    }

    #[test]
    fn every_mistake_is_named_by_its_position() {
        let mut errors = Vec::new();
        let commits = validate(
            vec![
                input("abc", "2026-11-30T10:00:00Z"),
                input("9fceb02", "yesterday"),
                input("9fceb02aa", "2026-12-30T10:00:00Z"),
                CommitInput::default(),
                input("1234567", "2026-11-30T10:00:00Z"),
                input("1234567", "2026-11-30T10:00:00Z"),
            ],
            now(),
            &mut errors,
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "commits[0].sha",
                "commits[1].committed_at",
                "commits[2].committed_at",
                "commits[3].sha",
                "commits[3].committed_at",
                "commits[5].sha",
            ]
        );
        assert_eq!(commits.len(), 1, "only the first 1234567 is valid");
    }

    #[test]
    fn too_many_commits_are_refused_before_reading_them() {
        let one = serde_json::json!({"sha": "1234567", "committed_at": "2026-11-30T10:00:00Z"});
        let mut errors = Vec::new();
        let read = read_json(
            serde_json::Value::Array(vec![one; MAX_COMMITS + 1]),
            &mut errors,
        );
        assert!(read.is_empty());
        assert_eq!(errors[0].field, "commits");
    }

    fn shipped(sha: &str, committed: i64, started: Option<i64>, finished: i64) -> Shipped {
        let s = 1_000_000;
        Shipped {
            sha: sha.into(),
            committed_at: committed * s,
            started_at: started.map(|t| t * s),
            finished_at: finished * s,
            anchor_at: started.unwrap_or(finished) * s,
        }
    }

    #[test]
    fn lead_time_is_per_commit_and_split_in_two() {
        let commits = [
            shipped("a", 0, Some(100), 160),
            shipped("b", 40, Some(100), 160),
            shipped("c", 200, None, 500),
            // Shipped again later: counts once, at its first finish.
            shipped("a", 0, Some(900), 1_000),
            // Dated after its finish: zero, not negative.
            shipped("d", 700, Some(600), 650),
        ];
        let lead = lead_time([&commits]);
        // Totals: a 160, b 120, c 300, d 0 → sorted 0, 120, 160, 300.
        assert_eq!(lead.total.count, 4);
        assert_eq!(lead.total.mean, Some(145.0));
        assert_eq!(lead.total.median, Some(120.0));
        assert_eq!(lead.total.p90, Some(300.0));
        // Waiting: a 100, b 60, d 0 (c had no start).
        assert_eq!(lead.waiting_to_deploy.count, 3);
        assert_eq!(lead.waiting_to_deploy.median, Some(60.0));
        // Deploying, once per commit: a 60, b 60, d 50.
        assert_eq!(lead.deploying.count, 3);
        assert_eq!(lead.deploying.max, Some(60.0));
        assert_eq!(lead.deploying.min, Some(50.0));
    }

    #[test]
    fn the_same_sha_in_two_series_counts_in_each() {
        let api = [shipped("a", 0, Some(10), 20)];
        let web = [shipped("a", 0, Some(30), 40)];
        let lead = lead_time([&api, &web]);
        assert_eq!(lead.total.count, 2);
        assert_eq!(lead.total.mean, Some(30.0));
    }
}
