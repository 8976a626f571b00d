//! How a run ends ([`RunEnd`]) and what its caller gets back ([`RunOutcome`]).
//!
//! Every end that is not success still returns the transcript so far and the usage spent.

use std::fmt;
use std::time::Duration;

use executus_llm::{ErrorKind, Message, Usage};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::RunStatus;
use crate::ids::RunId;
use crate::ports::BudgetDenied;

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "end", rename_all = "snake_case")]
pub enum RunEnd {
    /// A final answer.
    Completed,
    /// The step cap was reached (the critic did not extend it).
    MaxSteps {
        /// Steps taken.
        steps: u32,
    },
    /// The run's own timeout fired.
    TimedOut {
        /// The timeout.
        #[serde(with = "crate::duration_serde")]
        after: Duration,
    },
    /// Cancelled by its caller or by shutdown of its parent.
    Cancelled,
    /// The budget refused a model call.
    BudgetDenied(BudgetDenied),
    /// Too many consecutive failing tool calls.
    ToolErrorLimit {
        /// Consecutive failures.
        failures: u32,
    },
    /// Stopped by loop protection or by the critic.
    Stopped {
        /// Why.
        reason: String,
    },
    /// Failed (model chain exhausted, permanent error, panic, invalid typed output...).
    Failed {
        /// Why, with the classified model error when a model call failed.
        error: RunFailure,
    },
    /// Paused: tool calls wait for a human (`approve` / `deny` continue the run).
    AwaitingApproval {
        /// The call ids waiting.
        calls: Vec<String>,
    },
}

impl RunEnd {
    /// The status, as hosts report it.
    pub fn status(&self) -> RunStatus {
        match self {
            Self::Completed => RunStatus::Completed,
            Self::MaxSteps { .. } | Self::TimedOut { .. } => RunStatus::Partial,
            Self::Cancelled => RunStatus::Cancelled,
            Self::BudgetDenied(_) => RunStatus::BudgetDenied,
            Self::ToolErrorLimit { .. } | Self::Stopped { .. } => RunStatus::Stopped,
            Self::Failed { .. } => RunStatus::Failed,
            Self::AwaitingApproval { .. } => RunStatus::AwaitingApproval,
        }
    }

    /// A one-line reason for ends that are not success.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Completed => None,
            Self::MaxSteps { steps } => Some(format!("reached max steps ({steps})")),
            Self::TimedOut { after } => {
                Some(format!("run timed out after {}", humantime::format_duration(*after)))
            }
            Self::Cancelled => Some("cancelled".into()),
            Self::BudgetDenied(d) => Some(d.to_string()),
            Self::ToolErrorLimit { failures } => Some(format!("{failures} consecutive tool calls failed")),
            Self::Stopped { reason } => Some(reason.clone()),
            Self::Failed { error } => Some(error.to_string()),
            Self::AwaitingApproval { calls } => Some(format!("waiting for approval of {}", calls.join(", "))),
        }
    }
}

/// What a finished (or paused) run returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// How it ended.
    pub end: RunEnd,
    /// The last assistant text, if any.
    pub output: Option<String>,
    /// The typed output, for agents with an output schema.
    pub typed: Option<Value>,
    /// The whole transcript (input included; the system prompt is not a message).
    pub messages: Vec<Message>,
    /// Steps taken.
    pub steps: u32,
    /// Tokens spent.
    pub usage: Usage,
}

impl RunOutcome {
    /// The status (see [`RunEnd::status`]).
    pub fn status(&self) -> RunStatus {
        self.end.status()
    }

    /// True for [`RunEnd::Completed`].
    pub fn is_completed(&self) -> bool {
        self.end == RunEnd::Completed
    }
}

/// Why a run failed: a message, and the classified model error when a model call is what
/// failed (its [`ErrorKind`] tells a host whether to retry). Serialises as the message, so
/// stored and printed forms are plain text; dereferences to it.
#[derive(Debug, Clone)]
pub struct RunFailure {
    message: String,
    model: Option<Box<executus_llm::Error>>,
}

impl RunFailure {
    /// A failure described by `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), model: None }
    }

    /// The failure's message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The model error behind it, when a model call failed.
    pub fn model_error(&self) -> Option<&executus_llm::Error> {
        self.model.as_deref()
    }

    /// The model error's class, when a model call failed.
    pub fn class(&self) -> Option<ErrorKind> {
        self.model.as_ref().map(|e| e.kind)
    }
}

impl From<executus_llm::Error> for RunFailure {
    fn from(e: executus_llm::Error) -> Self {
        Self { message: e.to_string(), model: Some(Box::new(e)) }
    }
}

impl From<String> for RunFailure {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for RunFailure {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

impl fmt::Display for RunFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::ops::Deref for RunFailure {
    type Target = str;

    fn deref(&self) -> &str {
        &self.message
    }
}

impl PartialEq for RunFailure {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message && self.class() == other.class()
    }
}

impl PartialEq<str> for RunFailure {
    fn eq(&self, other: &str) -> bool {
        self.message == other
    }
}

impl PartialEq<&str> for RunFailure {
    fn eq(&self, other: &&str) -> bool {
        self.message == *other
    }
}

impl Serialize for RunFailure {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.message)
    }
}

impl<'de> Deserialize<'de> for RunFailure {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}
