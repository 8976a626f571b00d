//! [`Judgement`]: what the judge model answers, and the prompt that asks it.
//!
//! The judge sees a plain-text rendering of the review (agent, trigger, steps, elapsed
//! time, extensions used and left, the most recent messages with tool calls and results),
//! never the raw messages: a slice of a transcript can start with a tool result whose call
//! was cut off, which some providers refuse. Long messages are cut to a configured number
//! of characters (on a character boundary) so one huge tool output cannot blow the judge's
//! context.

use std::fmt::Write as _;

use executus::llm::{Message, Part, Role};
use executus::ports::{CriticReview, CriticTrigger};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The judge's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JudgementVerdict {
    /// The run is making progress; leave it alone.
    Continue,
    /// The run is making progress but needs more room.
    Extend,
    /// A person should look at the run; it goes on meanwhile.
    Escalate,
    /// The run is stuck or going nowhere; end it now.
    Abort,
}

impl JudgementVerdict {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continue => "continue",
            Self::Extend => "extend",
            Self::Escalate => "escalate",
            Self::Abort => "abort",
        }
    }
}

/// The judge model's structured answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Judgement {
    /// The decision.
    pub verdict: JudgementVerdict,
    /// One or two sentences saying why.
    pub reason: String,
}

impl Judgement {
    /// A judgement with this verdict and reason.
    pub fn new(verdict: JudgementVerdict, reason: impl Into<String>) -> Self {
        Self { verdict, reason: reason.into() }
    }
}

/// The judge's system prompt.
pub const JUDGE_SYSTEM: &str = "You supervise an autonomous AI agent run that has reached a \
limit (its soft time limit or its step limit). Read the run's recent messages and decide:\n\
- \"continue\": it is making real progress and will likely finish without more room;\n\
- \"extend\": it is making real progress but needs more time or steps;\n\
- \"escalate\": a person should look at it (risky actions, unclear intent); it goes on;\n\
- \"abort\": it is stuck, looping, repeating itself or going nowhere.\n\
Prefer \"abort\" over \"extend\" when progress is doubtful. Answer with the JSON object only: \
{\"verdict\": ..., \"reason\": ...}.";

/// Renders `review` as the judge's user message. `extensions_left` is how many more
/// extensions the critic may grant; `max_chars` caps each rendered message.
pub fn render_review(review: &CriticReview, extensions_left: u32, max_chars: usize) -> String {
    let mut out = String::new();
    let trigger = match review.trigger {
        CriticTrigger::SoftDeadline => "it passed its soft time limit",
        CriticTrigger::MaxSteps => "it used all of its allowed steps",
    };
    // Writing to a String cannot fail.
    let _ = writeln!(out, "Agent: {}", review.agent);
    let _ = writeln!(out, "Why you are asked: {trigger}.");
    let _ = writeln!(
        out,
        "Steps completed: {}. Time elapsed: {}s. Extensions granted so far: {} ({} left).",
        review.step,
        review.elapsed.as_secs(),
        review.extensions,
        extensions_left
    );
    let _ = writeln!(out, "\nMost recent messages (oldest first):");
    if review.recent.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for message in &review.recent {
        let _ = writeln!(out, "\n[{}] {}", role_name(message.role), render_message(message, max_chars));
    }
    out
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn render_message(message: &Message, max_chars: usize) -> String {
    let mut text = String::new();
    for part in &message.parts {
        if !text.is_empty() {
            text.push('\n');
        }
        match part {
            Part::Text { text: t } => text.push_str(t),
            Part::Image { mime, data } => {
                let _ = write!(text, "(image {mime}, {} bytes)", data.len());
            }
            Part::ToolCall(call) => {
                let _ = write!(text, "calls tool {} with {}", call.name, call.args);
            }
            Part::ToolResult(result) => {
                let status = if result.is_error { "failed" } else { "returned" };
                let _ = write!(text, "tool {} {status}: {}", result.name, result.content);
            }
        }
    }
    truncate(&text, max_chars)
}

/// Cuts `text` to at most `max_chars` characters, saying how much was cut.
fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let dropped = text[cut..].chars().count();
            format!("{}… ({dropped} more characters cut)", &text[..cut])
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use executus::Identity;
    use executus::RunId;
    use executus::llm::{ToolCall, ToolResult};

    use super::*;

    fn review(recent: Vec<Message>) -> CriticReview {
        CriticReview {
            run_id: RunId::new(),
            agent: "researcher".into(),
            identity: Identity::default(),
            trigger: CriticTrigger::SoftDeadline,
            step: 7,
            elapsed: Duration::from_secs(42),
            extensions: 1,
            recent,
        }
    }

    #[test]
    fn renders_facts_tool_calls_and_results() {
        let call = ToolCall {
            id: "c1".into(),
            name: "search".into(),
            args: serde_json::json!({"q": "rust"}),
            signature: None,
        };
        let assistant = Message { role: Role::Assistant, parts: vec![Part::ToolCall(call)] };
        let tool = Message::tool_results([ToolResult {
            id: "c1".into(),
            name: "search".into(),
            content: "no results".into(),
            is_error: true,
        }]);
        let text = render_review(&review(vec![Message::user("find it"), assistant, tool]), 1, 100);
        assert!(text.contains("Agent: researcher"), "{text}");
        assert!(text.contains("soft time limit"), "{text}");
        assert!(
            text.contains("Steps completed: 7. Time elapsed: 42s. Extensions granted so far: 1 (1 left)")
        );
        assert!(text.contains("[user] find it"), "{text}");
        assert!(text.contains("[assistant] calls tool search with {\"q\":\"rust\"}"), "{text}");
        assert!(text.contains("[tool] tool search failed: no results"), "{text}");
    }

    #[test]
    fn long_messages_are_cut_on_char_boundaries() {
        let long = "é".repeat(50);
        let text = render_review(&review(vec![Message::user(long)]), 0, 10);
        assert!(text.contains(&format!("[user] {}… (40 more characters cut)", "é".repeat(10))), "{text}");
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn judgement_decodes_from_the_documented_json() {
        let j: Judgement = serde_json::from_str(r#"{"verdict":"extend","reason":"close"}"#).unwrap();
        assert_eq!(j, Judgement::new(JudgementVerdict::Extend, "close"));
        assert!(serde_json::from_str::<Judgement>(r#"{"verdict":"maybe","reason":""}"#).is_err());
    }
}
