//! Configuration, in two stages: figment extracts a serde [`RawConfig`] (built-in defaults
//! <- `executus.toml` <- `EXECUTUS_*` environment), then [`RawConfig::validate`] turns it
//! into the typed [`RuntimeConfig`] the actors see. A bad value is an error naming the key
//! and where it came from (file or environment variable).
//!
//! Environment keys nest with `__`: `EXECUTUS_LANES__DEFAULT__CAPACITY=4`,
//! `EXECUTUS_RUNTIME__STREAMING=false`. `EXECUTUS_LLM_<NAME>` variables are provider DSNs
//! (see `executus_llm::dsn`) and are not part of this file's keys.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::{Limits, LoopLimits, RunnableAgent};
use crate::dispatch::DispatchLimits;

/// A lane's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneSettings {
    /// Jobs running at once.
    pub capacity: NonZeroUsize,
    /// Jobs waiting beyond those running.
    pub max_queue: usize,
}

impl Default for LaneSettings {
    fn default() -> Self {
        Self { capacity: NonZeroUsize::new(8).unwrap_or(NonZeroUsize::MIN), max_queue: 10_000 }
    }
}

/// Context compaction settings.
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionSettings {
    /// Compact when a request's estimated tokens pass this fraction of the model's context.
    pub threshold: f64,
    /// Context size assumed for models not listed in `context_sizes`.
    pub default_context_tokens: u64,
    /// Per-model context sizes (`provider/model` or model id -> tokens).
    pub context_sizes: BTreeMap<String, u64>,
    /// Model spec for summaries (default: the run's own model).
    pub summary_model: Option<String>,
    /// Most recent messages always kept verbatim.
    pub keep_recent: usize,
    /// Off switch.
    pub enabled: bool,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        Self {
            threshold: 0.75,
            default_context_tokens: 32_768,
            context_sizes: BTreeMap::new(),
            summary_model: None,
            keep_recent: 6,
            enabled: true,
        }
    }
}

/// The validated runtime configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// Lanes by name; `default` always exists.
    pub lanes: BTreeMap<String, LaneSettings>,
    /// Minimum interval between checkpoint writes of ordinary facts.
    pub checkpoint_interval: Duration,
    /// Call models with streaming (text deltas become run events).
    pub streaming: bool,
    /// How many times one step's model call is re-issued after its stream broke past the
    /// first event with a transient error (the chain cannot fail over once output was seen).
    /// The re-issued call skips the target that broke when the chain has another; watchers
    /// get [`crate::RunEvent::StepRestarted`] and should discard that step's text deltas.
    pub stream_restarts: u32,
    /// Tool outputs longer than this are truncated (with a note to the model).
    pub max_tool_output_bytes: usize,
    /// Grace period for running jobs at shutdown.
    pub shutdown_grace: Duration,
    /// Whether top-level runs are driven here or handed to a shared queue (a host setting:
    /// the host wires the queue, see [`crate::ports::RunQueue`]).
    pub mode: RunMode,
    /// Dispatch tree caps.
    pub dispatch: DispatchLimits,
    /// Tiers (aliases) added to the registry: name -> chain spec.
    pub tiers: BTreeMap<String, String>,
    /// Agents defined in configuration.
    pub agents: BTreeMap<String, RunnableAgent>,
    /// Context compaction.
    pub compaction: CompactionSettings,
    /// `host:port` pairs network tools may reach despite the SSRF guard.
    pub network_allow: Vec<String>,
    /// Largest body `web_fetch` returns (kept below `max_tool_output_bytes` so the page is
    /// not cut twice).
    pub web_fetch_max_bytes: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let mut lanes = BTreeMap::new();
        lanes.insert("default".to_owned(), LaneSettings::default());
        Self {
            lanes,
            checkpoint_interval: Duration::from_millis(100),
            streaming: true,
            stream_restarts: 1,
            max_tool_output_bytes: 64 << 10,
            shutdown_grace: Duration::from_secs(2),
            mode: RunMode::Drive,
            dispatch: DispatchLimits::default(),
            tiers: BTreeMap::new(),
            agents: BTreeMap::new(),
            compaction: CompactionSettings::default(),
            network_allow: Vec::new(),
            web_fetch_max_bytes: 48 << 10,
        }
    }
}

