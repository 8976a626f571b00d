//! # executus-swarm — the PR-review swarm
//!
//! The library behind the light host (`examples/pr-review-swarm`) and `executus-run swarm`.
//! Reviews a unified diff with N models x M review lenses, each cell answering with
//! structured findings ([`LensReport`]), merges and de-duplicates the findings across models
//! ([`merge`]), and renders Markdown, SARIF 2.1.0 and JSON ([`render`]). It depends on the
//! executus core and the provider crate only: no database, no cron, no battery.
//!
//! ```no_run
//! # async fn demo() -> Result<(), executus_swarm::ReviewError> {
//! use executus_swarm::{ReviewConfig, build_models, build_runtime, load_diff, render_markdown, run_review};
//!
//! let config = ReviewConfig::from_env()?;           // offline defaults when nothing is set
//! let models = build_models(&config)?;              // providers, replay, tiers, recorder
//! let runtime = build_runtime(&config, models.registry)?;
//! let diff = load_diff(&config)?;
//! let review = run_review(&runtime, &config, &diff).await?;
//! println!("{}", render_markdown(&review));
//! # Ok(())
//! # }
//! ```
//!
//! ## How it runs
//!
//! One [`executus::fanout`] swarm: every model x every lens is a cell admitted through a lane
//! (`PR_REVIEW_CONCURRENCY` is its capacity), run as a one-shot model call whose response
//! schema is [`LensReport::response_schema`]. A model that fails fails only its cells, and
//! the report lists them. The requests are deterministic (constant prompts, the diff, the
//! schema), so a recorded transcript replays them by content.
//!
//! ## Configuration (environment variables)
//!
//! | variable | meaning |
//! | --- | --- |
//! | `PR_REVIEW_MODELS` | comma-separated models (`provider/model` or a tier), one row each; default the bundled replay models `replay/model-a,replay/model-b` |
//! | `PR_REVIEW_LENSES` | subset of `correctness`, `security`, `performance`, `maintainability` (alias `tests`); default all |
//! | `PR_REVIEW_DIFF` | diff path, `-` for stdin; default the bundled sample diff |
//! | `PR_REVIEW_OUT_DIR` | where review.md / review.sarif / review.json go; default `target/pr-review` |
//! | `PR_REVIEW_CONCURRENCY` | cells at once (lane capacity), 1-256; default 8 |
//! | `PR_REVIEW_DEADLINE` | swarm deadline (`90s`, `5m`, `none`); default `10m` |
//! | `PR_REVIEW_REPLAY` | answer from this transcript (`bundled` for the bundled one); default bundled when no `EXECUTUS_LLM_*` provider is set |
//! | `PR_REVIEW_RECORD` | record every model call to this transcript (keys redacted) |
//! | `PR_REVIEW_TIER_<NAME>` | define tier `<name>` as a failover chain |
//! | `PR_REVIEW_QUIET` | `1` silences progress lines |
//! | `EXECUTUS_LLM_<NAME>` | provider DSN, e.g. `openai://KEY@`, `ollama://127.0.0.1:11434` |
//!
//! [`config::ENV_VARS`] holds the same table for `--help`.
//!
//! ## Offline by default
//!
//! With nothing set, the review runs on [`fixture::SAMPLE_DIFF`] and answers from the bundled
//! replay transcript. The bundled answers were written by hand for the sample diff, not
//! produced by a live model; see [`fixture`] for how they are recorded.

pub mod cache;
pub mod config;
pub mod diff;
pub mod error;
pub mod finding;
pub mod fixture;
pub mod gate;
pub mod git;
pub mod glob;
pub mod lens;
pub mod merge;
pub mod models;
pub mod patch;
pub mod plan;
pub mod post;
pub mod render;
pub mod review;

pub use cache::{CacheKey, CachedCell, FileReviewCache, MemoryReviewCache, NoCache, ReviewCache};
pub use config::{DiffSource, ReplaySource, ReviewConfig};
pub use error::ReviewError;
pub use finding::{Finding, LensReport, Severity};
pub use gate::{FINDINGS_EXIT, FailOn};
pub use lens::LensKind;
pub use merge::MergedFinding;
pub use models::{Models, build_models, build_runtime};
pub use plan::{Chunk, LeftOut, LeftOutReason, ReviewPlan, SplitOptions, plan_review};
pub use post::{Platform, PostReport, PostTarget, post_review};
pub use render::{render_comment, render_json, render_markdown, render_ndjson, render_sarif, write_outputs};
pub use review::{
    CellStatus, CellSummary, Progress, Review, Spend, load_diff, run_review, run_review_cached,
    run_review_with_progress,
};
