//! Tool calls of a step: the three permission stages, argument checks, and bounded
//! concurrent execution with timeouts and panic recovery.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use executus_llm::{Part, ToolCall, ToolResult};
use futures::FutureExt;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Decided, Driver, panic_message};
use crate::ports::{AuditEvent, ToolDecision};
use crate::run::events::RunEvent;
use crate::run::machine::Fact;
use crate::tool::policy::{Decision, PolicyInput};
use crate::tool::{ToolContext, ToolError};

impl Driver {
    /// Permission stages 1–3 and argument sanity. Returns the call to execute with the
    /// decision that lets it run (audited with its result), or settles it (error result,
    /// rewrite, approval request) and returns `None`.
    pub(super) async fn check_call(&mut self, call: ToolCall) -> Option<(ToolCall, Decided)> {
        let refuse = |content: String| ToolResult {
            id: call.id.clone(),
            name: call.name.clone(),
            content,
            is_error: true,
        };
        // A call the human already approved skips the policy (it was evaluated before).
        let approved = self.st.is_approved(&call.id);
        // Stage 1: the registry.
        let Some(tool) = self.env.tools.enabled(&call.name).cloned() else {
            let known: Vec<&str> = self.st.agent.tools.iter().map(String::as_str).collect();
            let result = refuse(format!(
                "unknown tool {:?}; available tools: {}",
                call.name,
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            ));
            self.settle_refused(
                result,
                ToolDecision::Refuse,
                Some("registry".into()),
                Some("unknown or disabled tool".into()),
                false,
            )
            .await;
            return None;
        };
        // Stage 2: the agent's allowlist (agent + skills, merged at start).
        if !self.st.agent.tools.iter().any(|t| t == &call.name) {
            let result =
                refuse(format!("tool {:?} is not allowed for agent {:?}", call.name, self.st.agent.name));
            self.settle_refused(
                result,
                ToolDecision::Refuse,
                Some("allowlist".into()),
                Some("not in the agent's allowlist".into()),
                true,
            )
            .await;
            return None;
        }
        // Arguments must be a JSON object.
        match &call.args {
            Value::Object(_) => {}
            Value::Null => {}
            Value::String(raw) => {
                let result = refuse(format!(
                    "the arguments for {:?} are not valid JSON: {}. Call the tool again with a JSON object matching its schema.",
                    call.name,
                    preview(raw, 200)
                ));
                self.settle_refused(
                    result,
                    ToolDecision::Refuse,
                    Some("arguments".into()),
                    Some("invalid JSON arguments".into()),
                    false,
                )
                .await;
                return None;
            }
            other => {
                let result = refuse(format!(
                    "the arguments for {:?} must be a JSON object, got {}",
                    call.name,
                    preview(&other.to_string(), 200)
                ));
                self.settle_refused(
                    result,
                    ToolDecision::Refuse,
                    Some("arguments".into()),
                    Some("arguments not an object".into()),
                    false,
                )
                .await;
                return None;
            }
        }
        if approved {
            let decided = Decided {
                decision: ToolDecision::Allow,
                rule: Some("human-approval".into()),
                reason: Some("approved by a human".into()),
            };
            return Some((call, decided));
        }
        // Stage 3: runtime policy.
        let empty;
        let args = if call.args.is_null() {
            empty = Value::Object(Default::default());
            &empty
        } else {
            &call.args
        };
        let verdict = self.env.policy.evaluate(&PolicyInput {
            tool: &call.name,
            args,
            identity: &self.st.identity,
            run_id: self.st.run_id,
            agent: &self.st.agent.name,
            profile: self.st.agent.policy_profile.as_deref(),
            read_only: tool.read_only(),
        });
        let reason = verdict.reason();
        match verdict.decision {
            Decision::Allow => {
                let decided = Decided { decision: ToolDecision::Allow, rule: Some(verdict.rule), reason };
                Some((call, decided))
            }
            Decision::Rewrite(new_args) => {
                let decided = Decided { decision: ToolDecision::Rewrite, rule: Some(verdict.rule), reason };
                let fact = Fact::Rewritten { call_id: call.id.clone(), args: new_args.clone() };
                Box::pin(self.apply_and_save(fact, false)).await;
                Some((ToolCall { args: new_args, ..call }, decided))
            }
            Decision::Block(why) => {
                let result = refuse(format!(
                    "blocked by policy rule {:?}: {why}. Do not retry this call; change course.",
                    verdict.rule
                ));
                self.settle_refused(result, ToolDecision::Block, Some(verdict.rule), Some(why), true).await;
                None
            }
            Decision::RequireApproval(why) => {
                Box::pin(self.require_approval(call, verdict.rule, why)).await;
                None
            }
        }
    }

    async fn require_approval(&mut self, call: ToolCall, rule: String, why: String) {
        self.audit(AuditEvent::ApprovalRequested { tool: call.name.clone(), call_id: call.id.clone() }).await;
        self.audit(AuditEvent::ToolCall {
            step: self.st.step,
            tool: call.name.clone(),
            call_id: call.id.clone(),
            decision: ToolDecision::RequireApproval,
            rule: Some(rule),
            reason: Some(why),
            is_error: false,
            latency_ms: 0,
        })
        .await;
        self.control.emit(RunEvent::ApprovalRequested { run_id: self.st.run_id, call: call.clone() });
        self.apply_and_save(Fact::ApprovalRequested { call_id: call.id }, true).await;
    }

