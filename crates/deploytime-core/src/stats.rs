//! Duration statistics and DORA figures, computed exactly from raw samples.
//!
//! Definitions (the README repeats them):
//! * Percentiles are **nearest-rank**: the p-th percentile of N sorted durations is
//!   the value at rank ⌈p/100 × N⌉ (1-based). The median is the 50th percentile by
//!   the same rule, so it is always one of the measured durations.
//! * `stddev` is the population standard deviation (divided by N).
//! * Durations are taken from finished deployments that have both a start and a
//!   finish; abandoned and running ones have none.
//! * `change_failure_rate` = failed / finished; `success_rate` = succeeded / finished,
//!   where finished = succeeded + failed + cancelled.
//! * Time to restore: for each run of consecutive failures of one component and
//!   environment (ordered by finish time), from the finish of the first failure to
//!   the finish of the next success. Failures not yet followed by a success count
//!   as unrestored and are left out of the mean.
//! * Change failure rate, by the definition asked for ([`ChangeFailure`]):
//!   failed / finished, or (failed or followed by a rollback) / finished.
//! * Lead time for changes: per commit shipped by a successful deployment, from
//!   the commit's time to that deployment's finish ([`crate::commits::lead_time`]).

use std::collections::{BTreeMap, HashMap};

use chrono::{NaiveDate, TimeZone};
use serde::{Deserialize, Serialize};

use crate::commits::{LeadTime, Shipped, lead_time};
use crate::dora::Levels;
use crate::state::ReportedState;
use crate::time::{from_micros, micros_to_seconds};

/// One deployment, reduced to what the statistics need. Times are microseconds
/// since the epoch, as stored. Which component and environment it is of is said
/// once per [`Series`], not per sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// As reported at the request's abandonment cut-off.
    pub outcome: ReportedState,
    pub finished_at: Option<i64>,
    pub duration_us: Option<i64>,
    /// The start, or the finish when there was no start.
    pub anchor_at: i64,
    /// A rollback to an earlier version.
    pub rollback: bool,
}

/// The deployments of one component in one environment: what the restore times
/// are computed over, and what groups are made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub component: String,
    pub environment: String,
    pub samples: Vec<Sample>,
    /// The commits its successful deployments in the window shipped.
    pub shipped: Vec<Shipped>,
}

/// Which deployments the change failure rate counts as failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ChangeFailure {
    /// Those that failed (DORA's original definition, and the default).
    #[default]
    Failed,
    /// Those that failed or were followed by a rollback: the next finished
    /// deployment of the same component and environment is a rollback.
    FailedOrRolledBack,
}

impl ChangeFailure {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "failed" => Some(ChangeFailure::Failed),
            "failed_or_rolled_back" => Some(ChangeFailure::FailedOrRolledBack),
            _ => None,
        }
    }

    /// The name `parse` reads.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeFailure::Failed => "failed",
            ChangeFailure::FailedOrRolledBack => "failed_or_rolled_back",
        }
    }

    /// The definition, as the statistics answer names it.
    pub fn definition(self) -> &'static str {
        match self {
            ChangeFailure::Failed => {
                "failed / finished (succeeded + failed + cancelled) deployments"
            }
            ChangeFailure::FailedOrRolledBack => {
                "deployments that failed or were followed by a rollback (the next finished deployment of the same component and environment has rollback: true) / finished (succeeded + failed + cancelled) deployments"
            }
        }
    }
}

/// The definitions the figures of a statistics answer were computed by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Definitions {
    /// `failed` or `failed_or_rolled_back` (the `change_failure` parameter).
    pub change_failure: String,
    pub change_failure_rate: String,
    pub mean_time_to_restore_seconds: String,
    pub lead_time_seconds: String,
}

impl Definitions {
    pub fn of(change_failure: ChangeFailure) -> Self {
        Definitions {
            change_failure: change_failure.as_str().to_owned(),
            change_failure_rate: change_failure.definition().to_owned(),
            mean_time_to_restore_seconds: "failure streaks: per component and environment, from the finish of the first failed deployment of a run of failures to the finish of the next successful one; runs still failing are left out".to_owned(),
            lead_time_seconds: "per commit shipped by a successful deployment anchored in the window: from the commit's time to that deployment's finish (a commit shipped again counts once, at its first successful finish); split into waiting_to_deploy (commit to start) and deploying (start to finish); level by the median".to_owned(),
        }
    }
}

