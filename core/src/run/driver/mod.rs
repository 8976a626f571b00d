//! The run driver: drives one [`RunState`] through its steps, in one task.
//!
//! A run is the lane job's task (a child run, a task of its own) running [`drive`]: it polls
//! the step's model call, its tool calls, the critic, the run's deadlines and its inbox
//! (steering, status requests, cancellation, shutdown) and handles whichever is ready. It
//! never awaits a model or tool call inside a handler: those are futures the loop polls
//! beside the inbox, so cancel, steer and status are answered while they run. Every fact it
//! applies is also saved through the checkpoint log — answers with tool calls and tool
//! results durably, before the run moves on.
//!
//! # Guarantees
//! - **One task per run, no actor.** The model call is a future polled in place (one per
//!   step); a tool call runs in place when it finishes at its first poll and in a task of its
//!   own otherwise (so a slow tool never holds the run's loop, and slow tools of one step run
//!   in parallel); deadlines are timers polled in place.
//! - **Nothing outlives the run.** When the driver is dropped — finished, interrupted by a
//!   shutdown, aborted by its lane, or unwound by a panic — its task scope is cancelled, so
//!   no tool or model call keeps running for it.
//! - **Panics are the executor's.** A panic in a handler unwinds out of [`drive`]; the
//!   executor records the run as failed (see `crate::executor`).
//!
//! # What it does not do
//! - It does not decide what happens next: the state machine does ([`RunState::next_action`]).
//! - It does not admit runs or count them: the lane and the executor do.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use executus_llm::{Chain, Message, Response, ToolCall, ToolResult};
use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::env::RunEnv;
use super::events::RunEvent;
use super::handle::RunControl;
use super::machine::{Action, Approval, Fact, RunState};
use super::outcome::{RunEnd, RunOutcome};
use super::{RunPhase, RunSnapshot};
use crate::compaction::CompactionCache;
use crate::executor::{ActiveSlot, Executor};
use crate::ports::{
    AuditEvent, AuditRecord, BudgetDenied, CriticReview, CriticTrigger, DeliveryItem, Entry, RunMeta,
    StoredStatus, ToolDecision, Verdict,
};

mod model;
mod tools;

pub(crate) use model::estimate_tokens;
pub(crate) use model::message_chars;

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