    /// Settles a call that will not run with an error result. The refusal paths are rare, so
    /// the work is boxed: inline, it would grow the future of every message's `handle`.
    pub(super) async fn settle_refused(
        &mut self,
        result: ToolResult,
        decision: ToolDecision,
        rule: Option<String>,
        reason: Option<String>,
        blocked: bool,
    ) {
        Box::pin(self.settle_refused_now(result, decision, rule, reason, blocked)).await;
    }

    async fn settle_refused_now(
        &mut self,
        result: ToolResult,
        decision: ToolDecision,
        rule: Option<String>,
        reason: Option<String>,
        blocked: bool,
    ) {
        self.audit_tool(&result, decision, rule, reason, Duration::ZERO).await;
        self.control.emit(RunEvent::ToolFinished {
            run_id: self.st.run_id,
            call_id: result.id.clone(),
            name: result.name.clone(),
            is_error: true,
        });
        self.apply_and_save(Fact::ToolResult { result, blocked }, true).await;
    }

    /// Starts queued tool calls up to the concurrency bound. Each call is polled once here:
    /// one that finishes at once (an in-process tool) costs no task; one that has to wait
    /// moves to a task of its own (see [`Running`]).
    pub(super) fn pump_tools(&mut self) {
        let limit = self.st.agent.limits.tool_concurrency.max(1);
        // Sized exactly (the vector is kept for the run's life; see the queue's reserve).
        let starting = self.tools.queued.len().min(limit.saturating_sub(self.tools.running.len()));
        self.tools.running.reserve_exact(starting);
        while self.tools.running.len() < limit {
            let Some((call, decided)) = self.tools.queued.pop_front() else { break };
            let Some(tool) = self.env.tools.enabled(&call.name).cloned() else { continue };
            let cancel = self.scope.token.child_token();
            let ctx = ToolContext {
                run_id: self.st.run_id,
                identity: self.st.identity.clone(),
                agent: self.st.agent.name.clone(),
                call_id: call.id.clone(),
                cancel: cancel.clone(),
                children: Some(self.env.children.clone()),
                run_input: self.life.input.clone(),
            };
            let timeout = self.st.agent.limits.tool_timeout;
            let max_output = self.env.config.max_tool_output_bytes;
            let span = tracing::info_span!(
                parent: &self.trace.step,
                "tool_call",
                otel.name = %format_args!("execute_tool {}", call.name),
                gen_ai.operation.name = "execute_tool",
                gen_ai.tool.name = %call.name,
                gen_ai.tool.call.id = %call.id
            );
            let work = async move {
                let started = Instant::now();
                let ToolCall { id, name, args, .. } = call;
                let fut = AssertUnwindSafe(tool.call(ctx, args)).catch_unwind();
                let outcome = tokio::select! {
                    r = tokio::time::timeout(timeout, fut) => match r {
                        Err(_) => Err(ToolError::Timeout { tool: name.clone(), after: timeout }),
                        Ok(Err(panic)) => Err(ToolError::Panicked { tool: name.clone(), message: panic_message(&panic) }),
                        Ok(Ok(r)) => r,
                    },
                    () = cancel.cancelled() => Err(ToolError::Cancelled { tool: name.clone() }),
                };
                cancel.cancel();
                let (result, images) = match outcome {
                    Ok(out) => {
                        let images =
                            out.images.into_iter().map(|i| Part::Image { mime: i.mime, data: i.data }).collect();
                        let content = cap_output(out.text, max_output);
                        (ToolResult { id, name, content, is_error: false }, images)
                    }
                    Err(e) => (ToolResult { id, name, content: e.to_string(), is_error: true }, Vec::new()),
                };
                Done { result, latency: started.elapsed(), decided, images }
            }
            .instrument(span);
            self.tools.running.push(Running::start(work));
        }
    }
}

/// A finished tool call: its result, its latency, the decision that let it run.
pub(super) struct Done {
    pub(super) result: ToolResult,
    pub(super) latency: Duration,
    pub(super) decided: Decided,
    /// Images the tool returned (`Part::Image`s; usually none).
    pub(super) images: Vec<Part>,
}

/// A tool call in flight: finished at its first poll, or running in a task of its own.
pub(super) enum Running {
    /// Finished when first polled; taken by the loop.
    Done(Option<Done>),
    /// Waiting on something: its own task, so the run's loop is never held by it and slow
    /// calls of one step run in parallel.
    Task(JoinHandle<Done>),
}

impl Running {
    fn start(work: impl Future<Output = Done> + Send + 'static) -> Self {
        let mut work = Box::pin(work);
        // Polled without a waker of ours: if it waits, the task polls it again at once with
        // its own (every future re-registers its waker when polled).
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match work.as_mut().poll(&mut cx) {
            Poll::Ready(done) => Running::Done(Some(done)),
            Poll::Pending => Running::Task(tokio::spawn(work)),
        }
    }

    /// The call's result once it is there; `Err` if its task was lost (the tokio runtime is
    /// shutting down: the call is caught panics and all, so nothing else ends a task early).
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<Done, String>> {
        match self {
            Running::Done(done) => match done.take() {
                Some(done) => Poll::Ready(Ok(done)),
                None => Poll::Pending,
            },
            Running::Task(task) => Pin::new(task).poll(cx).map(|r| r.map_err(|e| e.to_string())),
        }
    }
}

fn cap_output(mut s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let total = s.len();
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s.truncate(cut);
    s.push_str(&format!("\n[output truncated: {total} bytes, showing the first {cut}]"));
    s
}

fn preview(s: &str, max: usize) -> String {
    let mut out: String = s.chars().take(max).collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}