/// Summary of a set of durations, in seconds; every value is `None` when empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DurationSummary {
    pub count: usize,
    pub mean: Option<f64>,
    pub median: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub stddev: Option<f64>,
}

/// The nearest-rank percentile of already sorted values.
pub fn nearest_rank(sorted: &[i64], percentile: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((percentile / 100.0) * n as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, n) - 1])
}

impl DurationSummary {
    /// Summarises durations in microseconds (sorted in place).
    pub fn of(durations: &mut [i64]) -> Self {
        durations.sort_unstable();
        let count = durations.len();
        let seconds = |v: Option<i64>| v.map(micros_to_seconds);
        if count == 0 {
            return Self {
                count,
                mean: None,
                median: None,
                p90: None,
                p95: None,
                p99: None,
                min: None,
                max: None,
                stddev: None,
            };
        }
        let sum: i128 = durations.iter().map(|&d| i128::from(d)).sum();
        let mean_us = sum as f64 / count as f64;
        let variance = durations
            .iter()
            .map(|&d| {
                let diff = d as f64 - mean_us;
                diff * diff
            })
            .sum::<f64>()
            / count as f64;
        Self {
            count,
            mean: Some(mean_us / 1e6),
            median: seconds(nearest_rank(durations, 50.0)),
            p90: seconds(nearest_rank(durations, 90.0)),
            p95: seconds(nearest_rank(durations, 95.0)),
            p99: seconds(nearest_rank(durations, 99.0)),
            min: seconds(durations.first().copied()),
            max: seconds(durations.last().copied()),
            stddev: Some(variance.sqrt() / 1e6),
        }
    }
}

/// How samples are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Component,
    Environment,
    ComponentEnvironment,
    None,
}

impl GroupBy {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "component" => Some(GroupBy::Component),
            "environment" => Some(GroupBy::Environment),
            "component,environment" | "environment,component" => {
                Some(GroupBy::ComponentEnvironment)
            }
            "none" => Some(GroupBy::None),
            _ => None,
        }
    }

    /// The canonical name, as `parse` reads it and the API answers it.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Component => "component",
            GroupBy::Environment => "environment",
            GroupBy::ComponentEnvironment => "component,environment",
            GroupBy::None => "none",
        }
    }

    fn key(self, target: &Series) -> GroupKey<'_> {
        match self {
            GroupBy::Component => (Some(&target.component), None),
            GroupBy::Environment => (None, Some(&target.environment)),
            GroupBy::ComponentEnvironment => (Some(&target.component), Some(&target.environment)),
            GroupBy::None => (None, None),
        }
    }
}

impl Serialize for GroupBy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for GroupBy {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        GroupBy::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown grouping {text:?}")))
    }
}

/// The component and environment a group is of, as far as the grouping names them.
type GroupKey<'a> = (Option<&'a str>, Option<&'a str>);

/// What is asked of the statistics.
#[derive(Debug, Clone)]
pub struct StatsRequest<Tz: TimeZone> {
    pub group_by: GroupBy,
    /// Durations of successful deployments only.
    pub success_only: bool,
    /// The window `[since, until)`, microseconds since the epoch.
    pub since: i64,
    pub until: i64,
    /// Per-day buckets in this time zone, when asked for.
    pub daily_in: Option<Tz>,
    /// What counts as a change failure.
    pub change_failure: ChangeFailure,
}

/// The figures of one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayStats {
    pub date: NaiveDate,
    pub deployments: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub median_duration_seconds: Option<f64>,
    pub p90_duration_seconds: Option<f64>,
    pub p95_duration_seconds: Option<f64>,
}

