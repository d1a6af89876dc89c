//! Component and environment names: validated once at the edge, so the rest of the
//! code cannot hold an invalid one.

use std::fmt;

/// Characters allowed in names besides ASCII letters and digits.
const NAME_PUNCTUATION: &[char] = &['.', '_', '-', '/', ':'];

fn check_name(value: &str, max_chars: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(format!(
            "must be at most {max_chars} characters (got {chars})"
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must start with a letter or a digit".into());
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(c)))
    {
        return Err(format!(
            "may contain only letters, digits and . _ - / : (found {bad:?})"
        ));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The longest name accepted, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates a name; the error explains what is wrong with it.
            pub fn parse(value: &str) -> Result<Self, String> {
                check_name(value, Self::MAX_CHARS).map(|()| Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;

            /// Validates a name without copying it.
            fn try_from(value: String) -> Result<Self, String> {
                check_name(&value, Self::MAX_CHARS).map(|()| Self(value))
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::try_from(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_type!(
    /// What is deployed: `api`, `billing/worker`, `eu:frontend`.
    Component,
    128
);
name_type!(
    /// Where it is deployed: `production` (the default), `staging`, `eu-west-1`.
    Environment,
    64
);

impl Environment {
    /// The environment assumed when a pipeline names none.
    pub const DEFAULT: &'static str = "production";

    pub fn default_environment() -> Self {
        Self(Self::DEFAULT.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_charset() {
        for ok in ["api", "A", "9lives", "billing/worker", "eu:web.v2", "a_b-c"] {
            assert!(Component::parse(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        assert_eq!(Component::parse("").unwrap_err(), "must not be empty");
        assert_eq!(
            Component::parse("-api").unwrap_err(),
            "must start with a letter or a digit"
        );
        assert!(Component::parse("api server").unwrap_err().contains("' '"));
        assert!(Component::parse("café").unwrap_err().contains("'é'"));
        assert!(Component::parse("api;drop").is_err());
    }

    #[test]
    fn length_limits_differ_for_components_and_environments() {
        let long128 = "a".repeat(128);
        assert!(Component::parse(&long128).is_ok());
        assert!(Component::parse(&"a".repeat(129)).is_err());
        assert!(Environment::parse(&"e".repeat(64)).is_ok());
        assert!(
            Environment::parse(&"e".repeat(65))
                .unwrap_err()
                .contains("at most 64")
        );
    }
}
