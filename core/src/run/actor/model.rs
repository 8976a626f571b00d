//! The model call of a step: attempt attribution, request preparation (attachment
//! de-duplication, compaction), budget reserve and settle, streaming with text-delta events.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use executus_llm::{Message, Model, Request, Response, StreamEvent, Usage};
use futures::FutureExt;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{ModelFailure, RunActorState, RunMsg, panic_message};
use crate::compaction::{
    AttachmentsSeen, CompactionCache, compact, context_tokens, dedup_attachments_from, needs_compaction,
};
use crate::meta::MetaLlm;
use crate::ports::{AuditEvent, AuditRecord, SpendRequest};
use crate::run::attempts::AttemptLog;
use crate::run::env::RunEnv;
use crate::run::events::RunEvent;
use crate::run::handle::RunControl;

impl RunActorState {
    pub(super) fn start_model(&mut self, myself: &ActorRef<RunMsg>, with_tools: bool) {
        let Some(model) = self.restart_model.take().or_else(|| self.model.clone()) else { return };
        let request = self.next_request(with_tools);
        let targets = self.targets.clone();
        let step = self.st.step + 1;
        self.model_in_flight = true;
        self.steered_in_request = u32::try_from(self.st.steering.len()).unwrap_or(u32::MAX);
        self.control.emit(RunEvent::StepStarted { run_id: self.st.run_id, step });
        let env = self.env.clone();
        let control = self.control.clone();
        let cancel = self.tasks.clone();
        let me = myself.clone();
        let identity = self.st.identity.clone();
        let agent = self.st.agent.name.clone();
        let spec = self.st.agent.model.clone();
        let run_id = self.st.run_id;
        let cache = self.compaction.clone();
        self.step_span = tracing::info_span!(parent: &self.span, "step", step);
        let span = tracing::info_span!(
            parent: &self.step_span,
            "model_call",
            otel.name = %format_args!("chat {spec}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.conversation.id = %self.conversation,
            gen_ai.request.model = %spec,
            gen_ai.provider.name = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.input.messages = tracing::field::Empty,
            gen_ai.output.messages = tracing::field::Empty,
            step
        );
        let recorded = span.clone();
        tokio::spawn(
            async move {
                let span = recorded;
                let content = crate::semconv::capture_content() && !span.is_disabled();
                if content {
                    let input = serde_json::to_string(&request.messages).unwrap_or_default();
                    span.record("gen_ai.input.messages", input.as_str());
                }
                let (chain, log) = AttemptLog::attach_run(&model, control.clone(), run_id, step);
                let model: Arc<dyn Model> = Arc::new(chain);
                // A panic in the model, the budget, the compactor or the audit sink must still
                // answer the actor, or the run would wait for its timeout.
                let work = async {
                    let (request, compaction) = prepare(&env, request, &spec, &targets, &cache).await;
                    if let Some(event) = compaction {
                        let record = AuditRecord::now(Some(run_id), identity.clone(), Some(agent.clone()), event);
                        env.ports.audit.record(record).await;
                    }
                    call_model(&env, &control, &model, request, run_id, &identity, &targets, cancel).await
                };
                let result = AssertUnwindSafe(work)
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| Err(ModelFailure::Panicked(panic_message(&panic))));
                let (usage, answered) = match &result {
                    Ok(r) => {
                        if content {
                            let output = serde_json::to_string(&r.message).unwrap_or_default();
                            span.record("gen_ai.output.messages", output.as_str());
                        }
                        if !span.is_disabled() {
                            span.record("gen_ai.provider.name", r.provider.as_str());
                            let finish = serde_json::to_value(&r.finish_reason).unwrap_or_default();
                            span.record("gen_ai.response.finish_reasons", format!("[{finish}]").as_str());
                        }
                        (r.usage, r.model.clone())
                    }
                    Err(_) => (Usage::default(), String::new()),
                };
                span.record("gen_ai.response.model", answered.as_str());
                // As i64: OpenTelemetry has no unsigned integers (a u64 would export as text).
                span.record("gen_ai.usage.input_tokens", i64::try_from(usage.input_tokens).unwrap_or(i64::MAX));
                span.record("gen_ai.usage.output_tokens", i64::try_from(usage.output_tokens).unwrap_or(i64::MAX));
                // Audit rows for the call's attempts and failovers, unless nobody keeps them.
                if env.ports.audit.wants_records() {
                    let broke = match &result {
                        Err(ModelFailure::MidStream(e)) => Some(e.to_string()),
                        _ => None,
                    };
                    let mut events = log.audit_events(step, usage, std::time::Instant::now(), broke);
                    if let Err(ModelFailure::Panicked(message)) = &result {
                        events.push(AuditEvent::ModelCall {
                            step,
                            provider: String::new(),
                            model: spec.clone(),
                            attempt: 0,
                            latency_ms: 0,
                            usage: Usage::default(),
                            error: Some(format!("panicked: {message}")),
                        });
                    }
                    for event in events {
                        let record =
                            AuditRecord::now(Some(run_id), identity.clone(), Some(agent.clone()), event);
                        let recorded = AssertUnwindSafe(env.ports.audit.record(record)).catch_unwind().await;
                        if let Err(panic) = recorded {
                            tracing::error!(run_id = %run_id, panic = %panic_message(&panic), "audit sink panicked");
                        }
                    }
                }
                let _ = me.send_message(RunMsg::ModelDone(result));
            }
            .instrument(span),
        );
    }
}