/// `[runtime] mode`: who drives a top-level run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// This process drives its runs (the default).
    #[default]
    Drive,
    /// Runs go to a queue shared by worker processes (`executus-run worker`).
    Queue,
}

impl std::fmt::Display for RunMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Drive => "drive",
            Self::Queue => "queue",
        })
    }
}

impl std::str::FromStr for RunMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "drive" => Ok(Self::Drive),
            "queue" => Ok(Self::Queue),
            other => Err(format!("must be \"drive\" or \"queue\", got {other:?}")),
        }
    }
}

/// A configuration error, naming the key and its source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration could not be read or parsed (figment names key and source).
    #[error("configuration error: {0}")]
    Load(String),
    /// A value parsed but is not acceptable.
    #[error("invalid configuration value for {key} (from {origin}): {reason}")]
    Invalid {
        /// Dotted key, e.g. `lanes.default.capacity`.
        key: String,
        /// Where the value came from (file path or environment variable).
        origin: String,
        /// Why it is not acceptable.
        reason: String,
    },
}

/// Raw lane settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLane {
    /// Jobs running at once.
    pub capacity: Option<i64>,
    /// Jobs waiting.
    pub max_queue: Option<i64>,
}

/// Raw `[runtime]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuntime {
    /// See [`RuntimeConfig::checkpoint_interval`].
    #[serde(default, with = "crate::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval: Option<Duration>,
    /// See [`RuntimeConfig::streaming`].
    pub streaming: Option<bool>,
    /// See [`RuntimeConfig::stream_restarts`].
    pub stream_restarts: Option<i64>,
    /// See [`RuntimeConfig::max_tool_output_bytes`].
    pub max_tool_output_bytes: Option<i64>,
    /// See [`RuntimeConfig::shutdown_grace`].
    #[serde(default, with = "crate::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub shutdown_grace: Option<Duration>,
    /// See [`RuntimeConfig::mode`] (`"drive"` or `"queue"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// Raw `[dispatch]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDispatch {
    /// Max depth.
    pub max_depth: Option<u32>,
    /// Max children per parent.
    pub max_fanout: Option<u32>,
    /// Max dispatches per root.
    pub max_total: Option<u32>,
}

/// Raw `[agents.NAME]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Description.
    pub description: Option<String>,
    /// System prompt.
    pub system: Option<String>,
    /// Model spec or tier.
    pub model: Option<String>,
    /// Tool allowlist.
    pub tools: Option<Vec<String>>,
    /// Skills.
    pub skills: Option<Vec<String>>,
    /// Step cap.
    pub max_steps: Option<u32>,
    /// Run timeout.
    #[serde(default, with = "crate::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Soft timeout (critic review).
    #[serde(default, with = "crate::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub soft_timeout: Option<Duration>,
    /// Tool timeout.
    #[serde(default, with = "crate::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub tool_timeout: Option<Duration>,
    /// Temperature.
    pub temperature: Option<f32>,
    /// Output token cap.
    pub max_tokens: Option<u32>,
    /// Lane.
    pub lane: Option<String>,
    /// Policy profile.
    pub policy_profile: Option<String>,
    /// Tool calls of one step run at most this many at once.
    pub tool_concurrency: Option<u32>,
    /// Consecutive failing tool calls that end the run.
    pub tool_error_limit: Option<u32>,
    /// Loop-protection thresholds for this agent (over `[loops]`).
    #[serde(default)]
    pub loops: RawLoops,
}

/// Raw loop-protection thresholds (`[loops]`, `[agents.NAME.loops]`, a persona's
/// `limits.loops`); anything left out keeps the value below it (the core default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoops {
    /// See [`LoopLimits::cycle`] (at least 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<u32>,
    /// See [`LoopLimits::stagnation`] (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stagnation: Option<u32>,
    /// See [`LoopLimits::unproductive`] (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unproductive: Option<u32>,
    /// See [`LoopLimits::finalize_turns`] (0: stop at the first trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalize_turns: Option<u32>,
}

