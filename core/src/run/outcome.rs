//! How a run ends ([`RunEnd`]) and what its caller gets back ([`RunOutcome`]).
//!
//! Every end that is not success still returns the transcript so far and the usage spent.

use std::time::Duration;

use executus_llm::{Message, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
        /// Why.
        error: String,
    },
    /// Paused: tool calls wait for a human (`approve` / `deny` continue the run).
    AwaitingApproval {
        /// The call ids waiting.
        calls: Vec<String>,
    },
}

impl RunEnd {
    /// Status name, as the CLI reports it: `completed`, `failed`, `partial`, `stopped`,
    /// `cancelled`, `budget_denied`, `awaiting_approval`.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::MaxSteps { .. } | Self::TimedOut { .. } => "partial",
            Self::Cancelled => "cancelled",
            Self::BudgetDenied(_) => "budget_denied",
            Self::ToolErrorLimit { .. } | Self::Stopped { .. } => "stopped",
            Self::Failed { .. } => "failed",
            Self::AwaitingApproval { .. } => "awaiting_approval",
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
            Self::Failed { error } => Some(error.clone()),
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
    /// The status name (see [`RunEnd::status`]).
    pub fn status(&self) -> &'static str {
        self.end.status()
    }

    /// True for [`RunEnd::Completed`].
    pub fn is_completed(&self) -> bool {
        self.end == RunEnd::Completed
    }
}
