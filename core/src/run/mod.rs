//! Runs: the pure state machine ([`machine`]), its driver (`driver`, crate-private: one task per run), the
//! handle a caller holds ([`handle`]), what to run ([`request`]), progress events ([`events`]),
//! outcomes ([`outcome`]) and the narrow handles on the runtime that tools and schedules get
//! ([`capability`]).

use std::time::Duration;

use executus_llm::Usage;
use serde::{Deserialize, Serialize};

use crate::ids::RunId;

pub(crate) mod attempts;
pub mod capability;
pub(crate) mod driver;
pub(crate) mod env;
pub mod events;
pub mod handle;
pub mod machine;
pub mod outcome;
pub mod request;

pub use capability::{ChildRuns, RunSubmitter};
pub use events::RunEvent;
pub use handle::RunHandle;
pub use machine::{Action, Fact, RunState};
pub use outcome::{RunEnd, RunFailure, RunOutcome};
pub use request::{RunInput, RunRequest};

/// How a run stands once it has ended (or paused): the status name hosts report, store and
/// map to exit codes. Serialises as the snake-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunStatus {
    /// A final answer.
    Completed,
    /// A cap (steps, time) ended it with partial work.
    Partial,
    /// Loop protection, the critic or the tool-error limit stopped it.
    Stopped,
    /// Cancelled.
    Cancelled,
    /// The budget refused a model call.
    BudgetDenied,
    /// It failed (model chain exhausted, permanent error, panic, invalid typed output...).
    Failed,
    /// Paused: tool calls wait for a human.
    AwaitingApproval,
}

impl RunStatus {
    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Partial => "partial",
            Self::Stopped => "stopped",
            Self::Cancelled => "cancelled",
            Self::BudgetDenied => "budget_denied",
            Self::Failed => "failed",
            Self::AwaitingApproval => "awaiting_approval",
        }
    }
}

crate::vocabulary!(RunStatus);

/// Where a run is, for status queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// Admitted to a lane's queue, not started.
    Queued,
    /// Calling (or about to call) the model.
    Model,
    /// Running tool calls.
    Tools,
    /// Ended, with this status.
    Ended(RunStatus),
}

/// A snapshot of a run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSnapshot {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// Where it is.
    pub phase: RunPhase,
    /// Steps completed.
    pub step: u32,
    /// Tokens spent.
    pub usage: Usage,
    /// Time since the run (this process's part of it) started.
    #[serde(with = "crate::duration_serde")]
    pub elapsed: Duration,
}