/// The request of the last model call, kept so the next one is built by appending the
/// transcript's new messages instead of copying the whole transcript (and every tool schema)
/// at every step. The call borrows it through an `Arc`; by the time the next step builds its
/// request the call has dropped its reference, so growing it in place copies nothing.
pub(super) struct Outgoing {
    request: Arc<Request>,
    /// How many of the state's messages `request.messages` starts with (what follows them
    /// is steering and the loop-protection instruction, rebuilt every time).
    base: usize,
    /// Attachments in those messages (de-duplication sees each message once).
    seen: AttachmentsSeen,
}

impl RunActorState {
    /// The request for the next model call: the header, the transcript, then pending
    /// steering and any loop-protection instruction — the same as `RunState::request` with
    /// repeated attachments referenced (debug builds check exactly that).
    pub(super) fn next_request(&mut self, with_tools: bool) -> Arc<Request> {
        // The specs do not change during a run (the registry is immutable, the agent's
        // allowlist fixed at start): computed once, copied into a request only when offered
        // after having been withheld.
        let specs: &[executus_llm::ToolSpec] = if with_tools {
            let (env, allowed) = (&self.env, &self.st.agent.tools);
            self.tool_specs.get_or_insert_with(|| env.tools.specs(allowed))
        } else {
            &[]
        };
        let st = &self.st;
        let fresh =
            || Outgoing { request: Arc::new(st.request_header()), base: 0, seen: AttachmentsSeen::default() };
        // The transcript only grows; were it ever shorter than what was sent, start over.
        let out = match self.outgoing.take() {
            Some(out) if out.base <= st.messages.len() => self.outgoing.insert(out),
            _ => self.outgoing.insert(fresh()),
        };
        let request = Arc::make_mut(&mut out.request);
        request.messages.truncate(out.base);
        request.messages.extend_from_slice(&st.messages[out.base..]);
        dedup_attachments_from(request, out.base, &mut out.seen);
        out.base = st.messages.len();
        if specs.is_empty() {
            request.tools.clear();
        } else if request.tools.is_empty() {
            request.tools = specs.to_vec();
        }
        st.finish_request(request);
        #[cfg(debug_assertions)]
        {
            let mut expected = st.request(specs.to_vec());
            crate::compaction::dedup_attachments(&mut expected);
            debug_assert!(*out.request == expected, "the request grown in place differs from the state's");
        }
        out.request.clone()
    }

    /// Re-issues the current step's model call after its stream broke past the first event
    /// (the chain could not fail over: the caller had seen output). The new call skips the
    /// target that broke when the chain has another — a move audited as a failover — and
    /// watchers are told to discard the step's text so far.
    pub(super) async fn restart_step(&mut self, myself: &ActorRef<RunMsg>, error: executus_llm::Error) {
        self.restarts += 1;
        let (run_id, step) = (self.st.run_id, self.st.step + 1);
        let broke = error.target();
        let elsewhere = self.model.as_ref().and_then(|m| m.without(&broke));
        let next = elsewhere.as_ref().and_then(|c| c.targets().next()).map(str::to_owned);
        tracing::warn!(
            parent: &self.span,
            error.type = error.kind.as_str(),
            error = %error,
            target = %broke,
            next = next.as_deref().unwrap_or(&broke.to_string()),
            restart = self.restarts,
            "model call failed after its first event; the step is re-issued{}",
            if next.is_some() { " on the next target (failover)" } else { "" }
        );
        let error = error.to_string();
        self.control.emit(RunEvent::StepRestarted {
            run_id,
            step,
            target: broke.to_string(),
            error: error.clone(),
        });
        if let Some(to) = next {
            let failover = RunEvent::Failover {
                run_id,
                step,
                from: broke.to_string(),
                to: to.clone(),
                error: error.clone(),
            };
            self.control.emit(failover);
            self.audit(AuditEvent::Failover { from: broke.to_string(), to, error }).await;
        }
        self.restart_model = elsewhere.map(Arc::new);
        self.advance(myself).await;
    }
}

