//! The filters every panel honours, read from the page's URL (so a view can be
//! bookmarked and shared) and written back into every link: the window (a
//! preset or custom dates), the environments (several at once), the component
//! and the time zone of day boundaries. A value the API would refuse is
//! refused here too, with a message for the page.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use deploytime_core::{Component, Environment};

/// The presets of the window, by the value in the URL.
pub(crate) const WINDOWS: [(&str, &str); 6] = [
    ("1d", "the last 24 hours"),
    ("7d", "the last 7 days"),
    ("30d", "the last 30 days"),
    ("90d", "the last 90 days"),
    ("365d", "the last 365 days"),
    ("custom", "custom dates"),
];

/// Time zones offered in the form (any IANA name is accepted).
pub(crate) const ZONES: [&str; 10] = [
    "UTC",
    "Europe/London",
    "Europe/Paris",
    "Europe/Berlin",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Australia/Sydney",
];

/// The filters of a page, valid or with the reasons they are not.
#[derive(Debug, Clone)]
pub(crate) struct PageFilters {
    pub window: String,
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub environments: Vec<Environment>,
    pub component: Option<Component>,
    pub tz: Tz,
    /// What was wrong, by parameter, in words for the page.
    pub errors: Vec<(String, String)>,
    /// Other parameters of the page (sorting, a cursor), kept as given.
    pub extra: Vec<(String, String)>,
}

/// The midnight that starts a date in `tz`, `days_after` days later (the end
/// of an included last day is the next day's midnight: not always 24 hours on).
fn date(
    tz: &Tz,
    field: &str,
    value: &str,
    days_after: u64,
    errors: &mut Vec<(String, String)>,
) -> Option<DateTime<Utc>> {
    let parsed = NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.checked_add_days(chrono::Days::new(days_after)))
        .and_then(|d| {
            tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
                .earliest()
                .map(|at| at.with_timezone(&Utc))
        });
    if parsed.is_none() {
        errors.push((
            field.to_owned(),
            format!("must be a date such as 2026-11-01 (got {value:?})"),
        ));
    }
    parsed
}

impl PageFilters {
    /// Reads the query's pairs; `now` is the end of the preset windows.
    pub(crate) fn parse(pairs: &[(String, String)], now: DateTime<Utc>) -> Self {
        let mut errors = Vec::new();
        let mut extra = Vec::new();
        let (mut window, mut since, mut until, mut tz_name) = (None, None, None, None);
        let mut environments: Vec<Environment> = Vec::new();
        let mut component = None;
        for (key, value) in pairs {
            let value = value.trim();
            match key.as_str() {
                "window" if !value.is_empty() => window = Some(value.to_owned()),
                "since" if !value.is_empty() => since = Some(value.to_owned()),
                "until" if !value.is_empty() => until = Some(value.to_owned()),
                "tz" if !value.is_empty() => tz_name = Some(value.to_owned()),
                // One per checkbox, or several comma-separated (as in links).
                "env" => {
                    for name in value.split(',').filter(|n| !n.is_empty()) {
                        match Environment::parse(name) {
                            Ok(e) if !environments.contains(&e) => environments.push(e),
                            Ok(_) => {}
                            Err(m) => errors.push(("environment".into(), format!("{name:?} {m}"))),
                        }
                    }
                }
                "component" if !value.is_empty() => match Component::parse(value) {
                    Ok(c) => component = Some(c),
                    Err(m) => errors.push(("component".into(), format!("{value:?} {m}"))),
                },
                "window" | "since" | "until" | "tz" | "component" => {}
                _ => extra.push((key.clone(), value.to_owned())),
            }
        }
        let tz = match tz_name.as_deref() {
            None => Tz::UTC,
            Some(name) => name.parse().unwrap_or_else(|_| {
                errors.push((
                    "time zone".into(),
                    format!("must be an IANA time zone such as Europe/Paris (got {name:?})"),
                ));
                Tz::UTC
            }),
        };
        // Dates given without a preset make a custom window.
        let window = window.unwrap_or_else(|| {
            if since.is_some() || until.is_some() {
                "custom".into()
            } else {
                "30d".into()
            }
        });
        let preset = |days: i64| (now - Duration::days(days), now);
        let (from, to) = match window.as_str() {
            "1d" => preset(1),
            "7d" => preset(7),
            "30d" => preset(30),
            "90d" => preset(90),
            "365d" => preset(365),
            "custom" => {
                let from = since
                    .as_deref()
                    .and_then(|v| date(&tz, "from", v, 0, &mut errors))
                    .unwrap_or(now - Duration::days(30));
                // The end date is included: the window ends the next midnight.
                let to = until
                    .as_deref()
                    .and_then(|v| date(&tz, "to", v, 1, &mut errors))
                    .unwrap_or(now);
                (from, to)
            }
            other => {
                errors.push((
                    "window".into(),
                    format!("must be one of 1d, 7d, 30d, 90d, 365d or custom (got {other:?})"),
                ));
                preset(30)
            }
        };
        if from >= to {
            errors.push(("from".into(), "must be before the end of the window".into()));
        }
        PageFilters {
            window,
            since: from,
            until: to,
            environments,
            component,
            tz,
            errors,
            extra,
        }
    }

