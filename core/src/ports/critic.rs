//! [`Critic`]: reviews a run at its soft deadline and when it reaches max steps.
//! Default: never intervenes.

use std::time::Duration;

use async_trait::async_trait;
use executus_llm::Message;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::ids::RunId;

/// Why the critic is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CriticTrigger {
    /// The run passed its soft timeout.
    SoftDeadline,
    /// The run used all its steps.
    MaxSteps,
}

impl CriticTrigger {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SoftDeadline => "soft_deadline",
            Self::MaxSteps => "max_steps",
        }
    }
}

crate::vocabulary!(CriticTrigger);

/// What the critic sees.
#[derive(Debug, Clone)]
pub struct CriticReview {
    /// The run.
    pub run_id: RunId,
    /// Agent name.
    pub agent: String,
    /// Who the run acts for.
    pub identity: Identity,
    /// Why it is asked.
    pub trigger: CriticTrigger,
    /// Steps completed.
    pub step: u32,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Extensions granted so far in this run.
    pub extensions: u32,
    /// The most recent messages (at most the last 8).
    pub recent: Vec<Message>,
}

/// The critic's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Change nothing.
    Continue,
    /// Give the run more room: extra steps (at max steps) and/or extra time (at the
    /// deadline).
    Extend {
        /// Extra steps.
        steps: u32,
        /// Extra time before the hard deadline.
        #[serde(with = "crate::duration_serde")]
        time: Duration,
        /// Why.
        reason: String,
    },
    /// Tell a person; the run continues.
    Escalate {
        /// Why.
        reason: String,
    },
    /// End the run now, keeping its transcript.
    Abort {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// Snake-case name.
    pub fn name(&self) -> &'static str {
        self.kind().as_str()
    }

    /// Which verdict, without its details (as audited).
    pub fn kind(&self) -> VerdictKind {
        match self {
            Self::Continue => VerdictKind::Continue,
            Self::Extend { .. } => VerdictKind::Extend,
            Self::Escalate { .. } => VerdictKind::Escalate,
            Self::Abort { .. } => VerdictKind::Abort,
        }
    }
}

/// A [`Verdict`] without its details, as audit rows carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VerdictKind {
    /// Nothing to do.
    Continue,
    /// More room.
    Extend,
    /// A person was told.
    Escalate,
    /// The run was ended.
    Abort,
}

impl VerdictKind {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Extend => "extend",
            Self::Escalate => "escalate",
            Self::Abort => "abort",
        }
    }
}

crate::vocabulary!(VerdictKind);

/// Reviews runs.
#[async_trait]
pub trait Critic: Send + Sync {
    /// Judges the run.
    async fn review(&self, review: CriticReview) -> Verdict;
}

/// The default critic: always [`Verdict::Continue`].
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCritic;

#[async_trait]
impl Critic for NoCritic {
    async fn review(&self, _review: CriticReview) -> Verdict {
        Verdict::Continue
    }
}
