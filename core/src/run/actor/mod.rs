//! The run actor: drives one [`RunState`] through its steps.
//!
//! It never awaits a model call or a tool call inside `handle`: each is spawned as a task
//! that reports back with a message, so the mailbox stays free for cancel, steer, status
//! and deadlines. Every fact it applies is also saved through the checkpoint actor — tool
//! results durably, before the run moves on.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use executus_llm::{Chain, Message, Response, ToolCall, ToolResult};
use futures::FutureExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::env::RunEnv;
use super::events::RunEvent;
use super::handle::RunControl;
use super::machine::{Action, Fact, RunState};
use super::outcome::{RunEnd, RunOutcome};
use super::{RunPhase, RunSnapshot};
use crate::compaction::CompactionCache;
use crate::ports::{
    AuditEvent, AuditRecord, BudgetDenied, CriticReview, CriticTrigger, DeliveryItem, RunMeta, StoredStatus,
    ToolDecision, Verdict,
};

mod model;
mod tools;

pub(crate) use model::estimate_tokens;
pub(crate) use model::message_chars;

/// Messages of a run actor.
pub(crate) enum RunMsg {
    /// Compute the next action and start it.
    Advance,
    /// The model call finished.
    ModelDone(Result<Response, ModelFailure>),
    /// A tool call finished.
    ToolDone {
        /// The result.
        result: ToolResult,
        /// Tool latency.
        latency: Duration,
        /// Images the tool returned (`Part::Image`s; usually none).
        images: Vec<executus_llm::Part>,
    },
    /// Inject a user message.
    Steer(String),
    /// Cancel the run.
    Cancel,
    /// The hard deadline passed (ignored unless its generation is current: an extension
    /// moves the deadline by bumping the generation).
    HardDeadline(u64),
    /// The soft deadline passed.
    SoftDeadline,
    /// The critic answered.
    CriticDone(CriticTrigger, Verdict),
    /// Report status.
    Status(RpcReplyPort<RunSnapshot>),
}

/// Why a model call produced no response.
#[derive(Debug)]
pub(crate) enum ModelFailure {
    /// The chain failed.
    Model(executus_llm::Error),
    /// The stream broke after its first event (the chain had committed to its target).
    MidStream(executus_llm::Error),
    /// The budget refused.
    Budget(BudgetDenied),
    /// Cancelled.
    Cancelled,
    /// The model call or the budget panicked.
    Panicked(String),
}

/// Everything a run actor starts from.
pub(crate) struct RunArgs {
    /// The state (fresh or replayed).
    pub state: RunState,
    /// Facts not yet saved (the `Started` fact of a new run, resume facts...).
    pub unsaved: Vec<Fact>,
    /// Shared runtime environment.
    pub env: Arc<RunEnv>,
    /// Shared control block.
    pub control: Arc<RunControl>,
    /// True when resumed from a checkpoint.
    pub resumed: bool,
    /// Deliver the outcome through the `Delivery` port.
    pub deliver: bool,
    /// `gen_ai.conversation.id` of the run's spans (default the run id).
    pub conversation: Option<String>,
}

/// The run actor.
pub(crate) struct RunActor;

/// The policy decision that let a call run, kept until its result is audited.
struct Decided {
    decision: ToolDecision,
    rule: Option<String>,
    reason: Option<String>,
}

impl Default for Decided {
    fn default() -> Self {
        Self { decision: ToolDecision::Allow, rule: None, reason: None }
    }
}

