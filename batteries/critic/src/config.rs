//! [`CriticConfig`]: how far the critic lets a run go and what it does when the judge is
//! unavailable.
//!
//! Deserialises from the same shapes as the rest of executus configuration (durations as
//! `"90s"`, `"5m"` or a number of seconds). [`CriticConfig::validate`] turns a value that
//! parsed but makes no sense (an extension that adds nothing, a zero judge timeout) into a
//! [`CriticConfigError`] naming the key; [`crate::LlmCritic::new`] refuses an invalid config.

use std::time::Duration;

use executus::duration_serde;
use serde::{Deserialize, Serialize};

use crate::judge::JudgementVerdict;

/// What one extension grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Extension {
    /// Time added to the run's hard deadline when the review was triggered by the soft
    /// deadline. The core reviews again after half of it.
    #[serde(with = "duration_serde")]
    pub time: Duration,
    /// Steps added when the review was triggered by the step cap.
    pub steps: u32,
}

impl Default for Extension {
    fn default() -> Self {
        Self { time: Duration::from_secs(300), steps: 5 }
    }
}

/// What the critic does when the judge wants an extension but `max_extensions` are used
/// (or the extension would add nothing for this trigger).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exhausted {
    /// Let the run go on unchanged: at the soft deadline the hard deadline will end it
    /// `TimedOut` (partial, with its transcript); at the step cap it ends `MaxSteps`.
    /// The default, because it reports honestly that the run ran out of room.
    #[default]
    Continue,
    /// End the run now (`Stopped`, with its transcript) and escalate.
    Abort,
}

/// The critic's configuration. `CriticConfig::default()` is valid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CriticConfig {
    /// Extensions granted to one run at most (time and step extensions together, as the
    /// core counts them). Default 2.
    pub max_extensions: u32,
    /// What one extension adds. Default 5 minutes / 5 steps.
    pub extend_by: Extension,
    /// What happens past `max_extensions`. Default [`Exhausted::Continue`].
    pub when_exhausted: Exhausted,
    /// The verdict used when the judge fails (model error, timeout, undecodable answer).
    /// Default `continue`: the hard deadline still bounds the run.
    pub on_judge_failure: JudgementVerdict,
    /// Bound on the judge call (both attempts of the typed call). Default 30 s.
    #[serde(with = "duration_serde")]
    pub judge_timeout: Duration,
    /// Bound on one [`crate::Escalator::escalate`] call. Default 10 s.
    #[serde(with = "duration_serde")]
    pub escalate_timeout: Duration,
    /// Escalate whenever the critic aborts a run. Default true.
    pub escalate_on_abort: bool,
    /// Runs whose review record is kept for [`crate::LlmCritic::watch`]; the oldest are
    /// forgotten first. Default 1024.
    pub max_tracked_runs: usize,
    /// Characters of one message shown to the judge; longer ones are cut. Default 2000.
    pub max_message_chars: usize,
}

impl Default for CriticConfig {
    fn default() -> Self {
        Self {
            max_extensions: 2,
            extend_by: Extension::default(),
            when_exhausted: Exhausted::Continue,
            on_judge_failure: JudgementVerdict::Continue,
            judge_timeout: Duration::from_secs(30),
            escalate_timeout: Duration::from_secs(10),
            escalate_on_abort: true,
            max_tracked_runs: 1024,
            max_message_chars: 2000,
        }
    }
}

impl CriticConfig {
    /// Checks values that parse but cannot work.
    ///
    /// # Errors
    /// [`CriticConfigError::Invalid`] naming the key: an extension that adds neither time
    /// nor steps while extensions are allowed, a zero `judge_timeout` or `escalate_timeout`,
    /// a zero `max_message_chars`.
    pub fn validate(&self) -> Result<(), CriticConfigError> {
        if self.max_extensions > 0 && self.extend_by.time.is_zero() && self.extend_by.steps == 0 {
            return Err(CriticConfigError::Invalid {
                key: "extend_by",
                reason: format!(
                    "max_extensions is {} but an extension adds neither time nor steps",
                    self.max_extensions
                ),
            });
        }
        if self.judge_timeout.is_zero() {
            return Err(CriticConfigError::Invalid {
                key: "judge_timeout",
                reason: "must be greater than zero".into(),
            });
        }
        if self.escalate_timeout.is_zero() {
            return Err(CriticConfigError::Invalid {
                key: "escalate_timeout",
                reason: "must be greater than zero".into(),
            });
        }
        if self.max_message_chars == 0 {
            return Err(CriticConfigError::Invalid {
                key: "max_message_chars",
                reason: "must be greater than zero".into(),
            });
        }
        Ok(())
    }
}

/// A configuration value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CriticConfigError {
    /// A value is not acceptable.
    #[error("invalid critic configuration value for {key}: {reason}")]
    Invalid {
        /// The key, e.g. `judge_timeout`.
        key: &'static str,
        /// Why.
        reason: String,
    },
}
