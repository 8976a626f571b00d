//! Model wiring: the [`Registry`] a review runs against — providers from `EXECUTUS_LLM_*`,
//! the replay provider, tiers, and the optional recorder — and the [`Runtime`] around it.
//!
//! Recording wraps every registered provider (replay included) so that each model call is
//! appended to one transcript, API keys of the configured providers redacted. Nothing here
//! contacts a server: providers connect on their first call.

use std::sync::Arc;

use executus::Runtime;
use executus::config::{LaneSettings, RuntimeConfig};
use executus_llm::fake::{ReplayOptions, ReplayProvider, TranscriptWriter};
use executus_llm::{HttpOptions, Registry, Secret};

use crate::config::{ReplaySource, ReviewConfig};
use crate::error::ReviewError;
use crate::fixture;

/// The provider name replay transcripts are served under.
pub const REPLAY_PROVIDER: &str = "replay";

/// A configured registry, with the recorder's writer when recording.
#[derive(Debug, Clone)]
pub struct Models {
    /// Providers, the replay provider and tiers.
    pub registry: Registry,
    /// The transcript writer when `record` is set (check [`TranscriptWriter::failed_writes`]
    /// after the review).
    pub recorder: Option<TranscriptWriter>,
}

/// Builds the registry `config` describes (see the module docs).
///
/// # Errors
/// [`ReviewError::Transcript`] when a replay transcript cannot be loaded or the recording
/// file cannot be created; [`ReviewError::Models`] for a bad provider or tier.
pub fn build_models(config: &ReviewConfig) -> Result<Models, ReviewError> {
    let registry = Registry::new();
    let mut secrets: Vec<Secret> = Vec::new();
    for spec in &config.providers {
        registry.add_spec(spec, HttpOptions::default()).map_err(|source| ReviewError::Models {
            var: format!("EXECUTUS_LLM_{}", spec.name.to_uppercase()),
            source,
        })?;
        secrets.extend(spec.api_key.clone());
    }
    let replay = match &config.replay {
        ReplaySource::Off => None,
        ReplaySource::Bundled => Some(fixture::bundled_replay()?),
        ReplaySource::Path(path) => Some(
            ReplayProvider::open_with(path, ReplayOptions::new().name(REPLAY_PROVIDER))
                .map_err(|source| ReviewError::Transcript { var: "PR_REVIEW_REPLAY".into(), source })?,
        ),
    };
    if let Some(replay) = replay {
        registry
            .add_provider(Arc::new(replay))
            .map_err(|source| ReviewError::Models { var: "PR_REVIEW_REPLAY".into(), source })?;
    }
    for (name, spec) in &config.tiers {
        registry.set_alias(name, spec.clone()).map_err(|source| ReviewError::Models {
            var: format!("{}{}", crate::config::TIER_PREFIX, name.to_uppercase()),
            source,
        })?;
    }
    let recorder = match &config.record {
        None => None,
        Some(path) => {
            let writer = TranscriptWriter::create(path)
                .map_err(|source| ReviewError::Transcript { var: "PR_REVIEW_RECORD".into(), source })?
                .with_secrets(secrets);
            record_all(&registry, &writer)?;
            Some(writer)
        }
    };
    Ok(Models { registry, recorder })
}

/// Replaces every provider of `registry` with one whose models record to `writer`.
///
/// # Errors
/// [`ReviewError::Models`] if a provider cannot be re-registered (it was registered under
/// the same name before, so this does not happen in practice).
pub fn record_all(registry: &Registry, writer: &TranscriptWriter) -> Result<(), ReviewError> {
    writer
        .record_registry(registry)
        .map_err(|source| ReviewError::Models { var: "PR_REVIEW_RECORD".into(), source })
}

/// A runtime over `registry` whose lane (`config.lane`, else `default`) runs
/// `config.concurrency` cells at once.
///
/// # Errors
/// [`ReviewError::Runtime`] if the runtime refuses its configuration.
pub fn build_runtime(config: &ReviewConfig, registry: Registry) -> Result<Runtime, ReviewError> {
    let mut runtime_config = RuntimeConfig::default();
    let lane = config.lane.clone().unwrap_or_else(|| "default".to_owned());
    runtime_config
        .lanes
        .insert(lane, LaneSettings { capacity: config.concurrency, ..LaneSettings::default() });
    Runtime::builder()
        .registry(registry)
        .config(runtime_config)
        .try_build()
        .map_err(|e| ReviewError::Runtime(e.to_string()))
}
