//! Ports: the traits through which the core reaches everything optional.
//!
//! Each port is a trait object with a nil-safe default beside it, so
//! [`Ports::default()`] — and therefore `Runtime::builder().build()` — works with no host
//! wiring at all. Batteries provide the real implementations; the core never depends on
//! them.

use std::sync::Arc;

pub mod audit;
pub mod budget;
pub mod checkpoint;
pub mod critic;
pub mod delivery;
pub mod persona;
pub mod queue;
pub mod schedule;
pub mod skill;

pub use audit::{AuditEvent, AuditRecord, AuditSink, NoAudit, ToolDecision};
pub use budget::{Budget, BudgetDenied, Reservation, SpendRequest, Unlimited};
pub use checkpoint::{
    CheckpointStore, Entry, MemoryCheckpointStore, RunAppend, RunClaim, RunMeta, StoredRun, StoredStatus,
};
pub use critic::{Critic, CriticReview, CriticTrigger, NoCritic, Verdict, VerdictKind};
pub use delivery::{ChannelDelivery, Delivery, DeliveryItem, DiscardDelivery, StdoutDelivery};
pub use persona::{NoPersonas, PersonaSource};
pub use queue::RunQueue;
pub use schedule::{NoSchedule, Schedule};
pub use skill::{NoSkills, SkillConflict, SkillDef, SkillSource, compose_skills};

/// An error from a port implementation (a store, a source, a sink).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The backend failed (I/O, database, network).
    #[error("{port}: backend failed: {message}")]
    Backend {
        /// Which port.
        port: &'static str,
        /// What happened.
        message: String,
    },
    /// Stored data could not be decoded.
    #[error("{port}: corrupt data: {message}")]
    Corrupt {
        /// Which port.
        port: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A stored payload has a format version this build does not know.
    #[error("{port}: unknown payload format version {version} (this build reads up to {supported})")]
    UnknownVersion {
        /// Which port.
        port: &'static str,
        /// The version found.
        version: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Input was rejected.
    #[error("{port}: invalid {what}: {reason}")]
    Invalid {
        /// Which port.
        port: &'static str,
        /// What was invalid.
        what: String,
        /// Why.
        reason: String,
    },
}

/// All ports of a runtime. `Ports::default()` is all nil-safe defaults.
#[derive(Clone)]
pub struct Ports {
    /// Where named agents (personas) come from.
    pub personas: Arc<dyn PersonaSource>,
    /// Where skills come from.
    pub skills: Arc<dyn SkillSource>,
    /// Where audit events go.
    pub audit: Arc<dyn AuditSink>,
    /// Who reviews runs at their soft deadline and at max steps.
    pub critic: Arc<dyn Critic>,
    /// Who approves spending.
    pub budget: Arc<dyn Budget>,
    /// What feeds scheduled runs in.
    pub schedule: Arc<dyn Schedule>,
    /// Where run checkpoints go.
    pub checkpoints: Arc<dyn CheckpointStore>,
    /// Where outputs of delivered runs go.
    pub delivery: Arc<dyn Delivery>,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            personas: Arc::new(NoPersonas),
            skills: Arc::new(NoSkills),
            audit: Arc::new(NoAudit),
            critic: Arc::new(NoCritic),
            budget: Arc::new(Unlimited),
            schedule: Arc::new(NoSchedule),
            checkpoints: Arc::new(MemoryCheckpointStore::default()),
            delivery: Arc::new(DiscardDelivery),
        }
    }
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports").finish_non_exhaustive()
    }
}
