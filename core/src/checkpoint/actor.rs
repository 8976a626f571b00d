//! The checkpoint actor itself: buffers appends per run, writes them in groups, answers
//! durable saves once the store returned. Crate-private; [`super::CheckpointHandle`] is its
//! face.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::ids::RunId;
use crate::ports::{CheckpointStore, Entry, PortError, RunAppend, RunMeta, StoredStatus};

/// Messages of the checkpoint actor.
pub(crate) enum CheckpointMsg {
    /// Buffer entries for a run; reply after they are durable when `reply` is given.
    Append {
        /// The run's header and status after this append.
        meta: RunMeta,
        /// Status after this append.
        status: StoredStatus,
        /// Encoded entries.
        entries: Vec<Entry>,
        /// Present for durable saves.
        reply: Option<RpcReplyPort<Result<(), PortError>>>,
    },
    /// Mark a run finished (after its buffered entries); reply once that is written.
    Finish {
        /// The run.
        run: RunId,
        /// Completed or Failed.
        status: StoredStatus,
        /// Answered when the finish is durable.
        reply: RpcReplyPort<Result<(), PortError>>,
    },
    /// Write everything buffered now and reply when done.
    Flush(RpcReplyPort<Result<(), PortError>>),
    /// Timer tick: write if anything is buffered.
    Tick,
    /// A write finished.
    Written(Result<(), PortError>),
}

/// The checkpoint actor.
pub(crate) struct CheckpointActor;

/// Its state.
pub(crate) struct CheckpointState {
    store: Arc<dyn CheckpointStore>,
    min_interval: Duration,
    buffer: Vec<RunAppend>,
    index: HashMap<RunId, usize>,
    finishes: Vec<(RunId, StoredStatus)>,
    waiting: Vec<RpcReplyPort<Result<(), PortError>>>,
    in_flight: Vec<RpcReplyPort<Result<(), PortError>>>,
    writing: bool,
    tick_scheduled: bool,
    urgent: bool,
}

impl CheckpointState {
    fn has_work(&self) -> bool {
        !self.buffer.is_empty() || !self.finishes.is_empty() || !self.waiting.is_empty()
    }

    fn start_write(&mut self, myself: &ActorRef<CheckpointMsg>) {
        self.writing = true;
        self.urgent = false;
        self.index.clear();
        let batch = std::mem::take(&mut self.buffer);
        let finishes = std::mem::take(&mut self.finishes);
        self.in_flight = std::mem::take(&mut self.waiting);
        let store = self.store.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let mut result = if batch.is_empty() { Ok(()) } else { store.append(&batch).await };
            if result.is_ok() {
                for (run, status) in finishes {
                    if let Err(e) = store.finish(run, status).await {
                        result = Err(e);
                    }
                }
            }
            // The actor may be gone at shutdown; the write itself has happened.
            let _ = me.send_message(CheckpointMsg::Written(result));
        });
    }
}

impl Actor for CheckpointActor {
    type Msg = CheckpointMsg;
    type State = CheckpointState;
    type Arguments = (Arc<dyn CheckpointStore>, Duration);

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        (store, min_interval): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(CheckpointState {
            store,
            min_interval,
            buffer: Vec::new(),
            index: HashMap::new(),
            finishes: Vec::new(),
            waiting: Vec::new(),
            in_flight: Vec::new(),
            writing: false,
            tick_scheduled: false,
            urgent: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CheckpointMsg::Append { meta, status, entries, reply } => {
                let run = meta.run_id;
                match state.index.get(&run) {
                    Some(&i) => {
                        let slot = &mut state.buffer[i];
                        slot.status = status;
                        slot.entries.extend(entries);
                    }
                    None => {
                        state.index.insert(run, state.buffer.len());
                        state.buffer.push(RunAppend { meta, status, entries });
                    }
                }
                if let Some(reply) = reply {
                    state.waiting.push(reply);
                    state.urgent = true;
                }
            }
            CheckpointMsg::Finish { run, status, reply } => {
                // Entries of a finished run need not be written at all: finish deletes them.
                if let Some(i) = state.index.remove(&run) {
                    state.buffer.remove(i);
                    for v in state.index.values_mut() {
                        if *v > i {
                            *v -= 1;
                        }
                    }
                }
                state.finishes.push((run, status));
                // Durable before the outcome is published: a host that exits right after a
                // run returned must not find it "interrupted" (and re-run it) next start.
                state.waiting.push(reply);
                state.urgent = true;
            }
            CheckpointMsg::Flush(reply) => {
                state.waiting.push(reply);
                state.urgent = true;
            }
            CheckpointMsg::Tick => {
                state.tick_scheduled = false;
                state.urgent = true;
            }
            CheckpointMsg::Written(result) => {
                state.writing = false;
                if let Err(e) = &result {
                    tracing::error!(target: "executus::checkpoint", error = %e, "checkpoint write failed");
                }
                for reply in state.in_flight.drain(..) {
                    let _ = reply.send(result.clone());
                }
            }
        }
        if state.writing || !state.has_work() {
            return Ok(());
        }
        if state.urgent || state.min_interval.is_zero() {
            state.start_write(&myself);
        } else if !state.tick_scheduled {
            state.tick_scheduled = true;
            let me = myself.clone();
            let delay = state.min_interval;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = me.send_message(CheckpointMsg::Tick);
            });
        }
        Ok(())
    }
}
