//! [`Target`]: one model of one provider, written `provider/model`.
//!
//! The model part is verbatim: it may itself contain `/` and `:` (`ollama/qwen3:30b`,
//! `openrouter/meta-llama/llama-3-8b`); only the first `/` separates the provider. Everything
//! that names a target — chain keys, health, capability overrides, price tables, audit rows,
//! error messages — goes through this type instead of formatting and splitting strings.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A provider's model: `provider/model`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// The provider's registered name.
    pub provider: String,
    /// The model id, verbatim.
    pub model: String,
}

impl Target {
    /// `provider/model`.
    pub fn new(provider: impl Into<String>, model: impl Into<String>) -> Self {
        Self { provider: provider.into(), model: model.into() }
    }
}

/// A string that is not `provider/model`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not provider/model (both parts non-empty)")]
pub struct TargetParseError {
    /// What was given.
    pub input: String,
}

impl FromStr for Target {
    type Err = TargetParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                Ok(Self::new(provider, model))
            }
            _ => Err(TargetParseError { input: s.to_owned() }),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_first_slash_separates_and_the_model_is_verbatim() {
        let t: Target = "openrouter/meta-llama/llama-3:8b".parse().unwrap();
        assert_eq!(t, Target::new("openrouter", "meta-llama/llama-3:8b"));
        assert_eq!(t.to_string(), "openrouter/meta-llama/llama-3:8b");
    }

    #[test]
    fn missing_parts_are_refused_with_the_input() {
        for bad in ["", "gpt-4o", "/m", "p/", "/"] {
            let e = bad.parse::<Target>().unwrap_err();
            assert_eq!(e.input, bad);
        }
    }

    #[test]
    fn serde_is_the_display_form() {
        let t = Target::new("ollama", "qwen3:30b");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"ollama/qwen3:30b\"");
        assert_eq!(serde_json::from_str::<Target>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Target>("\"nope\"").is_err());
    }
}
