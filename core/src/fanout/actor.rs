//! The fan-out actor: collects cells as they end, reports progress, cancels what is left at
//! the deadline, and hands back the matrix. Crate-private.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};

use super::cell::run_cell;
use super::{Cell, CellError, CellOutput, FanoutProgress, FanoutResult, FanoutSpec};
use crate::ids::RunId;
use crate::run::capability::Runs;

/// Messages of the fanout actor.
pub(crate) enum FanoutMsg {
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
pub(crate) struct FanoutActor;

/// Its arguments.
pub(crate) struct FanoutArgs {
    pub(crate) runs: Arc<dyn Runs>,
    pub(crate) spec: FanoutSpec,
    pub(crate) progress: mpsc::UnboundedSender<FanoutProgress>,
    pub(crate) result: Option<oneshot::Sender<FanoutResult>>,
}

/// Its state.
pub(crate) struct FanoutState {
    runs: Arc<dyn Runs>,
    names: Vec<(String, String)>,
    cells: Vec<Option<Result<CellOutput, CellError>>>,
    run_ids: Vec<Option<RunId>>,
    remaining: usize,
    deadline: Option<Duration>,
    started: Instant,
    progress: mpsc::UnboundedSender<FanoutProgress>,
    result: Option<oneshot::Sender<FanoutResult>>,
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
        let FanoutArgs { runs, spec, progress, result } = args;
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
            tokio::spawn(run_cell(runs.clone(), shared.clone(), i, model.clone(), lens, myself.clone()));
        }
        if let Some(deadline) = shared.deadline {
            let me = myself.clone();
            tokio::spawn(async move {
                tokio::time::sleep(deadline).await;
                let _ = me.send_message(FanoutMsg::Deadline);
            });
        }
        Ok(FanoutState {
            runs,
            names,
            cells: vec![None; n],
            run_ids: vec![None; n],
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
            FanoutMsg::RunId(i, run) => state.run_ids[i] = Some(run),
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
                    if let Some(run) = state.run_ids[i] {
                        let runs = state.runs.clone();
                        tokio::spawn(async move { runs.cancel(run).await });
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
