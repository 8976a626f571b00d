//! `[fleet]`: the llama-swap hosts `executus-run fleet ...` watches and steers, the `auto:*`
//! virtual models routed over them, and the history's retention windows — read raw by
//! figment, validated into `executus_fleet::FleetConfig`. Errors name the dotted key and
//! where it came from. A host's key is never written in the file: `api_key_env` names the
//! variable that holds it.
//!
//! ```toml
//! [fleet.hosts.desk]
//! base_url = "http://127.0.0.1:8080"
//! api_key_env = "DESK_SWAP_KEY"      # optional
//!
//! [fleet.auto.code]                  # the model `auto:code`
//! candidates = ["desk/qwen3-coder", "box/qwen3-coder"]
//!
//! [fleet.retention]                  # all optional
//! perf_raw = "24h"                   # raw perf samples, then 5-minute buckets
//! perf_buckets = "90d"
//! activity = "90d"
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use executus::config::{ConfigError, source_of};
use executus_fleet::{AutoSpec, Candidate, FleetConfig, HostSpec, Retention};
use executus_llm::Secret;
use figment::Figment;
use serde::Deserialize;

use super::host::StringList;

/// `[fleet.hosts.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleetHost {
    /// The host's root URL.
    pub base_url: String,
    /// The environment variable holding the key its `apiKeys` setting requires.
    pub api_key_env: Option<String>,
}

/// `[fleet.auto.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuto {
    /// `host/model` candidates.
    pub candidates: StringList,
}

/// `[fleet.retention]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    /// Raw perf samples are kept this long, then rolled into buckets (`24h`).
    pub perf_raw: Option<String>,
    /// Buckets are kept this long (`90d`).
    pub perf_buckets: Option<String>,
    /// Activity rows are kept this long (`90d`).
    pub activity: Option<String>,
    /// How often retention runs (`1h`).
    pub interval: Option<String>,
    /// Rows deleted per statement.
    pub chunk_rows: Option<i64>,
}

/// `[fleet]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    /// `[fleet.hosts.NAME]`.
    #[serde(default)]
    pub hosts: BTreeMap<String, RawFleetHost>,
    /// `[fleet.auto.NAME]`.
    #[serde(default)]
    pub auto: BTreeMap<String, RawAuto>,
    /// `[fleet.retention]`.
    #[serde(default)]
    pub retention: RawRetention,
    /// Perf polling period (`5s`; `off` turns it off).
    pub perf_poll: Option<String>,
    /// Lease time-to-live (`30s`).
    pub lease_ttl: Option<String>,
    /// Actions a host's queue holds (4).
    pub queue_depth: Option<i64>,
}

fn duration(figment: &Figment, key: &str, text: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text.trim()).map_err(|e| ConfigError::Invalid {
        key: key.to_owned(),
        origin: source_of(figment, key),
        reason: format!("{text:?} is not a duration (e.g. 30s, 24h, 90d): {e}"),
    })
}

impl RawFleet {
    /// Validates into the fleet's configuration.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming `fleet.…` and its source.
    pub fn validate(&self, figment: &Figment) -> Result<FleetConfig, ConfigError> {
        let invalid = |key: String, reason: String| ConfigError::Invalid {
            origin: source_of(figment, &key),
            key,
            reason,
        };
        let mut config = FleetConfig::default();
        for (name, raw) in &self.hosts {
            let key = match &raw.api_key_env {
                None => None,
                Some(var) => match std::env::var(var) {
                    Ok(v) if !v.trim().is_empty() => Some(Secret::new(v.trim())),
                    _ => {
                        return Err(invalid(
                            format!("fleet.hosts.{name}.api_key_env"),
                            format!("environment variable {var} is not set (it should hold the host's key)"),
                        ));
                    }
                },
            };
            let mut host = HostSpec::new(name.clone(), raw.base_url.trim());
            host.key = key;
            config.hosts.push(host);
        }
        for (name, raw) in &self.auto {
            let key = format!("fleet.auto.{name}.candidates");
            let mut candidates = Vec::new();
            for item in raw.candidates.items() {
                candidates.push(Candidate::parse(&item).map_err(|reason| invalid(key.clone(), reason))?);
            }
            config.autos.push(AutoSpec { name: name.clone(), candidates });
        }
        let r = &self.retention;
        let mut retention = Retention::default();
        for (field, text, slot) in [
            ("perf_raw", &r.perf_raw, &mut retention.perf_raw),
            ("perf_buckets", &r.perf_buckets, &mut retention.perf_buckets),
            ("activity", &r.activity, &mut retention.activity),
            ("interval", &r.interval, &mut retention.interval),
        ] {
            if let Some(text) = text {
                *slot = duration(figment, &format!("fleet.retention.{field}"), text)?;
            }
        }
        if let Some(rows) = r.chunk_rows {
            retention.chunk_rows = u32::try_from(rows).ok().filter(|r| *r > 0).ok_or_else(|| {
                invalid("fleet.retention.chunk_rows".into(), format!("{rows}: expected 1 or more"))
            })?;
        }
        config.retention = retention;
        match self.perf_poll.as_deref().map(str::trim) {
            None => {}
            Some("off" | "none") => config.perf_poll = None,
            Some(text) => config.perf_poll = Some(duration(figment, "fleet.perf_poll", text)?),
        }
        if let Some(text) = &self.lease_ttl {
            config.lease_ttl = duration(figment, "fleet.lease_ttl", text)?;
        }
        if let Some(depth) = self.queue_depth {
            config.queue_depth = usize::try_from(depth)
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| invalid("fleet.queue_depth".into(), format!("{depth}: expected 1 or more")))?;
        }
        // Cross-checks (URLs, names, candidates naming configured hosts) name their key too.
        config.validate().map_err(|e| match e {
            executus_fleet::FleetError::Config { key, reason } => invalid(key, reason),
            other => ConfigError::Load(other.to_string()),
        })?;
        Ok(config)
    }
}
