//! The bundled transcript is what the hand-written answers produce through the real app:
//! recording it again gives the same file, byte for byte, and it answers every scene.

use chatbot::fixture::{BUNDLED_TRANSCRIPT, record_fixture};

use crate::common::bundled_app;

#[tokio::test(start_paused = true)]
async fn the_bundled_transcript_is_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replay.jsonl");
    let entries = record_fixture(&out).await.unwrap();
    assert_eq!(entries, 11, "4 calls for Ada, 6 for Grace (judge included), 1 digest");
    let recorded = std::fs::read_to_string(&out).unwrap();
    assert!(
        recorded == BUNDLED_TRANSCRIPT,
        "data/replay.jsonl is stale: run `cargo run -p chatbot --bin record_chatbot_fixture`"
    );
}

#[tokio::test(start_paused = true)]
async fn every_scene_replays_offline() {
    let (app, mut delivered) = bundled_app().await;
    let answers = chatbot::fixture::play_scenes(&app, &mut delivered).await.unwrap();
    assert_eq!(answers.len(), 5);
    assert!(answers.iter().all(|a| !a.is_empty()));
    app.close(std::time::Duration::ZERO).await;
}
