//! DORA performance levels: each figure placed as elite, high, medium or low,
//! by DevLake's encoding of the DORA 2023 benchmarks. Computed here once, for
//! the statistics API, the command line and the dashboard alike.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A DORA performance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Level {
    Elite,
    High,
    Medium,
    Low,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Elite, Level::High, Level::Medium, Level::Low];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Elite => "elite",
            Level::High => "high",
            Level::Medium => "medium",
            Level::Low => "low",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const DAY: f64 = 86_400.0;

/// Deployment frequency: elite from one a day (on demand), high from one a
/// week, medium from one a month (30 days), low below.
pub fn deploy_frequency(per_day: f64) -> Level {
    if per_day >= 1.0 {
        Level::Elite
    } else if per_day >= 1.0 / 7.0 {
        Level::High
    } else if per_day >= 1.0 / 30.0 {
        Level::Medium
    } else {
        Level::Low
    }
}

/// Change failure rate (a fraction): elite up to 5 %, high up to 10 %, medium
/// up to 15 %, low above.
pub fn change_failure_rate(rate: f64) -> Level {
    if rate <= 0.05 {
        Level::Elite
    } else if rate <= 0.10 {
        Level::High
    } else if rate <= 0.15 {
        Level::Medium
    } else {
        Level::Low
    }
}

/// Time to restore (seconds): elite under an hour, high under a day, medium
/// under a week, low from a week.
pub fn time_to_restore(seconds: f64) -> Level {
    if seconds < 3_600.0 {
        Level::Elite
    } else if seconds < DAY {
        Level::High
    } else if seconds < 7.0 * DAY {
        Level::Medium
    } else {
        Level::Low
    }
}

/// Lead time for changes (seconds, the median): elite under a day, high under
/// a week, medium under a month (30 days), low from a month.
pub fn lead_time(seconds: f64) -> Level {
    if seconds < DAY {
        Level::Elite
    } else if seconds < 7.0 * DAY {
        Level::High
    } else if seconds < 30.0 * DAY {
        Level::Medium
    } else {
        Level::Low
    }
}

/// The level of each figure of a group; `None` where the figure is unknown
/// (no finished deployment, no restored failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Levels {
    pub deploy_frequency: Level,
    pub change_failure_rate: Option<Level>,
    pub time_to_restore: Option<Level>,
    /// By the median lead time; `None` without shipped commits.
    #[serde(default)]
    pub lead_time: Option<Level>,
}

impl Levels {
    pub fn of(
        per_day: f64,
        failure_rate: Option<f64>,
        restore_seconds: Option<f64>,
        lead_time_median: Option<f64>,
    ) -> Self {
        Levels {
            deploy_frequency: deploy_frequency(per_day),
            change_failure_rate: failure_rate.map(change_failure_rate),
            time_to_restore: restore_seconds.map(time_to_restore),
            lead_time: lead_time_median.map(lead_time),
        }
    }
}

/// The thresholds, as people read them: (figure, [elite, high, medium, low]).
pub const THRESHOLDS: [(&str, [&str; 4]); 4] = [
    (
        "Deployment frequency",
        [
            "on demand: at least once a day",
            "at least once a week",
            "at least once a month",
            "less than once a month",
        ],
    ),
    (
        "Change failure rate",
        ["at most 5 %", "at most 10 %", "at most 15 %", "above 15 %"],
    ),
    (
        "Time to restore",
        [
            "under an hour",
            "under a day",
            "under a week",
            "a week or more",
        ],
    ),
    (
        "Lead time for changes",
        [
            "under a day",
            "under a week",
            "under a month",
            "a month or more",
        ],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_threshold_is_where_the_benchmark_puts_it() {
        assert_eq!(deploy_frequency(3.0), Level::Elite);
        assert_eq!(deploy_frequency(1.0), Level::Elite);
        assert_eq!(deploy_frequency(0.99), Level::High);
        assert_eq!(deploy_frequency(1.0 / 7.0), Level::High);
        assert_eq!(deploy_frequency(0.14), Level::Medium);
        assert_eq!(deploy_frequency(1.0 / 30.0), Level::Medium);
        assert_eq!(deploy_frequency(0.03), Level::Low);
        assert_eq!(deploy_frequency(0.0), Level::Low);

        assert_eq!(change_failure_rate(0.0), Level::Elite);
        assert_eq!(change_failure_rate(0.05), Level::Elite);
        assert_eq!(change_failure_rate(0.051), Level::High);
        assert_eq!(change_failure_rate(0.10), Level::High);
        assert_eq!(change_failure_rate(0.15), Level::Medium);
        assert_eq!(change_failure_rate(0.151), Level::Low);

        assert_eq!(time_to_restore(3_599.0), Level::Elite);
        assert_eq!(time_to_restore(3_600.0), Level::High);
        assert_eq!(time_to_restore(86_399.0), Level::High);
        assert_eq!(time_to_restore(86_400.0), Level::Medium);
        assert_eq!(time_to_restore(7.0 * 86_400.0), Level::Low);

        assert_eq!(lead_time(86_399.0), Level::Elite);
        assert_eq!(lead_time(86_400.0), Level::High);
        assert_eq!(lead_time(7.0 * 86_400.0 - 1.0), Level::High);
        assert_eq!(lead_time(7.0 * 86_400.0), Level::Medium);
        assert_eq!(lead_time(30.0 * 86_400.0 - 1.0), Level::Medium);
        assert_eq!(lead_time(30.0 * 86_400.0), Level::Low);
    }

    #[test]
    fn an_unknown_figure_has_no_level() {
        let levels = Levels::of(0.5, None, None, None);
        assert_eq!(levels.deploy_frequency, Level::High);
        assert_eq!(levels.change_failure_rate, None);
        assert_eq!(levels.time_to_restore, None);
        assert_eq!(levels.lead_time, None);
    }
}
