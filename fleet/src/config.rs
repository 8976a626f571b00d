//! The fleet's validated configuration: hosts, `auto:*` virtual models, retention windows,
//! and the connector's knobs. Hosts' configuration files (`[fleet.hosts.NAME]`,
//! `[fleet.auto.NAME]`, `[fleet.retention]`) are read by the host program (the CLI) and
//! validated here, so every error names its dotted key.

use std::time::Duration;

use executus_llm::Secret;

use crate::connector::ReconnectPolicy;
use crate::error::FleetError;

/// One llama-swap host.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Its name (`[fleet.hosts.NAME]`); also its provider name in `auto:*` chains.
    pub name: String,
    /// Its root URL, e.g. `http://127.0.0.1:8080`.
    pub base_url: String,
    /// The key its `apiKeys` setting requires, if any (kept server-side, never shown).
    pub key: Option<Secret>,
}

impl HostSpec {
    /// A host without a key.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        let base_url: String = base_url.into();
        Self { name: name.into(), base_url: base_url.trim_end_matches('/').to_owned(), key: None }
    }
}

/// A model on a host, as `auto:*` candidates name them (`host/model`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// The host.
    pub host: String,
    /// The model id (verbatim: it may contain `/` and `:`).
    pub model: String,
}

impl Candidate {
    /// Parses `host/model`.
    ///
    /// # Errors
    /// The reason, when `text` is not `host/model` with both parts non-empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.trim().split_once('/') {
            Some((host, model)) if !host.is_empty() && !model.is_empty() => {
                Ok(Self { host: host.to_owned(), model: model.to_owned() })
            }
            _ => Err(format!("{text:?} is not host/model")),
        }
    }
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.model)
    }
}

/// A virtual model `auto:NAME`.
#[derive(Debug, Clone)]
pub struct AutoSpec {
    /// `NAME` (the model is `auto:NAME`).
    pub name: String,
    /// The models it may route to, in preference order for ties.
    pub candidates: Vec<Candidate>,
}

/// How long history is kept, and how retention works through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Raw perf samples older than this are rolled into 5-minute buckets and deleted
    /// (default 24 h).
    pub perf_raw: Duration,
    /// Buckets older than this are deleted (default 90 days).
    pub perf_buckets: Duration,
    /// Activity rows older than this are deleted (default 90 days).
    pub activity: Duration,
    /// Rows deleted per statement (default 5000): the bound of one chunk.
    pub chunk_rows: u32,
    /// How often the retention job runs (default 1 h).
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            perf_raw: Duration::from_secs(24 * 3600),
            perf_buckets: Duration::from_secs(90 * 86_400),
            activity: Duration::from_secs(90 * 86_400),
            chunk_rows: 5000,
            interval: Duration::from_secs(3600),
        }
    }
}

/// The whole fleet configuration.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The hosts.
    pub hosts: Vec<HostSpec>,
    /// The `auto:*` virtual models.
    pub autos: Vec<AutoSpec>,
    /// Retention.
    pub retention: Retention,
    /// The connector's reconnect policy.
    pub reconnect: ReconnectPolicy,
    /// Perf polling period (default 5 s); `None` turns polling off.
    pub perf_poll: Option<Duration>,
    /// How long a lease lasts without renewal (default 30 s; renewed every third of it).
    pub lease_ttl: Duration,
    /// Actions a host's queue holds, the running one included (default 4).
    pub queue_depth: usize,
    /// Timeout of one management call or activity/perf fetch (default 30 s).
    pub request_timeout: Duration,
}

impl Default for FleetConfig {
    fn default() -> Self {
        Self {
            hosts: Vec::new(),
            autos: Vec::new(),
            retention: Retention::default(),
            reconnect: ReconnectPolicy::default(),
            perf_poll: Some(Duration::from_secs(5)),
            lease_ttl: Duration::from_secs(30),
            queue_depth: 4,
            request_timeout: Duration::from_secs(30),
        }
    }
}

fn invalid(key: String, reason: impl Into<String>) -> FleetError {
    FleetError::Config { key, reason: reason.into() }
}

/// A name usable as a host or `auto:` name: ASCII letters, digits, `-`, `_`, `.`.
fn check_name(key: String, name: &str) -> Result<(), FleetError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(key, format!("{name:?}: use only ASCII letters, digits, '-', '_' and '.'")));
    }
    Ok(())
}

impl FleetConfig {
    /// Checks names, URLs, references and windows.
    ///
    /// # Errors
    /// [`FleetError::Config`] naming the key (`fleet.hosts.NAME.base_url`,
    /// `fleet.auto.NAME.candidates`, `fleet.retention.*`, ...).
    pub fn validate(&self) -> Result<(), FleetError> {
        let mut seen = std::collections::HashSet::new();
        for host in &self.hosts {
            check_name(format!("fleet.hosts.{}", host.name), &host.name)?;
            if !seen.insert(host.name.as_str()) {
                return Err(invalid(format!("fleet.hosts.{}", host.name), "defined twice"));
            }
            let key = format!("fleet.hosts.{}.base_url", host.name);
            let url = reqwest::Url::parse(&host.base_url)
                .map_err(|e| invalid(key.clone(), format!("{:?}: {e}", host.base_url)))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(invalid(
                    key,
                    format!("{:?}: expected http://host:port or https://...", host.base_url),
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(invalid(key, "put the host's key in `api_key_env`, not in the URL"));
            }
        }
        let mut autos = std::collections::HashSet::new();
        for auto in &self.autos {
            check_name(format!("fleet.auto.{}", auto.name), &auto.name)?;
            if !autos.insert(auto.name.as_str()) {
                return Err(invalid(format!("fleet.auto.{}", auto.name), "defined twice"));
            }
            let key = format!("fleet.auto.{}.candidates", auto.name);
            if auto.candidates.is_empty() {
                return Err(invalid(key, "needs at least one host/model candidate"));
            }
            for c in &auto.candidates {
                if !seen.contains(c.host.as_str()) {
                    let known: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                    return Err(invalid(
                        key,
                        format!(
                            "{c}: no host {:?} in [fleet.hosts] (configured: {})",
                            c.host,
                            if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                        ),
                    ));
                }
            }
        }
        let r = &self.retention;
        for (name, value) in [
            ("perf_raw", r.perf_raw),
            ("perf_buckets", r.perf_buckets),
            ("activity", r.activity),
            ("interval", r.interval),
        ] {
            if value.is_zero() {
                return Err(invalid(format!("fleet.retention.{name}"), "must be longer than zero"));
            }
        }
        if r.perf_buckets < r.perf_raw {
            return Err(invalid(
                "fleet.retention.perf_buckets".into(),
                "must be at least as long as perf_raw (buckets summarise raw samples that are deleted)",
            ));
        }
        if r.chunk_rows == 0 {
            return Err(invalid("fleet.retention.chunk_rows".into(), "must be at least 1"));
        }
        if self.queue_depth == 0 {
            return Err(invalid("fleet.queue_depth".into(), "must be at least 1"));
        }
        if self.lease_ttl < Duration::from_millis(300) {
            return Err(invalid("fleet.lease_ttl".into(), "must be at least 300ms"));
        }
        Ok(())
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }
}