/// Its state.
pub(crate) struct RunActorState {
    st: RunState,
    env: Arc<RunEnv>,
    control: Arc<RunControl>,
    meta: RunMeta,
    model: Option<Arc<Chain>>,
    /// The chain for a re-issued model call (without the target whose stream broke), used
    /// once by the next model call.
    restart_model: Option<Arc<Chain>>,
    /// Re-issues of the current step's model call (see `RuntimeConfig::stream_restarts`).
    restarts: u32,
    /// The chain's targets as `provider/model` (budget reservations, compaction context).
    targets: Arc<[String]>,
    /// The agent's tool specs, computed at the first model call that offers tools.
    tool_specs: Option<Vec<executus_llm::ToolSpec>>,
    /// The last request sent, grown in place into the next one (see `next_request`).
    outgoing: Option<model::Outgoing>,
    started: Instant,
    timeout: Duration,
    tasks: CancellationToken,
    /// Cancels `tasks` when the state is dropped — also when the actor is stopped from
    /// outside (runtime shutdown) or panics — so no tool or model call outlives its run.
    _stop_tasks: DropGuard,
    queued_tools: VecDeque<ToolCall>,
    running_tools: usize,
    /// Policy decisions of calls started and not yet finished, by call id.
    decided: HashMap<String, Decided>,
    model_in_flight: bool,
    /// Steering messages the request in flight carries (they join the transcript with the
    /// answer).
    steered_in_request: u32,
    critic_in_flight: bool,
    extensions: u32,
    deadline_gen: u64,
    resumed: bool,
    deliver: bool,
    finished: bool,
    compaction: Arc<CompactionCache>,
    run_input: Arc<str>,
    /// Facts to save before the first step (the start of a new run, resume facts).
    unsaved: Vec<Fact>,
    /// The run's tracing span (`run` > `step` > `model_call` / `tool_call`).
    span: tracing::Span,
    /// The current step's span.
    step_span: tracing::Span,
    /// `gen_ai.conversation.id` of the run's spans.
    conversation: Arc<str>,
}

impl Actor for RunActor {
    type Msg = RunMsg;
    type State = RunActorState;
    type Arguments = RunArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<RunMsg>,
        args: RunArgs,
    ) -> Result<RunActorState, ActorProcessingErr> {
        let RunArgs { mut state, unsaved, env, control, resumed, deliver, conversation } = args;
        let conversation: Arc<str> = conversation.map_or_else(|| state.run_id.to_string().into(), Into::into);
        let meta = RunMeta {
            run_id: state.run_id,
            agent: state.agent.name.clone(),
            identity: state.identity.clone(),
            parent: state.parent,
            created_ms: state.created_ms,
        };
        // Steering sent while the run was queued becomes facts now.
        let mut unsaved = unsaved;
        for text in control.take_early_steering() {
            let fact = Fact::Steered { text };
            if state.apply(&fact).is_ok() {
                unsaved.push(fact);
            }
        }
        let model = env.registry.chain(&state.agent.model);
        let timeout = state.agent.limits.timeout;
        let run_input: Arc<str> = Arc::from(
            state
                .messages
                .iter()
                .find(|m| m.role == executus_llm::Role::User)
                .map(Message::text)
                .unwrap_or_default(),
        );
        let tasks = control.cancel.child_token();
        let mut s = RunActorState {
            _stop_tasks: tasks.clone().drop_guard(),
            tasks,
            st: state,
            env,
            control,
            meta,
            model: None,
            restart_model: None,
            restarts: 0,
            targets: Arc::from(Vec::new()),
            tool_specs: None,
            outgoing: None,
            started: Instant::now(),
            timeout,
            queued_tools: VecDeque::new(),
            running_tools: 0,
            decided: HashMap::new(),
            model_in_flight: false,
            steered_in_request: 0,
            critic_in_flight: false,
            extensions: 0,
            deadline_gen: 0,
            resumed,
            deliver,
            finished: false,
            compaction: Arc::default(),
            run_input,
            unsaved: Vec::new(),
            span: tracing::Span::none(),
            step_span: tracing::Span::none(),
            conversation,
        };
        // GenAI semantic conventions: `otel.name` is the span name an OpenTelemetry exporter
        // shows (`invoke_agent {agent}`); the tracing name stays `run`.
        s.span = tracing::info_span!(
            parent: None,
            "run",
            otel.name = %format_args!("invoke_agent {}", s.st.agent.name),
            gen_ai.operation.name = "invoke_agent",
            gen_ai.conversation.id = %s.conversation,
            run_id = %s.st.run_id,
            gen_ai.agent.name = %s.st.agent.name,
            gen_ai.request.model = %s.st.agent.model,
            resumed = s.resumed
        );
        s.unsaved = unsaved;
        match model {
            Ok(m) => {
                s.targets = m.targets().map(str::to_owned).collect();
                s.model = Some(Arc::new(m));
            }
            Err(e) => {
                s.st.end(RunEnd::Failed { error: format!("model spec {:?}: {e}", s.st.agent.model).into() })
            }
        }
        Ok(s)
    }

    async fn post_start(
        &self,
        myself: ActorRef<RunMsg>,
        s: &mut RunActorState,
    ) -> Result<(), ActorProcessingErr> {
        // The start of a run is saved durably before its first step, so a crash cannot lose
        // an admitted run. Saved here, not in `pre_start`, which the executor awaits: a slow
        // store must not serialise run starts.
        let unsaved = std::mem::take(&mut s.unsaved);
        if !unsaved.is_empty() {
            let first = s.st.seq - unsaved.len() as u64;
            let refs: Vec<&Fact> = unsaved.iter().collect();
            if let Err(e) = s.env.checkpoint.save(&s.meta, StoredStatus::Running, first, &refs, true).await {
                tracing::warn!(run_id = %s.st.run_id, error = %e, "could not checkpoint run start");
            }
        }
        s.audit(AuditEvent::RunStarted {
            model: s.st.agent.model.clone(),
            parent: s.st.parent,
            resumed: s.resumed,
        })
        .await;
        schedule(&myself, &s.tasks, s.timeout, RunMsg::HardDeadline(0));
        if let Some(soft) = s.st.agent.limits.soft_timeout {
            schedule(&myself, &s.tasks, soft, RunMsg::SoftDeadline);
        }
        let _ = myself.send_message(RunMsg::Advance);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<RunMsg>,
        msg: RunMsg,
        s: &mut RunActorState,
    ) -> Result<(), ActorProcessingErr> {
        // Boxed: ractor boxes a future per message that holds this one (twice over) and
        // keeps it while the actor waits for its next message. Out of it, a run waiting on
        // its model holds a few hundred bytes instead of kilobytes, and each message moves
        // only what it uses.
        Box::pin(s.on_message(myself, msg)).await;
        Ok(())
    }
}

