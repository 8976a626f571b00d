//! `dispatch_agent`: a tool that runs another agent (a configured agent or a persona, by
//! name) as a child run under the runtime's [`crate::dispatch::DispatchGuard`].
//!
//! Every dispatch is checked against the guard's caps (depth, fan-out per parent, total per
//! root) and its ancestry loop rule (the same agent with the same input already on the
//! child's ancestry); a refusal becomes a tool error that tells the model why. Child runs do
//! not queue in a lane: the parent already holds a slot, and queueing children behind their
//! own parents could deadlock a full lane — the guard's caps bound them instead. Cancelling
//! the parent cancels the child.

use std::sync::Arc;

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::{Tool, ToolContext, ToolError, ToolOutput};
use crate::dispatch::DispatchError;
use crate::ids::RunId;
use crate::run::RunRequest;

/// The tool's name.
pub const NAME: &str = "dispatch_agent";

#[derive(Debug, Deserialize, JsonSchema)]
struct Args {
    /// The agent (or persona) to run.
    agent: String,
    /// What to ask it: its whole input.
    input: String,
}

/// Runs another agent as a child run and returns its final answer.
#[derive(Debug, Clone)]
pub struct DispatchAgent {
    schema: Value,
}

impl DispatchAgent {
    /// The tool.
    pub fn new() -> Self {
        Self { schema: super::schema_of::<Args>() }
    }

    /// The tool, shared.
    pub fn arc() -> Arc<dyn Tool> {
        Arc::new(Self::new())
    }
}

impl Default for DispatchAgent {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl Tool for DispatchAgent {
    fn name(&self) -> &str {
        NAME
    }

    fn description(&self) -> &str {
        "Runs another agent by name on the given input and returns its final answer. Use it to \
         delegate a self-contained sub-task."
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let args: Args = super::decode_args(NAME, args)?;
        let children = ctx
            .children
            .clone()
            .ok_or_else(|| ToolError::failed(NAME, "no runtime to start child runs in"))?;
        let agent = children.agent(&args.agent).await.map_err(|e| ToolError::failed(NAME, e.to_string()))?;
        let guard = children.dispatch_guard().await.map_err(|e| ToolError::failed(NAME, e.to_string()))?;
        let child = RunId::new();
        let mut admitted = guard.dispatch(ctx.run_id, child, &args.agent, &args.input).await;
        if matches!(admitted, Err(DispatchError::UnknownParent { .. })) {
            // The caller is a root run dispatching for the first time (several parallel calls
            // may race to register it: losing that race is fine).
            match guard.register_root(ctx.run_id, &ctx.agent, &ctx.run_input).await {
                Ok(()) | Err(DispatchError::AlreadyRegistered { .. }) => {}
                Err(e) => return Err(ToolError::refused(NAME, e.to_string())),
            }
            admitted = guard.dispatch(ctx.run_id, child, &args.agent, &args.input).await;
        }
        let ticket = admitted.map_err(|e| ToolError::refused(NAME, e.to_string()))?;
        tracing::debug!(parent = %ctx.run_id, child = %child, depth = ticket.depth, agent = %args.agent, "dispatch");
        let request = RunRequest::new(agent, args.input)
            .identity(ctx.identity.clone())
            .parent(ctx.run_id)
            .run_id(child);
        let handle = children.spawn(request).await.map_err(|e| ToolError::failed(NAME, e.to_string()))?;
        let outcome = tokio::select! {
            outcome = handle.outcome() => outcome,
            () = ctx.cancel.cancelled() => {
                handle.cancel().await;
                return Err(ToolError::Cancelled { tool: NAME.into() });
            }
        };
        if outcome.is_completed() {
            Ok(ToolOutput::text(outcome.output.clone().unwrap_or_default()))
        } else {
            Err(ToolError::failed(
                NAME,
                format!(
                    "agent {} ended {}: {}{}",
                    args.agent,
                    outcome.status(),
                    outcome.end.reason().unwrap_or_default(),
                    outcome.output.as_deref().map(|o| format!("; its last answer: {o}")).unwrap_or_default()
                ),
            ))
        }
    }
}