impl RawLoops {
    /// `base` with these overrides applied.
    ///
    /// # Errors
    /// `(field, reason)` for the first value out of range (`cycle` below 2, `stagnation` or
    /// `unproductive` below 1).
    pub fn apply(&self, mut base: LoopLimits) -> Result<LoopLimits, (&'static str, String)> {
        for (field, value, min, slot) in [
            ("cycle", self.cycle, 2, &mut base.cycle),
            ("stagnation", self.stagnation, 1, &mut base.stagnation),
            ("unproductive", self.unproductive, 1, &mut base.unproductive),
            ("finalize_turns", self.finalize_turns, 0, &mut base.finalize_turns),
        ] {
            if let Some(v) = value {
                if v < min {
                    return Err((field, format!("must be at least {min}, got {v}")));
                }
                *slot = v;
            }
        }
        Ok(base)
    }
}

/// Raw `[compaction]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompaction {
    /// See [`CompactionSettings::enabled`].
    pub enabled: Option<bool>,
    /// See [`CompactionSettings::threshold`].
    pub threshold: Option<f64>,
    /// See [`CompactionSettings::default_context_tokens`].
    pub default_context_tokens: Option<u64>,
    /// See [`CompactionSettings::context_sizes`].
    pub context_sizes: Option<BTreeMap<String, u64>>,
    /// See [`CompactionSettings::summary_model`].
    pub summary_model: Option<String>,
    /// See [`CompactionSettings::keep_recent`].
    pub keep_recent: Option<usize>,
}

/// Raw `[tools.web_fetch]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebFetch {
    /// SSRF allow list (`host:port`).
    pub allow: Option<Vec<String>>,
    /// Largest body returned.
    pub max_bytes: Option<i64>,
}

/// Raw `[tools]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawTools {
    /// `web_fetch` settings.
    #[serde(default)]
    pub web_fetch: RawWebFetch,
}

/// The configuration as read, before validation. Sections other hosts add (providers,
/// store, personas...) are ignored here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RawConfig {
    /// `[lanes.NAME]`.
    #[serde(default)]
    pub lanes: BTreeMap<String, RawLane>,
    /// `[runtime]`.
    #[serde(default)]
    pub runtime: RawRuntime,
    /// `[dispatch]`.
    #[serde(default)]
    pub dispatch: RawDispatch,
    /// `[tiers]`.
    #[serde(default)]
    pub tiers: BTreeMap<String, String>,
    /// `[agents.NAME]`.
    #[serde(default)]
    pub agents: BTreeMap<String, RawAgent>,
    /// `[compaction]`.
    #[serde(default)]
    pub compaction: RawCompaction,
    /// `[tools]`.
    #[serde(default)]
    pub tools: RawTools,
    /// `[loops]`: loop-protection thresholds for every agent defined here.
    #[serde(default)]
    pub loops: RawLoops,
}

