//! [`Secret`]: an API key or bearer token that never prints.

use std::fmt;

/// A secret string (API key, bearer token). `Debug` and `Display` print `[redacted]`; the
/// value is reachable only through [`Secret::expose`], which wire clients call when they set
/// a header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only to put it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        // Very short secrets would redact ordinary words; keys worth hiding are longer.
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