/// What is sent differs from what is kept: an over-budget request is compacted (see
/// [`crate::compaction`]) — on a copy, so the shared request stays the transcript's.
/// (Repeated attachments were referenced when the request was built.)
async fn prepare(
    env: &RunEnv,
    request: Arc<Request>,
    spec: &str,
    targets: &[String],
    cache: &CompactionCache,
) -> (Arc<Request>, Option<AuditEvent>) {
    let settings = &env.config.compaction;
    let context = context_tokens(settings, targets);
    if !needs_compaction(&request, settings, context) {
        return (request, None);
    }
    let summary_spec = settings.summary_model.clone().unwrap_or_else(|| spec.to_owned());
    let meta = || MetaLlm::new(&env.registry, &summary_spec).ok();
    let (compacted, event) = compact(Request::clone(&request), settings, context, meta, cache).await;
    (Arc::new(compacted), event)
}

/// Budget reserve -> model call through the chain -> budget settle.
#[allow(clippy::too_many_arguments)]
async fn call_model(
    env: &RunEnv,
    control: &RunControl,
    model: &Arc<dyn Model>,
    request: Arc<Request>,
    run_id: crate::ids::RunId,
    identity: &crate::identity::Identity,
    targets: &[String],
    cancel: CancellationToken,
) -> Result<Response, ModelFailure> {
    let spend = SpendRequest {
        run_id,
        identity: identity.clone(),
        targets: targets.to_vec(),
        input_tokens: estimate_tokens(&request),
        max_output_tokens: u64::from(request.max_tokens.unwrap_or(4096)),
    };
    let reservation = env.ports.budget.reserve(&spend).await.map_err(ModelFailure::Budget)?;
    let call = async {
        if env.config.streaming {
            let stream = model.stream_ref(&request).await.map_err(ModelFailure::Model)?;
            // The chain has committed to this target: an error now is past the first event.
            executus_llm::stream::drive(stream, |event| {
                if let StreamEvent::TextDelta { text } = event {
                    control.emit(RunEvent::TextDelta { run_id, text: text.clone() });
                }
                Ok::<(), std::convert::Infallible>(())
            })
            .await
            .map_err(|e| match e {
                executus_llm::DriveError::Stream(f) => ModelFailure::MidStream(f.error),
                executus_llm::DriveError::Callback { error, .. } => match error {},
            })
        } else {
            model.generate_ref(&request).await.map_err(ModelFailure::Model)
        }
    };
    let result = tokio::select! {
        // A cancelled run never takes an answer that raced with its cancellation.
        biased;
        () = cancel.cancelled() => Err(ModelFailure::Cancelled),
        // A panicking model still releases its reservation below.
        r = AssertUnwindSafe(call).catch_unwind() => match r {
            Ok(r) => r,
            Err(panic) => Err(ModelFailure::Panicked(panic_message(&panic))),
        },
    };
    let (usage, provider, answered) = match &result {
        Ok(r) => (r.usage, r.provider.as_str(), r.model.as_str()),
        Err(_) => (Usage::default(), "", ""),
    };
    env.ports.budget.settle(reservation, &usage, provider, answered).await;
    result
}

/// A rough token estimate (4 characters per token) for budget reservations and compaction.
pub(crate) fn estimate_tokens(request: &Request) -> u64 {
    let mut chars = request.system.as_ref().map_or(0, String::len);
    for m in &request.messages {
        chars += message_chars(m);
    }
    for t in &request.tools {
        chars += t.name.len() + t.description.len() + json_len(&t.parameters);
    }
    (chars as u64).div_ceil(4)
}

pub(crate) fn message_chars(m: &Message) -> usize {
    use executus_llm::Part;
    m.parts
        .iter()
        .map(|p| match p {
            Part::Text { text } => text.len(),
            Part::Image { .. } => 3000,
            Part::ToolCall(c) => c.name.len() + json_len(&c.args),
            Part::ToolResult(r) => r.content.len(),
        })
        .sum()
}

/// The length of a value's compact JSON text, counted without building the text (this runs
/// for every message and tool of every step).
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
