//! Serde for `Duration` as human-readable strings (`"90s"`, `"2m"`, `"1h 30m"`), also
//! accepting a plain number of seconds.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Text(String),
    Secs(f64),
}

fn from_raw<E: serde::de::Error>(raw: Raw) -> Result<Duration, E> {
    match raw {
        Raw::Text(s) => humantime::parse_duration(s.trim()).map_err(|e| {
            E::custom(format!("invalid duration {s:?}: {e} (examples: \"90s\", \"2m\", \"1h 30m\")"))
        }),
        // `try_from`: a number past `Duration::MAX` (about 1.8e19 s) is an error, not a panic.
        Raw::Secs(n) => Duration::try_from_secs_f64(n).map_err(|_| {
            E::custom(format!("invalid duration {n}: must be a non-negative number of seconds below 1.8e19"))
        }),
    }
}

/// Serialises as a humantime string.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

/// Deserialises a humantime string or a number of seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    from_raw(Raw::deserialize(d)?)
}

/// The same for `Option<Duration>`.
pub mod option {
    use super::*;

    /// Serialises `Some` as a humantime string.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Deserialises an optional humantime string or number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            Some(raw) => from_raw(raw).map(Some),
            None => Ok(None),
        }
    }
}
