//! The fleet state: one actor owns it ([`machine::FleetState`], a pure machine), everything
//! else talks to it through a [`StateHandle`].
//!
//! # Guarantees
//! - **Snapshot, then deltas, without loss or repetition.** [`StateHandle::subscribe`]
//!   registers the consumer and takes the snapshot in the same actor turn: every delta not in
//!   the snapshot is delivered on the subscription, in order, each exactly once, each carrying
//!   its host's next sequence number.
//! - **A slow consumer cannot stall the fleet.** A subscription buffers up to
//!   [`SUBSCRIBER_BUFFER`] deltas; a consumer that falls further behind is cut off (its
//!   receiver ends after the buffered deltas) and must subscribe again for a fresh snapshot,
//!   rather than silently missing deltas.
//! - **Routing reads without a message.** After every change the actor publishes a
//!   [`RoutingView`](crate::route::RoutingView) that routing decisions read lock-free of the
//!   actor (a read lock and an `Arc` clone).
//!
//! # What it does not do
//! It does no I/O: connectors, ingestion, the lease manager and the action queues feed it
//! facts; it keeps nothing durable (the store does).

mod actor;
pub mod machine;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::mpsc;

use self::actor::{StateActor, StateMsg};
pub use self::machine::{
    ActivityView, Change, Delta, Fact, FleetState, HostView, InflightView, LeaseView, ModelView, PerfView,
    QueuedView, Snapshot, Speed,
};
use crate::error::FleetError;
use crate::route::RoutingBoard;

/// Deltas a subscription buffers before its consumer is cut off.
pub const SUBSCRIBER_BUFFER: usize = 4096;

/// A consumer's view: the snapshot at subscription time and the deltas after it.
#[derive(Debug)]
pub struct Subscription {
    /// The state when the subscription began.
    pub snapshot: Snapshot,
    /// Every later delta, in order. Ends when the fleet stops, or when this consumer fell
    /// [`SUBSCRIBER_BUFFER`] deltas behind (subscribe again then).
    pub deltas: mpsc::Receiver<Delta>,
}

/// The typed handle of the state actor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StateHandle {
    actor: ActorRef<StateMsg>,
    board: Arc<RoutingBoard>,
}

impl StateHandle {
    /// Starts the actor with `hosts` (`(name, base_url)`), all `reconnecting` since `at`.
    ///
    /// # Errors
    /// [`FleetError::Spawn`] if the actor could not start.
    pub async fn spawn(hosts: Vec<(String, String)>, at: DateTime<Utc>) -> Result<Self, FleetError> {
        let state = FleetState::new(hosts.iter().map(|(n, u)| (n.as_str(), u.as_str())), at);
        let board = Arc::new(RoutingBoard::new(&state));
        let (actor, _join) = Actor::spawn(None, StateActor, (state, Arc::clone(&board)))
            .await
            .map_err(|e| FleetError::Spawn { what: "fleet state actor", reason: e.to_string() })?;
        Ok(Self { actor, board })
    }

    /// Feeds a fact (fire and forget; facts from one sender are applied in order).
    pub fn apply(&self, fact: Fact) {
        let _ = self.actor.cast(StateMsg::Apply(fact));
    }

    /// Feeds a fact and waits until it is applied; returns its delta, if it changed anything.
    ///
    /// # Errors
    /// [`FleetError::Stopped`] when the actor is gone.
    pub async fn apply_now(&self, fact: Fact) -> Result<Option<Delta>, FleetError> {
        match self.actor.call(|reply| StateMsg::ApplyNow(fact, reply), None).await {
            Ok(CallResult::Success(delta)) => Ok(delta),
            _ => Err(FleetError::Stopped),
        }
    }

    /// The current state.
    ///
    /// # Errors
    /// [`FleetError::Stopped`] when the actor is gone.
    pub async fn snapshot(&self) -> Result<Snapshot, FleetError> {
        match self.actor.call(StateMsg::Snapshot, None).await {
            Ok(CallResult::Success(s)) => Ok(s),
            _ => Err(FleetError::Stopped),
        }
    }

    /// A snapshot and every delta after it (see the module guarantees).
    ///
    /// # Errors
    /// [`FleetError::Stopped`] when the actor is gone.
    pub async fn subscribe(&self) -> Result<Subscription, FleetError> {
        match self.actor.call(StateMsg::Subscribe, None).await {
            Ok(CallResult::Success((snapshot, deltas))) => Ok(Subscription { snapshot, deltas }),
            _ => Err(FleetError::Stopped),
        }
    }

    /// The routing board the actor publishes to.
    pub fn board(&self) -> &Arc<RoutingBoard> {
        &self.board
    }

    /// Stops the actor (subscriptions end).
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}
