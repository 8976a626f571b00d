//! One client turn upstream: the upstream call (and the continuation a completion gate may
//! add), its events reviewed by the policy and handed to a [`Sink`] — the client's SSE stream,
//! or a collector for a whole answer.
//!
//! Guarantees:
//! - text and reasoning deltas are passed on as they arrive; a tool call is passed on only
//!   once complete and reviewed; blocked calls become one explanation text, and the turn's
//!   finish reason says whether any call reached the client;
//! - a finalize turn never hands the client a tool call (the model was given none): calls it
//!   makes anyway are dropped and count as the guard's `finalize_ignored`;
//! - usage of every upstream call of the turn is summed into one usage event before the end;
//! - an upstream stream that breaks before anything of it reached the client is re-issued
//!   once on the chain without the target that broke; otherwise the sink gets the dialect's
//!   error event. Upstream silence longer than the idle timeout, a shutdown past its grace,
//!   and a client that stops reading for as long all end the turn.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus::Identity;
use executus::ids::RunId;
use executus::ports::{AuditEvent, Reservation};
use executus_llm::chain::{ChainEvent, ChainObserver};
use executus_llm::server::{ApiError, ErrorClass};
use executus_llm::stream::response_to_stream;
use executus_llm::{
    Chain, EventStream, FinishReason, Message, Model, Part, Request, Response, Role, StreamEvent, ToolCall,
    Usage,
};
use futures::StreamExt;

use crate::Shared;
use crate::review::{CallVerdict, Reviewer, blocked_text};
use crate::session::SessionId;

/// Records who answered and counts failovers, then hands each event to the registry's own
/// observer.
pub(crate) struct TurnObserver {
    served: Mutex<Option<String>>,
    shared: Arc<Shared>,
    inner: Arc<dyn ChainObserver>,
}

impl TurnObserver {
    pub(crate) fn new(shared: Arc<Shared>, inner: Arc<dyn ChainObserver>) -> Arc<Self> {
        Arc::new(Self { served: Mutex::new(None), shared, inner })
    }

    /// The `provider/model` that answered last.
    pub(crate) fn served(&self) -> Option<String> {
        self.served.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

impl ChainObserver for TurnObserver {
    fn on_event(&self, event: &ChainEvent) {
        match event {
            ChainEvent::Success { target, latency } => {
                self.shared.metrics.upstream(target, *latency);
                *self.served.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(target.clone());
            }
            ChainEvent::Failover { from, to, error } => {
                self.shared.metrics.failover();
                tracing::warn!(target: "executus_gateway", from = %from, to = %to, error = %error, "failover");
            }
            _ => {}
        }
        self.inner.on_event(event);
    }
}

/// Where a turn's events go (a turn is generic over it: no boxed future per event).
pub(crate) trait Sink: Send {
    /// One event; false when the client is gone.
    fn event(&mut self, event: StreamEvent) -> impl Future<Output = bool> + Send;
    /// Ends the turn with an error.
    fn fail(&mut self, error: ApiError) -> impl Future<Output = ()> + Send;
}

/// Collects a whole answer (non-streaming clients).
#[derive(Default)]
pub(crate) struct Collect {
    parts: Vec<Part>,
    usage: Usage,
    done: Option<(FinishReason, String, String)>,
    pub(crate) error: Option<ApiError>,
}

impl Collect {
    /// The answer, once the turn ended without an error.
    pub(crate) fn response(self) -> Result<Response, ApiError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let Some((finish_reason, provider, model)) = self.done else {
            return Err(ApiError::new(ErrorClass::BadGateway, "the upstream answer ended early"));
        };
        Ok(Response {
            message: Message { role: Role::Assistant, parts: self.parts },
            usage: self.usage,
            finish_reason,
            provider,
            model,
        })
    }
}

impl Sink for Collect {
    async fn event(&mut self, event: StreamEvent) -> bool {
        match event {
            StreamEvent::TextDelta { text } => match self.parts.last_mut() {
                Some(Part::Text { text: last }) => last.push_str(&text),
                _ => self.parts.push(Part::Text { text }),
            },
            StreamEvent::ToolCall { call } => self.parts.push(Part::ToolCall(call)),
            StreamEvent::Usage { usage } => self.usage = usage,
            StreamEvent::Done { finish_reason, provider, model } => {
                self.done = Some((finish_reason, provider, model))
            }
            StreamEvent::ReasoningDelta { .. } | StreamEvent::ToolCallDelta { .. } => {}
        }
        true
    }

