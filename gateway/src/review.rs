//! The policy's view of a turn: every tool call a model returns is evaluated with the
//! profile of the request before the client sees it, and a turn's end is checked against the
//! profile's completion gates. Every decision is audited (session, rule, tool, decision, the
//! arguments before and after a rewrite) and counted.
//!
//! The gateway has no human at hand: a call that needs approval is refused like a blocked
//! one, with the rule's reason.

use executus::Identity;
use executus::ids::RunId;
use executus::ports::{AuditEvent, AuditRecord};
use executus::tool::policy::{CompletionGate, Decision, PolicyInput};
use executus_llm::{Message, Role, ToolCall};
use serde_json::Value;

use crate::Shared;

/// What happens to one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CallVerdict {
    /// The client gets it (with arguments as rewritten).
    Pass(ToolCall),
    /// The client does not get it; the model's turn explains why.
    Blocked {
        /// The call as the model made it.
        call: ToolCall,
        /// The rule and its hint.
        reason: String,
    },
}

/// Reviews the calls of one request.
pub(crate) struct Reviewer<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) profile: Option<&'a str>,
    pub(crate) identity: &'a Identity,
    pub(crate) session: &'a str,
    pub(crate) run_id: RunId,
}

impl Reviewer<'_> {
    /// The profile's verdict on `call`.
    pub(crate) async fn call(&self, call: ToolCall) -> CallVerdict {
        let input = PolicyInput {
            tool: &call.name,
            args: &call.args,
            identity: self.identity,
            run_id: self.run_id,
            agent: "gateway",
            profile: self.profile,
            read_only: false,
        };
        let verdict = self.shared.policy.evaluate(&input);
        let name = verdict.decision.name();
        self.shared.metrics.decision(name);
        let reason = verdict.reason();
        let (before, after) = match &verdict.decision {
            Decision::Rewrite(args) => (Some(call.args.clone()), Some(args.clone())),
            _ => (None, None),
        };
        tracing::info!(
            target: "executus_gateway",
            sess = %self.session,
            rule = %verdict.rule,
            tool = %call.name,
            decision = name,
            "policy"
        );
        self.audit(AuditEvent::PolicyDecision {
            session: self.session.to_owned(),
            tool: call.name.clone(),
            call_id: call.id.clone(),
            decision: name.to_owned(),
            rule: verdict.rule.clone(),
            reason: reason.clone(),
            before,
            after,
        })
        .await;
        match verdict.decision {
            Decision::Allow => CallVerdict::Pass(call),
            Decision::Rewrite(args) => CallVerdict::Pass(ToolCall { args, ..call }),
            Decision::Block(hint) | Decision::RequireApproval(hint) => {
                CallVerdict::Blocked { call, reason: format!("{hint} (rule {})", verdict.rule) }
            }
        }
    }

    /// The first completion gate of the profile that no call of the session has opened yet:
    /// the calls in the transcript and those of the answer so far.
    pub(crate) fn unmet_gate<'g>(
        &'g self,
        messages: &[Message],
        answered: &[ToolCall],
    ) -> Option<&'g CompletionGate> {
        let gates = self.shared.policy.gates(self.profile);
        if gates.is_empty() {
            return None;
        }
        let transcript = messages.iter().filter(|m| m.role == Role::Assistant).flat_map(|m| m.tool_calls());
        let calls: Vec<(&str, &Value)> =
            transcript.chain(answered).map(|c| (c.name.as_str(), &c.args)).collect();
        gates.iter().find(|gate| !gate.met_by(calls.iter().copied()))
    }

    /// Audits a gate that held a turn open.
    pub(crate) async fn gate_held(&self, gate: &CompletionGate) {
        self.shared.metrics.decision("gate");
        tracing::info!(target: "executus_gateway", sess = %self.session, gate = %gate.id, "completion gate holds the turn open");
        self.audit(AuditEvent::PolicyDecision {
            session: self.session.to_owned(),
            tool: String::new(),
            call_id: String::new(),
            decision: "gate".into(),
            rule: gate.id.clone(),
            reason: Some(gate.hint.clone()),
            before: None,
            after: None,
        })
        .await;
    }

    /// Records an audit event for this request, if anyone listens.
    pub(crate) async fn audit(&self, event: AuditEvent) {
        if self.shared.audit.wants_records() {
            let record =
                AuditRecord::now(Some(self.run_id), self.identity.clone(), Some("gateway".into()), event);
            self.shared.audit.record(record).await;
        }
    }
}

/// The text a client gets in place of blocked calls.
pub(crate) fn blocked_text(blocked: &[(ToolCall, String)]) -> String {
    let mut text = String::from("[executus] The gateway's policy blocked ");
    for (i, (call, reason)) in blocked.iter().enumerate() {
        if i > 0 {
            text.push_str("; ");
        }
        text.push_str(&format!("the call to {}: {reason}", call.name));
    }
    text.push_str(". Continue without it.");
    text
}
