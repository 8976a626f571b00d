//! The model call of a step: attempt attribution, request preparation (attachment
//! de-duplication, compaction), budget reserve and settle, streaming with text-delta events.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use executus_llm::{Message, Model, Request, Response, StreamEvent, Usage};
use futures::FutureExt;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{Driver, ModelFailure, panic_message};
use crate::compaction::{AttachmentsSeen, CompactionCache, compact, dedup_attachments_from};
use crate::meta::MetaLlm;
use crate::ports::{AuditEvent, AuditRecord, SpendRequest};
use crate::run::attempts::AttemptLog;
use crate::run::env::RunEnv;
use crate::run::events::RunEvent;
use crate::run::handle::RunControl;

impl Driver {
    /// Starts the step's model call: a future the loop polls (see [`Driver::next_event`]).
    pub(super) fn start_model(&mut self, with_tools: bool) {
        let Some(chain) = self.model.restart.take().or_else(|| self.model.chain.clone()) else { return };
        let (request, tokens) = self.next_request(with_tools);
        let step = self.st.step + 1;
        self.model.steered_in_request = u32::try_from(self.st.steering.len()).unwrap_or(u32::MAX);
        if self.control.listening() {
            self.control.emit(RunEvent::StepStarted { run_id: self.st.run_id, step });
        }
        self.trace.step = tracing::info_span!(parent: &self.trace.run, "step", step);
        let span = tracing::info_span!(
            parent: &self.trace.step,
            "model_call",
            otel.name = %format_args!("chat {}", self.st.agent.model),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.conversation.id = %self.conversation(),
            gen_ai.request.model = %self.st.agent.model,
            gen_ai.provider.name = tracing::field::Empty,
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.response.finish_reasons = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.input.messages = tracing::field::Empty,
            gen_ai.output.messages = tracing::field::Empty,
            step
        );
        // Message content on the span only when asked for and someone records the span.
        let content = crate::semconv::capture_content() && !span.is_disabled();
        if content {
            let input = serde_json::to_string(&request.messages).unwrap_or_default();
            span.record("gen_ai.input.messages", input.as_str());
        }
        let call = Call {
            env: self.env.clone(),
            control: self.control.clone(),
            cancel: self.scope.token.clone(),
            run_id: self.st.run_id,
            step,
            spec: self.model.spec.clone(),
            targets: self.model.targets.clone(),
            context: self.model.context,
            cache: self.model.compaction.clone(),
        };
        // Attempts are attributed to the run (audit rows, live events) only when someone
        // keeps or watches them; otherwise the chain is called as it is.
        let audits = self.env.ports.audit.wants_records();
        let observed = (audits || self.control.listening()).then(|| {
            let (chain, log) = AttemptLog::attach_run(&chain, self.control.clone(), self.st.run_id, step);
            (Arc::new(chain) as Arc<dyn Model>, log)
        });
        let owned = (audits || self.env.ports.budget.limits_spending())
            .then(|| OwnedRun { identity: self.st.identity.clone(), agent: self.st.agent.name.clone() });
        let recorded = span.clone();
        let work = async move {
            let (model, log): (Arc<dyn Model>, _) = match observed {
                Some((model, log)) => (model, Some(log)),
                None => (chain as Arc<dyn Model>, None),
            };
            // A panic in the model, the budget, the compactor or the audit sink ends the
            // call with a failure instead of unwinding the run's loop.
            let result = AssertUnwindSafe(call.run(&model, request, tokens, owned.as_ref()))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(ModelFailure::Panicked(panic_message(&panic))));
            let (usage, answered) = match &result {
                Ok(r) => {
                    if content {
                        let output = serde_json::to_string(&r.message).unwrap_or_default();
                        recorded.record("gen_ai.output.messages", output.as_str());
                    }
                    if !recorded.is_disabled() {
                        recorded.record("gen_ai.provider.name", r.provider.as_str());
                        let finish = serde_json::to_value(&r.finish_reason).unwrap_or_default();
                        recorded.record("gen_ai.response.finish_reasons", format!("[{finish}]").as_str());
                    }
                    (r.usage, r.model.as_str())
                }
                Err(_) => (Usage::default(), ""),
            };
            recorded.record("gen_ai.response.model", answered);
            // As i64: OpenTelemetry has no unsigned integers (a u64 would export as text).
            recorded
                .record("gen_ai.usage.input_tokens", i64::try_from(usage.input_tokens).unwrap_or(i64::MAX));
            recorded
                .record("gen_ai.usage.output_tokens", i64::try_from(usage.output_tokens).unwrap_or(i64::MAX));
            // Audit rows for the call's attempts and failovers, unless nobody keeps them.
            if let (Some(log), Some(owned), true) = (log, &owned, audits) {
                call.audit_attempts(&log, owned, &result, usage).await;
            }
            result
        };
        self.model.call = Some(Box::pin(work.instrument(span)));
    }
}

/// The run as a model call's audit rows and budget reservations name it (only built when
/// audit rows are kept or the budget limits spending).
struct OwnedRun {
    identity: crate::identity::Identity,
    agent: String,
}

