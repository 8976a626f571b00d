//! Regenerates the bundled replay transcript (`swarm/data/replay.jsonl`) from the
//! hand-written answers in `swarm/data/answers.json`, through the real review pipeline and the
//! transcript recorder (see `executus_swarm::fixture`). Run it after changing a lens prompt, the
//! findings schema or the sample diff:
//!
//! ```text
//! cargo run -p pr-review-swarm --bin record_fixture [-- OUT_PATH]
//! ```

use std::path::PathBuf;

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let out = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../swarm/data/replay.jsonl"),
        PathBuf::from,
    );
    let entries = pr_review_swarm::fixture::record_fixture(&out)
        .await
        .with_context(|| format!("recording {}", out.display()))?;
    eprintln!("recorded {entries} calls to {}", out.display());
    Ok(())
}
