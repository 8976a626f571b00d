//! The model registry: the bundled replay transcript by default (offline, deterministic),
//! or live providers from the environment.
//!
//! | variable | meaning |
//! | --- | --- |
//! | `EXECUTUS_LLM_<NAME>` | provider DSN, e.g. `openai://KEY@`, `ollama://127.0.0.1:11434` |
//! | `CHATBOT_MODEL` | the `chat` tier (a chain such as `openai/gpt-4.1-mini, ollama/qwen3:8b`); required with live providers |
//! | `CHATBOT_JUDGE` | the critic's `judge` tier; default the same as `CHATBOT_MODEL` |
//!
//! With no `EXECUTUS_LLM_*` provider set, the bundled transcript answers as provider
//! `replay` (models `bot` and `judge`).

use std::sync::Arc;

use executus_llm::fake::{ReplayOptions, ReplayProvider, TranscriptWriter};
use executus_llm::{HttpOptions, ProviderSpec, Registry};

use crate::app::{CHAT_TIER, JUDGE_TIER};
use crate::error::ChatbotError;
use crate::fixture::{BUNDLED_TRANSCRIPT, REPLAY_PROVIDER, parse_transcript};

/// The chat model of the bundled transcript.
pub const BUNDLED_CHAT: &str = "replay/bot";

/// The judge model of the bundled transcript.
pub const BUNDLED_JUDGE: &str = "replay/judge";

/// A registry answering from the bundled transcript, with the `chat` and `judge` tiers.
///
/// # Errors
/// [`ChatbotError::Models`] if the bundled transcript does not parse (a broken build; the
/// tests catch it).
pub fn bundled_registry() -> Result<Registry, ChatbotError> {
    let entries = parse_transcript(BUNDLED_TRANSCRIPT)
        .map_err(|message| ChatbotError::Models { source_name: "data/replay.jsonl".into(), message })?;
    let replay = ReplayProvider::from_entries(entries, ReplayOptions::new().name(REPLAY_PROVIDER));
    let registry = Registry::new();
    registry.add_provider(Arc::new(replay)).map_err(|e| models_error("bundled replay", &e))?;
    set_tiers(&registry, BUNDLED_CHAT, BUNDLED_JUDGE)?;
    Ok(registry)
}

/// Live providers from `EXECUTUS_LLM_*` and the tiers from `CHATBOT_MODEL` /
/// `CHATBOT_JUDGE`; the bundled transcript when no provider is configured.
///
/// # Errors
/// [`ChatbotError::Models`] naming the variable that is missing or wrong.
pub fn registry_from_env() -> Result<Registry, ChatbotError> {
    let specs = ProviderSpec::from_env().map_err(|e| models_error("EXECUTUS_LLM_*", &e))?;
    if specs.is_empty() {
        return bundled_registry();
    }
    let registry = Registry::new();
    for spec in &specs {
        registry
            .add_spec(spec, HttpOptions::default())
            .map_err(|e| models_error(&format!("EXECUTUS_LLM_{}", spec.name.to_uppercase()), &e))?;
    }
    let chat = std::env::var("CHATBOT_MODEL").ok().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
        ChatbotError::Models {
            source_name: "CHATBOT_MODEL".into(),
            message: "not set: with EXECUTUS_LLM_* providers configured, name the chat model, e.g. \
                      CHATBOT_MODEL=openai/gpt-4.1-mini"
                .into(),
        }
    })?;
    let judge =
        std::env::var("CHATBOT_JUDGE").ok().filter(|v| !v.trim().is_empty()).unwrap_or_else(|| chat.clone());
    set_tiers(&registry, &chat, &judge)?;
    Ok(registry)
}

fn set_tiers(registry: &Registry, chat: &str, judge: &str) -> Result<(), ChatbotError> {
    registry.set_alias(CHAT_TIER, chat).map_err(|e| models_error("CHATBOT_MODEL", &e))?;
    registry.set_alias(JUDGE_TIER, judge).map_err(|e| models_error("CHATBOT_JUDGE", &e))?;
    Ok(())
}

fn models_error(source: &str, e: &dyn std::fmt::Display) -> ChatbotError {
    ChatbotError::Models { source_name: source.to_owned(), message: e.to_string() }
}

/// Replaces every provider of `registry` with one whose models append every call to
/// `writer` (how the bundled transcript is recorded).
///
/// # Errors
/// [`ChatbotError::Models`] if a provider cannot be re-registered.
pub fn record_all(registry: &Registry, writer: &TranscriptWriter) -> Result<(), ChatbotError> {
    writer.record_registry(registry).map_err(|e| models_error("recorder", &e))
}
