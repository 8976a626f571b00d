//! The run state machine: pure, serialisable, deterministic, and free of I/O.
//!
//! A run is a [`RunState`] plus the ordered [`Fact`]s applied to it. The driver (the run
//! actor) asks [`RunState::next_action`] what to do, performs the I/O (model call, tool
//! calls), and feeds the result back as a fact through [`RunState::apply`]. The facts are
//! also what the checkpoint log stores, so replaying a run's log over its start state
//! rebuilds the exact state — that is what makes resume exact.
//!
//! What lives here: step accounting, steering, tool-error streaks, loop protection
//! (cycle / stagnation / unproductive streak -> finalize turn -> stop), typed-output
//! validation with one corrective retry. What does not: timeouts, cancellation, budget,
//! the model and the tools — the driver owns those and ends the run with [`RunState::end`].

use executus_llm::{FinishReason, Message, Part, Request, Role, ToolCall, ToolResult, ToolSpec, Usage};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::RunnableAgent;
use crate::identity::Identity;
use crate::ids::RunId;
use crate::loops::{self, LoopAction, LoopGuard, LoopTrigger, ObservedCall};

use super::outcome::RunEnd;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

/// Where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The next thing is a model call.
    Model,
    /// Tool calls of the current step are outstanding.
    Tools,
    /// The run has ended.
    Ended,
}

/// Approval state of one tool call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Approval {
    /// No approval involved (or already granted and executed).
    NotNeeded,
    /// Waiting for a human.
    Pending,
    /// A human approved; execute the call.
    Approved,
}

/// Where one tool call of the current step stands, and its result once known. The call
/// itself is the answer's (the transcript's message at [`RunState::calls_at`]; slot `i` is
/// its `i`-th call, see [`RunState::step_calls`]): it is not copied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSlot {
    /// Its result, once finished.
    pub result: Option<ToolResult>,
    /// Approval state.
    pub approval: Approval,
    /// Arguments as rewritten by a policy rule, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewritten: Option<Value>,
    /// True when policy blocked the call (counts as unproductive).
    #[serde(default)]
    pub blocked: bool,
    /// Images the tool returned beside its result (`Part::Image`s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<Part>,
}

/// A fact applied to a run — the unit of the checkpoint log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// The run started: everything needed to rebuild it.
    Started {
        /// Run id.
        run_id: RunId,
        /// The resolved agent (skills merged).
        agent: Box<RunnableAgent>,
        /// Who it runs for.
        identity: Identity,
        /// Dispatching run, for child runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<RunId>,
        /// The input messages.
        input: Vec<Message>,
        /// Creation time, Unix ms.
        created_ms: u64,
    },
    /// The model answered.
    Model {
        /// The assistant message.
        message: Message,
        /// Usage of the call (zero counters are not written: this fact is in every step's
        /// checkpoint).
        #[serde(default, with = "compact_usage")]
        usage: Usage,
        /// Finish reason.
        finish: FinishReason,
        /// The provider that answered.
        provider: String,
        /// The model that answered.
        model: String,
        /// How many pending steering messages the request carried: they join the
        /// transcript just before this answer (steering that arrived during the call stays
        /// pending for the next step).
        #[serde(default, skip_serializing_if = "is_zero")]
        steered: u32,
    },
    /// A tool call of the current step finished (or was refused).
    ToolResult {
        /// The result.
        result: ToolResult,
        /// True when the call was blocked by policy (counts as unproductive).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        blocked: bool,
    },
    /// Images a tool returned, applied just before its `ToolResult`: they follow the step's
    /// tool results as a user message.
    ToolImages {
        /// Call id.
        call_id: String,
        /// The images (`Part::Image`s).
        images: Vec<Part>,
    },
    /// A policy rule rewrote a call's arguments before execution.
    Rewritten {
        /// Call id.
        call_id: String,
        /// The new arguments.
        args: Value,
    },
    /// A call needs a human's approval.
    ApprovalRequested {
        /// Call id.
        call_id: String,
    },
    /// A human approved a call (a denial arrives as a `ToolResult`).
    Approved {
        /// Call id.
        call_id: String,
    },
    /// A user message injected mid-run; the next model call sees it.
    Steered {
        /// The text.
        text: String,
    },
    /// The step cap was raised (by the critic).
    Extended {
        /// Extra steps.
        steps: u32,
    },
}

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Call the model. `tools` false means tools are withheld (a finalize turn).
    CallModel {
        /// Whether to offer tools.
        tools: bool,
    },
    /// Execute these calls (not yet finished, not waiting for approval).
    CallTools(Vec<ToolCall>),
    /// Nothing to execute: the remaining calls wait for a human.
    AwaitApproval(Vec<ToolCall>),
    /// The step cap is reached: ask the critic, then apply `Fact::Extended` or end.
    StepCapReached,
    /// The run has ended.
    Done,
}

