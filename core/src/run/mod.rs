//! Runs: the pure state machine ([`machine`]), its driver actor ([`actor`]), the handle a
//! caller holds ([`handle`]), progress events ([`events`]) and outcomes ([`outcome`]).

use std::time::Duration;

use executus_llm::Usage;
use serde::{Deserialize, Serialize};

use crate::ids::RunId;

pub mod actor;
pub mod attempts;
pub mod env;
pub mod events;
pub mod handle;
pub mod machine;
pub mod outcome;

pub use events::RunEvent;
pub use handle::{RunControl, RunHandle};
pub use machine::{Action, Fact, RunState};
pub use outcome::{RunEnd, RunOutcome};

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
    /// Ended, with this status name.
    Ended(String),
}

/// A status snapshot of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
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
