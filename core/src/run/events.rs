//! [`RunEvent`]: progress a host can show while a run goes on.

use executus_llm::ToolCall;
use serde::{Deserialize, Serialize};

use super::outcome::RunEnd;
use crate::ids::RunId;

/// One progress event of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunEvent {
    /// A step (model call) starts.
    StepStarted {
        /// The run.
        run_id: RunId,
        /// 1-based step number.
        step: u32,
    },
    /// Answer text as it streams.
    TextDelta {
        /// The run.
        run_id: RunId,
        /// The text.
        text: String,
    },
    /// The failover chain makes an attempt on a target (the first, a retry, or the next
    /// target after a failover).
    ModelAttempt {
        /// The run.
        run_id: RunId,
        /// 1-based step number.
        step: u32,
        /// `provider/model`.
        target: String,
        /// 1-based attempt number on this target.
        attempt: u32,
    },
    /// The failover chain moves on from a target that failed.
    Failover {
        /// The run.
        run_id: RunId,
        /// 1-based step number.
        step: u32,
        /// The target that failed, `provider/model`.
        from: String,
        /// The next target.
        to: String,
        /// Why.
        error: String,
    },
    /// A step's streamed answer broke after it had begun, and the model call is re-issued
    /// (see [`crate::RuntimeConfig::stream_restarts`]): discard the step's text deltas so far.
    StepRestarted {
        /// The run.
        run_id: RunId,
        /// 1-based step number.
        step: u32,
        /// The target that broke, as `provider/model`.
        target: String,
        /// Why.
        error: String,
    },
    /// The model answered (after any failover).
    ModelAnswered {
        /// The run.
        run_id: RunId,
        /// Provider that answered.
        provider: String,
        /// Model that answered.
        model: String,
    },
    /// A tool call starts.
    ToolStarted {
        /// The run.
        run_id: RunId,
        /// The call.
        call: ToolCall,
    },
    /// A tool call finished.
    ToolFinished {
        /// The run.
        run_id: RunId,
        /// Call id.
        call_id: String,
        /// Tool name.
        name: String,
        /// True if the result is an error.
        is_error: bool,
    },
    /// Loop protection fired.
    LoopProtection {
        /// The run.
        run_id: RunId,
        /// What fired.
        trigger: crate::loops::LoopKind,
        /// Finalize or stop.
        action: crate::loops::LoopAction,
    },
    /// A tool call waits for approval.
    ApprovalRequested {
        /// The run.
        run_id: RunId,
        /// The call.
        call: ToolCall,
    },
    /// The run ended (or paused for approval).
    Ended {
        /// The run.
        run_id: RunId,
        /// How.
        end: RunEnd,
    },
}
