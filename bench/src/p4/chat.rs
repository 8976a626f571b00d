//! P4's workload: deterministic pseudo-English and the facts a tool-using run checkpoints —
//! a conversation of any length driven through the core's state machine (so the transcript
//! is exactly what a run holds) and a pool of per-step fact pairs for the throughput runs.
//!
//! Text is generated, not real: Zipf-distributed pseudo-words from a 4,000-word syllable
//! vocabulary with a fixed seed; deflate shrinks these payloads about 2.15x, likely a bit
//! more than real prose in 1 KB pieces (hence the "compression off" figure beside it).

use anyhow::bail;
use executus::llm::{FinishReason, Message, Part, Role, ToolCall, ToolResult, Usage};
use executus::ports::RunMeta;
use executus::run::machine::{Fact, RunState};
use executus::{Identity, RunId, RunnableAgent};

/// Deterministic pseudo-English.
pub struct Text {
    rng: fastrand::Rng,
    words: Vec<String>,
    /// Cumulative Zipf weights, one per word (for sampling).
    weights: Vec<f64>,
}

impl Text {
    /// A generator seeded with `seed` (the same seed gives the same text).
    pub fn new(seed: u64) -> Self {
        const SYLLABLES: [&str; 40] = [
            "an", "be", "con", "de", "en", "ex", "for", "ge", "in", "is", "ka", "la", "men", "mo", "na",
            "ne", "or", "pe", "pro", "qua", "re", "ri", "sa", "se", "sion", "ta", "te", "ter", "ti", "tion",
            "to", "tu", "un", "ver", "vi", "wa", "al", "ing", "ed", "ly",
        ];
        let mut rng = fastrand::Rng::with_seed(seed);
        let words: Vec<String> = (0..4000)
            .map(|_| (0..rng.usize(1..=4)).map(|_| SYLLABLES[rng.usize(..SYLLABLES.len())]).collect())
            .collect();
        // Zipf: the word of rank r has weight 1/r.
        let mut total = 0.0;
        let weights = (1..=words.len())
            .map(|r| {
                total += 1.0 / r as f64;
                total
            })
            .collect();
        Self { rng, words, weights }
    }

    /// Sentences of at least `len` bytes.
    pub fn sentence_bytes(&mut self, len: usize) -> String {
        let total = self.weights.last().copied().unwrap_or(1.0);
        let last = self.words.len().saturating_sub(1);
        let mut out = String::with_capacity(len + 16);
        let mut since_stop = 0;
        while out.len() < len {
            let x = self.rng.f64() * total;
            let i = self.weights.partition_point(|&w| w < x).min(last);
            out.push_str(&self.words[i]);
            since_stop += 1;
            if since_stop > 6 && self.rng.u8(..8) == 0 {
                out.push_str(". ");
                since_stop = 0;
            } else if self.rng.u8(..12) == 0 {
                out.push_str(", ");
            } else {
                out.push(' ');
            }
        }
        out
    }

    /// Text of a length drawn uniformly from `lo..=hi` bytes.
    pub fn range(&mut self, lo: usize, hi: usize) -> String {
        let len = self.rng.usize(lo..=hi);
        self.sentence_bytes(len)
    }
}

/// The agent every checkpointed run belongs to (one tool, no step limit in reach).
fn agent() -> RunnableAgent {
    let mut agent =
        RunnableAgent::new("bench", "You are a helpful assistant.", "mock/bench").with_tools(["search"]);
    agent.limits.max_steps = 100_000;
    agent
}

/// The model's answer of turn `turn`: text and one tool call.
pub fn model_fact(text: &mut Text, turn: usize) -> Fact {
    let message = Message {
        role: Role::Assistant,
        parts: vec![
            Part::Text { text: text.range(200, 1200) },
            Part::ToolCall(ToolCall {
                id: format!("call_{turn}"),
                name: "search".into(),
                args: serde_json::json!({ "query": text.range(20, 80), "page": turn }),
                signature: None,
            }),
        ],
    };
    Fact::Model {
        message,
        usage: Usage { input_tokens: 1_000 + turn as u64 * 600, output_tokens: 180, ..Usage::default() },
        finish: FinishReason::ToolCalls,
        provider: "mock".into(),
        model: "bench".into(),
        steered: 0,
    }
}

/// The tool's result of turn `turn`.
pub fn tool_fact(text: &mut Text, turn: usize) -> Fact {
    Fact::ToolResult {
        result: ToolResult {
            id: format!("call_{turn}"),
            name: "search".into(),
            content: format!("result {turn}: {}", text.range(300, 2000)),
            is_error: false,
        },
        blocked: false,
    }
}

/// A valid `turns`-turn conversation: the user's question, then per turn the assistant
/// answers with text and a tool call and the tool answers. Driven through the core's state
/// machine, so the transcript (returned beside the facts) is exactly what the run holds, and
/// replaying the stored log must rebuild it.
///
/// # Errors
/// If the state machine rejects a fact or the run ends early (a core regression).
pub fn chat(turns: usize) -> anyhow::Result<(Vec<Fact>, Vec<Message>)> {
    let mut text = Text::new(7);
    let start = Fact::Started {
        run_id: RunId::new(),
        agent: Box::new(agent()),
        identity: Identity::new("ada", "acme"),
        parent: None,
        input: vec![Message::user(text.range(100, 400))],
        created_ms: 1,
    };
    let mut state = RunState::start(&start)?;
    let mut facts = vec![start];
    for turn in 0..turns {
        state.next_action();
        let model = model_fact(&mut text, turn);
        state.apply(&model)?;
        facts.push(model);
        state.next_action();
        let tool = tool_fact(&mut text, turn);
        state.apply(&tool)?;
        facts.push(tool);
    }
    if state.is_ended() {
        bail!("the conversation ended early: {:?}", state.end);
    }
    Ok((facts, state.messages))
}

/// Per-step fact pairs (model answer, tool result) for the throughput runs; the payload
/// bytes are realistic, and each is encoded per save as a run would.
pub fn step_facts() -> Vec<(Fact, Fact)> {
    let mut text = Text::new(11);
    (0..64).map(|turn| (model_fact(&mut text, turn), tool_fact(&mut text, turn))).collect()
}

/// The metadata of throughput run `i` (its own identity and id).
pub fn run_meta(i: usize) -> RunMeta {
    RunMeta {
        run_id: RunId::new(),
        agent: "bench".into(),
        identity: Identity::new(format!("user{i}"), "acme"),
        parent: None,
        created_ms: i as u64,
    }
}