    /// The filters as a query string, for links that keep them (without the
    /// component, which each link sets, and without the page's own extras).
    pub(crate) fn query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = vec![("window", self.window.clone())];
        if self.window == "custom" {
            pairs.push(("since", self.since_date()));
            pairs.push(("until", self.until_date()));
        }
        if !self.environments.is_empty() {
            let names: Vec<&str> = self.environments.iter().map(Environment::as_str).collect();
            pairs.push(("env", names.join(",")));
        }
        if self.tz != Tz::UTC {
            pairs.push(("tz", self.tz.name().to_owned()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The first day of the window, in its time zone.
    pub(crate) fn since_date(&self) -> String {
        self.since
            .with_timezone(&self.tz)
            .format("%Y-%m-%d")
            .to_string()
    }

    /// The last day of the window (included), in its time zone.
    pub(crate) fn until_date(&self) -> String {
        (self.until - Duration::microseconds(1))
            .with_timezone(&self.tz)
            .format("%Y-%m-%d")
            .to_string()
    }

    /// The window in words: `2026-11-01 to 2026-11-29 (UTC)`.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} to {} ({})",
            self.since_date(),
            self.until_date(),
            self.tz.name()
        )
    }

    pub(crate) fn extra(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(query: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(query).unwrap()
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 12, 0, 0).unwrap()
    }

    #[test]
    fn presets_custom_dates_and_zones() {
        let f = PageFilters::parse(&pairs(""), now());
        assert_eq!(f.window, "30d");
        assert_eq!(f.until - f.since, Duration::days(30));
        let f = PageFilters::parse(
            &pairs("since=2026-11-01&until=2026-11-02&tz=Europe/Paris&env=production&env=eu"),
            now(),
        );
        assert!(f.errors.is_empty(), "{:?}", f.errors);
        assert_eq!(f.window, "custom");
        // Midnight in Paris, the end date included: two whole days.
        assert_eq!(
            f.since,
            Utc.with_ymd_and_hms(2026, 10, 31, 23, 0, 0).unwrap()
        );
        assert_eq!(
            f.until,
            Utc.with_ymd_and_hms(2026, 11, 2, 23, 0, 0).unwrap()
        );
        assert_eq!(f.environments.len(), 2);
        // What the links carry reads back the same.
        let again = PageFilters::parse(&pairs(&f.query()), now());
        assert_eq!((again.since, again.until), (f.since, f.until));
        assert_eq!(again.environments, f.environments);
        assert_eq!(again.tz, f.tz);
    }

    #[test]
    fn a_day_of_23_hours_is_one_day() {
        // Summer time starts in Paris on 2026-03-29: that day has 23 hours.
        let f = PageFilters::parse(
            &pairs("since=2026-03-29&until=2026-03-29&tz=Europe/Paris"),
            now(),
        );
        assert_eq!(f.until - f.since, Duration::hours(23));
        assert_eq!(f.describe(), "2026-03-29 to 2026-03-29 (Europe/Paris)");
    }

    #[test]
    fn what_the_api_refuses_is_refused_with_a_message() {
        let f = PageFilters::parse(
            &pairs("window=week&tz=Mars/Olympus&env=bad+name&component=-x&since=yesterday"),
            now(),
        );
        let fields: Vec<&str> = f.errors.iter().map(|(k, _)| k.as_str()).collect();
        for expected in ["window", "time zone", "environment", "component"] {
            assert!(fields.contains(&expected), "{expected}: {:?}", f.errors);
        }
        let f = PageFilters::parse(&pairs("since=2026-11-10&until=2026-11-01"), now());
        assert_eq!(f.errors[0].0, "from");
    }
}
