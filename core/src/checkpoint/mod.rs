//! Checkpoints: per-run, append-only, throttled saves to a [`CheckpointStore`], batched
//! across runs (group commit).
//!
//! Runs hand the [`CheckpointHandle`] facts as they happen. Ordinary facts are buffered and
//! written at most every `min_interval` (coalescing many facts, from many runs, into one
//! `append` call). A durable save — a tool call's result, whose side effect must not be
//! repeated — is written at once (together with everything buffered) and returns only after
//! the store returned. While one write is in progress, new saves accumulate and go out
//! together in the next one, so many concurrent runs never serialise on the store's fsync.
//!
//! There is no actor: saves go into a shared open batch under a short lock, and the saver that
//! finds no write in flight writes the batch itself (see `log`). A store that answers at once
//! — the in-memory default — therefore costs a durable save one lock and the store call, with
//! no message, task or context switch; a store that makes the write wait gets a task per write
//! (not per save), as a group commit needs.
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
//! - **Cancellation-safe.** A saver dropped while it waits (its run interrupted) leaves the
//!   write going: a write that waits on the store runs in its own task.
//!
//! # What it does not do
//! - It does not retry a failed write: the error is logged and returned to durable savers.
//! - It does not decide what is durable: the run driver marks tool results and answers with
//!   tool calls durable, everything else rides along.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use self::log::Log;
use crate::error::RuntimeError;
use crate::ids::RunId;
use crate::ports::{CheckpointStore, Entry, PortError, RunMeta, StoredStatus};
use crate::run::machine::{Fact, RunState};
use crate::run::{RunEnd, RunOutcome};

mod log;

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
    // Most facts fit: one allocation instead of a vector doubled three or four times (the
    // payload is short-lived: a store keeps its own copy or encoding).
    let mut out = Vec::with_capacity(512);
    // Serialising these plain data types cannot fail (no maps with non-string keys, no
    // custom serialisers that error); an empty payload would be caught at decode anyway.
    match serde_json::to_writer(&mut out, &EnvelopeOut { v: FORMAT_VERSION, fact }) {
        Ok(()) => out,
        Err(_) => Vec::new(),
    }
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
/// not flush pending saves: use `Runtime::stored_outcome` from a host.
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
    let state = RunState::replay_owned(facts).map_err(|source| RuntimeError::Replay { run, source })?;
    Ok(Some(StoredOutcome { state, status: stored.status }))
}

/// The handle runs save through (cheap to clone).
#[derive(Clone)]
pub struct CheckpointHandle {
    log: Arc<Log>,
}

impl CheckpointHandle {
    /// A handle over `store`; non-durable saves are written within `min_interval` (at once
    /// when it is zero).
    pub fn new(store: Arc<dyn CheckpointStore>, min_interval: Duration) -> Self {
        Self { log: Log::new(store, min_interval) }
    }

    /// The store behind the handle.
    pub fn store(&self) -> &Arc<dyn CheckpointStore> {
        self.log.store()
    }

    /// Saves facts of a run, starting at sequence number `first_seq`. When `durable`, waits
    /// until they (and everything buffered before them) are written.
    ///
    /// # Errors
    /// The store's error for a durable save.
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
        self.save_entries(meta, status, entries, durable).await
    }

    /// [`CheckpointHandle::save`] of entries already encoded (the driver encodes a fact
    /// before it moves into the state).
    pub(crate) async fn save_entries(
        &self,
        meta: &RunMeta,
        status: StoredStatus,
        entries: Vec<Entry>,
        durable: bool,
    ) -> Result<(), PortError> {
        self.log.append(meta, status, entries, durable).result().await
    }

    /// Marks a run finished; its buffered entries are dropped and its log deleted. Returns
    /// once the store has done so.
    ///
    /// # Errors
    /// The store's error.
    pub async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        self.log.finish(run, status).result().await
    }

    /// Writes everything buffered and waits for it.
    ///
    /// # Errors
    /// The store's error.
    pub async fn flush(&self) -> Result<(), PortError> {
        self.log.flush().result().await
    }

    /// A final flush (the runtime's shutdown); errors are logged by the write.
    pub async fn stop(&self) {
        let _ = self.flush().await;
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