/// The figures of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupStats {
    pub component: Option<String>,
    pub environment: Option<String>,
    pub deployments: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub cancelled: usize,
    pub abandoned: usize,
    pub running: usize,
    pub success_rate: Option<f64>,
    pub duration_seconds: DurationSummary,
    pub deploys_per_day: f64,
    pub change_failure_rate: Option<f64>,
    /// Deployments marked as rollbacks.
    pub rollbacks: usize,
    pub mean_time_to_restore_seconds: Option<f64>,
    /// Lead time for changes, over the commits the group's successful
    /// deployments shipped.
    pub lead_time_seconds: LeadTime,
    /// The DORA level of each figure (DORA 2023, as DevLake encodes it).
    pub levels: Levels,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily: Option<Vec<DayStats>>,
}

/// Restore times, in microseconds, of the failure streaks in samples of one
/// component and environment.
pub fn restore_times(samples: &[&Sample]) -> Vec<i64> {
    let mut finished: Vec<(i64, ReportedState)> = samples
        .iter()
        .filter_map(|s| match s.outcome {
            ReportedState::Succeeded | ReportedState::Failed => {
                s.finished_at.map(|f| (f, s.outcome))
            }
            _ => None,
        })
        .collect();
    finished.sort_by_key(|(at, outcome)| (*at, *outcome == ReportedState::Succeeded));
    let mut times = Vec::new();
    let mut broken_since = None;
    for (at, outcome) in finished {
        match (outcome, broken_since) {
            (ReportedState::Failed, None) => broken_since = Some(at),
            (ReportedState::Succeeded, Some(since)) => {
                times.push(at - since);
                broken_since = None;
            }
            _ => {}
        }
    }
    times
}

/// A run of consecutive failures of one component and environment, and the
/// success that ended it, if one did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streak {
    /// The finish of the run's first failure, microseconds.
    pub first_failure_at: i64,
    pub failures: usize,
    /// The finish of the success that ended it; `None`: still failing.
    pub restored_at: Option<i64>,
}

impl Streak {
    /// How long the service was failing, microseconds, once restored.
    pub fn restore_time(&self) -> Option<i64> {
        self.restored_at.map(|at| at - self.first_failure_at)
    }
}

/// The failure streaks in samples of one component and environment, in the
/// order they happened: the runs [`restore_times`] measures, with their length.
pub fn failure_streaks(samples: &[&Sample]) -> Vec<Streak> {
    let mut finished: Vec<(i64, ReportedState)> = samples
        .iter()
        .filter_map(|s| match s.outcome {
            ReportedState::Succeeded | ReportedState::Failed => {
                s.finished_at.map(|f| (f, s.outcome))
            }
            _ => None,
        })
        .collect();
    finished.sort_by_key(|(at, outcome)| (*at, *outcome == ReportedState::Succeeded));
    let mut streaks: Vec<Streak> = Vec::new();
    let mut open: Option<Streak> = None;
    for (at, outcome) in finished {
        match (outcome, open.as_mut()) {
            (ReportedState::Failed, None) => {
                open = Some(Streak {
                    first_failure_at: at,
                    failures: 1,
                    restored_at: None,
                })
            }
            (ReportedState::Failed, Some(streak)) => streak.failures += 1,
            (ReportedState::Succeeded, Some(streak)) => {
                streak.restored_at = Some(at);
                streaks.extend(open.take());
            }
            _ => {}
        }
    }
    streaks.extend(open);
    streaks
}

/// How many of the finished deployments in `samples` (of one component and
/// environment) were followed by a rollback and did not fail themselves: the
/// failures the rollback definition adds to the failed ones.
pub fn rolled_back(samples: &[&Sample]) -> usize {
    let mut finished: Vec<(i64, bool, bool)> = samples
        .iter()
        .filter_map(|s| match s.outcome {
            ReportedState::Succeeded | ReportedState::Failed | ReportedState::Cancelled => s
                .finished_at
                .map(|f| (f, s.outcome == ReportedState::Failed, s.rollback)),
            _ => None,
        })
        .collect();
    finished.sort_by_key(|(at, _, _)| *at);
    finished
        .windows(2)
        .filter(|pair| !pair[0].1 && pair[1].2)
        .count()
}