/// Everything a run starts from.
pub(crate) struct RunArgs {
    /// The state (fresh or replayed).
    pub state: RunState,
    /// Facts not yet saved (the `Started` fact of a new run, resume facts...), encoded
    /// ([`crate::checkpoint::encode`]): a fact is encoded before it moves into the state.
    pub unsaved: Vec<Vec<u8>>,
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

/// How [`drive`] returned.
pub(crate) enum Driven {
    /// The run ended (or paused for approval) and published its outcome.
    Finished,
    /// The executor shut down: the run stopped without finishing, its checkpoint kept.
    Interrupted,
}

/// The step's model call, polled by the loop.
type ModelCall = Pin<Box<dyn Future<Output = Result<Response, ModelFailure>> + Send>>;
/// The critic's review, polled by the loop.
type CriticCall = Pin<Box<dyn Future<Output = (CriticTrigger, Verdict)> + Send>>;

/// What woke the loop.
enum Event {
    /// The inbox, a cancellation or a shutdown: look.
    Woken,
    /// The model call finished.
    Model(Result<Response, ModelFailure>),
    /// A tool call finished.
    Tool(tools::Done),
    /// A tool call's task was lost (the tokio runtime is going away).
    ToolLost(String),
    /// The critic answered.
    Critic(CriticTrigger, Verdict),
    /// The hard deadline passed.
    HardDeadline,
    /// The soft deadline passed.
    SoftDeadline,
}

/// Drives a run until it ends (or the executor shuts down). `slot` counts it as active until
/// just before its outcome is published.
pub(crate) async fn drive(args: Box<RunArgs>, slot: ActiveSlot, executor: Executor) -> Driven {
    let mut d = Driver::new(*args, slot);
    // Boxed, as every handler below: the run's task holds this future for the run's whole
    // life, and inline the handlers' futures (a checkpoint wait, an audit record) would make
    // it kilobytes; boxed, a waiting run holds only its state.
    Box::pin(d.start()).await;
    loop {
        if d.life.finished {
            return Driven::Finished;
        }
        let event = d.next_event().await;
        if let Event::Woken = event
            && executor.is_shut_down()
        {
            return Driven::Interrupted;
        }
        Box::pin(d.on_event(event)).await;
    }
}

/// The policy decision that let a call run, kept until its result is audited.
pub(super) struct Decided {
    decision: ToolDecision,
    rule: Option<String>,
    reason: Option<String>,
}

/// A run's state, by concern.
pub(crate) struct Driver {
    /// The state machine.
    st: RunState,
    env: Arc<RunEnv>,
    control: Arc<RunControl>,
    /// The checkpoint log's header for this run.
    meta: RunMeta,
    life: Lifecycle,
    model: ModelSide,
    tools: ToolSide,
    clock: Clock,
    /// The critic's review in flight.
    critic: Option<CriticCall>,
    scope: TaskScope,
    trace: Trace,
}

/// How the run started and whether it has ended.
struct Lifecycle {
    resumed: bool,
    deliver: bool,
    finished: bool,
    /// Counts the run as active in the executor.
    slot: ActiveSlot,
    /// Facts to save before the first step (the start of a new run, resume facts), encoded.
    unsaved: Vec<Vec<u8>>,
    /// The run's first user message (dispatch loop detection in tool calls).
    input: Arc<str>,
}

/// The model side: the chain, the request grown step by step, the call in flight.
struct ModelSide {
    chain: Option<Arc<Chain>>,
    /// The chain for a re-issued model call (without the target whose stream broke), used
    /// once by the next model call.
    restart: Option<Arc<Chain>>,
    /// Re-issues of the current step's model call (see `RuntimeConfig::stream_restarts`).
    restarts: u32,
    /// The agent's model spec.
    spec: Arc<str>,
    /// The chain's targets as `provider/model` (budget reservations, compaction context).
    targets: Arc<[String]>,
    /// The first target's context size in tokens (compaction).
    context: u64,
    /// The last request sent, grown in place into the next one (see `next_request`).
    outgoing: Option<model::Outgoing>,
    /// The call in flight.
    call: Option<ModelCall>,
    /// Steering messages the request in flight carries (they join the transcript with the
    /// answer).
    steered_in_request: u32,
    compaction: Arc<CompactionCache>,
}

/// The tool side: calls waiting for a slot (with the policy decision that lets each run,
/// audited with its result) and calls running.
struct ToolSide {
    queued: VecDeque<(ToolCall, Decided)>,
    running: Vec<tools::Running>,
}

/// The run's deadlines.
struct Clock {
    started: Instant,
    timeout: Duration,
    hard: Pin<Box<Sleep>>,
    soft: Option<Pin<Box<Sleep>>>,
    /// Extensions granted by the critic.
    extensions: u32,
}

/// Cancels every model and tool call of the run when the run ends or its state is dropped
/// (finished, interrupted, aborted, unwound by a panic), so none outlives it.
struct TaskScope {
    token: CancellationToken,
    _stop: DropGuard,
}

/// The run's tracing spans (`run` > `step` > `model_call` / `tool_call`).
struct Trace {
    run: tracing::Span,
    step: tracing::Span,
    /// `gen_ai.conversation.id` when the request named one; the run id otherwise (not
    /// copied into every run: most runs have none).
    conversation: Option<Arc<str>>,
}

/// `gen_ai.conversation.id` of a run's spans: the request's conversation, or the run id.
pub(super) struct ConversationId<'a>(&'a Option<Arc<str>>, crate::ids::RunId);

impl std::fmt::Display for ConversationId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(id) => f.write_str(id),
            None => std::fmt::Display::fmt(&self.1, f),
        }
    }
}

impl Driver {
    /// The conversation id reported on the run's spans.
    pub(super) fn conversation(&self) -> ConversationId<'_> {
        ConversationId(&self.trace.conversation, self.st.run_id)
    }
}

