//! The chat stores: the chat battery's conformance suite and ordered appends from two handles
//! (two "processes") on every backend (a SQLite file, SQLite in memory, PostgreSQL); on a
//! SQLite file, a corrupt row reported with the conversation and conversations kept by
//! earlier chat bot versions moved over by the migration.

use executus::llm::Message;
use executus_chat::{ChatHistory, ChatKey};
use executus_store::Store;

async fn open(path: &std::path::Path) -> Store {
    Store::open(&format!("sqlite://{}", path.display())).await.unwrap()
}

fn key(user: &str) -> ChatKey {
    ChatKey { user: user.into(), tenant: "team".into(), persona: "concierge".into() }
}

#[tokio::test]
async fn the_chat_stores_pass_the_conformance_suite() {
    const TEST: &str = "the_chat_stores_pass_the_conformance_suite";
    for backend in crate::conformance::backends(TEST) {
        let db = crate::conformance::Db::new(backend, TEST).await;
        executus_chat::conformance::all(&db.open().await.chats()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_two_handles_stay_ordered_and_survive_reopening() {
    const TEST: &str = "appends_from_two_handles_stay_ordered_and_survive_reopening";
    for backend in crate::conformance::backends(TEST) {
        let db = crate::conformance::Db::new(backend, TEST).await;
        two_handles(&db).await;
    }
}

async fn two_handles(db: &crate::conformance::Db) {
    let (a, b) = (db.open().await.chats(), db.open().await.chats());
    let ada = key("ada");
    a.append(&ada, &[Message::user("one"), Message::assistant("two")]).await.unwrap();
    b.append(&ada, &[Message::user("three")]).await.unwrap();
    let batch = |h: executus_store::AnyChatStore, tag: &'static str| {
        let ada = ada.clone();
        tokio::spawn(async move {
            for i in 0..10 {
                let pair = [Message::user(format!("{tag}{i}q")), Message::assistant(format!("{tag}{i}a"))];
                h.append(&ada, &pair).await.unwrap();
            }
        })
    };
    let (x, y) = (batch(a.clone(), "x"), batch(b.clone(), "y"));
    x.await.unwrap();
    y.await.unwrap();
    let reopened = db.open().await.chats();
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
}

#[tokio::test]
async fn a_corrupt_row_is_an_error_naming_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    let chats = open(&path).await.chats();
    chats.append(&key("ada"), &[Message::user("fine")]).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE chat_messages SET message = 'not json'").execute(&pool).await.unwrap();
    let error = chats.load(&key("ada")).await.unwrap_err().to_string();
    assert!(error.contains("ada@team with concierge") && error.contains("message 0"), "{error}");
}

#[tokio::test]
async fn conversations_of_the_old_chat_bot_table_are_moved_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // A store file as an earlier version left it: migrations up to 7, plus the chat bot's own
    // table with a conversation in it.
    let store = open(&path).await;
    drop(store);
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 8").execute(&pool).await.unwrap();
    sqlx::query("DROP TABLE chat_messages").execute(&pool).await.unwrap();
    sqlx::query(
        "CREATE TABLE chatbot_messages (tenant TEXT NOT NULL, user TEXT NOT NULL, persona TEXT NOT NULL, \
         seq INTEGER NOT NULL, message TEXT NOT NULL, created_ms INTEGER NOT NULL, \
         PRIMARY KEY (tenant, user, persona, seq)) WITHOUT ROWID",
    )
    .execute(&pool)
    .await
    .unwrap();
    for (seq, m) in [Message::user("remember me"), Message::assistant("I will")].iter().enumerate() {
        sqlx::query("INSERT INTO chatbot_messages VALUES ('team', 'ada', 'concierge', ?1, ?2, 0)")
            .bind(seq as i64)
            .bind(serde_json::to_string(m).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;
    let chats = open(&path).await.chats();
    let texts: Vec<String> = chats.load(&key("ada")).await.unwrap().iter().map(Message::text).collect();
    assert_eq!(texts, ["remember me", "I will"]);
}
