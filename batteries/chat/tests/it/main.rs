//! executus-chat integration tests: the memory history against the conformance suite, and a
//! session's turns through a real runtime on the scripted provider.

#![allow(clippy::unwrap_used)]

mod session;

#[tokio::test]
async fn the_memory_history_passes_the_conformance_suite() {
    executus_chat::conformance::all(&executus_chat::MemoryChatHistory::new()).await;
}