/// The whole state of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Run id.
    pub run_id: RunId,
    /// The resolved agent.
    pub agent: RunnableAgent,
    /// Who it runs for.
    pub identity: Identity,
    /// Dispatching run.
    pub parent: Option<RunId>,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// The canonical transcript (the system prompt is `agent.system`).
    pub messages: Vec<Message>,
    /// Model calls answered so far.
    pub step: u32,
    /// Current step cap.
    pub max_steps: u32,
    /// Tokens spent.
    pub usage: Usage,
    /// Where the run stands.
    pub phase: Phase,
    /// Tool calls of the current step (slot `i` is call `i` of the message at `calls_at`).
    pub calls: Vec<CallSlot>,
    /// The transcript index of the answer whose tool calls `calls` tracks.
    #[serde(default)]
    pub calls_at: usize,
    /// Steering messages not yet placed in the transcript.
    pub steering: Vec<String>,
    /// Consecutive failing tool calls.
    pub tool_error_streak: u32,
    /// Loop protection.
    pub guard: LoopGuard,
    /// Whether the corrective retry for a typed output was used.
    pub typed_retry_used: bool,
    /// The typed output, once validated.
    pub typed: Option<Value>,
    /// How the run ended, once it has.
    pub end: Option<RunEnd>,
    /// Facts applied so far (the next fact's sequence number).
    pub seq: u64,
    /// Loop triggers fired by the last `apply` (not persisted meaningfully; for the driver).
    #[serde(skip)]
    pub last_triggers: Vec<LoopTrigger>,
}

/// Why a log could not be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The log is empty or does not begin with `Started`.
    #[error("run log does not begin with a Started fact")]
    NoStart,
    /// A fact does not fit the state (e.g. a result for an unknown call).
    #[error("fact {seq} does not fit the run state: {reason}")]
    Misfit {
        /// Its position.
        seq: u64,
        /// Why.
        reason: String,
    },
}

impl RunState {
    /// A fresh run from its `Started` fact.
    ///
    /// # Errors
    /// [`ReplayError::NoStart`] if `fact` is not `Started`.
    pub fn start(fact: &Fact) -> Result<Self, ReplayError> {
        let Fact::Started { .. } = fact else { return Err(ReplayError::NoStart) };
        Self::start_owned(fact.clone())
    }

    /// [`RunState::start`] taking the fact by value: the agent, identity and input move into
    /// the state instead of being copied.
    ///
    /// # Errors
    /// [`ReplayError::NoStart`] if the fact is not `Started`.
    pub fn start_owned(fact: Fact) -> Result<Self, ReplayError> {
        let Fact::Started { run_id, agent, identity, parent, input, created_ms } = fact else {
            return Err(ReplayError::NoStart);
        };
        Ok(Self {
            run_id,
            max_steps: agent.limits.max_steps,
            agent: *agent,
            identity,
            parent,
            created_ms,
            messages: input,
            step: 0,
            usage: Usage::default(),
            phase: Phase::Model,
            calls: Vec::new(),
            calls_at: 0,
            steering: Vec::new(),
            tool_error_streak: 0,
            guard: LoopGuard::default(),
            typed_retry_used: false,
            typed: None,
            end: None,
            seq: 1,
            last_triggers: Vec::new(),
        })
    }

