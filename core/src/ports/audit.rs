//! [`AuditSink`]: where the run loop reports what happened. Default: tracing only.
//!
//! The core emits one [`AuditRecord`] per notable event: run start and end, each model call,
//! each tool call with its policy decision, failovers, loop-protection triggers, budget
//! denials, approvals, critic verdicts. A sink must not lose records silently; the core awaits
//! `record`, so a sink applies backpressure by being slow, never by dropping.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use executus_llm::Usage;
use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::ids::RunId;

/// One audit record: when, which run, who, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// The run, when the event belongs to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// Who the run acts for.
    pub identity: Identity,
    /// The agent's name, when the event belongs to a run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// What happened.
    pub event: AuditEvent,
}

impl AuditRecord {
    /// A record stamped now.
    pub fn now(run_id: Option<RunId>, identity: Identity, agent: Option<String>, event: AuditEvent) -> Self {
        Self { at_ms: now_ms(), run_id, identity, agent, event }
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuditEvent {
    /// A run started (or resumed).
    RunStarted {
        /// The model spec.
        model: String,
        /// The dispatching run, for child runs.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<RunId>,
        /// True when resumed from a checkpoint.
        #[serde(default)]
        resumed: bool,
    },
    /// A run ended.
    RunEnded {
        /// How it ended.
        status: crate::run::RunStatus,
        /// Why, for ends that are not success.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Steps taken.
        steps: u32,
        /// Tokens spent.
        usage: Usage,
    },
    /// One model call attempt.
    ModelCall {
        /// Step number (1-based).
        step: u32,
        /// Provider that was called.
        provider: String,
        /// Model that was called.
        model: String,
        /// Attempt number on that target (1-based).
        attempt: u32,
        /// Latency in milliseconds.
        latency_ms: u64,
        /// Usage (zero on failure).
        usage: Usage,
        /// Error, if the attempt failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The chain moved from one target to the next.
    Failover {
        /// `provider/model` that failed.
        from: String,
        /// `provider/model` tried next.
        to: String,
        /// Why.
        error: String,
    },
    /// A tool call and its policy decision.
    ToolCall {
        /// Step number.
        step: u32,
        /// Tool name.
        tool: String,
        /// Call id.
        call_id: String,
        /// What happened to the call.
        decision: ToolDecision,
        /// The rule that decided.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<String>,
        /// The rule's reason.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// True if the result was an error.
        is_error: bool,
        /// Latency in milliseconds (0 when not executed).
        latency_ms: u64,
    },
    /// Loop protection fired.
    LoopProtection {
        /// What fired.
        trigger: crate::loops::LoopKind,
        /// Detail (e.g. the repeated call).
        detail: String,
        /// Finalize or stop.
        action: crate::loops::LoopAction,
    },
    /// The budget refused a model call (rows keep this shape across versions; build one with
    /// [`AuditEvent::budget_denied`]).
    BudgetDenied {
        /// Spent in the window (0 when the refusal is not about the numbers).
        spent: f64,
        /// Reserved by calls in flight.
        reserved: f64,
        /// The cap.
        limit: f64,
        /// The scope that was exhausted (e.g. `user:alice`), or what the refusal is about
        /// (`unpriced:MODEL`, `budget-store-unavailable`).
        scope: String,
    },
    /// A tool call waits for a human.
    ApprovalRequested {
        /// Tool name.
        tool: String,
        /// Call id.
        call_id: String,
    },
    /// A human answered an approval.
    ApprovalAnswered {
        /// Call id.
        call_id: String,
        /// The answer.
        approved: bool,
        /// Reason given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The critic reviewed the run.
    Critic {
        /// Why it was asked.
        trigger: crate::ports::CriticTrigger,
        /// What it decided.
        verdict: crate::ports::VerdictKind,
        /// Why.
        reason: String,
    },
    /// Old turns were summarised for the request (the transcript is kept whole).
    Compaction {
        /// Messages replaced by the summary.
        replaced: u32,
        /// Estimated tokens before.
        tokens_before: u64,
        /// Estimated tokens after.
        tokens_after: u64,
    },
}

impl AuditEvent {
    /// The event kind, as stored and queried (`run_started`, `tool_call`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "run_started",
            Self::RunEnded { .. } => "run_ended",
            Self::ModelCall { .. } => "model_call",
            Self::Failover { .. } => "failover",
            Self::ToolCall { .. } => "tool_call",
            Self::LoopProtection { .. } => "loop_protection",
            Self::BudgetDenied { .. } => "budget_denied",
            Self::ApprovalRequested { .. } => "approval_requested",
            Self::ApprovalAnswered { .. } => "approval_answered",
            Self::Critic { .. } => "critic",
            Self::Compaction { .. } => "compaction",
        }
    }
}

/// What happened to a tool call, as audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolDecision {
    /// Policy allowed it; it ran.
    Allow,
    /// A policy rule rewrote its arguments; it ran with them.
    Rewrite,
    /// A policy rule blocked it.
    Block,
    /// It waits for a human.
    RequireApproval,
    /// A human denied it.
    Deny,
    /// It could not run at all: an unknown tool, a tool the agent may not use, or arguments
    /// that are not a JSON object.
    Refuse,
}

impl ToolDecision {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Rewrite => "rewrite",
            Self::Block => "block",
            Self::RequireApproval => "require_approval",
            Self::Deny => "deny",
            Self::Refuse => "refuse",
        }
    }
}

crate::vocabulary!(ToolDecision);

impl AuditEvent {
    /// The audit row of a budget refusal.
    pub fn budget_denied(denied: &crate::ports::BudgetDenied) -> Self {
        use crate::ports::BudgetDenied as D;
        match denied {
            D::Exhausted { scope, spent, reserved, cap, .. } => {
                Self::BudgetDenied { spent: *spent, reserved: *reserved, limit: *cap, scope: scope.clone() }
            }
            D::Unpriced { model } => Self::BudgetDenied {
                spent: 0.0,
                reserved: 0.0,
                limit: 0.0,
                scope: format!("unpriced:{model}"),
            },
            D::StoreUnavailable { .. } => Self::BudgetDenied {
                spent: 0.0,
                reserved: 0.0,
                limit: 0.0,
                scope: "budget-store-unavailable".into(),
            },
        }
    }
}

/// Receives audit records.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Records one event. May wait (backpressure); must not drop silently.
    async fn record(&self, record: AuditRecord);

    /// Whether records sent now would be kept or shown. `false` lets the run loop skip
    /// building them (the default sink says `false` unless its debug events are enabled).
    fn wants_records(&self) -> bool {
        true
    }
}

/// The default sink: emits each record as a `tracing` debug event and keeps nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudit;

#[async_trait]
impl AuditSink for NoAudit {
    fn wants_records(&self) -> bool {
        tracing::enabled!(target: "executus::audit", tracing::Level::DEBUG)
    }

    async fn record(&self, record: AuditRecord) {
        tracing::debug!(
            target: "executus::audit",
            kind = record.event.kind(),
            run_id = record.run_id.map(|r| r.to_string()),
            agent = record.agent.as_deref(),
            "audit"
        );
    }
}