    async fn fail(&mut self, error: ApiError) {
        self.error = Some(error);
    }
}

/// How a turn went, for the budget, metrics and logs.
#[derive(Debug, Default)]
pub(crate) struct TurnEnd {
    pub(crate) usage: Usage,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) error: Option<ApiError>,
}

/// One client turn.
pub(crate) struct Turn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) chain: Chain,
    pub(crate) observer: Arc<TurnObserver>,
    pub(crate) request: Request,
    pub(crate) finalize: bool,
    pub(crate) stream: bool,
    pub(crate) identity: Identity,
    pub(crate) session: SessionId,
    pub(crate) profile: Option<String>,
    pub(crate) run_id: RunId,
    pub(crate) reservation: Option<Reservation>,
}

impl Turn {
    /// Opens an upstream call: streamed for a streaming client, whole otherwise (replayed as
    /// events). Failover happens in here, before anything reaches the client.
    pub(crate) async fn open(
        &self,
        chain: &Chain,
        request: &Request,
    ) -> Result<EventStream, executus_llm::Error> {
        if self.stream {
            chain.stream_ref(request).await
        } else {
            chain.generate_ref(request).await.map(response_to_stream)
        }
    }

    fn reviewer(&self) -> Reviewer<'_> {
        Reviewer {
            shared: &self.shared,
            profile: self.profile.as_deref(),
            identity: &self.identity,
            session: &self.session.id,
            run_id: self.run_id,
        }
    }

    /// Runs the turn from its first upstream stream to the end, then settles the budget.
    pub(crate) async fn run(mut self, first: EventStream, sink: &mut impl Sink) -> TurnEnd {
        let end = self.drive(first, sink).await;
        if let Some(reservation) = self.reservation.take() {
            self.shared.budget.settle(reservation, &end.usage, &end.provider, &end.model).await;
        }
        self.shared.metrics.tokens(end.usage.input_tokens, end.usage.output_tokens);
        end
    }

    async fn drive(&mut self, first: EventStream, sink: &mut impl Sink) -> TurnEnd {
        let idle = self.shared.config.idle_timeout;
        let grace = self.shared.config.shutdown_grace;
        let shutdown = self.shared.shutdown.clone();
        let stopping = async move {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::pin!(stopping);

        let mut end = TurnEnd::default();
        let mut chain = self.chain.clone();
        let mut current = first;
        let mut restarts = 1u32;
        let mut forwarded = false;
        let mut text = String::new();
        let mut call_usage = Usage::default();
        let mut passed: Vec<ToolCall> = Vec::new();
        let mut blocked: Vec<(ToolCall, String)> = Vec::new();
        let mut dropped = 0usize;
        loop {
            let item = tokio::select! {
                biased;
                () = &mut stopping => {
                    let error = ApiError::new(ErrorClass::Unavailable, "the gateway is shutting down");
                    sink.fail(error.clone()).await;
                    end.error = Some(error);
                    return end;
                }
                item = executus_llm::clock::within(idle, current.next()) => item,
            };
            let item = match item {
                Err(_) => Err(ApiError::new(
                    ErrorClass::BadGateway,
                    format!("the upstream sent nothing for {}", humantime_secs(idle)),
                )),
                Ok(None) => Err(ApiError::new(
                    ErrorClass::BadGateway,
                    "the upstream stream ended before its end event",
                )),
                Ok(Some(Err(error))) => {
                    let broke = self.observer.served();
                    let reissue = error.is_transient() && !forwarded && restarts > 0;
                    if let Some(next) = broke
                        .filter(|_| reissue)
                        .and_then(|target| target.parse::<executus_llm::Target>().ok())
                        .and_then(|target| chain.without(&target))
                    {
                        restarts -= 1;
                        tracing::warn!(target: "executus_gateway", sess = %self.session.id, %error, "upstream stream broke before any output reached the client; re-issuing");
                        chain = next;
                        match self.open(&chain, &self.request).await {
                            Ok(stream) => {
                                current = stream;
                                continue;
                            }
                            Err(error) => Err(ApiError::from_llm(&error)),
                        }
                    } else {
                        Err(ApiError::from_llm(&error))
                    }
                }
                Ok(Some(Ok(event))) => Ok(event),
            };
            let event = match item {
                Ok(event) => event,
                Err(error) => {
                    sink.fail(error.clone()).await;
                    end.error = Some(error);
                    return end;
                }
            };
            match event {
                StreamEvent::TextDelta { text: delta } => {
                    if delta.is_empty() {
                        continue;
                    }
                    text.push_str(&delta);
                    forwarded = true;
                    if !sink.event(StreamEvent::TextDelta { text: delta }).await {
                        return gone(end);
                    }
                }
                StreamEvent::ReasoningDelta { text: delta } => {
                    forwarded = true;
                    if !sink.event(StreamEvent::ReasoningDelta { text: delta }).await {
                        return gone(end);
                    }
                }
                StreamEvent::ToolCallDelta { .. } => {}
                StreamEvent::ToolCall { call } => {
                    if self.finalize {
                        dropped += 1;
                        continue;
                    }
                    match self.reviewer().call(call).await {
                        CallVerdict::Pass(call) => {
                            forwarded = true;
                            passed.push(call.clone());
                            if !sink.event(StreamEvent::ToolCall { call }).await {
                                return gone(end);
                            }
                        }
                        CallVerdict::Blocked { call, reason } => blocked.push((call, reason)),
                    }
                }
                StreamEvent::Usage { usage } => executus_llm::stream::merge_usage(&mut call_usage, &usage),
                StreamEvent::Done { finish_reason, provider, model } => {
                    end.usage.add(&std::mem::take(&mut call_usage));
                    end.provider = provider.clone();
                    end.model = model.clone();
                    if dropped > 0 {
                        self.finalize_ignored().await;
                        if text.trim().is_empty() && !sink.event(text_event(executus::loops::WITHHELD)).await
                        {
                            return gone(end);
                        }
                    }
                    if !blocked.is_empty() {
                        if passed.is_empty() {
                            self.observe_blocked(&blocked).await;
                        }
                        let explanation = if text.is_empty() {
                            blocked_text(&blocked)
                        } else {
                            format!("\n\n{}", blocked_text(&blocked))
                        };
                        if !sink.event(text_event(&explanation)).await {
                            return gone(end);
                        }
                    }
                    let natural_end = passed.is_empty() && blocked.is_empty() && !self.finalize;
                    if natural_end
                        && finish_reason == FinishReason::Stop
                        && let Some(continued) = self.hold_open(&text).await
                    {
                        match self.open(&chain, &continued).await {
                            Ok(stream) => {
                                self.request = continued;
                                current = stream;
                                forwarded = false;
                                restarts = 1;
                                text.clear();
                                continue;
                            }
                            Err(error) => {
                                let error = ApiError::from_llm(&error);
                                sink.fail(error.clone()).await;
                                end.error = Some(error);
                                return end;
                            }
                        }
                    }
                    let finish = if !passed.is_empty() {
                        FinishReason::ToolCalls
                    } else if finish_reason == FinishReason::ToolCalls {
                        FinishReason::Stop
                    } else {
                        finish_reason
                    };
                    let usage = end.usage;
                    if !sink.event(StreamEvent::Usage { usage }).await {
                        return gone(end);
                    }
                    sink.event(StreamEvent::Done { finish_reason: finish, provider, model }).await;
                    return end;
                }
            }
        }
    }

    /// The continuation request when a completion gate holds the turn open (and the session
    /// is under its hard cap), after auditing it.
    async fn hold_open(&self, text: &str) -> Option<Request> {
        let reviewer = self.reviewer();
        let gate = reviewer.unmet_gate(&self.request.messages, &[])?;
        let settings = self.shared.config.loops;
        let allowed = self
            .shared
            .with_session(self.session.store_key(), |state| {
                if state.may_continue(&settings) {
                    state.count_continuation();
                    (true, true)
                } else {
                    (false, false)
                }
            })
            .await;
        match allowed {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(target: "executus_gateway", sess = %self.session.id, gate = %gate.id, "completion gate not enforced: the session reached its finalize hard cap");
                return None;
            }
            Err(error) => {
                tracing::error!(target: "executus_gateway", sess = %self.session.id, %error, "session store failed; the turn ends as the model ended it");
                return None;
            }
        }
        reviewer.gate_held(gate).await;
        let mut continued = self.request.clone();
        if !text.is_empty() {
            continued.messages.push(Message::assistant(text));
        }
        continued.messages.push(Message::user(format!("[executus] Before you finish: {}", gate.hint)));
        Some(continued)
    }

    async fn finalize_ignored(&self) {
        let settings = self.shared.config.loops;
        let trigger = self
            .shared
            .with_session(self.session.store_key(), |state| (state.finalize_ignored(&settings), true))
            .await;
        match trigger {
            Ok(trigger) => self.announce(&trigger).await,
            Err(error) => {
                tracing::error!(target: "executus_gateway", sess = %self.session.id, %error, "session store failed")
            }
        }
    }

    async fn observe_blocked(&self, blocked: &[(ToolCall, String)]) {
        let settings = self.shared.config.loops;
        let trigger = self
            .shared
            .with_session(self.session.store_key(), |state| (state.observe_blocked(blocked, &settings), true))
            .await;
        match trigger {
            Ok(Some(trigger)) => self.announce(&trigger).await,
            Ok(None) => {}
            Err(error) => {
                tracing::error!(target: "executus_gateway", sess = %self.session.id, %error, "session store failed")
            }
        }
    }

    /// Logs, counts and audits a loop-protection trigger.
    pub(crate) async fn announce(&self, trigger: &executus::loops::LoopTrigger) {
        announce(&self.shared, &self.reviewer(), trigger).await;
    }
}

