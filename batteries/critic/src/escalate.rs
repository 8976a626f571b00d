//! [`Escalator`]: how the critic tells a person about a run. Default: [`LogEscalator`]
//! (a `tracing` warning).
//!
//! The critic calls the escalator when it aborts a run (unless `escalate_on_abort` is off)
//! and when the judge says `escalate`. Each call is bounded by `escalate_timeout`; a failed
//! or slow escalator is logged and never changes the verdict or delays it beyond the bound.

use std::time::Duration;

use async_trait::async_trait;
use executus::ports::{CriticTrigger, PortError};
use executus::{Identity, RunId};
use serde::{Deserialize, Serialize};

/// What a person is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// Who the run acts for.
    pub identity: Identity,
    /// Why the critic was asked.
    pub trigger: CriticTrigger,
    /// The verdict given to the core (`abort` or `escalate`).
    pub verdict: String,
    /// Why.
    pub reason: String,
    /// Steps completed.
    pub step: u32,
    /// Time since the run started.
    #[serde(with = "executus::duration_serde")]
    pub elapsed: Duration,
    /// Extensions granted so far.
    pub extensions: u32,
}

/// Notifies a person.
#[async_trait]
pub trait Escalator: Send + Sync {
    /// Delivers one escalation.
    ///
    /// # Errors
    /// A [`PortError`] when the destination fails (the critic logs it).
    async fn escalate(&self, escalation: Escalation) -> Result<(), PortError>;
}

/// The default escalator: a `tracing` warning with the run, agent, verdict and reason.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogEscalator;

#[async_trait]
impl Escalator for LogEscalator {
    async fn escalate(&self, e: Escalation) -> Result<(), PortError> {
        tracing::warn!(
            run_id = %e.run_id,
            agent = %e.agent,
            tenant = %e.identity.tenant,
            user = %e.identity.user,
            trigger = e.trigger.as_str(),
            verdict = %e.verdict,
            step = e.step,
            elapsed_s = e.elapsed.as_secs(),
            extensions = e.extensions,
            reason = %e.reason,
            "critic escalation: a person should look at this run"
        );
        Ok(())
    }
}