impl RunActorState {
    async fn on_message(&mut self, myself: ActorRef<RunMsg>, msg: RunMsg) {
        let s = self;
        if s.finished {
            if let RunMsg::Status(reply) = msg {
                let _ = reply.send(s.status());
            }
            return;
        }
        match msg {
            RunMsg::Advance => s.advance(&myself).await,
            RunMsg::ModelDone(result) => {
                s.model_in_flight = false;
                match result {
                    Ok(response) => {
                        s.restarts = 0;
                        // An answer with tool calls is saved durably before any call runs, so
                        // that after a crash resume knows which calls may have been in flight.
                        let durable = response.message.tool_calls().next().is_some();
                        let fact = Fact::Model {
                            message: response.message,
                            usage: response.usage,
                            finish: response.finish_reason,
                            provider: response.provider.clone(),
                            model: response.model.clone(),
                            steered: std::mem::take(&mut s.steered_in_request),
                        };
                        s.control.emit(RunEvent::ModelAnswered {
                            run_id: s.st.run_id,
                            provider: response.provider,
                            model: response.model,
                        });
                        s.apply_and_save(fact, durable).await;
                        s.advance(&myself).await;
                    }
                    Err(ModelFailure::Budget(denied)) => {
                        s.audit(AuditEvent::budget_denied(&denied)).await;
                        s.st.end(RunEnd::BudgetDenied(denied));
                        s.finish(&myself).await;
                    }
                    Err(ModelFailure::Cancelled) => {
                        s.st.end(RunEnd::Cancelled);
                        s.finish(&myself).await;
                    }
                    Err(ModelFailure::MidStream(e))
                        if e.kind == executus_llm::ErrorKind::Transient
                            && s.restarts < s.env.config.stream_restarts =>
                    {
                        s.restart_step(&myself, e).await;
                    }
                    Err(ModelFailure::Model(e) | ModelFailure::MidStream(e)) => {
                        // The chain logs each failed attempt, but not an error that reaches
                        // a stream after its first event: say why the run ends, once.
                        tracing::warn!(error.type = e.kind.as_str(), error = %e, "model call failed; the run fails");
                        s.st.end(RunEnd::Failed { error: e.into() });
                        s.finish(&myself).await;
                    }
                    Err(ModelFailure::Panicked(message)) => {
                        s.st.end(RunEnd::Failed { error: format!("model call panicked: {message}").into() });
                        s.finish(&myself).await;
                    }
                }
            }
            RunMsg::ToolDone { result, latency, images } => {
                s.running_tools = s.running_tools.saturating_sub(1);
                s.control.emit(RunEvent::ToolFinished {
                    run_id: s.st.run_id,
                    call_id: result.id.clone(),
                    name: result.name.clone(),
                    is_error: result.is_error,
                });
                // The policy decision made before execution, audited with the outcome.
                let decided = s.decided.remove(&result.id).unwrap_or_default();
                s.audit_tool(&result, decided.decision, decided.rule, decided.reason, latency).await;
                if !images.is_empty() {
                    let fact = Fact::ToolImages { call_id: result.id.clone(), images };
                    s.apply_and_save(fact, false).await;
                }
                s.apply_and_save(Fact::ToolResult { result, blocked: false }, true).await;
                s.pump_tools(&myself);
                if s.running_tools == 0 && s.queued_tools.is_empty() {
                    s.advance(&myself).await;
                }
            }
            RunMsg::Steer(text) => {
                s.apply_and_save(Fact::Steered { text }, false).await;
            }
            RunMsg::Cancel => {
                s.tasks.cancel();
                s.st.end(RunEnd::Cancelled);
                s.finish(&myself).await;
            }
            RunMsg::HardDeadline(generation) if generation != s.deadline_gen => {}
            RunMsg::HardDeadline(_) => {
                s.tasks.cancel();
                s.st.end(RunEnd::TimedOut { after: s.started.elapsed().max(s.timeout) });
                s.finish(&myself).await;
            }
            RunMsg::SoftDeadline => s.ask_critic(&myself, CriticTrigger::SoftDeadline),
            RunMsg::CriticDone(trigger, verdict) => Box::pin(s.critic_done(&myself, trigger, verdict)).await,
            RunMsg::Status(reply) => {
                let _ = reply.send(s.status());
            }
        }
    }
}

