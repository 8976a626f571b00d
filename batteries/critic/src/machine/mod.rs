//! The two-tier timeout state machine, as a pure type: [`WatchState`] + [`WatchEvent`] ->
//! [`Transition`].
//!
//! The two tiers are the run's `limits.soft_timeout` and `limits.timeout` (the hard
//! deadline). The core enforces both clocks; this machine decides what happens when the
//! core asks at the soft deadline (or at the step cap):
//!
//! ```text
//! Watching(n) | Extended(n) | Escalated(n) --Review--------------------------> Reviewing(n)
//! Reviewing(n) --Judged(continue)-------------------------------------------> Watching(n)
//! Reviewing(n) --Judged(extend), n < max_extensions, extension useful-------> Extended(n+1)
//! Reviewing(n) --Judged(extend), exhausted, when_exhausted = continue-------> Watching(n)
//! Reviewing(n) --Judged(extend), exhausted, when_exhausted = abort----------> Aborted
//! Reviewing(n) --Judged(escalate)-------------------------------------------> Escalated(n)
//! Reviewing(n) --Judged(abort)----------------------------------------------> Aborted
//! Reviewing(n) --JudgeFailed------------> as Judged(on_judge_failure)
//! Aborted      --any event--------------> TransitionError::Terminal
//! ```
//!
//! - `Extended`, `Escalated` and `Watching` all mean "the run goes on"; another `Review`
//!   may follow (the core asks again after half of each time extension).
//! - A failed judge (`JudgeFailed`) is decided like a judgement carrying the configured
//!   fallback verdict, with the same limits, so a broken judge cannot extend forever.
//! - An extension that would add nothing for its trigger (no time at the soft deadline, no
//!   steps at the step cap) counts as exhausted.
//! - The hard deadline is not an event here: the core ends the run `TimedOut` with its
//!   transcript on its own; the critic can only move it (extend) or pre-empt it (abort).
//!
//! The machine never panics: an event that makes no sense in a state is a
//! [`TransitionError`].

use executus::ports::{CriticTrigger, Verdict};
use serde::{Deserialize, Serialize};

use crate::config::{CriticConfig, Exhausted};
use crate::judge::{Judgement, JudgementVerdict};

#[cfg(test)]
mod tests;

/// Where a run stands with its critic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum WatchState {
    /// No review in progress; the run goes on with `extensions` granted so far.
    Watching {
        /// Extensions granted so far.
        extensions: u32,
    },
    /// A review is in progress.
    Reviewing {
        /// Why the core asked.
        trigger: CriticTrigger,
        /// Extensions granted before this review.
        extensions: u32,
    },
    /// The last review granted an extension; `count` extensions so far.
    Extended {
        /// Extensions granted so far, this one included.
        count: u32,
    },
    /// The last review told a person; the run goes on.
    Escalated {
        /// Extensions granted so far.
        extensions: u32,
    },
    /// The critic ended the run. Terminal.
    Aborted,
}

impl WatchState {
    /// The state of a run nobody has reviewed yet.
    pub fn start() -> Self {
        Self::Watching { extensions: 0 }
    }

    /// Snake-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Watching { .. } => "watching",
            Self::Reviewing { .. } => "reviewing",
            Self::Extended { .. } => "extended",
            Self::Escalated { .. } => "escalated",
            Self::Aborted => "aborted",
        }
    }

    /// Extensions granted so far (none are known for `Aborted`: 0).
    pub fn extensions(&self) -> u32 {
        match self {
            Self::Watching { extensions }
            | Self::Reviewing { extensions, .. }
            | Self::Escalated { extensions } => *extensions,
            Self::Extended { count } => *count,
            Self::Aborted => 0,
        }
    }

    /// True for [`WatchState::Aborted`].
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Aborted)
    }

    /// Applies `event` under `config`.
    ///
    /// # Errors
    /// [`TransitionError`] when the event makes no sense in this state: a review of an
    /// aborted run, a second review while one is in progress, a judgement with no review
    /// in progress.
    pub fn on(&self, event: WatchEvent, config: &CriticConfig) -> Result<Transition, TransitionError> {
        match (self, event) {
            (Self::Aborted, event) => Err(TransitionError::Terminal { event: event.name() }),
            (Self::Reviewing { .. }, WatchEvent::Review { .. }) => Err(TransitionError::AlreadyReviewing),
            (_, WatchEvent::Review { trigger, extensions }) => {
                // The core's count is authoritative (it is what was actually applied); a
                // larger count recorded here would mean the core lost an extension, and
                // granting from the larger count stays on the safe side.
                let extensions = extensions.max(self.extensions());
                Ok(Transition { state: Self::Reviewing { trigger, extensions }, decision: None })
            }
            (Self::Reviewing { trigger, extensions }, WatchEvent::Judged(judgement)) => {
                Ok(decide(*trigger, *extensions, judgement, DecisionSource::Judge, config))
            }
            (Self::Reviewing { trigger, extensions }, WatchEvent::JudgeFailed { error }) => {
                let judgement = Judgement::new(config.on_judge_failure, format!("judge failed: {error}"));
                Ok(decide(*trigger, *extensions, judgement, DecisionSource::Fallback, config))
            }
            (state, event) => Err(TransitionError::NotReviewing { state: state.name(), event: event.name() }),
        }
    }
}