impl Driver {
    fn new(args: RunArgs, slot: ActiveSlot) -> Self {
        let RunArgs { mut state, mut unsaved, env, control, resumed, deliver, conversation } = args;
        let conversation: Option<Arc<str>> = conversation.map(Into::into);
        let meta = RunMeta {
            run_id: state.run_id,
            agent: state.agent.name.clone(),
            identity: state.identity.clone(),
            parent: state.parent,
            created_ms: state.created_ms,
        };
        // Steering sent while the run was queued becomes facts now.
        for text in control.take_steering() {
            let fact = Fact::Steered { text };
            let payload = crate::checkpoint::encode(&fact);
            if state.apply_owned(fact).is_ok() {
                unsaved.push(payload);
            }
        }
        let chain = env.registry.chain(&state.agent.model);
        let timeout = state.agent.limits.timeout;
        let input: Arc<str> = Arc::from(
            state
                .messages
                .iter()
                .find(|m| m.role == executus_llm::Role::User)
                .map(Message::text)
                .unwrap_or_default(),
        );
        let token = control.cancel.child_token();
        // GenAI semantic conventions: `otel.name` is the span name an OpenTelemetry exporter
        // shows (`invoke_agent {agent}`); the tracing name stays `run`.
        let run = tracing::info_span!(
            parent: None,
            "run",
            otel.name = %format_args!("invoke_agent {}", state.agent.name),
            gen_ai.operation.name = "invoke_agent",
            gen_ai.conversation.id = %ConversationId(&conversation, state.run_id),
            run_id = %state.run_id,
            gen_ai.agent.name = %state.agent.name,
            gen_ai.request.model = %state.agent.model,
            resumed
        );
        let soft = state.agent.limits.soft_timeout.map(|soft| Box::pin(tokio::time::sleep(soft)));
        let spec: Arc<str> = Arc::from(state.agent.model.as_str());
        let mut d = Self {
            scope: TaskScope { _stop: token.clone().drop_guard(), token },
            st: state,
            env,
            control,
            meta,
            life: Lifecycle { resumed, deliver, finished: false, slot, unsaved, input },
            model: ModelSide {
                chain: None,
                restart: None,
                restarts: 0,
                spec,
                targets: Arc::from(Vec::new()),
                context: 0,
                outgoing: None,
                call: None,
                steered_in_request: 0,
                compaction: Arc::default(),
            },
            tools: ToolSide { queued: VecDeque::new(), running: Vec::new() },
            clock: Clock {
                started: Instant::now(),
                timeout,
                hard: Box::pin(tokio::time::sleep(timeout)),
                soft,
                extensions: 0,
            },
            critic: None,
            trace: Trace { run, step: tracing::Span::none(), conversation },
        };
        match chain {
            Ok(m) => {
                d.model.targets = m.targets().map(str::to_owned).collect();
                d.model.context =
                    crate::compaction::context_tokens(&d.env.config.compaction, &d.model.targets);
                d.model.chain = Some(Arc::new(m));
            }
            Err(e) => {
                d.st.end(RunEnd::Failed { error: format!("model spec {:?}: {e}", d.st.agent.model).into() })
            }
        }
        d
    }

    /// The run's start: its first facts saved durably (a crash cannot lose an admitted run),
    /// audited, then the first step.
    async fn start(&mut self) {
        let unsaved = std::mem::take(&mut self.life.unsaved);
        if !unsaved.is_empty() {
            let first = self.st.seq - unsaved.len() as u64;
            let entries = (first..).zip(unsaved).map(|(seq, payload)| Entry { seq, payload }).collect();
            if let Err(e) =
                self.env.checkpoint.save_entries(&self.meta, StoredStatus::Running, entries, true).await
            {
                tracing::warn!(run_id = %self.st.run_id, error = %e, "could not checkpoint run start");
            }
        }
        if self.audits() {
            self.audit(AuditEvent::RunStarted {
                model: self.st.agent.model.clone(),
                parent: self.st.parent,
                resumed: self.life.resumed,
            })
            .await;
        }
        self.advance().await;
    }