impl RunActorState {
    /// The critic's verdict. Rare, so boxed out of every message's `handle` future.
    async fn critic_done(&mut self, myself: &ActorRef<RunMsg>, trigger: CriticTrigger, verdict: Verdict) {
        self.critic_in_flight = false;
        self.audit(AuditEvent::Critic {
            trigger,
            verdict: verdict.kind(),
            reason: match &verdict {
                Verdict::Continue => String::new(),
                Verdict::Extend { reason, .. } | Verdict::Escalate { reason } | Verdict::Abort { reason } => {
                    reason.clone()
                }
            },
        })
        .await;
        match (trigger, verdict) {
            (_, Verdict::Abort { reason }) => {
                self.tasks.cancel();
                self.st.end(RunEnd::Stopped { reason: format!("aborted by critic: {reason}") });
                self.finish(myself).await;
            }
            (CriticTrigger::MaxSteps, Verdict::Extend { steps, .. }) if steps > 0 => {
                self.extensions += 1;
                self.apply_and_save(Fact::Extended { steps }, false).await;
                self.advance(myself).await;
            }
            (CriticTrigger::MaxSteps, _) => {
                self.st.end(RunEnd::MaxSteps { steps: self.st.step });
                self.finish(myself).await;
            }
            (CriticTrigger::SoftDeadline, Verdict::Extend { time, .. }) => {
                self.extensions += 1;
                self.timeout += time;
                self.deadline_gen += 1;
                let remaining = self.timeout.saturating_sub(self.started.elapsed());
                schedule(myself, &self.tasks, remaining, RunMsg::HardDeadline(self.deadline_gen));
                // Review again once the extension is half used.
                schedule(myself, &self.tasks, time / 2, RunMsg::SoftDeadline);
                // The loop waited while the critic was out; pick it up again.
                self.advance(myself).await;
            }
            (CriticTrigger::SoftDeadline, _) => self.advance(myself).await,
        }
    }
}

