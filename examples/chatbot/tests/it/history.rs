//! `SqliteChatHistory` on a real SQLite file: opened through the executus store, ordered
//! appends from two handles (two "processes"), per-key isolation, reset, corrupt rows
//! reported, and the store's refusal of a file that is not its own.

use chatbot::{ChatHistory, ChatKey, SqliteChatHistory};
use executus_llm::Message;

async fn open(path: &std::path::Path) -> (executus_store::Store, SqliteChatHistory) {
    let store = executus_store::Store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let history = SqliteChatHistory::open(&store).await.unwrap();
    (store, history)
}

fn key(user: &str) -> ChatKey {
    ChatKey { user: user.into(), tenant: "team".into(), persona: "concierge".into() }
}

#[tokio::test]
async fn appends_are_ordered_isolated_and_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let (_s1, a) = open(&path).await;
    let (_s2, b) = open(&path).await;
    let ada = key("ada");
    a.append(&ada, &[Message::user("one"), Message::assistant("two")]).await.unwrap();
    b.append(&ada, &[Message::user("three")]).await.unwrap();
    b.append(&key("bob"), &[Message::user("bob's")]).await.unwrap();

    // Concurrent appends from both handles: each batch stays contiguous.
    let batch = |h: SqliteChatHistory, tag: &'static str| {
        let ada = ada.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                h.append(
                    &ada,
                    &[Message::user(format!("{tag}{i}q")), Message::assistant(format!("{tag}{i}a"))],
                )
                .await
                .unwrap();
            }
        })
    };
    let (x, y) = (batch(a.clone(), "x"), batch(b.clone(), "y"));
    x.await.unwrap();
    y.await.unwrap();

    let (_s3, reopened) = open(&path).await;
    let texts: Vec<String> = reopened.load(&ada).await.unwrap().iter().map(Message::text).collect();
    assert_eq!(&texts[..3], ["one", "two", "three"]);
    assert_eq!(texts.len(), 3 + 40);
    for pair in texts[3..].chunks(2) {
        assert_eq!(
            pair[0].trim_end_matches('q'),
            pair[1].trim_end_matches('a'),
            "a batch was split: {pair:?}"
        );
    }
    assert_eq!(reopened.load(&key("bob")).await.unwrap().len(), 1);
    assert_eq!(reopened.reset(&ada).await.unwrap(), 43);
    assert!(reopened.load(&ada).await.unwrap().is_empty());
    assert_eq!(reopened.load(&key("bob")).await.unwrap().len(), 1, "reset touches one conversation");
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_naming_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let (_store, history) = open(&path).await;
    history.append(&key("ada"), &[Message::user("fine")]).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE chatbot_messages SET message = 'not json'").execute(&pool).await.unwrap();
    let error = history.load(&key("ada")).await.unwrap_err().to_string();
    assert!(error.contains("corrupt") && error.contains("ada@team with concierge"), "{error}");
}

#[tokio::test]
async fn an_in_memory_store_and_a_foreign_file_are_refused() {
    let memory = executus_store::Store::open("sqlite::memory:").await.unwrap();
    assert!(SqliteChatHistory::open(&memory).await.is_err());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "these are my notes, not a database").unwrap();
    let error =
        chatbot::Stores::open(&format!("sqlite://{}", path.display())).await.err().unwrap().to_string();
    assert!(error.contains("notes.txt"), "{error}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "these are my notes, not a database", "left alone");
}
