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
//! names it. [`load_stored`] reads a run's log back and replays it.
//!
//! # Guarantees
//! - **Durable before acknowledged.** A durable save returns only after the store has written
//!   it and everything buffered before it; a finish returns only after the log is deleted.
//! - **Group commit.** One write is in flight at a time; saves from any number of runs that
//!   arrive meanwhile go out together in the next one.
//! - **Bounded staleness.** A buffered (non-durable) fact is written within `min_interval`.
//!
//! # What it does not do
//! - It does not retry a failed write: the error is logged and returned to durable savers.
//! - It does not decide what is durable: the run actor marks tool results and answers with
//!   tool calls durable, everything else rides along.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use serde::Deserialize;

use self::actor::{CheckpointActor, CheckpointMsg};
use crate::error::RuntimeError;
use crate::ids::RunId;
use crate::ports::{CheckpointStore, Entry, PortError, RunMeta, StoredStatus};
use crate::run::machine::{Fact, RunState};
use crate::run::{RunEnd, RunOutcome};

mod actor;

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

/// A run as its checkpoint log holds it.
#[derive(Debug, Clone)]
pub struct StoredOutcome {
    /// The log replayed.
    pub state: RunState,
    /// The stored status (running, awaiting approval...).
    pub status: StoredStatus,
}

impl StoredOutcome {
    /// What the run would report if it ended now with `end`: the transcript, the last answer,
    /// the steps and usage so far.
    pub fn outcome(&self, end: RunEnd) -> RunOutcome {
        let st = &self.state;
        RunOutcome {
            run_id: st.run_id,
            agent: st.agent.name.clone(),
            end,
            output: st.last_text(),
            typed: st.typed.clone(),
            messages: st.messages.clone(),
            steps: st.step,
            usage: st.usage,
        }
    }
}

/// Loads a run's log from `store` and replays it; `None` if the store has no such run. Does
/// not flush the checkpoint actor: use `Runtime::stored_outcome` from a host.
///
/// # Errors
/// [`RuntimeError::Port`] if the store fails or a payload is corrupt,
/// [`RuntimeError::Replay`] if the log does not replay.
pub async fn load_stored(
    store: &dyn CheckpointStore,
    run: RunId,
) -> Result<Option<StoredOutcome>, RuntimeError> {
    let Some(stored) = store.load(run).await? else { return Ok(None) };
    let facts = stored.entries.iter().map(|e| decode(&e.payload)).collect::<Result<Vec<_>, _>>()?;
    let state = RunState::replay(facts.iter()).map_err(|source| RuntimeError::Replay { run, source })?;
    Ok(Some(StoredOutcome { state, status: stored.status }))
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
    /// The actor system's error if the actor cannot be spawned.
    pub async fn spawn(
        store: Arc<dyn CheckpointStore>,
        min_interval: Duration,
    ) -> Result<Self, ractor::SpawnErr> {
        let (actor, _) = Actor::spawn(None, CheckpointActor, (store.clone(), min_interval)).await?;
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