/// What a model call needs from its run.
struct Call {
    env: Arc<RunEnv>,
    control: Arc<RunControl>,
    cancel: CancellationToken,
    run_id: crate::ids::RunId,
    step: u32,
    /// The agent's model spec.
    spec: Arc<str>,
    targets: Arc<[String]>,
    /// The first target's context size (compaction).
    context: u64,
    cache: Arc<CompactionCache>,
}

impl Call {
    /// Compaction (on a copy, when over budget), then the budget-bounded model call.
    /// `tokens`: the request's estimate.
    async fn run(
        &self,
        model: &Arc<dyn Model>,
        request: Arc<Request>,
        tokens: u64,
        owned: Option<&OwnedRun>,
    ) -> Result<Response, ModelFailure> {
        let settings = &self.env.config.compaction;
        let spends = owned.is_some() && self.env.ports.budget.limits_spending();
        let (request, compaction, compacted) =
            prepare(&self.env, request, tokens, &self.spec, self.context, &self.cache).await;
        if let (Some(event), Some(o)) = (compaction, owned)
            && self.env.ports.audit.wants_records()
        {
            let record =
                AuditRecord::now(Some(self.run_id), o.identity.clone(), Some(o.agent.clone()), event);
            self.env.ports.audit.record(record).await;
        }
        // A compacted request is a new one: estimated again for the budget.
        let tokens = if settings.enabled && spends && compacted { estimate_tokens(&request) } else { tokens };
        call_model(self, model, request, tokens, owned.map(|o| &o.identity)).await
    }

    /// The call's attempts and failovers as audit records of the run.
    async fn audit_attempts(
        &self,
        log: &AttemptLog,
        owned: &OwnedRun,
        result: &Result<Response, ModelFailure>,
        usage: Usage,
    ) {
        let broke = match result {
            Err(ModelFailure::MidStream(e)) => Some(e.to_string()),
            _ => None,
        };
        let mut events = log.audit_events(self.step, usage, std::time::Instant::now(), broke);
        if let Err(ModelFailure::Panicked(message)) = result {
            events.push(AuditEvent::ModelCall {
                step: self.step,
                provider: String::new(),
                model: self.spec.to_string(),
                attempt: 0,
                latency_ms: 0,
                usage: Usage::default(),
                error: Some(format!("panicked: {message}")),
            });
        }
        for event in events {
            let record =
                AuditRecord::now(Some(self.run_id), owned.identity.clone(), Some(owned.agent.clone()), event);
            let recorded = AssertUnwindSafe(self.env.ports.audit.record(record)).catch_unwind().await;
            if let Err(panic) = recorded {
                tracing::error!(run_id = %self.run_id, panic = %panic_message(&panic), "audit sink panicked");
            }
        }
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
    /// The tool specs while a finalize turn withholds them.
    withheld: Option<Vec<executus_llm::ToolSpec>>,
    /// Characters of the system prompt, the tools offered and the first `base` messages (the
    /// token estimate grows with the request instead of walking it, schemas and all, at every
    /// step).
    chars: usize,
    /// Characters of the tools now in the request (part of `chars`).
    tool_chars: usize,
}

impl Driver {
    /// The request for the next model call: the header, the transcript, then pending
    /// steering and any loop-protection instruction — the same as `RunState::request` with
    /// repeated attachments referenced (debug builds check exactly that).
    /// With the request, its token estimate (as [`estimate_tokens`] would count it).
    pub(super) fn next_request(&mut self, with_tools: bool) -> (Arc<Request>, u64) {
        let st = &self.st;
        let fresh = || {
            let request = st.request_header();
            let chars = request.system.as_ref().map_or(0, String::len);
            Outgoing {
                request: Arc::new(request),
                base: 0,
                seen: AttachmentsSeen::default(),
                withheld: None,
                chars,
                tool_chars: 0,
            }
        };
        // The transcript only grows; were it ever shorter than what was sent, start over.
        let out = match self.model.outgoing.take() {
            Some(out) if out.base <= st.messages.len() => self.model.outgoing.insert(out),
            _ => self.model.outgoing.insert(fresh()),
        };
        let request = Arc::make_mut(&mut out.request);
        request.messages.truncate(out.base);
        request.messages.extend_from_slice(&st.messages[out.base..]);
        dedup_attachments_from(request, out.base, &mut out.seen);
        out.chars += request.messages[out.base..].iter().map(message_chars).sum::<usize>();
        out.base = st.messages.len();
        // The specs do not change during a run (the registry is immutable, the agent's
        // allowlist fixed at start): built into the request once; withheld (a finalize turn),
        // they are set aside rather than dropped, and come back when offered again.
        if with_tools {
            if request.tools.is_empty() {
                request.tools = match out.withheld.take() {
                    Some(specs) => specs,
                    None => self.env.tools.specs(&st.agent.tools),
                };
            }
        } else if !request.tools.is_empty() {
            out.withheld = Some(std::mem::take(&mut request.tools));
        }
        out.chars -= out.tool_chars;
        st.finish_request(request);
        out.tool_chars = request.tools.iter().map(tool_chars).sum();
        out.chars += out.tool_chars;
        // What follows the transcript (steering, a finalize instruction) is counted afresh.
        let tail: usize = request.messages[out.base..].iter().map(message_chars).sum();
        let tokens = ((out.chars + tail) as u64).div_ceil(4);
        #[cfg(debug_assertions)]
        {
            let specs = if with_tools { self.env.tools.specs(&st.agent.tools) } else { Vec::new() };
            let mut expected = st.request(specs);
            crate::compaction::dedup_attachments(&mut expected);
            debug_assert!(*out.request == expected, "the request grown in place differs from the state's");
            debug_assert_eq!(tokens, estimate_tokens(&out.request), "the running token estimate drifted");
        }
        (out.request.clone(), tokens)
    }

