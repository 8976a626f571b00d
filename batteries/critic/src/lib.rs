//! # executus-critic — the two-tier timeout critic
//!
//! Implements the core's [`Critic`](executus::ports::Critic) port. A run has two clocks:
//! `limits.soft_timeout` and the hard `limits.timeout`. When the soft deadline passes (or
//! the run reaches `max_steps`), the core asks the critic; [`LlmCritic`] judges the run's
//! recent steps with one structured one-shot model call ([`Judgement`]: continue, extend,
//! escalate or abort, with a reason) through the core's [`MetaLlm`](executus::meta::MetaLlm),
//! and answers:
//!
//! | judge says | critic answers | core does |
//! | --- | --- | --- |
//! | `continue` | `Continue` | nothing; the hard deadline still ends the run `TimedOut` |
//! | `extend`, extensions left | `Extend { time, steps }` | moves the hard deadline by `time` and reviews again after `time / 2`; at the step cap adds `steps` |
//! | `extend`, none left | `Continue` (default) or `Abort` (`when_exhausted`) | as for that verdict |
//! | `escalate` | `Escalate` + calls the [`Escalator`] | nothing; the run goes on |
//! | `abort` | `Abort` + calls the [`Escalator`] | ends the run `Stopped`, with its transcript |
//! | (judge failed or timed out) | the `on_judge_failure` verdict, under the same limits | as above |
//!
//! The decisions are a pure state machine ([`WatchState`], [`WatchEvent`]), unit-tested on
//! its own; [`LlmCritic`] drives it and keeps a bounded per-run record ([`RunWatch`]).
//!
//! ```no_run
//! use std::sync::Arc;
//! use executus::meta::MetaLlm;
//! use executus::ports::Ports;
//! use executus_critic::{CriticConfig, LlmCritic};
//! # fn demo(registry: executus::llm::Registry) -> Result<(), Box<dyn std::error::Error>> {
//! let critic = LlmCritic::new(MetaLlm::new(&registry, "fast")?, CriticConfig::default())?;
//! let ports = Ports { critic: Arc::new(critic), ..Ports::default() };
//! # let _ = ports; Ok(()) }
//! ```

mod config;
mod critic;
mod escalate;
mod judge;
pub mod machine;

pub use config::{CriticConfig, CriticConfigError, Exhausted, Extension};
pub use critic::{LlmCritic, RunWatch};
pub use escalate::{Escalation, Escalator, LogEscalator};
pub use judge::{JUDGE_SYSTEM, Judgement, JudgementVerdict, render_review};
pub use machine::{Decision, DecisionSource, Transition, TransitionError, WatchEvent, WatchState};
