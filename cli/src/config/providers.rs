//! `[providers.NAME]` and `EXECUTUS_LLM_<NAME>`: the model registry the CLI runs against.
//!
//! A provider's key is never written in the file: `api_key_env` names the variable that holds
//! it, and a variable that is named but unset is an error naming both. A `base_url` must be
//! an `http` or `https` URL with a host. Nothing here contacts a server; providers connect on
//! their first call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use executus::config::{ConfigError, source_of};
use executus_llm::fake::{ReplayOptions, ReplayProvider};
use executus_llm::media::{ImageFormat, LimitsError, MediaKind, MediaLimits};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::gemini::Gemini;
use executus_llm::providers::llama_swap::LlamaSwap;
use executus_llm::providers::ollama::Ollama;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{HttpOptions, Provider, ProviderSpec, Registry, Secret};
use figment::Figment;
use serde::Deserialize;

/// `[providers.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `openai | anthropic | ollama | gemini | llama-swap | replay`.
    pub kind: String,
    /// Endpoint (defaults per kind).
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    /// For `replay`: the transcript file.
    pub path: Option<PathBuf>,
    /// Connect timeout.
    #[serde(default, with = "executus::duration_serde::option")]
    pub connect_timeout: Option<Duration>,
    /// Time-to-headers timeout.
    #[serde(default, with = "executus::duration_serde::option")]
    pub headers_timeout: Option<Duration>,
    /// Idle-between-chunks timeout.
    #[serde(default, with = "executus::duration_serde::option")]
    pub idle_timeout: Option<Duration>,
    /// `[providers.NAME.media]`: image-input limits overriding the kind's row.
    pub media: Option<RawMedia>,
}

/// `[providers.NAME.media]`: start from a row of the limits table (`kind`, by default the
/// provider's own) and override any field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMedia {
    /// `openai | anthropic | gemini | ollama | openai-compatible`.
    pub kind: Option<String>,
    /// Accepted formats, most preferred first: `png`, `jpeg`, `gif`, `webp`.
    pub formats: Option<Vec<String>>,
    /// Longest side in pixels.
    pub max_long_side: Option<u32>,
    /// Width times height.
    pub max_pixels: Option<u64>,
    /// Bytes of one image.
    pub max_image_bytes: Option<usize>,
    /// Bytes of all images of one request.
    pub max_request_bytes: Option<usize>,
}

impl RawMedia {
    /// The limits: `kind`'s row (or `default`'s) with the fields given replacing its own.
    /// `Err((field, reason))` names the offending field.
    pub fn limits(&self, default: MediaKind) -> Result<MediaLimits, (&'static str, String)> {
        let kind = match &self.kind {
            None => default,
            Some(k) => k.parse::<MediaKind>().map_err(|e| ("kind", e.to_string()))?,
        };
        let mut limits = kind.limits();
        if let Some(formats) = &self.formats {
            let mut parsed = Vec::with_capacity(formats.len());
            for f in formats {
                parsed.push(f.parse::<ImageFormat>().map_err(|e| ("formats", e.to_string()))?);
            }
            limits.formats = parsed;
        }
        if let Some(v) = self.max_long_side {
            limits.max_long_side = v;
        }
        if let Some(v) = self.max_pixels {
            limits.max_pixels = v;
        }
        if let Some(v) = self.max_image_bytes {
            limits.max_image_bytes = v;
        }
        if let Some(v) = self.max_request_bytes {
            limits.max_request_bytes = v;
        }
        limits.validate().map_err(|e| {
            let field = match &e {
                LimitsError::TooSmall { field, .. } => field,
                _ => &"formats",
            };
            (*field, e.to_string())
        })?;
        Ok(limits)
    }
}

/// A provider's endpoint must be an absolute `http` or `https` URL with a host: anything else
/// could never be requested (and would fail only at the first call).
///
/// # Errors
/// What is wrong with it.
pub fn check_base_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| format!("{text:?} is not a URL ({e}); expected e.g. http://127.0.0.1:8080/v1"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{text:?} is not an http:// or https:// URL (scheme {:?})", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{text:?} has no host"));
    }
    Ok(())
}

