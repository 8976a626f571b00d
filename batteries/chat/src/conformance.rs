//! The behaviour every [`ChatHistory`] backend must show, as async checks a backend's own
//! tests call with a fresh, empty store (the memory default in this crate's tests, SQLite in
//! executus-store's). A check panics with a message naming what broke.

use executus::llm::Message;

use crate::history::{ChatHistory, ChatKey};

fn key(user: &str, persona: &str) -> ChatKey {
    ChatKey { user: user.into(), tenant: "team".into(), persona: persona.into() }
}

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(Message::text).collect()
}

/// Runs every check below on `history` (empty at the start).
pub async fn all(history: &dyn ChatHistory) {
    appends_keep_order_and_load_returns_them(history).await;
    conversations_are_isolated_by_user_tenant_and_persona(history).await;
    reset_forgets_one_conversation_and_counts_it(history).await;
    empty_appends_and_unknown_keys_are_harmless(history).await;
}

/// Appends land after everything appended before them; `load` returns them oldest first.
pub async fn appends_keep_order_and_load_returns_them(history: &dyn ChatHistory) {
    let k = key("order", "concierge");
    history.append(&k, &[Message::user("one"), Message::assistant("two")]).await.expect("append 1");
    history.append(&k, &[Message::user("three")]).await.expect("append 2");
    let got = history.load(&k).await.expect("load");
    assert_eq!(texts(&got), ["one", "two", "three"], "messages come back in append order");
    assert_eq!(got[1], Message::assistant("two"), "a message comes back as it went in");
}

/// A conversation is keyed by user, tenant and persona: no two share messages.
pub async fn conversations_are_isolated_by_user_tenant_and_persona(history: &dyn ChatHistory) {
    let ada = key("iso-ada", "concierge");
    let other_persona = key("iso-ada", "critic");
    let other_tenant = ChatKey { tenant: "elsewhere".into(), ..ada.clone() };
    history.append(&ada, &[Message::user("ada")]).await.expect("append");
    history.append(&other_persona, &[Message::user("persona")]).await.expect("append");
    history.append(&other_tenant, &[Message::user("tenant")]).await.expect("append");
    assert_eq!(texts(&history.load(&ada).await.expect("load")), ["ada"]);
    assert_eq!(texts(&history.load(&other_persona).await.expect("load")), ["persona"]);
    assert_eq!(texts(&history.load(&other_tenant).await.expect("load")), ["tenant"]);
}

/// `reset` deletes one conversation, returns how many messages it held, and a new append
/// starts a fresh conversation.
pub async fn reset_forgets_one_conversation_and_counts_it(history: &dyn ChatHistory) {
    let a = key("reset-a", "concierge");
    let b = key("reset-b", "concierge");
    history.append(&a, &[Message::user("1"), Message::assistant("2")]).await.expect("append");
    history.append(&b, &[Message::user("kept")]).await.expect("append");
    assert_eq!(history.reset(&a).await.expect("reset"), 2, "reset counts the messages");
    assert!(history.load(&a).await.expect("load").is_empty(), "reset forgets them");
    assert_eq!(texts(&history.load(&b).await.expect("load")), ["kept"], "reset touches one conversation");
    history.append(&a, &[Message::user("again")]).await.expect("append after reset");
    assert_eq!(texts(&history.load(&a).await.expect("load")), ["again"]);
    assert_eq!(history.reset(&a).await.expect("reset"), 1);
}

/// An empty append stores nothing; an unknown conversation loads empty and resets to 0.
pub async fn empty_appends_and_unknown_keys_are_harmless(history: &dyn ChatHistory) {
    let k = key("nobody", "concierge");
    history.append(&k, &[]).await.expect("empty append");
    assert!(history.load(&k).await.expect("load").is_empty());
    assert_eq!(history.reset(&k).await.expect("reset"), 0);
}