/// Durations (microseconds) counted into buckets whose bounds grow by a
/// factor of two from one second: `[0, 1 s)`, `[1 s, 2 s)`, `[2 s, 4 s)`...,
/// up to the largest duration. Returns each bucket's lower bound in seconds
/// and its count.
pub fn duration_histogram(durations_us: &[i64]) -> Vec<(f64, usize)> {
    let Some(&longest) = durations_us.iter().max() else {
        return Vec::new();
    };
    let bucket = |micros: i64| -> usize {
        let seconds = micros.max(0) / 1_000_000;
        if seconds == 0 {
            0
        } else {
            (64 - seconds.leading_zeros()) as usize
        }
    };
    let mut counts = vec![0usize; bucket(longest) + 1];
    for &d in durations_us {
        counts[bucket(d)] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, count)| {
            let lower = if i == 0 {
                0.0
            } else {
                (1u64 << (i - 1)) as f64
            };
            (lower, count)
        })
        .collect()
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

fn day_of<Tz: TimeZone>(micros: i64, tz: &Tz) -> NaiveDate {
    from_micros(micros).with_timezone(tz).date_naive()
}

/// The most days daily buckets may cover in one request: ten years.
pub const MAX_DAYS: i64 = 3_660;
/// The most daily buckets one answer may hold, over all its groups.
pub const MAX_DAILY_BUCKETS: i64 = 200_000;

/// Why a request for daily buckets asks for more than one answer holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DailyLimit {
    #[error(
        "daily buckets cover at most {MAX_DAYS} days (ten years) per request; this window has {days}"
    )]
    TooManyDays { days: i64 },
    #[error(
        "{groups} groups of {days} days are {} daily buckets, more than the {MAX_DAILY_BUCKETS} one answer holds: shorten the window, or ask for one component or environment",
        .groups * .days
    )]
    TooManyBuckets { groups: i64, days: i64 },
}

/// How many daily buckets the window `[since, until)` (microseconds) has in
/// `tz`: every calendar day it touches.
pub fn day_count<Tz: TimeZone>(since: i64, until: i64, tz: &Tz) -> i64 {
    let first = day_of(since, tz);
    let last = day_of(until.saturating_sub(1).max(since), tz);
    (last - first).num_days() + 1
}

/// How many groups the deployments of these components and environments can
/// fall into (at most: a pair without a deployment in the window makes none).
pub fn group_count<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    group_by: GroupBy,
) -> usize {
    let keys: std::collections::HashSet<_> = pairs
        .into_iter()
        .map(|(component, environment)| match group_by {
            GroupBy::Component => (Some(component), None),
            GroupBy::Environment => (None, Some(environment)),
            GroupBy::ComponentEnvironment => (Some(component), Some(environment)),
            GroupBy::None => (None, None),
        })
        .collect();
    keys.len().max(usize::from(group_by == GroupBy::None))
}

/// Whether an answer with `groups` groups of `days` daily buckets stays within
/// the bounds: the work and the size of a statistics answer never grow beyond
/// them, whatever window a caller asks for.
pub fn check_daily(days: i64, groups: usize) -> Result<(), DailyLimit> {
    if days > MAX_DAYS {
        return Err(DailyLimit::TooManyDays { days });
    }
    let groups = i64::try_from(groups).unwrap_or(i64::MAX);
    if groups.saturating_mul(days) > MAX_DAILY_BUCKETS {
        return Err(DailyLimit::TooManyBuckets { groups, days });
    }
    Ok(())
}

