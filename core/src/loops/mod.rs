//! Loop protection: the detectors that stop a runaway agent, as a small pure state machine.
//!
//! A [`LoopGuard`] is fed one completed step at a time — the tool calls the model asked for
//! and their results — and answers with a [`LoopTrigger`] when the agent is looping:
//!
//! - **cycle**: the same call (tool name + canonical arguments, key order ignored) reached
//!   [`LoopLimits::cycle`] times;
//! - **stagnation**: [`LoopLimits::stagnation`] consecutive steps whose results added nothing
//!   that had not been seen before;
//! - **unproductive**: [`LoopLimits::unproductive`] consecutive steps whose every call failed
//!   or was blocked.
//!
//! Each trigger first asks for a *finalize turn* (tools withheld, the model told to answer
//! with what it has: [`finalize_instruction`]); past [`LoopLimits::finalize_turns`] triggers
//! the answer is to stop. A model that calls tools during a finalize turn triggers again
//! ([`LoopGuard::finalize_ignored`]).
//!
//! ## Guarantees
//! - Deterministic and serialisable: the same steps give the same triggers, and a guard
//!   restored from its serialised form continues exactly where it was (the run machine
//!   rebuilds it by replaying facts; the gateway stores it per session).
//! - Fingerprints are stable across builds (FNV-1a over the canonical JSON), so a replay after
//!   an upgrade reaches the same state.
//!
//! ## What it does not do
//! - No I/O, no clock, no policy: the caller applies a trigger (withholds tools, ends the run,
//!   records the audit row). The run machine (`run/machine`) and the gateway's session guard
//!   are its two callers.
//! - It does not count tool *errors* towards the run's tool-error limit; that limit ends a run
//!   and belongs to the run machine.

use std::collections::{BTreeMap, BTreeSet};

use executus_llm::{ToolCall, ToolResult};
use serde::{Deserialize, Serialize};

pub use crate::agent::LoopLimits;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// What fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoopKind {
    /// The same call repeated.
    Cycle,
    /// Steps that add nothing new.
    Stagnation,
    /// Steps whose calls all fail or are blocked.
    Unproductive,
    /// The model called tools during a finalize turn.
    FinalizeIgnored,
}

impl LoopKind {
    /// The snake-case name (as stored in audit rows).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cycle => "cycle",
            Self::Stagnation => "stagnation",
            Self::Unproductive => "unproductive",
            Self::FinalizeIgnored => "finalize_ignored",
        }
    }
}

crate::vocabulary!(LoopKind);

/// What the caller should do about a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LoopAction {
    /// Withhold tools for one turn and ask for a final answer.
    Finalize,
    /// Stop: the finalize turns are used up.
    Stop,
}

impl LoopAction {
    /// The snake-case name (as stored in audit rows).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finalize => "finalize",
            Self::Stop => "stop",
        }
    }
}

crate::vocabulary!(LoopAction);

/// A loop-protection trigger, for the caller to act on, audit and announce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopTrigger {
    /// What fired.
    pub kind: LoopKind,
    /// Human-readable detail (e.g. the repeated call).
    pub detail: String,
    /// Finalize or stop.
    pub action: LoopAction,
}

/// One call of a completed step, as the guard sees it.
#[derive(Debug, Clone, Copy)]
pub struct ObservedCall<'a> {
    /// The call as the model asked for it.
    pub call: &'a ToolCall,
    /// Its result.
    pub result: &'a ToolResult,
    /// True when the call failed or was blocked by policy.
    pub failed: bool,
}

/// The detectors' state. `Default` is a fresh guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopGuard {
    /// Times each (tool, canonical args) fingerprint was called.
    call_counts: BTreeMap<u64, u32>,
    /// Fingerprints of every tool result seen.
    seen_results: BTreeSet<u64>,
    /// Consecutive steps whose results added nothing new.
    stagnant_steps: u32,
    /// Consecutive steps ending in failed or blocked calls only.
    unproductive_steps: u32,
    /// Triggers fired so far (finalize turns asked for, plus a final stop).
    finalize_turns: u32,
    /// Set while the next model call is a finalize turn: why.
    finalize_pending: Option<String>,
}