impl RawConfig {
    /// Validates into a [`RuntimeConfig`]. `source_of(key)` names where a key's value came
    /// from, for error messages.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(self, source_of: &dyn Fn(&str) -> String) -> Result<RuntimeConfig, ConfigError> {
        let invalid =
            |key: String, reason: String| ConfigError::Invalid { origin: source_of(&key), key, reason };
        let mut cfg = RuntimeConfig::default();
        for (name, lane) in self.lanes {
            let mut settings = LaneSettings::default();
            if let Some(c) = lane.capacity {
                let key = format!("lanes.{name}.capacity");
                let c = usize::try_from(c)
                    .ok()
                    .and_then(NonZeroUsize::new)
                    .ok_or_else(|| invalid(key, format!("must be a whole number of at least 1, got {c}")))?;
                settings.capacity = c;
            }
            if let Some(q) = lane.max_queue {
                let key = format!("lanes.{name}.max_queue");
                settings.max_queue =
                    usize::try_from(q).map_err(|_| invalid(key, format!("must be 0 or more, got {q}")))?;
            }
            cfg.lanes.insert(name, settings);
        }
        if let Some(d) = self.runtime.checkpoint_interval {
            cfg.checkpoint_interval = d;
        }
        if let Some(s) = self.runtime.streaming {
            cfg.streaming = s;
        }
        if let Some(n) = self.runtime.stream_restarts {
            cfg.stream_restarts = u32::try_from(n).ok().filter(|n| *n <= 10).ok_or_else(|| {
                invalid("runtime.stream_restarts".into(), format!("must be 0 to 10, got {n}"))
            })?;
        }
        if let Some(n) = self.runtime.max_tool_output_bytes {
            cfg.max_tool_output_bytes = usize::try_from(n).ok().filter(|n| *n >= 256).ok_or_else(|| {
                invalid("runtime.max_tool_output_bytes".into(), format!("must be at least 256, got {n}"))
            })?;
        }
        if let Some(d) = self.runtime.shutdown_grace {
            cfg.shutdown_grace = d;
        }
        if let Some(mode) = &self.runtime.mode {
            cfg.mode = mode.parse().map_err(|reason| invalid("runtime.mode".into(), reason))?;
        }
        let d = self.dispatch;
        for (key, value, slot) in [
            ("dispatch.max_depth", d.max_depth, &mut cfg.dispatch.max_depth),
            ("dispatch.max_fanout", d.max_fanout, &mut cfg.dispatch.max_fanout),
            ("dispatch.max_total", d.max_total, &mut cfg.dispatch.max_total),
        ] {
            if let Some(v) = value {
                if v == 0 {
                    return Err(invalid(key.into(), "must be at least 1".into()));
                }
                *slot = v;
            }
        }
        for (name, spec) in &self.tiers {
            if spec.trim().is_empty() {
                return Err(invalid(format!("tiers.{name}"), "must be a non-empty chain spec".into()));
            }
        }
        cfg.tiers = self.tiers;
        let loops = self
            .loops
            .apply(LoopLimits::default())
            .map_err(|(field, reason)| invalid(format!("loops.{field}"), reason))?;
        for (name, raw) in self.agents {
            let model = raw.model.filter(|m| !m.trim().is_empty()).ok_or_else(|| {
                invalid(
                    format!("agents.{name}.model"),
                    "every agent needs a model (a tier or provider/model chain)".into(),
                )
            })?;
            let mut limits = Limits::default();
            if let Some(n) = raw.max_steps {
                if n == 0 {
                    return Err(invalid(format!("agents.{name}.max_steps"), "must be at least 1".into()));
                }
                limits.max_steps = n;
            }
            if let Some(t) = raw.timeout {
                if t.is_zero() {
                    return Err(invalid(format!("agents.{name}.timeout"), "must be longer than 0s".into()));
                }
                limits.timeout = t;
            }
            limits.soft_timeout = raw.soft_timeout;
            if let Some(t) = raw.tool_timeout {
                limits.tool_timeout = t;
            }
            for (field, value) in
                [("tool_concurrency", raw.tool_concurrency), ("tool_error_limit", raw.tool_error_limit)]
            {
                if value == Some(0) {
                    return Err(invalid(format!("agents.{name}.{field}"), "must be at least 1".into()));
                }
            }
            if let Some(n) = raw.tool_concurrency {
                limits.tool_concurrency = n as usize;
            }
            if let Some(n) = raw.tool_error_limit {
                limits.tool_error_limit = n;
            }
            limits.loops = raw
                .loops
                .apply(loops)
                .map_err(|(field, reason)| invalid(format!("agents.{name}.loops.{field}"), reason))?;
            if let Some(t) = raw.temperature
                && !(0.0..=2.0).contains(&t)
            {
                {
                    return Err(invalid(
                        format!("agents.{name}.temperature"),
                        format!("must be between 0 and 2, got {t}"),
                    ));
                }
            }
            let mut agent = RunnableAgent::new(name.clone(), raw.system.unwrap_or_default(), model);
            agent.description = raw.description.unwrap_or_default();
            agent.tools = raw.tools.unwrap_or_default();
            agent.skills = raw.skills.unwrap_or_default();
            agent.limits = limits;
            agent.temperature = raw.temperature;
            agent.max_tokens = raw.max_tokens;
            agent.lane = raw.lane;
            agent.policy_profile = raw.policy_profile;
            cfg.agents.insert(name, agent);
        }
        let c = self.compaction;
        if let Some(t) = c.threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(invalid("compaction.threshold".into(), format!("must be in (0, 1], got {t}")));
            }
            cfg.compaction.threshold = t;
        }
        if let Some(e) = c.enabled {
            cfg.compaction.enabled = e;
        }
        if let Some(n) = c.default_context_tokens {
            cfg.compaction.default_context_tokens = n;
        }
        if let Some(m) = c.context_sizes {
            cfg.compaction.context_sizes = m;
        }
        cfg.compaction.summary_model = c.summary_model;
        if let Some(k) = c.keep_recent {
            cfg.compaction.keep_recent = k;
        }
        if let Some(allow) = self.tools.web_fetch.allow {
            for entry in &allow {
                if !entry.contains(':')
                    || entry.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()).is_none()
                {
                    return Err(invalid(
                        "tools.web_fetch.allow".into(),
                        format!("entries must be host:port, got {entry:?}"),
                    ));
                }
            }
            cfg.network_allow = allow;
        }
        if let Some(n) = self.tools.web_fetch.max_bytes {
            cfg.web_fetch_max_bytes = usize::try_from(n).ok().filter(|n| *n > 0).ok_or_else(|| {
                invalid("tools.web_fetch.max_bytes".into(), format!("must be at least 1, got {n}"))
            })?;
        }
        Ok(cfg)
    }
}

