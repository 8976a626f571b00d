//! The `Fanout` actor: N models x M lenses, each cell a run (or a one-shot call) submitted to
//! a lane, with a progress stream and the whole matrix as the result.
//!
//! Guarantees: every cell ends with a value or an error of its own — one model failing fails
//! only its cells; with a swarm deadline, cells still running at the deadline are reported as
//! timed out (and cancelled), the finished ones are kept. Cells are admitted through the
//! lane, so the lane's capacity and tenant fairness bound the swarm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use executus_llm::{Message, Request, Usage};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::agent::RunnableAgent;
use crate::identity::Identity;
use crate::ids::RunId;
use crate::lane::JobSpec;
use crate::run::machine::parse_typed;
use crate::run::{RunEnd, RunEvent};
use crate::runtime::{RunRequest, Runtime};

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
    pub fn new(models: Vec<String>, lenses: Vec<Lens>, input: impl Into<crate::runtime::RunInput>) -> Self {
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
        /// Status name.
        status: String,
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
    result: tokio::sync::oneshot::Receiver<FanoutResult>,
}

impl FanoutHandle {
    /// Waits for the matrix.
    ///
    /// # Errors
    /// A message if the fanout actor died (it does not, short of a bug).
    pub async fn result(self) -> Result<FanoutResult, String> {
        self.result.await.map_err(|_| "fanout actor stopped without a result".to_owned())
    }
}

/// Messages of the fanout actor.
pub enum FanoutMsg {
    /// A cell started.
    Started(usize),
    /// A cell ended, with its run id (to cancel at the deadline) if any.
    Done(usize, Result<CellOutput, CellError>),
    /// A cell's run id became known.
    RunId(usize, RunId),
    /// The swarm deadline passed.
    Deadline,
}

/// The fanout actor.
pub struct FanoutActor;

/// Its arguments.
pub struct FanoutArgs {
    runtime: Runtime,
    spec: FanoutSpec,
    progress: mpsc::UnboundedSender<FanoutProgress>,
    result: Option<tokio::sync::oneshot::Sender<FanoutResult>>,
}

/// Its state.
pub struct FanoutState {
    runtime: Runtime,
    names: Vec<(String, String)>,
    cells: Vec<Option<Result<CellOutput, CellError>>>,
    runs: Vec<Option<RunId>>,
    remaining: usize,
    deadline: Option<Duration>,
    started: Instant,
    progress: mpsc::UnboundedSender<FanoutProgress>,
    result: Option<tokio::sync::oneshot::Sender<FanoutResult>>,
}

impl Actor for FanoutActor {
    type Msg = FanoutMsg;
    type State = FanoutState;
    type Arguments = FanoutArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<FanoutMsg>,
        args: FanoutArgs,
    ) -> Result<FanoutState, ActorProcessingErr> {
        let FanoutArgs { runtime, spec, progress, result } = args;
        let mut names = Vec::new();
        for model in &spec.models {
            for lens in &spec.lenses {
                names.push((model.clone(), lens.name.clone()));
            }
        }
        let n = names.len();
        let shared = Arc::new(spec);
        for (i, (model, _)) in names.iter().enumerate() {
            let lens = shared.lenses[i % shared.lenses.len()].clone();
            tokio::spawn(run_cell(runtime.clone(), shared.clone(), i, model.clone(), lens, myself.clone()));
        }
        if let Some(deadline) = shared.deadline {
            let me = myself.clone();
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                let _ = me.send_message(FanoutMsg::Deadline);
            });
        }
        Ok(FanoutState {
            runtime,
            names,
            cells: vec![None; n],
            runs: vec![None; n],
            remaining: n,
            deadline: shared.deadline,
            started: Instant::now(),
            progress,
            result,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<FanoutMsg>,
        state: &mut FanoutState,
    ) -> Result<(), ActorProcessingErr> {
        if state.remaining == 0 {
            state.complete(&myself);
        }
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<FanoutMsg>,
        msg: FanoutMsg,
        state: &mut FanoutState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FanoutMsg::Started(i) => {
                if state.cells[i].is_none() {
                    let (model, lens) = state.names[i].clone();
                    let _ = state.progress.send(FanoutProgress::Started { model, lens });
                }
            }
            FanoutMsg::RunId(i, run) => state.runs[i] = Some(run),
            FanoutMsg::Done(i, result) => {
                if state.cells[i].is_some() {
                    return Ok(());
                }
                let (model, lens) = state.names[i].clone();
                let event = match &result {
                    Ok(_) => FanoutProgress::Finished { model, lens },
                    Err(e) => FanoutProgress::Failed { model, lens, error: e.to_string() },
                };
                let _ = state.progress.send(event);
                state.cells[i] = Some(result);
                state.remaining -= 1;
                if state.remaining == 0 {
                    state.complete(&myself);
                }
            }
            FanoutMsg::Deadline => {
                let after = state.deadline.unwrap_or_default();
                for i in 0..state.cells.len() {
                    if state.cells[i].is_some() {
                        continue;
                    }
                    if let Some(run) = state.runs[i] {
                        let rt = state.runtime.clone();
                        tokio::spawn(async move { rt.cancel(run).await });
                    }
                    let (model, lens) = state.names[i].clone();
                    let error = CellError::TimedOut { after };
                    let _ =
                        state.progress.send(FanoutProgress::Failed { model, lens, error: error.to_string() });
                    state.cells[i] = Some(Err(error));
                }
                state.remaining = 0;
                state.complete(&myself);
            }
        }
        Ok(())
    }
}

