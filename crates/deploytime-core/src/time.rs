//! Timestamps: UTC with microsecond precision, everywhere.
//!
//! Stores keep them as signed microseconds since the Unix epoch, which both SQLite
//! and MySQL compare, index and subtract exactly; the API shows them as RFC 3339.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};

/// Drops sub-microsecond precision so that what is stored is what is compared.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Microseconds since the Unix epoch, the stored form of a timestamp.
pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The inverse of [`to_micros`]. Values outside chrono's range (only reachable by
/// editing the database by hand) are clamped rather than trusted blindly.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(if micros < 0 {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// RFC 3339 with microseconds and a `Z`, the one format the API emits.
pub fn format_rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The length of time between two instants, in seconds, as the API reports it.
pub fn seconds_between(start: DateTime<Utc>, finish: DateTime<Utc>) -> f64 {
    micros_to_seconds(to_micros(finish) - to_micros(start))
}

/// Converts a stored microsecond duration to seconds.
pub fn micros_to_seconds(micros: i64) -> f64 {
    // Two steps keep whole seconds exact even for durations beyond f64's 2^53 µs.
    (micros / 1_000_000) as f64 + (micros % 1_000_000) as f64 / 1e6
}

/// Serde for instants in the API's one format: RFC 3339 with microseconds and a
/// `Z` when written; any RFC 3339 date-time with an offset when read.
pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_rfc3339(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.to_utc())
            .map_err(serde::de::Error::custom)
    }

    /// The same for an optional instant (`null` when absent).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(
            at: &Option<DateTime<Utc>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            let text = Option::<std::borrow::Cow<str>>::deserialize(deserializer)?;
            text.map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|at| at.to_utc())
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn micros_round_trip_is_exact() {
        let at = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap()
            + chrono::Duration::microseconds(123_456);
        assert_eq!(from_micros(to_micros(at)), at);
        assert_eq!(format_rfc3339(at), "2026-11-22T10:00:00.123456Z");
    }

    #[test]
    fn truncation_drops_nanoseconds() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
            + chrono::Duration::nanoseconds(1_999);
        assert_eq!(to_micros(truncate_to_micros(at)) % 1_000_000, 1);
    }

    #[test]
    fn seconds_between_is_signed_and_fractional() {
        let a = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let b = a + chrono::Duration::milliseconds(192_500);
        assert_eq!(seconds_between(a, b), 192.5);
        assert_eq!(seconds_between(b, a), -192.5);
    }

    #[test]
    fn out_of_range_micros_are_clamped() {
        assert_eq!(from_micros(i64::MAX), DateTime::<Utc>::MAX_UTC);
        assert_eq!(from_micros(i64::MIN), DateTime::<Utc>::MIN_UTC);
    }
}