fn daily<Tz: TimeZone>(samples: &[&Sample], request: &StatsRequest<Tz>, tz: &Tz) -> Vec<DayStats> {
    let first = day_of(request.since, tz);
    // The window is half-open: a window ending exactly at midnight has no part of
    // the day that starts then.
    let last = day_of(request.until.saturating_sub(1).max(request.since), tz);
    let mut days: BTreeMap<NaiveDate, (DayStats, Vec<i64>)> = BTreeMap::new();
    let mut day = first;
    while day <= last {
        days.insert(
            day,
            (
                DayStats {
                    date: day,
                    deployments: 0,
                    succeeded: 0,
                    failed: 0,
                    cancelled: 0,
                    median_duration_seconds: None,
                    p90_duration_seconds: None,
                    p95_duration_seconds: None,
                },
                Vec::new(),
            ),
        );
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    for sample in samples {
        let Some((stats, durations)) = days.get_mut(&day_of(sample.anchor_at, tz)) else {
            continue;
        };
        stats.deployments += 1;
        match sample.outcome {
            ReportedState::Succeeded => stats.succeeded += 1,
            ReportedState::Failed => stats.failed += 1,
            ReportedState::Cancelled => stats.cancelled += 1,
            ReportedState::Running | ReportedState::Abandoned => {}
        }
        if let Some(d) = counted_duration(sample, request.success_only) {
            durations.push(d);
        }
    }
    days.into_values()
        .map(|(mut stats, mut durations)| {
            durations.sort_unstable();
            let rank = |p| nearest_rank(&durations, p).map(micros_to_seconds);
            stats.median_duration_seconds = rank(50.0);
            stats.p90_duration_seconds = rank(90.0);
            stats.p95_duration_seconds = rank(95.0);
            stats
        })
        .collect()
}

/// The durations (microseconds) the statistics count among `samples`: those
/// of finished deployments with both ends (successful ones only, if asked).
pub fn counted_durations<'a>(
    samples: impl IntoIterator<Item = &'a Sample>,
    success_only: bool,
) -> Vec<i64> {
    samples
        .into_iter()
        .filter_map(|s| counted_duration(s, success_only))
        .collect()
}

fn counted_duration(sample: &Sample, success_only: bool) -> Option<i64> {
    let eligible = match sample.outcome {
        ReportedState::Succeeded => true,
        ReportedState::Failed | ReportedState::Cancelled => !success_only,
        ReportedState::Running | ReportedState::Abandoned => false,
    };
    if eligible { sample.duration_us } else { None }
}