impl LoopGuard {
    /// A fresh guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observes one completed step (every call with its result) and says whether the agent
    /// is looping. A step with no calls is not a step for the guard.
    pub fn observe<'a>(
        &mut self,
        calls: impl IntoIterator<Item = ObservedCall<'a>>,
        limits: &LoopLimits,
    ) -> Option<LoopTrigger> {
        let mut any = false;
        let mut all_failed = true;
        let mut new_info = false;
        let mut cycle: Option<String> = None;
        for observed in calls {
            any = true;
            all_failed &= observed.failed;
            let args = canonical(&observed.call.args);
            let count = self.call_counts.entry(fingerprint(&observed.call.name, &args)).or_insert(0);
            *count += 1;
            if *count >= limits.cycle && cycle.is_none() {
                cycle = Some(format!(
                    "tool call {}({}) repeated {} times",
                    observed.call.name,
                    truncate(&args, 120),
                    count
                ));
            }
            if self.seen_results.insert(fingerprint(&observed.result.name, &observed.result.content)) {
                new_info = true;
            }
        }
        if !any {
            return None;
        }
        self.stagnant_steps = if new_info { 0 } else { self.stagnant_steps + 1 };
        self.unproductive_steps = if all_failed { self.unproductive_steps + 1 } else { 0 };
        if let Some(detail) = cycle {
            Some(self.trigger(LoopKind::Cycle, detail, limits))
        } else if self.stagnant_steps >= limits.stagnation {
            let detail = format!("{} consecutive steps added no new tool results", self.stagnant_steps);
            Some(self.trigger(LoopKind::Stagnation, detail, limits))
        } else if self.unproductive_steps >= limits.unproductive {
            let detail = format!("{} consecutive steps ended in tool errors", self.unproductive_steps);
            Some(self.trigger(LoopKind::Unproductive, detail, limits))
        } else {
            None
        }
    }

    /// The model called tools during a finalize turn: that is a trigger of its own.
    pub fn finalize_ignored(&mut self, limits: &LoopLimits) -> LoopTrigger {
        self.trigger(
            LoopKind::FinalizeIgnored,
            "the model called tools during a finalize turn".into(),
            limits,
        )
    }

    fn trigger(&mut self, kind: LoopKind, detail: String, limits: &LoopLimits) -> LoopTrigger {
        self.finalize_turns += 1;
        let action =
            if self.finalize_turns > limits.finalize_turns { LoopAction::Stop } else { LoopAction::Finalize };
        if action == LoopAction::Finalize {
            self.finalize_pending = Some(detail.clone());
            // Counters restart so the finalize turn is judged on its own.
            self.stagnant_steps = 0;
            self.unproductive_steps = 0;
        }
        LoopTrigger { kind, detail, action }
    }

    /// Why the next model call is a finalize turn, while it is one.
    pub fn finalize_pending(&self) -> Option<&str> {
        self.finalize_pending.as_deref()
    }

    /// Consumes the pending finalize turn (the model has answered it).
    pub fn take_finalize(&mut self) -> Option<String> {
        self.finalize_pending.take()
    }

    /// Triggers fired so far.
    pub fn triggers(&self) -> u32 {
        self.finalize_turns
    }
}

/// The user message that asks for a final answer in a finalize turn.
pub fn finalize_instruction(reason: &str) -> String {
    format!(
        "[executus] Loop protection: {reason}. Tools are no longer available. Answer now with what you \
         have."
    )
}

/// The tool result that answers a call made during a finalize turn.
pub const WITHHELD: &str = "Tools are withheld by loop protection; answer with what you have.";

/// JSON with object keys sorted, for fingerprints (see [`executus_llm::types::canonical_json`]).
pub fn canonical(v: &serde_json::Value) -> String {
    executus_llm::types::canonical_json(v)
}

/// A stable 64-bit FNV-1a fingerprint of a name and a payload (stable across builds, so
/// replaying a log after an upgrade reaches the same state).
pub fn fingerprint(name: &str, payload: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0u8]).chain(payload.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}
