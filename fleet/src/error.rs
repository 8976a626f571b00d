//! [`FleetError`]: what can go wrong steering the fleet, each variant carrying its evidence.
//! No variant ever carries a host's key.

use crate::state::QueuedView;
use crate::store::{FleetStoreError, LeaseRecord};
use crate::wire::WireError;

/// An error of the fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// No host of that name is configured.
    #[error("unknown host {host:?} (configured: {known})")]
    UnknownHost {
        /// The name asked for.
        host: String,
        /// The configured hosts.
        known: String,
    },
    /// The host is down (its circuit is open): actions are refused.
    #[error("host {host:?} is offline ({liveness} since {since})")]
    HostOffline {
        /// The host.
        host: String,
        /// Its liveness.
        liveness: String,
        /// Since when.
        since: String,
    },
    /// The host's action queue is full.
    #[error("host {host:?} has {} actions queued (the most it takes): {}", queued.len(), list(queued))]
    QueueFull {
        /// The host.
        host: String,
        /// What is queued, head first.
        queued: Vec<QueuedView>,
    },
    /// The host is leased (a bench is running): the action needs confirmation to take it over.
    #[error("host {host:?} is leased for {purpose} by {holder}: repeat with confirmation to take it over")]
    Leased {
        /// The host.
        host: String,
        /// The lease's holder.
        holder: String,
        /// The lease's purpose.
        purpose: String,
    },
    /// Acquiring a lease failed: someone else holds it.
    #[error("host {host:?} is already leased for {} by {} until {}", held.purpose, held.holder, held.expires)]
    LeaseHeld {
        /// The host.
        host: String,
        /// The lease in the way.
        held: LeaseRecord,
    },
    /// A lease was lost while in use (taken over, or expired).
    #[error("the lease on host {host:?} was lost (taken over or expired)")]
    LeaseLost {
        /// The host.
        host: String,
    },
    /// An action ran and failed (or was skipped); the audit has the same reason.
    #[error("{action} on host {host:?} failed: {reason}")]
    ActionFailed {
        /// The host.
        host: String,
        /// The action (`load`, `unload`, `unload-all`).
        action: String,
        /// Why.
        reason: String,
    },
    /// A host answered with an error.
    #[error("host {host:?}: {route} answered {status}: {message}")]
    Host {
        /// The host.
        host: String,
        /// The route.
        route: String,
        /// The HTTP status.
        status: u16,
        /// The error message from the body (either of llama-swap's shapes).
        message: String,
    },
    /// A host could not be reached.
    #[error("host {host:?}: {route}: {message}")]
    Transport {
        /// The host.
        host: String,
        /// The route.
        route: String,
        /// What failed.
        message: String,
    },
    /// A host sent something that is not llama-swap's wire format.
    #[error("host {host:?}: {source}")]
    Wire {
        /// The host.
        host: String,
        /// The decoding error.
        #[source]
        source: WireError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] FleetStoreError),
    /// Configuration is invalid.
    #[error("{key}: {reason}")]
    Config {
        /// The dotted key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A bench could not run.
    #[error("bench on host {host:?}, model {model:?}: {reason}")]
    Bench {
        /// The host.
        host: String,
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// An actor could not start.
    #[error("cannot start the {what}: {reason}")]
    Spawn {
        /// Which actor.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The fleet has stopped.
    #[error("the fleet has stopped")]
    Stopped,
}

fn list(queued: &[QueuedView]) -> String {
    queued
        .iter()
        .map(|q| {
            let model = q.model.as_deref().map(|m| format!(" {m}")).unwrap_or_default();
            let running = if q.running { " (running)" } else { "" };
            format!("{} {}{model}{running}", q.id, q.action)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