impl FanoutState {
    fn complete(&mut self, myself: &ActorRef<FanoutMsg>) {
        let cells = self
            .names
            .iter()
            .zip(self.cells.iter_mut())
            .map(|((model, lens), slot)| Cell {
                model: model.clone(),
                lens: lens.clone(),
                result: slot.take().unwrap_or(Err(CellError::Admission { message: "cell never ran".into() })),
            })
            .collect();
        if let Some(tx) = self.result.take() {
            let _ = tx.send(FanoutResult { cells, elapsed: self.started.elapsed() });
        }
        myself.stop(None);
    }
}

async fn run_cell(
    runtime: Runtime,
    spec: Arc<FanoutSpec>,
    i: usize,
    model: String,
    lens: Lens,
    me: ActorRef<FanoutMsg>,
) {
    let started = Instant::now();
    let mut agent = lens.agent;
    agent.model = model;
    let result = match spec.mode {
        CellMode::Run => run_mode(&runtime, &spec, i, agent, &me, started).await,
        CellMode::OneShot => one_shot(&runtime, &spec, i, agent, &me, started).await,
    };
    let _ = me.send_message(FanoutMsg::Done(i, result));
}

async fn run_mode(
    runtime: &Runtime,
    spec: &FanoutSpec,
    i: usize,
    agent: RunnableAgent,
    me: &ActorRef<FanoutMsg>,
    started: Instant,
) -> Result<CellOutput, CellError> {
    let mut request = RunRequest::new(agent, spec.input.clone()).identity(spec.identity.clone());
    request.lane = spec.lane.clone();
    let handle =
        runtime.spawn_with(request).await.map_err(|e| CellError::Admission { message: e.to_string() })?;
    let _ = me.send_message(FanoutMsg::RunId(i, handle.id()));
    let mut events = handle.events();
    let me2 = me.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if matches!(event, RunEvent::StepStarted { .. }) {
                let _ = me2.send_message(FanoutMsg::Started(i));
                break;
            }
        }
    });
    let outcome = handle.outcome().await;
    watcher.abort();
    match &outcome.end {
        RunEnd::Completed => Ok(CellOutput {
            text: outcome.output.clone(),
            typed: outcome.typed.clone(),
            usage: outcome.usage,
            run_id: Some(outcome.run_id),
            steps: outcome.steps,
            elapsed: started.elapsed(),
        }),
        end => Err(CellError::Run {
            run_id: outcome.run_id,
            status: end.status().into(),
            reason: end.reason().unwrap_or_default(),
        }),
    }
}

async fn one_shot(
    runtime: &Runtime,
    spec: &FanoutSpec,
    i: usize,
    agent: RunnableAgent,
    me: &ActorRef<FanoutMsg>,
    started: Instant,
) -> Result<CellOutput, CellError> {
    let lane_name = spec.lane.clone().or_else(|| agent.lane.clone()).unwrap_or_else(|| "default".into());
    let lane = runtime.lane(&lane_name).await.map_err(|e| CellError::Admission { message: e.to_string() })?;
    let model =
        runtime.registry().parse(&agent.model).map_err(|e| CellError::Model { message: e.to_string() })?;
    let request = Request {
        system: (!agent.system.is_empty()).then(|| agent.system.clone()),
        messages: spec.input.clone(),
        temperature: agent.temperature,
        max_tokens: agent.max_tokens,
        response_schema: agent.output_schema.clone(),
        ..Request::default()
    };
    let me2 = me.clone();
    let job = lane
        .submit(
            JobSpec {
                tenant: spec.identity.tenant.clone(),
                label: format!("{} {}", agent.name, agent.model),
            },
            async move {
                let _ = me2.send_message(FanoutMsg::Started(i));
                model.generate(request).await
            },
        )
        .await
        .map_err(|e| CellError::Admission { message: e.to_string() })?;
    let response = job
        .await
        .map_err(|e| CellError::Admission { message: e.to_string() })?
        .map_err(|e| CellError::Model { message: e.to_string() })?;
    let text = response.text();
    let typed = match &agent.output_schema {
        Some(_) => Some(parse_typed(&text).map_err(|e| CellError::Model {
            message: format!("output is not valid JSON for the lens's schema: {e}"),
        })?),
        None => None,
    };
    Ok(CellOutput {
        text: Some(text),
        typed,
        usage: response.usage,
        run_id: None,
        steps: 1,
        elapsed: started.elapsed(),
    })
}

impl Runtime {
    /// Starts a swarm: every model x every lens, each cell through a lane.
    ///
    /// # Errors
    /// A message if the fanout actor cannot start.
    pub async fn fanout(&self, spec: FanoutSpec) -> Result<FanoutHandle, String> {
        let (progress_tx, progress) = mpsc::unbounded_channel();
        let (result_tx, result) = tokio::sync::oneshot::channel();
        let args = FanoutArgs { runtime: self.clone(), spec, progress: progress_tx, result: Some(result_tx) };
        Actor::spawn(None, FanoutActor, args).await.map_err(|e| e.to_string())?;
        Ok(FanoutHandle { progress, result })
    }
}