    /// Rebuilds a run by replaying its log.
    ///
    /// # Errors
    /// A [`ReplayError`] if the log is empty, does not start with `Started`, or holds a fact
    /// that does not fit.
    pub fn replay<'a>(facts: impl IntoIterator<Item = &'a Fact>) -> Result<Self, ReplayError> {
        let mut facts = facts.into_iter();
        let mut state = Self::start(facts.next().ok_or(ReplayError::NoStart)?)?;
        for fact in facts {
            state.apply(fact)?;
        }
        Ok(state)
    }

    /// [`RunState::replay`] of facts taken by value (nothing copied).
    ///
    /// # Errors
    /// As [`RunState::replay`].
    pub fn replay_owned(facts: impl IntoIterator<Item = Fact>) -> Result<Self, ReplayError> {
        let mut facts = facts.into_iter();
        let mut state = Self::start_owned(facts.next().ok_or(ReplayError::NoStart)?)?;
        for fact in facts {
            state.apply_owned(fact)?;
        }
        Ok(state)
    }

    /// True once the run has ended.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// Ends the run (driver-decided ends: timeout, cancel, budget, model failure...).
    /// A run that has already ended keeps its first end.
    pub fn end(&mut self, end: RunEnd) {
        if self.end.is_none() {
            self.end = Some(end);
        }
        self.phase = Phase::Ended;
    }

    /// What to do next. Pure: pending steering goes into the request (see
    /// [`RunState::request`]) and joins the transcript with the answer (`Fact::Model`'s
    /// `steered`), so a replayed log places it exactly where the live run did.
    pub fn next_action(&self) -> Action {
        match self.phase {
            Phase::Ended => Action::Done,
            Phase::Tools => {
                let runnable: Vec<ToolCall> = self
                    .slots()
                    .filter(|(s, _)| s.result.is_none() && s.approval != Approval::Pending)
                    .map(|(s, call)| match &s.rewritten {
                        Some(args) => ToolCall {
                            id: call.id.clone(),
                            name: call.name.clone(),
                            args: args.clone(),
                            signature: call.signature.clone(),
                        },
                        None => call.clone(),
                    })
                    .collect();
                if runnable.is_empty() {
                    Action::AwaitApproval(
                        self.slots().filter(|(s, _)| s.result.is_none()).map(|(_, c)| c.clone()).collect(),
                    )
                } else {
                    Action::CallTools(runnable)
                }
            }
            Phase::Model => {
                if self.step >= self.max_steps {
                    return Action::StepCapReached;
                }
                Action::CallModel { tools: self.guard.finalize_pending().is_none() }
            }
        }
    }

    /// The request for the next model call, with `tools` offered (empty when withheld):
    /// the transcript, then pending steering as user messages (report `steering.len()` as
    /// the answer's `steered`).
    pub fn request(&self, tools: Vec<ToolSpec>) -> Request {
        let mut request = self.request_header();
        request.messages = self.messages.clone();
        request.tools = tools;
        self.finish_request(&mut request);
        request
    }

    /// What every request of this run carries besides messages and tools: the system
    /// prompt, sampling settings, the output schema.
    pub fn request_header(&self) -> Request {
        Request {
            system: (!self.agent.system.is_empty()).then(|| self.agent.system.clone()),
            temperature: self.agent.temperature,
            max_tokens: self.agent.max_tokens,
            response_schema: self.agent.output_schema.clone(),
            ..Request::default()
        }
    }

    /// Appends what follows the transcript in a request: pending steering as user messages,
    /// then, when loop protection asked for a final answer, its instruction (and the tools
    /// are withheld). [`RunState::request`] is the header, the transcript, then this.
    pub fn finish_request(&self, request: &mut Request) {
        request.messages.extend(self.steering.iter().map(|text| Message::user(text.clone())));
        if let Some(reason) = self.guard.finalize_pending() {
            request.tools.clear();
            request.messages.push(Message::user(loops::finalize_instruction(reason)));
        }
    }

    /// Applies one fact. Idempotence is the log's job (facts are applied once, in order).
    ///
    /// # Errors
    /// [`ReplayError::Misfit`] if the fact does not fit the current state.
    pub fn apply(&mut self, fact: &Fact) -> Result<(), ReplayError> {
        self.apply_owned(fact.clone())
    }

    /// [`RunState::apply`] taking the fact by value: its message, result or text moves into
    /// the state instead of being copied (what the run driver and replay do).
    ///
    /// # Errors
    /// [`ReplayError::Misfit`] if the fact does not fit the current state.
    pub fn apply_owned(&mut self, fact: Fact) -> Result<(), ReplayError> {
        let seq = self.seq;
        let misfit = |reason: String| ReplayError::Misfit { seq, reason };
        self.last_triggers.clear();
        match fact {
            Fact::Started { .. } => return Err(misfit("a second Started fact".into())),
            Fact::Model { message, usage, steered, .. } => {
                if self.phase != Phase::Model {
                    return Err(misfit(format!("model answer in phase {:?}", self.phase)));
                }
                let placed = (steered as usize).min(self.steering.len());
                for text in self.steering.drain(..placed) {
                    self.messages.push(Message::user(text));
                }
                self.step += 1;
                self.usage.add(&usage);
                let finalize = self.guard.take_finalize();
                let text = message.tool_calls().next().is_none().then(|| message.text());
                self.messages.push(message);
                if let Some(text) = text {
                    self.on_final_answer(&text);
                } else {
                    self.calls_at = self.messages.len() - 1;
                    self.calls = self.messages[self.calls_at]
                        .tool_calls()
                        .map(|call| {
                            // In a finalize turn tools were withheld: calls are answered with
                            // an error instead of being executed.
                            let result = finalize.as_ref().map(|_| ToolResult {
                                id: call.id.clone(),
                                name: call.name.clone(),
                                content: loops::WITHHELD.into(),
                                is_error: true,
                            });
                            CallSlot {
                                result,
                                approval: Approval::NotNeeded,
                                rewritten: None,
                                blocked: false,
                                images: Vec::new(),
                            }
                        })
                        .collect();
                    self.phase = Phase::Tools;
                    if finalize.is_some() {
                        self.complete_step(true);
                    }
                }
            }
            Fact::ToolResult { result, blocked } => {
                let Some(slot) = self.slot_mut(&result.id) else {
                    return Err(misfit(format!("result for unknown or finished call {}", result.id)));
                };
                slot.result = Some(result);
                slot.blocked = blocked;
                if self.calls.iter().all(|s| s.result.is_some()) {
                    self.complete_step(false);
                }
            }
            Fact::ToolImages { call_id, images } => {
                let slot = self
                    .slot_mut(&call_id)
                    .ok_or_else(|| misfit(format!("images for unknown or finished call {call_id}")))?;
                slot.images.extend(images.into_iter().filter(|p| matches!(p, Part::Image { .. })));
            }
            Fact::Rewritten { call_id, args } => {
                let slot = self
                    .slot_mut(&call_id)
                    .ok_or_else(|| misfit(format!("rewrite of unknown call {call_id}")))?;
                slot.rewritten = Some(args);
            }
            Fact::ApprovalRequested { call_id } => {
                let slot = self
                    .slot_mut(&call_id)
                    .ok_or_else(|| misfit(format!("approval for unknown call {call_id}")))?;
                slot.approval = Approval::Pending;
            }
            Fact::Approved { call_id } => {
                let slot = self
                    .slot_mut(&call_id)
                    .ok_or_else(|| misfit(format!("approval of unknown call {call_id}")))?;
                slot.approval = Approval::Approved;
            }
            Fact::Steered { text } => self.steering.push(text),
            Fact::Extended { steps } => self.max_steps = self.max_steps.saturating_add(steps),
        }
        self.seq += 1;
        Ok(())
    }

    /// The tool calls of the current step, in slot order (empty when there are none).
    pub fn step_calls(&self) -> impl Iterator<Item = &ToolCall> {
        let answer = if self.calls.is_empty() { None } else { self.messages.get(self.calls_at) };
        answer.into_iter().flat_map(Message::tool_calls)
    }

    /// Each slot of the current step with its call.
    fn slots(&self) -> impl Iterator<Item = (&CallSlot, &ToolCall)> {
        self.calls.iter().zip(self.step_calls())
    }

    /// The unfinished slot of the call with this id.
    fn slot_mut(&mut self, call_id: &str) -> Option<&mut CallSlot> {
        let i = self.slots().position(|(s, c)| c.id == call_id && s.result.is_none())?;
        self.calls.get_mut(i)
    }

    /// Whether a human approved the current step's call with this id.
    pub fn is_approved(&self, call_id: &str) -> bool {
        self.slots().any(|(s, c)| c.id == call_id && s.approval == Approval::Approved)
    }

    /// Calls waiting for a human.
    pub fn pending_approvals(&self) -> Vec<&ToolCall> {
        self.slots()
            .filter(|(s, _)| s.result.is_none() && s.approval == Approval::Pending)
            .map(|(_, c)| c)
            .collect()
    }

    fn on_final_answer(&mut self, text: &str) {
        if !self.steering.is_empty() {
            // The user spoke while the model was answering: let the model see it.
            self.phase = Phase::Model;
            return;
        }
        if let Some(schema) = &self.agent.output_schema {
            match parse_typed(text) {
                Ok(value) => self.typed = Some(value),
                Err(e) if !self.typed_retry_used => {
                    self.typed_retry_used = true;
                    self.messages.push(Message::user(format!(
                        "[executus] Your answer is not valid JSON for the schema {:?} ({e}). \
                         Answer again with only the JSON value.",
                        schema.name
                    )));
                    self.phase = Phase::Model;
                    return;
                }
                Err(e) => {
                    self.end(RunEnd::Failed {
                        error: format!("final answer is not valid JSON for schema {:?}: {e}", schema.name)
                            .into(),
                    });
                    return;
                }
            }
        }
        self.end(RunEnd::Completed);
    }

    /// All calls of the step have results: append the tool message, update the error streak
    /// and the loop guard, and move on.
    fn complete_step(&mut self, finalize_turn: bool) {
        let slots = std::mem::take(&mut self.calls);
        for slot in &slots {
            if slot.result.as_ref().is_some_and(|r| r.is_error) || slot.blocked {
                self.tool_error_streak += 1;
            } else if slot.result.is_some() {
                self.tool_error_streak = 0;
            }
        }
        let limits = &self.agent.limits;
        let trigger = if self.tool_error_streak >= limits.tool_error_limit {
            None
        } else if finalize_turn {
            // The model ignored the finalize instruction and asked for tools again.
            Some(self.guard.finalize_ignored(&limits.loops))
        } else {
            let answer = self.messages.get(self.calls_at);
            let observed = slots.iter().zip(answer.into_iter().flat_map(Message::tool_calls)).filter_map(
                |(slot, call)| {
                    let result = slot.result.as_ref()?;
                    Some(ObservedCall { call, result, failed: result.is_error || slot.blocked })
                },
            );
            self.guard.observe(observed, &limits.loops)
        };
        // Images the tools returned follow the results, as a user message (see `ToolImages`).
        let mut results = Vec::with_capacity(slots.len());
        let mut images: Vec<Part> = Vec::new();
        for slot in slots {
            let Some(result) = slot.result else { continue };
            if !slot.images.is_empty() {
                images.push(Part::Text {
                    text: format!("[images returned by tool {} (call {})]", result.name, result.id),
                });
                images.extend(slot.images);
            }
            results.push(result);
        }
        self.messages.push(Message::tool_results(results));
        if !images.is_empty() {
            self.messages.push(Message { role: Role::User, parts: images });
        }
        self.phase = Phase::Model;
        if self.tool_error_streak >= self.agent.limits.tool_error_limit {
            self.end(RunEnd::ToolErrorLimit { failures: self.tool_error_streak });
            return;
        }
        if let Some(trigger) = trigger {
            if trigger.action == LoopAction::Stop {
                self.end(RunEnd::Stopped {
                    reason: format!("loop protection ({}): {}", trigger.kind, trigger.detail),
                });
            }
            self.last_triggers.push(trigger);
        }
    }

    /// The last assistant text, if any.
    pub fn last_text(&self) -> Option<String> {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant)
            .map(Message::text)
            .filter(|t| !t.is_empty())
    }

    /// The calls of the current step that may have been executing when the run stopped: no
    /// result and not waiting for a human (the log cannot tell "started" from "queued", so
    /// every such call counts as in flight). Resume re-runs the idempotent ones and answers
    /// the others with an error.
    pub fn unfinished_calls(&self) -> Vec<&ToolCall> {
        self.slots()
            .filter(|(s, _)| s.result.is_none() && s.approval != Approval::Pending)
            .map(|(_, c)| c)
            .collect()
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Parses a final answer as JSON, stripping a Markdown code fence (the provider crate's
/// [`strip_code_fences`](executus_llm::strip_code_fences), as `generate_typed` does).
pub fn parse_typed(text: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(executus_llm::strip_code_fences(text))
}

/// `Usage` without its zero counters, for the checkpoint log; reads the full form too.
mod compact_usage {
    use executus_llm::Usage;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    fn is_zero(n: &u64) -> bool {
        *n == 0
    }

    #[derive(Serialize, Deserialize, Default)]
    struct Compact {
        #[serde(default, skip_serializing_if = "is_zero")]
        input_tokens: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        output_tokens: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        cache_read_tokens: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        cache_write_tokens: u64,
        #[serde(default, skip_serializing_if = "is_zero")]
        reasoning_tokens: u64,
    }

    pub(crate) fn serialize<S: Serializer>(u: &Usage, s: S) -> Result<S::Ok, S::Error> {
        Compact {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_read_tokens: u.cache_read_tokens,
            cache_write_tokens: u.cache_write_tokens,
            reasoning_tokens: u.reasoning_tokens,
        }
        .serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Usage, D::Error> {
        let c = Compact::deserialize(d)?;
        Ok(Usage {
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            cache_read_tokens: c.cache_read_tokens,
            cache_write_tokens: c.cache_write_tokens,
            reasoning_tokens: c.reasoning_tokens,
        })
    }
}