/// Sends `msg` to `actor` after `delay` (a tokio timer, so paused-time tests control it),
/// unless `stop` fires first (the run ended: its timers must not linger).
fn schedule(actor: &ActorRef<RunMsg>, stop: &CancellationToken, delay: Duration, msg: RunMsg) {
    let actor = actor.clone();
    let stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(delay) => {
                let _ = actor.send_message(msg);
            }
        }
    });
}

impl RunActorState {
    fn status(&self) -> RunSnapshot {
        RunSnapshot {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            phase: match (&self.st.end, self.st.phase) {
                (Some(end), _) => RunPhase::Ended(end.status().to_owned()),
                (None, super::machine::Phase::Tools) => RunPhase::Tools,
                (None, _) => RunPhase::Model,
            },
            step: self.st.step,
            usage: self.st.usage,
            elapsed: self.started.elapsed(),
        }
    }

    async fn audit(&self, event: AuditEvent) {
        if !self.env.ports.audit.wants_records() {
            return;
        }
        let record = AuditRecord::now(
            Some(self.st.run_id),
            self.st.identity.clone(),
            Some(self.st.agent.name.clone()),
            event,
        );
        self.env.ports.audit.record(record).await;
    }

    async fn audit_tool(
        &self,
        result: &ToolResult,
        decision: ToolDecision,
        rule: Option<String>,
        reason: Option<String>,
        latency: Duration,
    ) {
        self.audit(AuditEvent::ToolCall {
            step: self.st.step,
            tool: result.name.clone(),
            call_id: result.id.clone(),
            decision,
            rule,
            reason,
            is_error: result.is_error,
            latency_ms: latency.as_millis() as u64,
        })
        .await;
    }

    /// Applies a fact and saves it (durably for tool results). A fact that does not fit is
    /// a bug in the driver; the run fails rather than continue in an unknown state.
    async fn apply_and_save(&mut self, fact: Fact, durable: bool) {
        let seq = self.st.seq;
        if let Err(e) = self.st.apply(&fact) {
            self.st.end(RunEnd::Failed { error: format!("internal: {e}").into() });
            return;
        }
        let status = if self.st.pending_approvals().is_empty() {
            StoredStatus::Running
        } else {
            StoredStatus::AwaitingApproval
        };
        if let Err(e) = self.env.checkpoint.save(&self.meta, status, seq, &[&fact], durable).await {
            tracing::warn!(run_id = %self.st.run_id, error = %e, "checkpoint save failed");
        }
        if !self.st.last_triggers.is_empty() {
            Box::pin(self.report_triggers()).await;
        }
    }

    /// Loop protection fired: events and audit records (rare, so boxed out of every save).
    async fn report_triggers(&mut self) {
        let triggers = std::mem::take(&mut self.st.last_triggers);
        for t in triggers {
            self.control.emit(RunEvent::LoopProtection {
                run_id: self.st.run_id,
                trigger: t.kind,
                action: t.action,
            });
            self.audit(AuditEvent::LoopProtection { trigger: t.kind, detail: t.detail, action: t.action })
                .await;
        }
    }

