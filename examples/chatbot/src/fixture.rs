//! The bundled replay transcript and how it is made.
//!
//! **The answers in `data/replay.jsonl` were written by hand for the scenes below, not
//! produced by a live model.** [`record_fixture`] produces the file: it builds the real
//! [`App`] (personas, skill, budget, critic, daily job) over a scripted
//! [`FakeProvider`] named `replay` whose models answer from the [`ANSWERS`] table, wraps
//! it in the transcript recorder, and plays every scene — so the recorded requests are
//! exactly the ones the app sends (system prompts with the skill composed in, the history,
//! the tool results, the critic's review). Regenerate after changing a persona, the skill,
//! a scene or an answer:
//!
//! ```text
//! cargo run -p chatbot --bin record_chatbot_fixture
//! ```
//!
//! A replayed request must equal the recorded one, so a change that alters what the app
//! sends (a prompt, the history it keeps) makes the replay fail loudly, naming the first
//! differing field: the tests notice.

use std::path::Path;
use std::sync::Arc;

use executus::ports::ChannelDelivery;
use executus_llm::fake::{FakeProvider, Outcome, TranscriptEntry, TranscriptWriter};
use executus_llm::{Part, Registry, Request, Role, ToolCall, Usage};
use serde_json::{Value, json};

use crate::app::{App, AppOptions, CHAT_PERSONA, Stores};
use crate::error::ChatbotError;
use crate::models::record_all;

/// The provider name the transcript is recorded and replayed under.
pub const REPLAY_PROVIDER: &str = "replay";

/// The bundled transcript.
pub const BUNDLED_TRANSCRIPT: &str = include_str!("../data/replay.jsonl");

/// A user's conversation: their turns, in order.
#[derive(Debug, Clone, Copy)]
pub struct Scene {
    /// The user.
    pub user: &'static str,
    /// What they type, turn by turn.
    pub turns: &'static [&'static str],
}

/// Ada introduces herself, asks a sum (the skill makes the bot use `calc`), then checks the
/// bot remembers her — the third answer is only right with the history.
pub const ADA: Scene = Scene {
    user: "ada",
    turns: &[
        "Hi, I'm Ada. I look after the build servers.",
        "We have 14 build servers and each runs 6 jobs at once. How many jobs can run in parallel?",
        "What is my name, and what do I look after?",
    ],
};

/// Grace's question takes the bot more steps than the concierge's cap (4): the critic
/// judges the run at the cap and extends it, and the bot finishes.
pub const GRACE: Scene = Scene {
    user: "grace",
    turns: &[
        "Add up these four log file sizes one at a time: 120, 340, 560 and 780 MB. Then give me the total in GB.",
    ],
};

/// What the scripted model says next, keyed by what it was just given: a user message
/// (its exact text) or a tool result (the call id).
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A text answer.
    Text(&'static str),
    /// One `calc` call: (call id, expression).
    Calc(&'static str, &'static str),
}

/// The hand-written answers of the `bot` model.
pub const ANSWERS: &[(&str, Answer)] = &[
    (
        "Hi, I'm Ada. I look after the build servers.",
        Answer::Text("Welcome, Ada! Good to have someone keeping the build servers happy. How can I help?"),
    ),
    (
        "We have 14 build servers and each runs 6 jobs at once. How many jobs can run in parallel?",
        Answer::Calc("call_servers", "14 * 6"),
    ),
    ("call_servers", Answer::Text("Your 14 build servers can run 84 jobs in parallel.")),
    (
        "What is my name, and what do I look after?",
        Answer::Text("You're Ada, and you look after the build servers."),
    ),
    (
        "Add up these four log file sizes one at a time: 120, 340, 560 and 780 MB. Then give me the total in GB.",
        Answer::Calc("call_sum_1", "120 + 340"),
    ),
    ("call_sum_1", Answer::Calc("call_sum_2", "460 + 560")),
    ("call_sum_2", Answer::Calc("call_sum_3", "1020 + 780")),
    ("call_sum_3", Answer::Calc("call_sum_4", "1800 / 1024")),
    ("call_sum_4", Answer::Text("The four files come to 1800 MB, which is about 1.76 GB.")),
    (
        "Write today's digest for the team.",
        Answer::Text(
            "Good morning, team! Today's digest: the build servers are healthy, no jobs are queued, \
             and nothing needs your attention. Have a good day.",
        ),
    ),
];

/// The hand-written judgement of the `judge` model when Grace's run reaches its step cap.
pub const JUDGEMENT: &str = r#"{"verdict":"extend","reason":"Each step adds the next file to a running total; one more step finishes the sum."}"#;