/// Resolves `path` relative to the configuration file's folder (absolute paths unchanged).
pub fn relative_to_file(path: &Path, file: Option<&Path>) -> PathBuf {
    match (path.is_relative(), file.and_then(Path::parent)) {
        (true, Some(dir)) if !dir.as_os_str().is_empty() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// The registry the providers describe, plus `EXECUTUS_LLM_*` providers from the environment.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `providers.NAME.<key>` and its source, or a
/// [`ConfigError::Load`] naming the `EXECUTUS_LLM_*` variable.
pub fn build_registry(
    figment: &Figment,
    providers: &BTreeMap<String, RawProvider>,
    file: Option<&Path>,
) -> Result<Registry, ConfigError> {
    let invalid =
        |key: String, reason: String| ConfigError::Invalid { origin: source_of(figment, &key), key, reason };
    let registry = Registry::new();
    for (name, raw) in providers {
        let mut http = HttpOptions::default();
        if let Some(t) = raw.connect_timeout {
            http.connect_timeout = t;
        }
        if let Some(t) = raw.headers_timeout {
            http.headers_timeout = t;
        }
        if let Some(t) = raw.idle_timeout {
            http.idle_timeout = t;
        }
        let key = match &raw.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                _ => {
                    return Err(invalid(
                        format!("providers.{name}.api_key_env"),
                        format!("environment variable {var} is not set (it should hold the API key)"),
                    ));
                }
            },
        };
        if let Some(url) = &raw.base_url {
            check_base_url(url).map_err(|reason| invalid(format!("providers.{name}.base_url"), reason))?;
        }
        let base = |default: &str| raw.base_url.clone().unwrap_or_else(|| default.to_owned());
        let base_url = |default: &str| raw.base_url.clone().unwrap_or_else(|| default.to_owned());
        let default_kind = match raw.kind.as_str() {
            "anthropic" => Some(MediaKind::Anthropic),
            "gemini" => Some(MediaKind::Gemini),
            "ollama" => Some(MediaKind::Ollama),
            "llama-swap" => Some(MediaKind::OpenAiCompatible),
            "openai" => Some(MediaKind::for_openai_base(&base_url("https://api.openai.com/v1"))),
            _ => None,
        };
        let media = match (&raw.media, default_kind) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(invalid(
                    format!("providers.{name}.media"),
                    format!("a {} provider sends no images to shape", raw.kind),
                ));
            }
            (Some(media), Some(kind)) => Some(
                media
                    .limits(kind)
                    .map_err(|(field, reason)| invalid(format!("providers.{name}.media.{field}"), reason))?,
            ),
        };
        let config = |url: String| ProviderConfig {
            name: name.clone(),
            base_url: url,
            api_key: key.clone(),
            http: http.clone(),
            media: media.clone(),
        };
        let provider: Arc<dyn Provider> = match raw.kind.as_str() {
            "openai" => Arc::new(OpenAi::new(config(base("https://api.openai.com/v1")))),
            "anthropic" => Arc::new(Anthropic::new(config(base("https://api.anthropic.com")))),
            "gemini" => {
                Arc::new(Gemini::new(config(base("https://generativelanguage.googleapis.com/v1beta"))))
            }
            "ollama" => Arc::new(Ollama::new(config(base("http://127.0.0.1:11434")))),
            "llama-swap" => Arc::new(LlamaSwap::new(config(base("http://127.0.0.1:8080")))),
            "replay" => {
                let Some(path) = &raw.path else {
                    return Err(invalid(
                        format!("providers.{name}.path"),
                        "a replay provider needs `path`".into(),
                    ));
                };
                let path = relative_to_file(path, file);
                let replay = ReplayProvider::open_with(&path, ReplayOptions::default().name(name.clone()))
                    .map_err(|e| invalid(format!("providers.{name}.path"), e.to_string()))?;
                Arc::new(replay)
            }
            other => {
                return Err(invalid(
                    format!("providers.{name}.kind"),
                    format!(
                        "unknown kind {other:?} (expected openai, anthropic, ollama, gemini, llama-swap or replay)"
                    ),
                ));
            }
        };
        registry.add_provider(provider).map_err(|e| invalid(format!("providers.{name}"), e.to_string()))?;
    }
    // EXECUTUS_LLM_<NAME>=<dsn> adds (or replaces) providers from the environment.
    let specs = ProviderSpec::from_env()
        .map_err(|e| ConfigError::Load(format!("{e} (from EXECUTUS_LLM_* environment)")))?;
    for spec in specs {
        registry.add_spec(&spec, HttpOptions::default()).map_err(|e| {
            ConfigError::Load(format!("{e} (from EXECUTUS_LLM_{})", spec.name.to_uppercase()))
        })?;
    }
    Ok(registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_overrides_start_from_a_row_and_replace_fields() {
        let none = RawMedia::default();
        assert_eq!(none.limits(MediaKind::Gemini), Ok(MediaKind::Gemini.limits()));
        let raw = RawMedia {
            kind: Some("anthropic".into()),
            formats: Some(vec!["jpg".into(), "png".into()]),
            max_image_bytes: Some(500_000),
            ..RawMedia::default()
        };
        let limits = raw.limits(MediaKind::OpenAiCompatible).unwrap();
        assert_eq!(limits.kind, MediaKind::Anthropic);
        assert_eq!(limits.formats, [ImageFormat::Jpeg, ImageFormat::Png]);
        assert_eq!(limits.max_image_bytes, 500_000);
        assert_eq!(limits.max_long_side, 1568, "the row's own value stays");
        let bad = RawMedia { max_pixels: Some(3), ..RawMedia::default() };
        assert_eq!(bad.limits(MediaKind::Ollama).unwrap_err().0, "max_pixels");
    }
}
