//! Regenerates the bundled replay transcript (`data/replay.jsonl`) from the hand-written
//! answers in `chatbot::fixture`, through the real app and the transcript recorder:
//!
//! ```text
//! cargo run -p chatbot --bin record_chatbot_fixture [-- OUT_PATH]
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data").join("replay.jsonl"),
        PathBuf::from,
    );
    let entries = chatbot::fixture::record_fixture(&out)
        .await
        .with_context(|| format!("recording {}", out.display()))?;
    eprintln!("recorded {entries} calls to {}", out.display());
    Ok(())
}