/// The scripted answer to `request` (the last message decides), with usage that grows with
/// the conversation so that the budget has real numbers to price.
pub fn scripted_answer(request: &Request) -> Outcome {
    let Some(last) = request.messages.last() else {
        return Outcome::permanent("fixture: a request without messages");
    };
    let key = match (last.role, last.parts.first()) {
        (Role::Tool, Some(Part::ToolResult(result))) => result.id.clone(),
        _ => last.text(),
    };
    let Some((_, answer)) = ANSWERS.iter().find(|(k, _)| *k == key) else {
        return Outcome::permanent(format!("fixture: no scripted answer for {key:?}"));
    };
    let usage = Usage {
        input_tokens: 120 + 40 * request.messages.len() as u64,
        output_tokens: 30,
        ..Usage::default()
    };
    let outcome = match answer {
        Answer::Text(text) => Outcome::text(*text),
        Answer::Calc(id, expression) => Outcome::tool_calls([ToolCall {
            id: (*id).to_owned(),
            name: "calc".to_owned(),
            args: json!({ "expression": expression }),
            signature: None,
        }]),
    };
    outcome.with_usage(usage)
}

/// A registry whose `replay` provider is the scripted fake, with the tiers set.
///
/// # Errors
/// [`ChatbotError::Models`] if the tiers do not resolve.
pub fn scripted_registry() -> Result<Registry, ChatbotError> {
    let fake = FakeProvider::new(REPLAY_PROVIDER);
    fake.fallback_for("bot", Outcome::dynamic(scripted_answer));
    fake.fallback_for(
        "judge",
        Outcome::text(JUDGEMENT).with_usage(Usage {
            input_tokens: 300,
            output_tokens: 25,
            ..Usage::default()
        }),
    );
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake)).map_err(|e| ChatbotError::Fixture(e.to_string()))?;
    registry
        .set_alias(crate::app::CHAT_TIER, "replay/bot")
        .map_err(|e| ChatbotError::Fixture(e.to_string()))?;
    registry
        .set_alias(crate::app::JUDGE_TIER, "replay/judge")
        .map_err(|e| ChatbotError::Fixture(e.to_string()))?;
    Ok(registry)
}

/// Parses transcript JSON lines (blank lines ignored).
///
/// # Errors
/// The line number and why it does not parse.
pub fn parse_transcript(text: &str) -> Result<Vec<TranscriptEntry>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| serde_json::from_str(line).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Plays every scene on `app`: Ada's conversation, Grace's long sum, the digest. Returns the
/// answers in order (the digest's delivered text last).
///
/// # Errors
/// [`ChatbotError::Fixture`] naming the first turn that did not complete.
pub async fn play_scenes(
    app: &App,
    digests: &mut tokio::sync::mpsc::Receiver<executus::ports::DeliveryItem>,
) -> Result<Vec<String>, ChatbotError> {
    let mut answers = Vec::new();
    for scene in [ADA, GRACE] {
        let session = app.session(scene.user, CHAT_PERSONA).await?;
        for turn in scene.turns {
            let outcome = session.turn(turn).await?;
            if !outcome.is_completed() {
                return Err(ChatbotError::Fixture(format!(
                    "{}'s turn {turn:?} ended {}: {}",
                    scene.user,
                    outcome.status(),
                    outcome.end.reason().unwrap_or_default()
                )));
            }
            answers.push(outcome.output.clone().unwrap_or_default());
        }
    }
    let digest = app.run_digest_now().await?;
    let outcome = digest.outcome().await;
    if !outcome.is_completed() {
        return Err(ChatbotError::Fixture(format!("the digest ended {}", outcome.status())));
    }
    let delivered =
        digests.recv().await.ok_or_else(|| ChatbotError::Fixture("the digest was not delivered".into()))?;
    answers.push(delivered.output.unwrap_or_default());
    Ok(answers)
}

/// Records the bundled transcript into `out` (see the module docs); returns the number of
/// recorded calls.
///
/// # Errors
/// [`ChatbotError::Fixture`] when a scene fails or the file cannot be written.
pub async fn record_fixture(out: &Path) -> Result<usize, ChatbotError> {
    let partial = out.with_extension("jsonl.partial");
    let writer = TranscriptWriter::create(&partial).map_err(|e| ChatbotError::Fixture(e.to_string()))?;
    let registry = scripted_registry()?;
    record_all(&registry, &writer)?;
    let (tx, mut digests) = tokio::sync::mpsc::channel(4);
    let mut options = AppOptions::new(registry, Stores::in_memory());
    options.delivery = Arc::new(ChannelDelivery(tx));
    let app = App::build(options).await?;
    play_scenes(&app, &mut digests).await?;
    app.close(std::time::Duration::ZERO).await;
    if writer.failed_writes() > 0 {
        return Err(ChatbotError::Fixture(format!("{} transcript writes failed", writer.failed_writes())));
    }
    drop(writer);
    let text = std::fs::read_to_string(&partial).map_err(|e| ChatbotError::Fixture(e.to_string()))?;
    let entries = parse_transcript(&text).map_err(ChatbotError::Fixture)?;
    std::fs::rename(&partial, out).map_err(|e| ChatbotError::Fixture(format!("{}: {e}", out.display())))?;
    Ok(entries.len())
}

/// The JSON of a judgement (for tests that check the critic's answer).
pub fn judgement() -> Value {
    serde_json::from_str(JUDGEMENT).unwrap_or(Value::Null)
}