    async fn advance(&mut self, myself: &ActorRef<RunMsg>) {
        if self.model_in_flight || self.running_tools > 0 || self.critic_in_flight || self.finished {
            return;
        }
        if self.control.cancel.is_cancelled() {
            // Cancelled from outside; the `Cancel` message may still be on its way, and
            // cancelled tool calls report back first: start nothing new.
            self.st.end(RunEnd::Cancelled);
            self.finish(myself).await;
            return;
        }
        match self.st.next_action() {
            Action::Done => self.finish(myself).await,
            Action::StepCapReached => self.ask_critic(myself, CriticTrigger::MaxSteps),
            Action::CallModel { tools } => self.start_model(myself, tools),
            Action::CallTools(calls) => {
                for call in calls {
                    self.control.emit(RunEvent::ToolStarted { run_id: self.st.run_id, call: call.clone() });
                    if let Some(call) = self.check_call(call).await {
                        self.queued_tools.push_back(call);
                    }
                    if self.st.is_ended() {
                        self.finish(myself).await;
                        return;
                    }
                }
                self.pump_tools(myself);
                if self.running_tools == 0 && self.queued_tools.is_empty() {
                    // Every call was settled without execution (refused, blocked, awaiting
                    // approval): move on.
                    Box::pin(self.advance(myself)).await;
                }
            }
            Action::AwaitApproval(calls) => {
                let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
                self.st.end(RunEnd::AwaitingApproval { calls: ids });
                self.finish(myself).await;
            }
        }
    }

    fn ask_critic(&mut self, myself: &ActorRef<RunMsg>, trigger: CriticTrigger) {
        if self.critic_in_flight {
            return;
        }
        self.critic_in_flight = true;
        let review = CriticReview {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            identity: self.st.identity.clone(),
            trigger,
            step: self.st.step,
            elapsed: self.started.elapsed(),
            extensions: self.extensions,
            recent: self.st.messages.iter().rev().take(8).rev().cloned().collect(),
        };
        let critic = self.env.ports.critic.clone();
        let me = myself.clone();
        tokio::spawn(async move {
            let verdict =
                AssertUnwindSafe(critic.review(review)).catch_unwind().await.unwrap_or(Verdict::Continue);
            let _ = me.send_message(RunMsg::CriticDone(trigger, verdict));
        });
    }

    /// Publishes the outcome, settles the checkpoint, audits, delivers, stops.
    ///
    /// Boxed: it runs once per run, and inline its future would grow every message's
    /// `handle` future (ractor boxes one per message) and the lane task holding the run.
    async fn finish(&mut self, myself: &ActorRef<RunMsg>) {
        Box::pin(self.finish_now(myself)).await;
    }

    async fn finish_now(&mut self, myself: &ActorRef<RunMsg>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.tasks.cancel();
        let end =
            self.st.end.clone().unwrap_or(RunEnd::Failed { error: "run ended without a reason".into() });
        let outcome = RunOutcome {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            output: self.st.last_text(),
            typed: self.st.typed.clone(),
            messages: self.st.messages.clone(),
            steps: self.st.step,
            usage: self.st.usage,
            end: end.clone(),
        };
        match &end {
            RunEnd::AwaitingApproval { .. } => {
                // Paused, not finished: make sure the pause is durable, keep the log.
                let _ = self
                    .env
                    .checkpoint
                    .save(&self.meta, StoredStatus::AwaitingApproval, self.st.seq, &[], true)
                    .await;
            }
            end => {
                let status =
                    if *end == RunEnd::Completed { StoredStatus::Completed } else { StoredStatus::Failed };
                if let Err(e) = self.env.checkpoint.finish(self.st.run_id, status).await {
                    tracing::warn!(run_id = %self.st.run_id, error = %e, "could not delete the finished run's checkpoint");
                }
            }
        }
        self.audit(AuditEvent::RunEnded {
            status: end.status(),
            reason: end.reason(),
            steps: self.st.step,
            usage: self.st.usage,
        })
        .await;
        if self.deliver {
            let item = DeliveryItem {
                run_id: self.st.run_id,
                agent: self.st.agent.name.clone(),
                identity: self.st.identity.clone(),
                status: end.status(),
                output: outcome.output.clone(),
            };
            self.env.deliver(item).await;
        }
        if self.st.parent.is_none() {
            // Frees the dispatch tree this root may have grown (a no-op otherwise).
            self.env.dispatch.finish_root(self.st.run_id).await;
        }
        self.control.emit(RunEvent::Ended { run_id: self.st.run_id, end });
        self.control.set_outcome(outcome);
        myself.stop(None);
    }
}

pub(super) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
