//! How a run's outcome is shown: text (the answer on stdout, anything else on stderr) or one
//! JSON object per run on stdout, and the exit code its status maps to.
//!
//! The JSON object always has `run_id`, `status` (`completed`, `failed`, `partial`,
//! `stopped`, `cancelled`, `budget_denied`, `awaiting_approval`, and `interrupted` for a
//! `run` stopped by SIGTERM and checkpointed for `resume`), `output` (string or null),
//! `steps`, `usage` (token counts) and `error` (string or null); also `agent`, `typed` (the
//! typed output, for agents with a schema), `pending_approvals` (`[{call_id, tool, args}]`,
//! empty unless the run waits for approval) and `messages`: the transcript so far (the
//! input, every model turn with its tool calls, every tool result), whatever the status —
//! a run stopped by a cap, a failure or a signal still shows the work it did.

use executus::{RunEnd, RunOutcome};
use executus_llm::Part;
use serde_json::{Value, json};

use crate::Exit;

/// The tool calls a paused run waits on: `(call id, tool, args)`.
pub fn pending_approvals(outcome: &RunOutcome) -> Vec<(String, String, Value)> {
    let RunEnd::AwaitingApproval { calls } = &outcome.end else { return Vec::new() };
    calls
        .iter()
        .map(|id| {
            let call = outcome.messages.iter().rev().flat_map(|m| &m.parts).find_map(|p| match p {
                Part::ToolCall(call) if &call.id == id => Some(call),
                _ => None,
            });
            match call {
                Some(call) => (id.clone(), call.name.clone(), call.args.clone()),
                None => (id.clone(), String::new(), Value::Null),
            }
        })
        .collect()
}

/// The JSON form of an outcome (see the module docs).
pub fn to_json(outcome: &RunOutcome) -> Value {
    let pending: Vec<Value> = pending_approvals(outcome)
        .into_iter()
        .map(|(call_id, tool, args)| json!({ "call_id": call_id, "tool": tool, "args": args }))
        .collect();
    json!({
        "run_id": outcome.run_id.to_string(),
        "agent": outcome.agent,
        "status": outcome.status(),
        "output": outcome.output,
        "typed": outcome.typed,
        "steps": outcome.steps,
        "usage": outcome.usage,
        "error": outcome.end.reason(),
        "pending_approvals": pending,
        "messages": outcome.messages,
    })
}

/// Prints an outcome (text or JSON) and returns its exit code.
pub fn report(outcome: &RunOutcome, as_json: bool) -> Exit {
    let status = outcome.status();
    if as_json {
        outln!("{}", to_json(outcome));
    } else {
        if let Some(out) = &outcome.output {
            outln!("{out}");
        }
        if let Some(reason) = outcome.end.reason() {
            eprintln!("run {} ended {status}: {reason}", outcome.run_id);
        }
        for (call, tool, args) in pending_approvals(outcome) {
            eprintln!(
                "  call {call}: {tool} {args}\n  answer with: executus-run approve {run} {call}   or   \
                 executus-run deny {run} {call} --reason TEXT",
                run = outcome.run_id
            );
        }
    }
    Exit::for_status(status)
}

/// The exit code for several outcomes: the first that is not success, else success.
pub fn combined(exits: impl IntoIterator<Item = Exit>) -> Exit {
    exits.into_iter().find(|e| *e != Exit::Ok).unwrap_or(Exit::Ok)
}
