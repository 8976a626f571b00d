//! The per-session guard: the core's loop protection ([`executus::loops::LoopGuard`]) run over
//! a session's requests, plus the session-wide finalize hard cap. Pure and serialisable like
//! the run machine: facts in (the transcript a request carries), a [`Plan`] out; the store
//! keeps the state so a restart does not reset it.
//!
//! How a session maps onto the core's steps: a client sends the whole conversation with every
//! request. A *step* is an assistant turn that called tools together with the results the
//! client sent back for it; each step is observed once (steps are remembered by a fingerprint
//! of their call ids). A *task* begins at a user message that does not ride along with tool
//! results (text a client attaches to results, such as Claude Code's reminders, is not a new
//! task); a new task starts a fresh [`LoopGuard`], but never resets the hard-cap count.
//!
//! What a request gets ([`SessionState::prepare`]):
//! - [`Plan::Pass`]: nothing fired;
//! - [`Plan::Finalize`]: a trigger asked for a finalize turn and the session is under its hard
//!   cap: the request goes upstream without tools and with the core's wrap-up instruction,
//!   and the turn must end (tool calls in the answer are dropped, see
//!   [`SessionState::finalize_ignored`]); counts towards the hard cap;
//! - [`Plan::Stop`]: the task used up its finalize turns ([`executus::LoopLimits::finalize_turns`]), or
//!   a trigger fired with the hard cap reached: the gateway answers itself with a tool-free end
//!   of turn, and the client stops cleanly.
//!
//! Completion gates (policy) may continue a turn the model ended
//! ([`SessionState::may_continue`], [`SessionState::count_continuation`]); continuations count
//! towards the same hard cap, and once it is reached the model's natural end of turn passes
//! through untouched — the session cannot ping-pong between the gateway and the model.
//!
//! Blocked tool calls never reach the client, so they never come back as results: a turn
//! whose every call was blocked is observed as an unproductive step when it is answered
//! ([`SessionState::observe_blocked`]).

use std::collections::VecDeque;

use executus::loops::{LoopAction, LoopGuard, LoopTrigger, ObservedCall, fingerprint};
use executus_llm::{Message, Part, Role, ToolCall, ToolResult};
use serde::{Deserialize, Serialize};

use crate::config::LoopSettings;

/// Steps remembered per session (older ones cannot come back in a transcript that matters).
const REMEMBERED_STEPS: usize = 512;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Forward it as it is.
    Pass,
    /// Forward it without tools, with the wrap-up instruction.
    Finalize {
        /// Why (the trigger's detail).
        reason: String,
    },
    /// Answer it here with a tool-free end of turn.
    Stop {
        /// Why.
        reason: String,
    },
}

/// What [`SessionState::prepare`] decided and saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The plan for this request.
    pub plan: Plan,
    /// Triggers fired by the steps observed now (for audit, metrics, logs).
    pub triggers: Vec<LoopTrigger>,
    /// True when the state changed and should be saved.
    pub changed: bool,
}

/// The guard state of one session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    /// The core's detectors, for the current task.
    pub guard: LoopGuard,
    /// Fingerprint of the current task's opening user message.
    #[serde(default)]
    pub task: Option<u64>,
    /// Fingerprints of the steps observed so far (most recent last).
    #[serde(default)]
    pub observed: VecDeque<u64>,
    /// Finalize turns and continuations given to this session; never reset.
    #[serde(default)]
    pub finalize_total: u32,
}

impl SessionState {
    /// A fresh session.
    pub fn new() -> Self {
        Self::default()
    }

    /// Observes the steps of `messages` not seen before and plans the request.
    pub fn prepare(&mut self, messages: &[Message], settings: &LoopSettings) -> Prepared {
        let mut changed = false;
        let start = task_start(messages);
        let task = start.map(|i| fingerprint("task", &format!("{i}\u{1f}{}", messages[i].text())));
        if task != self.task {
            // A new task: fresh detectors, the hard-cap count stays.
            self.task = task;
            self.guard = LoopGuard::new();
            changed = true;
        }
        let mut triggers = Vec::new();
        for (calls, results) in steps(messages, start.map_or(0, |i| i + 1)) {
            let key =
                fingerprint("step", &calls.iter().map(|c| c.id.as_str()).collect::<Vec<_>>().join("\u{1f}"));
            if self.observed.contains(&key) {
                continue;
            }
            self.remember(key);
            changed = true;
            let observed = calls.iter().zip(&results).map(|(&call, &result)| ObservedCall {
                call,
                result,
                failed: result.is_error,
            });
            if let Some(trigger) = self.guard.observe(observed, &settings.limits) {
                triggers.push(trigger);
            }
        }
        let plan = self.plan(&triggers, settings);
        changed |= plan != Plan::Pass;
        Prepared { plan, triggers, changed }
    }