/// Computes the statistics of every group of targets. Samples outside the window
/// are ignored, and so is a target with none inside it; groups come out sorted
/// by their key.
pub fn compute<Tz: TimeZone>(targets: &[Series], request: &StatsRequest<Tz>) -> Vec<GroupStats> {
    // Each group: its key, and the in-window samples of each of its targets.
    let mut groups: Vec<(GroupKey<'_>, Vec<Vec<&Sample>>)> = Vec::new();
    let mut index: HashMap<GroupKey<'_>, usize> = HashMap::new();
    for target in targets {
        let inside: Vec<&Sample> = target
            .samples
            .iter()
            .filter(|s| s.anchor_at >= request.since && s.anchor_at < request.until)
            .collect();
        if inside.is_empty() {
            continue;
        }
        let key = request.group_by.key(target);
        let slot = *index.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[slot].1.push(inside);
    }
    if groups.is_empty() && request.group_by == GroupBy::None {
        groups.push(((None, None), Vec::new()));
    }
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let window_days = (request.until - request.since).max(1) as f64 / 86_400e6;
    groups
        .into_iter()
        .map(|((component, environment), per_target)| {
            let members: Vec<&Sample> = per_target.iter().flatten().copied().collect();
            let count = |outcome| members.iter().filter(|s| s.outcome == outcome).count();
            let (succeeded, failed, cancelled) = (
                count(ReportedState::Succeeded),
                count(ReportedState::Failed),
                count(ReportedState::Cancelled),
            );
            let finished = succeeded + failed + cancelled;
            let mut durations: Vec<i64> = members
                .iter()
                .filter_map(|s| counted_duration(s, request.success_only))
                .collect();
            let restores: Vec<i64> = per_target.iter().flat_map(|s| restore_times(s)).collect();
            let mttr = (!restores.is_empty()).then(|| {
                let sum: i128 = restores.iter().map(|&r| i128::from(r)).sum();
                sum as f64 / restores.len() as f64 / 1e6
            });
            let deploys_per_day = members.len() as f64 / window_days;
            let change_failures = match request.change_failure {
                ChangeFailure::Failed => failed,
                ChangeFailure::FailedOrRolledBack => {
                    failed + per_target.iter().map(|s| rolled_back(s)).sum::<usize>()
                }
            };
            let change_failure_rate = ratio(change_failures, finished);
            let lead = lead_time(shipped_of(targets, request, component, environment));
            GroupStats {
                levels: Levels::of(
                    deploys_per_day,
                    change_failure_rate,
                    mttr,
                    lead.total.median,
                ),
                component: component.map(str::to_owned),
                environment: environment.map(str::to_owned),
                deployments: members.len(),
                succeeded,
                failed,
                cancelled,
                abandoned: count(ReportedState::Abandoned),
                running: count(ReportedState::Running),
                success_rate: ratio(succeeded, finished),
                duration_seconds: DurationSummary::of(&mut durations),
                deploys_per_day,
                change_failure_rate,
                rollbacks: members.iter().filter(|s| s.rollback).count(),
                mean_time_to_restore_seconds: mttr,
                lead_time_seconds: lead,
                daily: request
                    .daily_in
                    .as_ref()
                    .map(|tz| daily(&members, request, tz)),
            }
        })
        .collect()
}

/// The commits shipped in the window by the targets of one group, per target.
fn shipped_of<'a, Tz: TimeZone>(
    targets: &'a [Series],
    request: &'a StatsRequest<Tz>,
    component: Option<&'a str>,
    environment: Option<&'a str>,
) -> impl Iterator<Item = impl Iterator<Item = &'a Shipped>> + 'a {
    let (since, until) = (request.since, request.until);
    targets
        .iter()
        .filter(move |t| request.group_by.key(t) == (component, environment))
        .map(move |t| {
            t.shipped
                .iter()
                .filter(move |c| c.anchor_at >= since && c.anchor_at < until)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_follows_the_definition() {
        let sorted: Vec<i64> = (1..=10).collect();
        assert_eq!(nearest_rank(&sorted, 50.0), Some(5));
        assert_eq!(nearest_rank(&sorted, 90.0), Some(9));
        assert_eq!(nearest_rank(&sorted, 95.0), Some(10));
        assert_eq!(nearest_rank(&sorted, 0.0), Some(1));
        assert_eq!(nearest_rank(&[7], 99.0), Some(7));
        assert_eq!(nearest_rank(&[], 50.0), None);
    }

    #[test]
    fn daily_buckets_are_bounded_per_group_and_per_answer() {
        let day = 86_400_000_000_i64;
        let utc = chrono::Utc;
        assert_eq!(day_count(0, day, &utc), 1, "a window of one whole day");
        assert_eq!(day_count(day / 2, day + day / 2, &utc), 2);
        assert_eq!(day_count(0, 3_660 * day, &utc), 3_660);
        assert_eq!(check_daily(3_660, 54), Ok(()));
        assert_eq!(
            check_daily(3_661, 1),
            Err(DailyLimit::TooManyDays { days: 3_661 })
        );
        assert_eq!(
            check_daily(3_000, 67),
            Err(DailyLimit::TooManyBuckets {
                groups: 67,
                days: 3_000
            })
        );
        // From year 1 to now, as a caller once asked: refused, not computed.
        let year_one = -62_135_596_800_000_000_i64;
        assert!(check_daily(day_count(year_one, 1_795_000_000_000_000, &utc), 1).is_err());
    }

    #[test]
    fn groups_are_counted_by_the_grouping() {
        let pairs = [("api", "prod"), ("api", "staging"), ("web", "prod")];
        assert_eq!(group_count(pairs, GroupBy::Component), 2);
        assert_eq!(group_count(pairs, GroupBy::Environment), 2);
        assert_eq!(group_count(pairs, GroupBy::ComponentEnvironment), 3);
        assert_eq!(group_count(pairs, GroupBy::None), 1);
        assert_eq!(group_count([], GroupBy::None), 1, "one empty group");
        assert_eq!(group_count([], GroupBy::Component), 0);
    }

    #[test]
    fn empty_summary_is_all_none() {
        let s = DurationSummary::of(&mut []);
        assert_eq!(s.count, 0);
        assert!(s.mean.is_none() && s.median.is_none() && s.stddev.is_none());
    }

    fn sample(outcome: ReportedState, finished_s: i64) -> Sample {
        Sample {
            outcome,
            finished_at: Some(finished_s * 1_000_000),
            duration_us: Some(1_000_000),
            anchor_at: finished_s * 1_000_000,
            rollback: false,
        }
    }

    #[test]
    fn a_deployment_followed_by_a_rollback_is_a_change_failure_by_that_definition() {
        let rollback = |outcome, at| Sample {
            rollback: true,
            ..sample(outcome, at)
        };
        let samples = [
            sample(ReportedState::Succeeded, 100),
            rollback(ReportedState::Succeeded, 200), // rolls 100 back
            sample(ReportedState::Failed, 300),
            rollback(ReportedState::Succeeded, 400), // 300 failed already: not twice
            sample(ReportedState::Succeeded, 500),
            sample(ReportedState::Running, 600),
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        assert_eq!(rolled_back(&refs), 1);
        let series = vec![Series {
            component: "api".into(),
            environment: "production".into(),
            samples: samples.to_vec(),
            shipped: Vec::new(),
        }];
        let request = |change_failure| StatsRequest::<chrono::Utc> {
            group_by: GroupBy::Component,
            success_only: false,
            since: 0,
            until: 1_000_000_000,
            daily_in: None,
            change_failure,
        };
        let failed_only = &compute(&series, &request(ChangeFailure::Failed))[0];
        assert_eq!(failed_only.change_failure_rate, Some(1.0 / 5.0));
        assert_eq!(failed_only.rollbacks, 2);
        let with_rollbacks = &compute(&series, &request(ChangeFailure::FailedOrRolledBack))[0];
        assert_eq!(with_rollbacks.change_failure_rate, Some(2.0 / 5.0));
    }

    #[test]
    fn streaks_say_how_long_and_how_many() {
        let samples = [
            sample(ReportedState::Failed, 100),
            sample(ReportedState::Failed, 150),
            sample(ReportedState::Succeeded, 400),
            sample(ReportedState::Failed, 600),
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        let streaks = failure_streaks(&refs);
        assert_eq!(streaks.len(), 2);
        assert_eq!(streaks[0].failures, 2);
        assert_eq!(streaks[0].restore_time(), Some(300_000_000));
        assert_eq!(streaks[1].restored_at, None, "still failing");
        assert_eq!(
            streaks
                .iter()
                .filter_map(Streak::restore_time)
                .collect::<Vec<_>>(),
            restore_times(&refs),
            "the same runs restore_times measures"
        );
    }

    #[test]
    fn durations_fall_into_doubling_buckets() {
        let s = 1_000_000;
        let histogram = duration_histogram(&[500_000, s, 3 * s, 3 * s, 70 * s]);
        assert_eq!(histogram[0], (0.0, 1), "under a second");
        assert_eq!(histogram[1], (1.0, 1), "[1 s, 2 s)");
        assert_eq!(histogram[2], (2.0, 2), "[2 s, 4 s)");
        assert_eq!(histogram.last(), Some(&(64.0, 1)), "[64 s, 128 s)");
        assert_eq!(histogram.iter().map(|(_, n)| n).sum::<usize>(), 5);
        assert!(duration_histogram(&[]).is_empty());
    }

    #[test]
    fn restore_time_counts_a_failure_streak_once() {
        let samples = [
            sample(ReportedState::Failed, 100),
            sample(ReportedState::Failed, 150),
            sample(ReportedState::Succeeded, 400),
            sample(ReportedState::Succeeded, 500),
            sample(ReportedState::Failed, 600),
            sample(ReportedState::Cancelled, 650),
            sample(ReportedState::Succeeded, 700),
            sample(ReportedState::Failed, 900),
        ];
        let refs: Vec<&Sample> = samples.iter().collect();
        assert_eq!(restore_times(&refs), vec![300_000_000, 100_000_000]);
    }
}
