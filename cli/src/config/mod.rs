//! The CLI's configuration: figment (built-in defaults <- `executus.toml` or `--config` <-
//! `EXECUTUS_*` environment) extracted in two stages — the core's `RuntimeConfig` (lanes,
//! tiers, agents, tools, ...) and the host's own sections ([`providers`], [`host`]: store,
//! personas, skills, audit, budget, critic, policy, swarm, schedule, chat). Every error names
//! the key and the file or variable it came from; keys are never written in the file
//! (`api_key_env` names the variable that holds one). Once each section is valid on its own,
//! [`check`] cross-checks what the sections name (models, tools, skills, agents, the store
//! file), so every command refuses a configuration that refers to nothing.

pub mod check;
pub mod fleet;
pub mod host;
pub mod providers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use executus::RuntimeConfig;
use executus::config::{ConfigError, source_of};
use executus_llm::Registry;
use figment::{Figment, Provider as _};
use serde::Deserialize;

pub use host::{HostConfig, parse_identity};
pub use providers::RawProvider;

/// `[store]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `sqlite://path.db` or `postgres://user@host/db`.
    pub url: Option<String>,
    /// PostgreSQL: how long a run's lease lasts without a heartbeat (default 10 s).
    #[serde(default, with = "executus::duration_serde::option")]
    pub lease_expiry: Option<std::time::Duration>,
    /// PostgreSQL: connections in the pool (default 8).
    pub connections: Option<i64>,
}

/// `[store]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSettings {
    /// PostgreSQL lease expiry.
    pub lease_expiry: std::time::Duration,
    /// PostgreSQL pool size.
    pub connections: u32,
}

impl StoreSettings {
    /// The store options these settings mean.
    pub fn options(&self) -> executus_store::StoreOptions {
        executus_store::StoreOptions::default()
            .lease_expiry(self.lease_expiry)
            .pg_connections(self.connections)
    }
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
    /// `[fleet]`: llama-swap hosts, `auto:*` models, retention.
    #[serde(default)]
    pub fleet: fleet::RawFleet,
    /// Personas, skills, audit, budget, critic, policy, swarm, schedule, chat.
    #[serde(flatten)]
    pub sections: host::RawHostSections,
}

/// The validated CLI configuration.
pub struct CliConfig {
    /// The figment (for `config` and for sections other commands extract).
    pub figment: Figment,
    /// Core runtime configuration.
    pub runtime: RuntimeConfig,
    /// Providers and tiers.
    pub registry: Registry,
    /// Store URL (may hold a password: show [`CliConfig::store_location`]).
    pub store_url: String,
    /// `[store]` settings beyond the URL.
    pub store: StoreSettings,
    /// The host's sections, validated.
    pub host: HostConfig,
    /// `[fleet]`, validated (no hosts when the section is absent).
    pub fleet: executus_fleet::FleetConfig,
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
        let raw: RawHost = figment.extract().map_err(|e| ConfigError::Load(e.to_string()))?;
        let registry = providers::build_registry(&figment, &raw.providers, file.as_deref())?;
        let store_url = raw.store.url.unwrap_or_else(|| DEFAULT_STORE.to_owned());
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            key: key.into(),
            origin: source_of(&figment, key),
            reason,
        };
        if !store_url.starts_with("sqlite:") && !executus_store::postgres::is_postgres_url(&store_url) {
            return Err(invalid(
                "store.url",
                format!(
                    "expected sqlite://PATH or postgres://USER@HOST/DB, got {:?}",
                    executus_store::postgres::redact(&store_url)
                ),
            ));
        }
        let mut store = StoreSettings { lease_expiry: std::time::Duration::from_secs(10), connections: 8 };
        if let Some(expiry) = raw.store.lease_expiry {
            if expiry < std::time::Duration::from_secs(1) || expiry > std::time::Duration::from_secs(3600) {
                return Err(invalid("store.lease_expiry", format!("must be 1s to 1h, got {expiry:?}")));
            }
            store.lease_expiry = expiry;
        }
        if let Some(n) = raw.store.connections {
            store.connections = u32::try_from(n)
                .ok()
                .filter(|n| (2..=1000).contains(n))
                .ok_or_else(|| invalid("store.connections", format!("must be 2 to 1000, got {n}")))?;
        }
        let host = raw.sections.validate(&figment, file.as_deref())?;
        if runtime.mode == executus::config::RunMode::Queue
            && !executus_store::postgres::is_postgres_url(&store_url)
        {
            return Err(invalid(
                "runtime.mode",
                "mode = \"queue\" needs a store the workers share: [store] url = \"postgres://...\"".into(),
            ));
        }
        let fleet = raw.fleet.validate(&figment)?;
        // `auto:NAME` is a model spec like any other (agents, tiers, serve): the fleet behind
        // it starts on the first request that uses one. Registered before the checks below,
        // which resolve every model spec.
        crate::commands::fleet::register_auto(&fleet, &store_url, &registry)?;
        check::check(&figment, &runtime, &host, &registry, &store_url)?;
        Ok(Self { figment, runtime, registry, store_url, store, host, fleet, file })
    }

    /// The store URL without its password, for messages.
    pub fn store_location(&self) -> String {
        executus_store::postgres::redact(&self.store_url)
    }
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
            let shown = if is_secret_key(&key) {
                "[redacted]".to_owned()
            } else if key.ends_with("url") {
                // A database URL may carry a password.
                executus_store::postgres::redact(&render(&value))
            } else {
                render(&value)
            };
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
        Value::Num(_, n) => n
            .to_i128()
            .map(|i| i.to_string())
            .or_else(|| n.to_u128().map(|u| u.to_string()))
            .or_else(|| n.to_f64().map(|f| f.to_string()))
            .unwrap_or_else(|| format!("{n:?}")),
        Value::Empty(..) => "none".into(),
        Value::Array(_, items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Dict(..) => "{...}".into(),
    }
}
