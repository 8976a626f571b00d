//! The `Checkpoint` actor: per-run, throttled, append-only saves to a [`CheckpointStore`],
//! batched across runs (group commit).
//!
//! Runs hand it facts as they happen. Ordinary facts are buffered and written at most every
//! `min_interval` (coalescing many facts, from many runs, into one `append` call). A durable
//! save — a tool call's result, whose side effect must not be repeated — is written at once
//! (together with everything buffered) and acknowledged only after the store returned. While
//! one write is in progress, new saves accumulate and go out together in the next one, so
//! many concurrent runs never serialise on the store's fsync.
//!
//! Payloads are versioned JSON (`{"v":1,"fact":...}`); an unknown version is an error that
//! names it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Deserialize;

use crate::ids::RunId;
use crate::ports::{CheckpointStore, Entry, PortError, RunAppend, RunMeta, StoredStatus};
use crate::run::machine::Fact;

/// The payload format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize)]
struct EnvelopeOut<'a> {
    v: u32,
    #[serde(flatten)]
    fact: &'a Fact,
}

#[derive(Deserialize)]
struct Version {
    v: u32,
}

#[derive(Deserialize)]
struct EnvelopeIn {
    #[serde(flatten)]
    fact: Fact,
}

/// Encodes a fact as a versioned payload.
pub fn encode(fact: &Fact) -> Vec<u8> {
    // Serialising these plain data types cannot fail (no maps with non-string keys, no
    // custom serialisers that error); an empty payload would be caught at decode anyway.
    serde_json::to_vec(&EnvelopeOut { v: FORMAT_VERSION, fact }).unwrap_or_default()
}

/// Decodes a versioned payload.
///
/// # Errors
/// [`PortError::UnknownVersion`] for a version this build does not read,
/// [`PortError::Corrupt`] for anything that does not decode.
pub fn decode(payload: &[u8]) -> Result<Fact, PortError> {
    let corrupt = |e: serde_json::Error| PortError::Corrupt {
        port: "checkpoint",
        message: format!("undecodable checkpoint entry: {e}"),
    };
    let Version { v } = serde_json::from_slice(payload).map_err(corrupt)?;
    if v == 0 || v > FORMAT_VERSION {
        return Err(PortError::UnknownVersion { port: "checkpoint", version: v, supported: FORMAT_VERSION });
    }
    let EnvelopeIn { fact } = serde_json::from_slice(payload).map_err(corrupt)?;
    Ok(fact)
}

/// Messages of the checkpoint actor.
pub enum CheckpointMsg {
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
pub struct CheckpointActor;

/// Its state.
pub struct CheckpointState {
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

/// A typed handle to the checkpoint actor.
#[derive(Clone)]
pub struct CheckpointHandle {
    actor: ActorRef<CheckpointMsg>,
    store: Arc<dyn CheckpointStore>,
}

impl CheckpointHandle {
    /// Starts the actor.
    ///
    /// # Errors
    /// A message if the actor cannot be spawned.
    pub async fn spawn(store: Arc<dyn CheckpointStore>, min_interval: Duration) -> Result<Self, String> {
        let (actor, _) = Actor::spawn(None, CheckpointActor, (store.clone(), min_interval))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self { actor, store })
    }

    /// The store behind the actor.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        &self.store
    }

    /// Saves facts of a run, starting at sequence number `first_seq`. When `durable`, waits
    /// until they (and everything buffered before them) are written.
    ///
    /// # Errors
    /// The store's error for a durable save; [`PortError::Backend`] if the actor is gone.
    pub async fn save(
        &self,
        meta: &RunMeta,
        status: StoredStatus,
        first_seq: u64,
        facts: &[&Fact],
        durable: bool,
    ) -> Result<(), PortError> {
        let entries = facts
            .iter()
            .enumerate()
            .map(|(i, f)| Entry { seq: first_seq + i as u64, payload: encode(f) })
            .collect();
        let gone = |_| PortError::Backend { port: "checkpoint", message: "checkpoint actor stopped".into() };
        if durable {
            let (tx, rx) = ractor::concurrency::oneshot();
            self.actor
                .send_message(CheckpointMsg::Append {
                    meta: meta.clone(),
                    status,
                    entries,
                    reply: Some(tx.into()),
                })
                .map_err(|_| gone(()))?;
            rx.await.map_err(|_| gone(()))?
        } else {
            self.actor
                .send_message(CheckpointMsg::Append { meta: meta.clone(), status, entries, reply: None })
                .map_err(|_| gone(()))
        }
    }

    /// Marks a run finished; its buffered entries are dropped and its log deleted. Returns
    /// once the store has done so.
    ///
    /// # Errors
    /// The store's error, or [`PortError::Backend`] if the actor is gone.
    pub async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        let gone = PortError::Backend { port: "checkpoint", message: "checkpoint actor stopped".into() };
        let (tx, rx) = ractor::concurrency::oneshot();
        self.actor
            .send_message(CheckpointMsg::Finish { run, status, reply: tx.into() })
            .map_err(|_| gone.clone())?;
        rx.await.map_err(|_| gone)?
    }

    /// Writes everything buffered and waits for it.
    ///
    /// # Errors
    /// The store's error, or [`PortError::Backend`] if the actor is gone.
    pub async fn flush(&self) -> Result<(), PortError> {
        let gone = PortError::Backend { port: "checkpoint", message: "checkpoint actor stopped".into() };
        let (tx, rx) = ractor::concurrency::oneshot();
        self.actor.send_message(CheckpointMsg::Flush(tx.into())).map_err(|_| gone.clone())?;
        rx.await.map_err(|_| gone)?
    }

    /// Stops the actor (after a final flush).
    pub async fn stop(&self) {
        let _ = self.flush().await;
        self.actor.stop(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_and_unknown_version() {
        let fact = Fact::Steered { text: "hi".into() };
        let bytes = encode(&fact);
        assert!(bytes.starts_with(b"{\"v\":1"));
        assert_eq!(decode(&bytes).expect("decodes"), fact);
        let future = br#"{"v":7,"fact":"steered","text":"x"}"#;
        match decode(future) {
            Err(PortError::UnknownVersion { version: 7, supported: 1, .. }) => {}
            other => panic!("expected unknown version, got {other:?}"),
        }
        assert!(matches!(decode(b"garbage"), Err(PortError::Corrupt { .. })));
    }
}
