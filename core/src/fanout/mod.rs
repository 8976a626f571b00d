//! The `Fanout` actor: N models x M lenses, each cell a run (or a one-shot call) submitted to
//! a lane, with a progress stream and the whole matrix as the result.
//!
//! # Guarantees
//! - **Every cell ends with a value or an error of its own**: one model failing fails only
//!   its cells.
//! - **The deadline keeps finished work.** With a swarm deadline, cells still running at the
//!   deadline are reported as timed out (and cancelled), the finished ones are kept.
//! - **Bounded by the lane.** Cells are admitted through the lane, so the lane's capacity and
//!   tenant fairness bound the swarm.
//!
//! # What it does not do
//! - It does not merge or rank results: the host reads the matrix (the PR-review swarm
//!   merges findings across models).
//! - It does not retry a failed cell; the chain behind each model spec already fails over.

use std::sync::Arc;
use std::time::Duration;

use executus_llm::{Message, Usage};
use ractor::Actor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use self::actor::{FanoutActor, FanoutArgs};
use crate::agent::RunnableAgent;
use crate::identity::Identity;
use crate::ids::RunId;
use crate::run::capability::Runs;
use crate::run::{RunInput, RunStatus};

mod actor;
mod cell;

/// One lens: a named agent template; each cell runs it with the cell's model.
#[derive(Debug, Clone)]
pub struct Lens {
    /// Lens name (e.g. `security`).
    pub name: String,
    /// The agent; its `model` is replaced by the cell's model spec.
    pub agent: RunnableAgent,
}

/// How a cell runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CellMode {
    /// A full agent run (tools, steps, checkpoints).
    #[default]
    Run,
    /// One model call with the lens's system prompt (typed when the agent has an output
    /// schema): no tools, no checkpoint — the cheapest cell.
    OneShot,
}

/// A swarm to run.
#[derive(Debug, Clone)]
pub struct FanoutSpec {
    /// Model specs (a tier or chain each): the matrix rows.
    pub models: Vec<String>,
    /// Lenses: the matrix columns.
    pub lenses: Vec<Lens>,
    /// The input every cell sees.
    pub input: Vec<Message>,
    /// Who the swarm runs for (tenant fairness in the lane).
    pub identity: Identity,
    /// Lane (default: each agent's own, else `default`).
    pub lane: Option<String>,
    /// Swarm deadline.
    pub deadline: Option<Duration>,
    /// How cells run.
    pub mode: CellMode,
}

impl FanoutSpec {
    /// A spec with defaults (run mode, no deadline, anonymous identity).
    pub fn new(models: Vec<String>, lenses: Vec<Lens>, input: impl Into<RunInput>) -> Self {
        Self {
            models,
            lenses,
            input: input.into().0,
            identity: Identity::default(),
            lane: None,
            deadline: None,
            mode: CellMode::Run,
        }
    }
}

/// A cell's successful output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellOutput {
    /// The final text.
    pub text: Option<String>,
    /// The typed output, when the lens has an output schema.
    pub typed: Option<Value>,
    /// Tokens spent.
    pub usage: Usage,
    /// The run, in run mode.
    pub run_id: Option<RunId>,
    /// Steps taken (1 in one-shot mode).
    pub steps: u32,
    /// Wall time of the cell.
    #[serde(with = "crate::duration_serde")]
    pub elapsed: Duration,
}

/// Why a cell has no output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CellError {
    /// The run ended without success.
    #[error("run {run_id} ended {status}: {reason}")]
    Run {
        /// The run.
        run_id: RunId,
        /// How it ended.
        status: RunStatus,
        /// Why.
        reason: String,
    },
    /// The one-shot model call failed.
    #[error("model call failed: {message}")]
    Model {
        /// The error.
        message: String,
    },
    /// The swarm deadline passed before the cell finished.
    #[error("swarm deadline of {}s passed before this cell finished", after.as_secs_f64())]
    TimedOut {
        /// The deadline.
        #[serde(with = "crate::duration_serde")]
        after: Duration,
    },
    /// The cell could not be admitted.
    #[error("not admitted: {message}")]
    Admission {
        /// Why.
        message: String,
    },
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// Model spec (row).
    pub model: String,
    /// Lens name (column).
    pub lens: String,
    /// Output or error.
    pub result: Result<CellOutput, CellError>,
}

/// The whole matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutResult {
    /// Cells, model-major (`cells[m * lenses + l]`).
    pub cells: Vec<Cell>,
    /// Wall time of the swarm.
    #[serde(with = "crate::duration_serde")]
    pub elapsed: Duration,
}

impl FanoutResult {
    /// Cells that succeeded.
    pub fn succeeded(&self) -> impl Iterator<Item = (&Cell, &CellOutput)> {
        self.cells.iter().filter_map(|c| c.result.as_ref().ok().map(|o| (c, o)))
    }

    /// Number of cells that failed.
    pub fn failed(&self) -> usize {
        self.cells.iter().filter(|c| c.result.is_err()).count()
    }
}

/// Progress of a swarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FanoutProgress {
    /// A cell started running (left the lane's queue).
    Started {
        /// Model spec.
        model: String,
        /// Lens.
        lens: String,
    },
    /// A cell finished with an output.
    Finished {
        /// Model spec.
        model: String,
        /// Lens.
        lens: String,
    },
    /// A cell failed.
    Failed {
        /// Model spec.
        model: String,
        /// Lens.
        lens: String,
        /// Why.
        error: String,
    },
}

/// A running swarm: progress events and the final matrix.
pub struct FanoutHandle {
    /// Progress events, ending when the swarm ends.
    pub progress: mpsc::UnboundedReceiver<FanoutProgress>,
    pub(crate) result: oneshot::Receiver<FanoutResult>,
}

impl FanoutHandle {
    /// Waits for the matrix.
    ///
    /// # Errors
    /// [`FanoutError::Stopped`] if the fan-out actor died without a result (it does not,
    /// short of a bug).
    pub async fn result(self) -> Result<FanoutResult, FanoutError> {
        self.result.await.map_err(|_| FanoutError::Stopped)
    }
}

/// Why a swarm has no matrix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FanoutError {
    /// The fan-out actor could not start.
    #[error("the fan-out actor could not start: {0}")]
    Start(#[source] ractor::SpawnErr),
    /// The fan-out actor stopped without a result.
    #[error("the fan-out actor stopped without a result")]
    Stopped,
}

/// Starts the fan-out actor for `spec`; the matrix arrives on the returned receiver.
pub(crate) async fn start(
    runs: Arc<dyn Runs>,
    spec: FanoutSpec,
    progress: mpsc::UnboundedSender<FanoutProgress>,
) -> Result<oneshot::Receiver<FanoutResult>, FanoutError> {
    let (result_tx, result) = oneshot::channel();
    let args = FanoutArgs { runs, spec, progress, result: Some(result_tx) };
    Actor::spawn(None, FanoutActor, args).await.map_err(FanoutError::Start)?;
    Ok(result)
}