#[cfg(feature = "config")]
mod load {
    use std::path::Path;

    use figment::Figment;
    use figment::providers::{Env, Format, Toml};

    use super::{ConfigError, RawConfig, RuntimeConfig};

    /// The figment every executus host uses: `path` (if it exists, or if `required`) then
    /// `EXECUTUS_*` environment variables (nested with `__`; `EXECUTUS_LLM_*` excluded).
    ///
    /// # Errors
    /// [`ConfigError::Load`] when `required` and the file is missing.
    pub fn figment(path: Option<&Path>, required: bool) -> Result<Figment, ConfigError> {
        let mut fig = Figment::new();
        if let Some(path) = path {
            if required && !path.exists() {
                return Err(ConfigError::Load(format!(
                    "configuration file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        Ok(fig.merge(
            Env::prefixed("EXECUTUS_")
                .filter(|k| !k.as_str().to_ascii_lowercase().starts_with("llm_"))
                .split("__"),
        ))
    }

    /// Names where a key's value came from: the file, or the exact `EXECUTUS_*` variable.
    /// For a key that is missing (e.g. an agent without a model), the source of the
    /// nearest enclosing section is named.
    pub fn source_of(fig: &Figment, key: &str) -> String {
        let mut probe = key;
        loop {
            if let Some(meta) = fig.find_metadata(probe) {
                let name = meta.name.to_string();
                return match &meta.source {
                    Some(src) => format!("{name} {src}"),
                    // figment's Env provider names only the prefix; name the variable.
                    None if probe == key && name.contains("environment variable") => format!(
                        "environment variable EXECUTUS_{}",
                        key.replace('.', "__").to_ascii_uppercase()
                    ),
                    None => name,
                };
            }
            match probe.rsplit_once('.') {
                Some((parent, _)) => probe = parent,
                None => return "built-in defaults".to_owned(),
            }
        }
    }

    impl RuntimeConfig {
        /// Loads defaults <- `path` <- `EXECUTUS_*` env, then validates.
        ///
        /// # Errors
        /// [`ConfigError`] naming the bad key and its source.
        pub fn load(path: Option<&Path>, required: bool) -> Result<Self, ConfigError> {
            let fig = figment(path, required)?;
            Self::from_figment(&fig)
        }

        /// Extracts and validates from a prepared figment.
        ///
        /// # Errors
        /// [`ConfigError`] naming the bad key and its source.
        pub fn from_figment(fig: &Figment) -> Result<Self, ConfigError> {
            let raw: RawConfig = fig.extract().map_err(|e| ConfigError::Load(e.to_string()))?;
            raw.validate(&|key| source_of(fig, key))
        }
    }
}

#[cfg(feature = "config")]
pub use load::{figment, source_of};
