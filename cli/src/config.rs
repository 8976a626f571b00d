//! The CLI's configuration: figment (built-in defaults <- `executus.toml` or `--config` <-
//! `EXECUTUS_*` environment) extracted in two stages — the core's `RuntimeConfig` (lanes,
//! tiers, agents, tools, ...) and the host's own sections (providers, store, personas).
//! Every error names the key and the file or variable it came from; keys are never written
//! in the file (`api_key_env` names the variable that holds one).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use executus::RuntimeConfig;
use executus::config::{ConfigError, source_of};
use executus_llm::fake::{ReplayOptions, ReplayProvider};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::gemini::Gemini;
use executus_llm::providers::llama_swap::LlamaSwap;
use executus_llm::providers::ollama::Ollama;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{HttpOptions, Provider, ProviderSpec, Registry, Secret};
use figment::{Figment, Provider as _};
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
}

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://path.db`.
    pub url: Option<String>,
}

/// The host's own sections.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RawHost {
    /// `[providers.NAME]`.
    #[serde(default)]
    pub providers: BTreeMap<String, RawProvider>,
    /// `[store]`.
    #[serde(default)]
    pub store: RawStore,
}

/// The validated CLI configuration.
pub struct CliConfig {
    /// The figment (for `config` and for sections other commands extract).
    pub figment: Figment,
    /// Core runtime configuration.
    pub runtime: RuntimeConfig,
    /// Providers and tiers.
    pub registry: Registry,
    /// Store URL.
    pub store_url: String,
    /// The file the configuration came from, if any.
    pub file: Option<PathBuf>,
}

/// The embedded default store.
pub const DEFAULT_STORE: &str = "sqlite://executus.db";

impl CliConfig {
    /// Loads `path` (required when given explicitly) or `./executus.toml` (optional).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key and its source.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let (file, required) = match explicit {
            Some(p) => (Some(p.to_path_buf()), true),
            None => {
                let default = PathBuf::from("executus.toml");
                (default.exists().then_some(default), false)
            }
        };
        let figment = executus::config::figment(file.as_deref(), required)?;
        let runtime = RuntimeConfig::from_figment(&figment)?;
        let host: RawHost = figment.extract().map_err(|e| ConfigError::Load(e.to_string()))?;
        let registry = build_registry(&figment, &host.providers, file.as_deref())?;
        let store_url = host.store.url.unwrap_or_else(|| DEFAULT_STORE.to_owned());
        if !store_url.starts_with("sqlite:") {
            return Err(ConfigError::Invalid {
                key: "store.url".into(),
                origin: source_of(&figment, "store.url"),
                reason: format!("only sqlite:// URLs are supported, got {store_url:?}"),
            });
        }
        Ok(Self { figment, runtime, registry, store_url, file })
    }
}

fn build_registry(
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
        let base = |default: &str| raw.base_url.clone().unwrap_or_else(|| default.to_owned());
        let config = |url: String| ProviderConfig {
            name: name.clone(),
            base_url: url,
            api_key: key.clone(),
            http: http.clone(),
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
                // Relative paths are relative to the configuration file.
                let path = match (path.is_relative(), file.and_then(Path::parent)) {
                    (true, Some(dir)) if !dir.as_os_str().is_empty() => dir.join(path),
                    _ => path.clone(),
                };
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

/// Every leaf key of the configuration with its value (secrets redacted) and its source.
pub fn effective(figment: &Figment) -> Vec<(String, String, String)> {
    fn walk(prefix: &str, value: &figment::value::Value, out: &mut Vec<(String, figment::value::Value)>) {
        match value {
            figment::value::Value::Dict(_, dict) => {
                for (k, v) in dict {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => out.push((prefix.to_owned(), other.clone())),
        }
    }
    let mut leaves = Vec::new();
    if let Ok(data) = figment.data() {
        for dict in data.values() {
            for (k, v) in dict {
                walk(k, v, &mut leaves);
            }
        }
    }
    leaves
        .into_iter()
        .map(|(key, value)| {
            let shown = if is_secret_key(&key) { "[redacted]".to_owned() } else { render(&value) };
            let source = source_of(figment, &key);
            (key, shown, source)
        })
        .collect()
}

fn is_secret_key(key: &str) -> bool {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    !last.ends_with("_env")
        && (last.contains("key")
            || last.contains("token")
            || last.contains("secret")
            || last.contains("password"))
}

fn render(value: &figment::value::Value) -> String {
    use figment::value::Value;
    match value {
        Value::String(_, s) => format!("{s:?}"),
        Value::Char(_, c) => format!("{c:?}"),
        Value::Bool(_, b) => b.to_string(),
        Value::Num(_, n) => match n.to_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
            Some(f) => f.to_string(),
            None => "?".into(),
        },
        Value::Empty(..) => "none".into(),
        Value::Array(_, items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Dict(..) => "{...}".into(),
    }
}