    fn plan(&mut self, triggers: &[LoopTrigger], settings: &LoopSettings) -> Plan {
        let pending = self.guard.take_finalize();
        if let Some(stop) = triggers.iter().rev().find(|t| t.action == LoopAction::Stop) {
            return Plan::Stop { reason: format!("loop protection ({}): {}", stop.kind, stop.detail) };
        }
        let Some(reason) = pending else {
            return Plan::Pass;
        };
        if self.finalize_total >= settings.finalize_hard_cap {
            return Plan::Stop {
                reason: format!(
                    "loop protection: {reason}; this session reached its finalize hard cap ({})",
                    settings.finalize_hard_cap
                ),
            };
        }
        self.finalize_total += 1;
        Plan::Finalize { reason }
    }

    fn remember(&mut self, key: u64) {
        if self.observed.len() >= REMEMBERED_STEPS {
            self.observed.pop_front();
        }
        self.observed.push_back(key);
    }

    /// The model answered a finalize turn with tool calls (they are dropped): a trigger of
    /// its own, so a task that keeps ignoring finalize turns is stopped.
    pub fn finalize_ignored(&mut self, settings: &LoopSettings) -> LoopTrigger {
        let trigger = self.guard.finalize_ignored(&settings.limits);
        // The finalize turn it would ask for is this very answer's successor; the next
        // request of the task is planned from the guard's counters alone.
        self.guard.take_finalize();
        trigger
    }

    /// A turn whose every call was blocked by policy: observed now as an unproductive step
    /// (its calls never come back as results).
    pub fn observe_blocked(
        &mut self,
        blocked: &[(ToolCall, String)],
        settings: &LoopSettings,
    ) -> Option<LoopTrigger> {
        if blocked.is_empty() {
            return None;
        }
        let key = fingerprint(
            "step",
            &blocked.iter().map(|(c, _)| c.id.as_str()).collect::<Vec<_>>().join("\u{1f}"),
        );
        if self.observed.contains(&key) {
            return None;
        }
        self.remember(key);
        let results: Vec<ToolResult> = blocked
            .iter()
            .map(|(call, reason)| ToolResult {
                id: call.id.clone(),
                name: call.name.clone(),
                content: reason.clone(),
                is_error: true,
            })
            .collect();
        let observed = blocked.iter().zip(&results).map(|((call, _), result)| ObservedCall {
            call,
            result,
            failed: true,
        });
        self.guard.observe(observed, &settings.limits)
    }

    /// Whether the gateway may still continue a turn the model ended (under the hard cap).
    pub fn may_continue(&self, settings: &LoopSettings) -> bool {
        self.finalize_total < settings.finalize_hard_cap
    }

    /// Counts a continuation towards the hard cap.
    pub fn count_continuation(&mut self) {
        self.finalize_total += 1;
    }
}

/// Index of the user message that opened the current task: the last user message not riding
/// along with tool results.
fn task_start(messages: &[Message]) -> Option<usize> {
    (0..messages.len())
        .rev()
        .find(|&i| messages[i].role == Role::User && (i == 0 || messages[i - 1].role != Role::Tool))
}

/// The completed steps from `from` on: each assistant turn with tool calls, with the result of
/// every call (a turn some of whose calls have no result yet is not complete).
/// Borrowed from the transcript: every request carries the whole conversation (tool results
/// included), and only steps not observed before are looked at further.
fn steps(messages: &[Message], from: usize) -> Vec<(Vec<&ToolCall>, Vec<&ToolResult>)> {
    let mut out = Vec::new();
    for (i, message) in messages.iter().enumerate().skip(from) {
        if message.role != Role::Assistant {
            continue;
        }
        let calls: Vec<&ToolCall> = message.tool_calls().collect();
        if calls.is_empty() {
            continue;
        }
        let mut results: Vec<Option<&ToolResult>> = vec![None; calls.len()];
        for later in messages[i + 1..].iter().take_while(|m| m.role != Role::Assistant) {
            for part in &later.parts {
                if let Part::ToolResult(r) = part
                    && let Some(slot) = calls.iter().position(|c| c.id == r.id)
                {
                    results[slot] = Some(r);
                }
            }
        }
        if let Some(results) = results.into_iter().collect::<Option<Vec<_>>>() {
            out.push((calls, results));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