/// Logs, counts and audits a loop-protection trigger of a session.
pub(crate) async fn announce(
    shared: &Shared,
    reviewer: &Reviewer<'_>,
    trigger: &executus::loops::LoopTrigger,
) {
    shared.metrics.trigger(trigger.kind.as_str(), trigger.action.as_str());
    tracing::warn!(
        target: "executus_gateway",
        sess = %reviewer.session,
        trigger = trigger.kind.as_str(),
        action = trigger.action.as_str(),
        detail = %trigger.detail,
        "loop protection"
    );
    reviewer
        .audit(AuditEvent::LoopProtection {
            trigger: trigger.kind,
            detail: format!("sess={}: {}", reviewer.session, trigger.detail),
            action: trigger.action,
        })
        .await;
}

fn text_event(text: &str) -> StreamEvent {
    StreamEvent::TextDelta { text: text.to_owned() }
}

fn gone(mut end: TurnEnd) -> TurnEnd {
    end.error = Some(ApiError::new(ErrorClass::InvalidRequest, "the client went away"));
    end
}

fn humantime_secs(d: Duration) -> String {
    format!("{:.0}s", d.as_secs_f64())
}

/// The answer a [`crate::guard::Plan::Stop`] gives: a tool-free end of turn.
pub(crate) fn stop_events(reason: &str) -> Vec<StreamEvent> {
    vec![
        text_event(&format!("[executus] {reason}. Stopping here.")),
        StreamEvent::Usage { usage: Usage::default() },
        StreamEvent::Done {
            finish_reason: FinishReason::Stop,
            provider: "executus".into(),
            model: "loop-guard".into(),
        },
    ]
}