    /// Waits for the next thing to handle, in priority order: the inbox (cancel, steer,
    /// status, shutdown), the model call, tool calls, the critic, the deadlines.
    async fn next_event(&mut self) -> Event {
        let control = Arc::clone(&self.control);
        let mut woken = std::pin::pin!(control.woken());
        std::future::poll_fn(|cx| {
            if woken.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Woken);
            }
            self.poll_work(cx)
        })
        .await
    }

    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        if let Some(call) = &mut self.model.call
            && let Poll::Ready(result) = call.as_mut().poll(cx)
        {
            self.model.call = None;
            return Poll::Ready(Event::Model(result));
        }
        for i in 0..self.tools.running.len() {
            if let Poll::Ready(done) = self.tools.running[i].poll(cx) {
                self.tools.running.swap_remove(i);
                return Poll::Ready(match done {
                    Ok(done) => Event::Tool(done),
                    Err(lost) => Event::ToolLost(lost),
                });
            }
        }
        if let Some(critic) = &mut self.critic
            && let Poll::Ready((trigger, verdict)) = critic.as_mut().poll(cx)
        {
            self.critic = None;
            return Poll::Ready(Event::Critic(trigger, verdict));
        }
        if self.clock.hard.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Event::HardDeadline);
        }
        if let Some(soft) = &mut self.clock.soft
            && soft.as_mut().poll(cx).is_ready()
        {
            self.clock.soft = None;
            return Poll::Ready(Event::SoftDeadline);
        }
        Poll::Pending
    }

    async fn on_event(&mut self, event: Event) {
        match event {
            Event::Woken => self.on_woken().await,
            Event::Model(result) => self.model_done(result).await,
            Event::Tool(done) => self.tool_done(done).await,
            Event::ToolLost(error) => {
                self.st.end(RunEnd::Failed { error: format!("a tool call's task was lost: {error}").into() });
                self.finish().await;
            }
            Event::Critic(trigger, verdict) => Box::pin(self.critic_done(trigger, verdict)).await,
            Event::HardDeadline => {
                self.scope.token.cancel();
                let after = self.clock.started.elapsed().max(self.clock.timeout);
                self.st.end(RunEnd::TimedOut { after });
                self.finish().await;
            }
            Event::SoftDeadline => self.ask_critic(CriticTrigger::SoftDeadline),
        }
    }

    /// The inbox: a cancellation ends the run; steering becomes facts; status is answered.
    async fn on_woken(&mut self) {
        if self.control.cancel.is_cancelled() {
            self.scope.token.cancel();
            self.st.end(RunEnd::Cancelled);
            self.finish().await;
            return;
        }
        let (steering, status) = self.control.take_inbox();
        for reply in status {
            let _ = reply.send(self.status());
        }
        for text in steering {
            self.apply_and_save(Fact::Steered { text }, false).await;
        }
    }

    async fn model_done(&mut self, result: Result<Response, ModelFailure>) {
        match result {
            Ok(response) => {
                self.model.restarts = 0;
                // An answer with tool calls is saved durably before any call runs, so that
                // after a crash resume knows which calls may have been in flight.
                let durable = response.message.tool_calls().next().is_some();
                if self.control.listening() {
                    self.control.emit(RunEvent::ModelAnswered {
                        run_id: self.st.run_id,
                        provider: response.provider.clone(),
                        model: response.model.clone(),
                    });
                }
                let fact = Fact::Model {
                    message: response.message,
                    usage: response.usage,
                    finish: response.finish_reason,
                    provider: response.provider,
                    model: response.model,
                    steered: std::mem::take(&mut self.model.steered_in_request),
                };
                self.apply_and_save(fact, durable).await;
                self.advance().await;
            }
            Err(failure) => Box::pin(self.model_failed(failure)).await,
        }
    }

    /// A model call without an answer (rare: boxed out of every answer's handling).
    async fn model_failed(&mut self, failure: ModelFailure) {
        match failure {
            ModelFailure::Budget(denied) => {
                self.audit(AuditEvent::budget_denied(&denied)).await;
                self.st.end(RunEnd::BudgetDenied(denied));
            }
            ModelFailure::Cancelled => self.st.end(RunEnd::Cancelled),
            ModelFailure::MidStream(e)
                if e.kind == executus_llm::ErrorKind::Transient
                    && self.model.restarts < self.env.config.stream_restarts =>
            {
                self.restart_step(e).await;
                return;
            }
            ModelFailure::Model(e) | ModelFailure::MidStream(e) => {
                // The chain logs each failed attempt, but not an error that reaches a stream
                // after its first event: say why the run ends, once.
                tracing::warn!(error.type = e.kind.as_str(), error = %e, "model call failed; the run fails");
                self.st.end(RunEnd::Failed { error: e.into() });
            }
            ModelFailure::Panicked(message) => {
                self.st.end(RunEnd::Failed { error: format!("model call panicked: {message}").into() });
            }
        }
        self.finish().await;
    }

    async fn tool_done(&mut self, done: tools::Done) {
        let tools::Done { result, latency, decided, images } = done;
        if self.control.listening() {
            self.control.emit(RunEvent::ToolFinished {
                run_id: self.st.run_id,
                call_id: result.id.clone(),
                name: result.name.clone(),
                is_error: result.is_error,
            });
        }
        // The policy decision made before execution, audited with the outcome.
        if self.audits() {
            self.audit_tool(&result, decided.decision, decided.rule, decided.reason, latency).await;
        }
        if !images.is_empty() {
            let fact = Fact::ToolImages { call_id: result.id.clone(), images };
            self.apply_and_save(fact, false).await;
        }
        self.apply_and_save(Fact::ToolResult { result, blocked: false }, true).await;
        self.pump_tools();
        if self.tools.running.is_empty() && self.tools.queued.is_empty() {
            self.advance().await;
        }
    }

    /// The critic's verdict. Rare, so boxed out of every event's handling.
    async fn critic_done(&mut self, trigger: CriticTrigger, verdict: Verdict) {
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
                self.scope.token.cancel();
                self.st.end(RunEnd::Stopped { reason: format!("aborted by critic: {reason}") });
                self.finish().await;
            }
            (CriticTrigger::MaxSteps, Verdict::Extend { steps, .. }) if steps > 0 => {
                self.clock.extensions += 1;
                self.apply_and_save(Fact::Extended { steps }, false).await;
                self.advance().await;
            }
            (CriticTrigger::MaxSteps, _) => {
                self.st.end(RunEnd::MaxSteps { steps: self.st.step });
                self.finish().await;
            }
            (CriticTrigger::SoftDeadline, Verdict::Extend { time, .. }) => {
                self.clock.extensions += 1;
                self.clock.timeout += time;
                let deadline = self.clock.started + self.clock.timeout;
                self.clock.hard.as_mut().reset(deadline);
                // Review again once the extension is half used.
                self.clock.soft = Some(Box::pin(tokio::time::sleep(time / 2)));
                // The loop waited while the critic was out; pick it up again.
                self.advance().await;
            }
            (CriticTrigger::SoftDeadline, _) => self.advance().await,
        }
    }

    fn status(&self) -> RunSnapshot {
        RunSnapshot {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            phase: match (&self.st.end, self.st.phase) {
                (Some(end), _) => RunPhase::Ended(end.status()),
                (None, super::machine::Phase::Tools) => RunPhase::Tools,
                (None, _) => RunPhase::Model,
            },
            step: self.st.step,
            usage: self.st.usage,
            elapsed: self.clock.started.elapsed(),
        }
    }

    /// Whether anyone keeps audit records (events are not even built otherwise).
    fn audits(&self) -> bool {
        self.env.ports.audit.wants_records()
    }

    async fn audit(&mut self, event: AuditEvent) {
        if !self.audits() {
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
        &mut self,
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
        // Encoded first: then the fact moves into the state rather than being copied.
        let entry = Entry { seq, payload: crate::checkpoint::encode(&fact) };
        if let Err(e) = self.st.apply_owned(fact) {
            self.st.end(RunEnd::Failed { error: format!("internal: {e}").into() });
            return;
        }
        let awaiting = self.st.calls.iter().any(|s| s.result.is_none() && s.approval == Approval::Pending);
        let status = if awaiting { StoredStatus::AwaitingApproval } else { StoredStatus::Running };
        if let Err(e) = self.env.checkpoint.save_entries(&self.meta, status, vec![entry], durable).await {
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

    async fn advance(&mut self) {
        if self.model.call.is_some()
            || !self.tools.running.is_empty()
            || self.critic.is_some()
            || self.life.finished
        {
            return;
        }
        if self.control.cancel.is_cancelled() {
            // Cancelled from outside; cancelled tool calls report back first: start nothing
            // new.
            self.st.end(RunEnd::Cancelled);
            self.finish().await;
            return;
        }
        match self.st.next_action() {
            Action::Done => self.finish().await,
            Action::StepCapReached => self.ask_critic(CriticTrigger::MaxSteps),
            Action::CallModel { tools } => self.start_model(tools),
            Action::CallTools(calls) => {
                let listening = self.control.listening();
                // Exactly as many as this step needs (most steps call one or two tools): the
                // queue is kept for the run's life, and a default growth holds four slots.
                self.tools.queued.reserve_exact(calls.len());
                for call in calls {
                    if listening {
                        self.control
                            .emit(RunEvent::ToolStarted { run_id: self.st.run_id, call: call.clone() });
                    }
                    if let Some(call) = self.check_call(call).await {
                        self.tools.queued.push_back(call);
                    }
                    if self.st.is_ended() {
                        self.finish().await;
                        return;
                    }
                }
                self.pump_tools();
                if self.tools.running.is_empty() && self.tools.queued.is_empty() {
                    // Every call was settled without execution (refused, blocked, awaiting
                    // approval): move on.
                    Box::pin(self.advance()).await;
                }
            }
            Action::AwaitApproval(calls) => {
                let ids: Vec<String> = calls.iter().map(|c| c.id.clone()).collect();
                self.st.end(RunEnd::AwaitingApproval { calls: ids });
                self.finish().await;
            }
        }
    }

    fn ask_critic(&mut self, trigger: CriticTrigger) {
        if self.critic.is_some() {
            return;
        }
        let review = CriticReview {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            identity: self.st.identity.clone(),
            trigger,
            step: self.st.step,
            elapsed: self.clock.started.elapsed(),
            extensions: self.clock.extensions,
            recent: self.st.messages.iter().rev().take(8).rev().cloned().collect(),
        };
        let critic = self.env.ports.critic.clone();
        // A task of its own, as the model and tools' slow parts: a critic that blocks must
        // not hold the run's loop.
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let verdict =
                AssertUnwindSafe(critic.review(review)).catch_unwind().await.unwrap_or(Verdict::Continue);
            let _ = tx.send(verdict);
        });
        self.critic = Some(Box::pin(async move { (trigger, rx.await.unwrap_or(Verdict::Continue)) }));
    }

    /// Publishes the outcome, settles the checkpoint, audits, delivers, stops.
    ///
    /// Boxed: it runs once per run, and inline its future would grow every event's handling.
    async fn finish(&mut self) {
        Box::pin(self.finish_now()).await;
    }

    async fn finish_now(&mut self) {
        if self.life.finished {
            return;
        }
        self.life.finished = true;
        self.scope.token.cancel();
        let end =
            self.st.end.clone().unwrap_or(RunEnd::Failed { error: "run ended without a reason".into() });
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
        let output = self.st.last_text();
        if self.audits() {
            self.audit(AuditEvent::RunEnded {
                status: end.status(),
                reason: end.reason(),
                steps: self.st.step,
                usage: self.st.usage,
            })
            .await;
        }
        if self.life.deliver {
            let item = DeliveryItem {
                run_id: self.st.run_id,
                agent: self.st.agent.name.clone(),
                identity: self.st.identity.clone(),
                status: end.status(),
                output: output.clone(),
            };
            self.env.deliver(item).await;
        }
        if self.st.parent.is_none() {
            // Frees the dispatch tree this root may have grown (a no-op otherwise).
            self.env.dispatch.finish_root(self.st.run_id).await;
        }
        if self.control.listening() {
            self.control.emit(RunEvent::Ended { run_id: self.st.run_id, end: end.clone() });
        }
        // The run is over: its transcript moves into the outcome (status answers keep the
        // step and usage).
        let outcome = RunOutcome {
            run_id: self.st.run_id,
            agent: self.st.agent.name.clone(),
            output,
            typed: self.st.typed.take(),
            messages: std::mem::take(&mut self.st.messages),
            steps: self.st.step,
            usage: self.st.usage,
            end,
        };
        self.control.close();
        self.life.slot.release();
        self.control.set_outcome(outcome);
    }
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