    /// Re-issues the current step's model call after its stream broke past the first event
    /// (the chain could not fail over: the caller had seen output). The new call skips the
    /// target that broke when the chain has another — a move audited as a failover — and
    /// watchers are told to discard the step's text so far.
    pub(super) async fn restart_step(&mut self, error: executus_llm::Error) {
        self.model.restarts += 1;
        let (run_id, step) = (self.st.run_id, self.st.step + 1);
        let broke = error.target();
        let elsewhere = self.model.chain.as_ref().and_then(|m| m.without(&broke));
        let next = elsewhere.as_ref().and_then(|c| c.targets().next()).map(str::to_owned);
        tracing::warn!(
            parent: &self.trace.run,
            error.type = error.kind.as_str(),
            error = %error,
            target = %broke,
            next = next.as_deref().unwrap_or(&broke.to_string()),
            restart = self.model.restarts,
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
        self.model.restart = elsewhere.map(Arc::new);
        self.advance().await;
    }
}

/// What is sent differs from what is kept: an over-budget request is compacted (see
/// [`crate::compaction`]) — on a copy, so the shared request stays the transcript's.
/// (Repeated attachments were referenced when the request was built.) `tokens` is the
/// request's estimate.
async fn prepare(
    env: &RunEnv,
    request: Arc<Request>,
    tokens: u64,
    spec: &str,
    context: u64,
    cache: &CompactionCache,
) -> (Arc<Request>, Option<AuditEvent>, bool) {
    let settings = &env.config.compaction;
    if !settings.enabled || tokens as f64 <= settings.threshold * context as f64 {
        return (request, None, false);
    }
    let summary_spec = settings.summary_model.clone().unwrap_or_else(|| spec.to_owned());
    let meta = || MetaLlm::new(&env.registry, &summary_spec).ok();
    let (compacted, event) = compact(Request::clone(&request), settings, context, meta, cache).await;
    (Arc::new(compacted), event, true)
}

/// Budget reserve -> model call through the chain -> budget settle. A budget that limits
/// nothing (the default) is not called at all.
async fn call_model(
    call: &Call,
    model: &Arc<dyn Model>,
    request: Arc<Request>,
    tokens: u64,
    identity: Option<&crate::identity::Identity>,
) -> Result<Response, ModelFailure> {
    let (env, run_id) = (&*call.env, call.run_id);
    let budget = &env.ports.budget;
    let reservation = match identity {
        Some(identity) if budget.limits_spending() => {
            let spend = SpendRequest {
                run_id,
                identity: identity.clone(),
                targets: call.targets.to_vec(),
                input_tokens: tokens,
                max_output_tokens: u64::from(request.max_tokens.unwrap_or(4096)),
            };
            Some(budget.reserve(&spend).await.map_err(ModelFailure::Budget)?)
        }
        _ => None,
    };
    let control = &call.control;
    let work = async {
        if env.config.streaming {
            let stream = model.stream_ref(&request).await.map_err(ModelFailure::Model)?;
            // The chain has committed to this target: an error now is past the first event.
            executus_llm::stream::drive(stream, |event| {
                if let StreamEvent::TextDelta { text } = event
                    && control.listening()
                {
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
        () = call.cancel.cancelled() => Err(ModelFailure::Cancelled),
        // A panicking model still releases its reservation below.
        r = AssertUnwindSafe(work).catch_unwind() => match r {
            Ok(r) => r,
            Err(panic) => Err(ModelFailure::Panicked(panic_message(&panic))),
        },
    };
    if let Some(reservation) = reservation {
        let (usage, provider, answered) = match &result {
            Ok(r) => (r.usage, r.provider.as_str(), r.model.as_str()),
            Err(_) => (Usage::default(), "", ""),
        };
        budget.settle(reservation, &usage, provider, answered).await;
    }
    result
}

/// A rough token estimate (4 characters per token) for budget reservations and compaction.
pub(crate) fn estimate_tokens(request: &Request) -> u64 {
    let mut chars = request.system.as_ref().map_or(0, String::len);
    for m in &request.messages {
        chars += message_chars(m);
    }
    chars += request.tools.iter().map(tool_chars).sum::<usize>();
    (chars as u64).div_ceil(4)
}

fn tool_chars(t: &executus_llm::ToolSpec) -> usize {
    t.name.len() + t.description.len() + json_len(&t.parameters)
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
