//! Shared helpers.

use std::sync::Arc;

use executus::Runtime;
use executus_llm::Registry;
use executus_llm::fake::ReplayProvider;
use pr_review_swarm::fixture::{SAMPLE_DIFF, bundled_replay};
use pr_review_swarm::{Review, ReviewConfig, build_runtime, run_review};

/// A registry holding the bundled replay, the replay itself (to check it was used up), and a
/// runtime over them.
pub fn bundled_runtime(config: &ReviewConfig) -> (Runtime, ReplayProvider, Registry) {
    let replay = bundled_replay().expect("the bundled transcript parses");
    let registry = Registry::new();
    registry.add_provider(Arc::new(replay.clone())).unwrap();
    let runtime = build_runtime(config, registry.clone()).unwrap();
    (runtime, replay, registry)
}

/// The review of the sample diff with the default (offline) configuration.
pub async fn bundled_review() -> Review {
    let config = ReviewConfig::default();
    let (runtime, replay, _) = bundled_runtime(&config);
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    assert_eq!(replay.remaining(), 0, "every recorded answer was used");
    review
}
