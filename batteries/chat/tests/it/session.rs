//! A session's turns through a real runtime on the scripted (fake) provider: a completed turn
//! joins the history with everything the run added, a failed turn does not, and the REPL's
//! commands act on the stored conversation.

use std::sync::Arc;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Message, Registry};
use executus::{Identity, RunStatus, RunnableAgent, Runtime, RuntimeConfig};
use executus_chat::{ChatHistory, ChatSession, MemoryChatHistory, ReplStop, repl};
use tokio_util::sync::CancellationToken;

fn runtime(fake: &FakeProvider) -> Runtime {
    let registry = Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    let mut config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
    config.agents.insert("concierge".into(), RunnableAgent::new("concierge", "You help.", "fake/m"));
    Runtime::builder().registry(registry).config(config).build()
}

#[tokio::test]
async fn a_completed_turn_is_kept_and_a_failed_one_is_not() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("hello Ada"));
    fake.push("m", Outcome::error(executus::llm::ErrorKind::Permanent, "refused"));
    fake.push("m", Outcome::text("still here"));
    let rt = runtime(&fake);
    let history: Arc<dyn ChatHistory> = Arc::new(MemoryChatHistory::new());
    let session =
        ChatSession::open(&rt, history.clone(), "concierge", Identity::new("ada", "team")).await.unwrap();

    let first = session.turn("hi, I'm Ada").await.unwrap();
    assert_eq!(first.status(), RunStatus::Completed);
    let failed = session.turn("this one fails").await.unwrap();
    assert_eq!(failed.status(), RunStatus::Failed);
    let third = session.turn("are you there?").await.unwrap();
    assert_eq!(third.output.as_deref(), Some("still here"));

    let stored: Vec<String> = session.history().await.unwrap().iter().map(Message::text).collect();
    assert_eq!(stored, ["hi, I'm Ada", "hello Ada", "are you there?", "still here"]);
    // The third turn's model saw the kept conversation, not the failed turn.
    let last = fake.requests_for("m").pop().unwrap();
    let seen: Vec<String> = last.messages.iter().map(Message::text).collect();
    assert_eq!(seen, ["hi, I'm Ada", "hello Ada", "are you there?"]);
}

#[tokio::test]
async fn an_unknown_persona_is_refused_with_the_known_ones() {
    let rt = runtime(&FakeProvider::new("fake"));
    let err = ChatSession::open(&rt, Arc::new(MemoryChatHistory::new()), "nobody", Identity::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nobody") && err.contains("concierge"), "{err}");
}

#[tokio::test]
async fn the_repl_answers_lines_and_obeys_its_commands() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("first answer"));
    fake.push("m", Outcome::text("second answer"));
    let rt = runtime(&fake);
    let session =
        ChatSession::open(&rt, Arc::new(MemoryChatHistory::new()), "concierge", Identity::default())
            .await
            .unwrap();
    let input: &[u8] = b"one\n/history\n/reset\ntwo\n/bogus\n/exit\nnever read\n";
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let ended = repl(&session, input, &mut out, &mut err, false, &CancellationToken::new()).await.unwrap();
    assert_eq!(ended.reason, ReplStop::Exit);
    assert_eq!(ended.last_status, Some(RunStatus::Completed));
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert!(out.contains("first answer") && out.contains("second answer"), "{out}");
    assert!(err.contains("unknown command /bogus"), "{err}");
    // After /reset only the second exchange is kept.
    let stored: Vec<String> = session.history().await.unwrap().iter().map(Message::text).collect();
    assert_eq!(stored, ["two", "second answer"]);
    assert_eq!(fake.calls_for("m"), 2, "the line after /exit was never sent");
}