/// What happens to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// The core asks for a review (soft deadline passed, or step cap reached).
    Review {
        /// Why.
        trigger: CriticTrigger,
        /// Extensions the core has applied so far.
        extensions: u32,
    },
    /// The judge answered.
    Judged(Judgement),
    /// The judge failed, timed out or answered something undecodable.
    JudgeFailed {
        /// What went wrong.
        error: String,
    },
}

impl WatchEvent {
    /// Snake-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Review { .. } => "review",
            Self::Judged(_) => "judged",
            Self::JudgeFailed { .. } => "judge_failed",
        }
    }
}

/// Where a decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionSource {
    /// The judge's verdict, applied as given.
    Judge,
    /// The configured fallback, because the judge failed.
    Fallback,
    /// The judge (or the fallback) wanted an extension that could not be granted; the
    /// `when_exhausted` policy decided.
    Exhausted,
}

/// What the critic answers the core, and whether a person is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict for the core.
    pub verdict: Verdict,
    /// `Some(reason)` when the host's escalator must be called.
    pub escalate: Option<String>,
    /// Where the decision came from.
    pub source: DecisionSource,
}

/// The result of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The new state.
    pub state: WatchState,
    /// The decision, for events that end a review.
    pub decision: Option<Decision>,
}

/// An event that makes no sense in the current state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransitionError {
    /// The run was aborted; nothing follows.
    #[error("the run was aborted by its critic; event {event} is ignored")]
    Terminal {
        /// The event.
        event: &'static str,
    },
    /// A review is already in progress for this run.
    #[error("a review is already in progress for this run")]
    AlreadyReviewing,
    /// A judgement arrived with no review in progress.
    #[error("event {event} needs a review in progress, but the run is {state}")]
    NotReviewing {
        /// The current state.
        state: &'static str,
        /// The event.
        event: &'static str,
    },
}

/// Decides the outcome of a review. Pure.
fn decide(
    trigger: CriticTrigger,
    extensions: u32,
    judgement: Judgement,
    source: DecisionSource,
    config: &CriticConfig,
) -> Transition {
    let Judgement { verdict, reason } = judgement;
    let abort = |reason: String, source| Transition {
        state: WatchState::Aborted,
        decision: Some(Decision {
            escalate: config.escalate_on_abort.then(|| reason.clone()),
            verdict: Verdict::Abort { reason },
            source,
        }),
    };
    let go_on = |verdict, escalate, source, state| Transition {
        state,
        decision: Some(Decision { verdict, escalate, source }),
    };
    match verdict {
        JudgementVerdict::Continue => {
            go_on(Verdict::Continue, None, source, WatchState::Watching { extensions })
        }
        JudgementVerdict::Escalate => go_on(
            Verdict::Escalate { reason: reason.clone() },
            Some(reason),
            source,
            WatchState::Escalated { extensions },
        ),
        JudgementVerdict::Abort => abort(reason, source),
        JudgementVerdict::Extend => {
            let useful = match trigger {
                CriticTrigger::SoftDeadline => !config.extend_by.time.is_zero(),
                CriticTrigger::MaxSteps => config.extend_by.steps > 0,
            };
            if useful && extensions < config.max_extensions {
                let verdict =
                    Verdict::Extend { steps: config.extend_by.steps, time: config.extend_by.time, reason };
                return go_on(verdict, None, source, WatchState::Extended { count: extensions + 1 });
            }
            let why = if useful {
                format!("extension limit reached ({extensions} of {})", config.max_extensions)
            } else {
                format!("an extension adds nothing at {}", trigger.as_str())
            };
            match config.when_exhausted {
                Exhausted::Continue => {
                    tracing::info!(%reason, "{why}; the run goes on unchanged");
                    go_on(
                        Verdict::Continue,
                        None,
                        DecisionSource::Exhausted,
                        WatchState::Watching { extensions },
                    )
                }
                Exhausted::Abort => {
                    abort(format!("{why}; the judge said: {reason}"), DecisionSource::Exhausted)
                }
            }
        }
    }
}
