//! `[serve]`, in two stages: [`RawServe`] as serde reads it from the configuration file, then
//! [`RawServe::validate`] into the typed [`ServeConfig`] the gateway runs on. Every error is a
//! [`ConfigError::Invalid`] naming the dotted key (`serve.keys.alice.sha256`) and where its
//! value came from.
//!
//! ```toml
//! [serve]
//! listen = "127.0.0.1:8787"           # also `executus-run serve --listen ADDR`
//! profile = "default"                 # policy profile for keys that name none
//! speculative_off_on_tool_turns = false
//! max_body_bytes = 33554432           # 32 MiB; larger bodies get 413
//! header_timeout = "10s"              # a client must finish its request headers in time
//! idle_timeout = "120s"               # longest upstream silence inside a stream
//! concurrency = 64                    # upstream calls at once, shared fairly across keys
//! max_queue = 1024                    # calls waiting beyond those; a full queue is 429
//! [serve.loops]                       # cycle, stagnation, unproductive, finalize_turns, finalize_hard_cap
//! finalize_hard_cap = 6
//! [serve.keys.alice]
//! key_env = "ALICE_GATEWAY_KEY"       # or sha256 = "<hex of the key's SHA-256>"
//! models = ["fast", "local/*"]        # names the client may ask for; absent = all
//! profile = "build"
//! profile_header = false              # may pick another profile with x-executus-profile
//! budget = 5.0                        # USD over the budget battery's window (needs [budget] prices)
//! rate = 120                          # requests per minute
//! concurrency = 4                     # this key's calls at once
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::time::Duration;

use executus::LoopLimits;
use executus::config::{ConfigError, RawLoops};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The default listen address.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8787);
/// The default session-wide finalize hard cap.
pub const DEFAULT_HARD_CAP: u32 = 6;

/// Raw `[serve.loops]`: the core's loop thresholds plus the session-wide hard cap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServeLoops {
    /// See [`LoopLimits::cycle`].
    pub cycle: Option<u32>,
    /// See [`LoopLimits::stagnation`].
    pub stagnation: Option<u32>,
    /// See [`LoopLimits::unproductive`].
    pub unproductive: Option<u32>,
    /// See [`LoopLimits::finalize_turns`] (per task of a session).
    pub finalize_turns: Option<u32>,
    /// Finalize turns and continuations a session may be given in all, never reset
    /// (default 6). Past it the gateway stops interfering with how a turn ends.
    pub finalize_hard_cap: Option<u32>,
}

impl RawServeLoops {
    fn core(&self) -> RawLoops {
        RawLoops {
            cycle: self.cycle,
            stagnation: self.stagnation,
            unproductive: self.unproductive,
            finalize_turns: self.finalize_turns,
        }
    }
}

/// Raw `[serve.keys.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    /// Environment variable holding the key.
    pub key_env: Option<String>,
    /// Hex SHA-256 of the key.
    pub sha256: Option<String>,
    /// Model names (or `*` globs) the key may ask for; absent = all.
    pub models: Option<Vec<String>>,
    /// Policy profile of the key's requests.
    pub profile: Option<String>,
    /// Whether `x-executus-profile` may pick another profile.
    pub profile_header: Option<bool>,
    /// Spend cap in USD over the budget window.
    pub budget: Option<f64>,
    /// Requests per minute.
    pub rate: Option<i64>,
    /// Upstream calls at once.
    pub concurrency: Option<i64>,
    /// What the key may do in the fleet's views (`/fleet`, `/api/fleet/*`): `"view"` or
    /// `"act"`; absent = nothing.
    pub fleet: Option<String>,
}

/// Raw `[serve]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServe {
    /// `host:port` to listen on.
    pub listen: Option<String>,
    /// Default policy profile.
    pub profile: Option<String>,
    /// Add `speculative.n_max: 0` to llama.cpp requests that carry tools.
    pub speculative_off_on_tool_turns: Option<bool>,
    /// Largest request body.
    pub max_body_bytes: Option<i64>,
    /// Time a client has to send its request headers.
    #[serde(default, with = "executus::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub header_timeout: Option<Duration>,
    /// Longest upstream silence inside a stream.
    #[serde(default, with = "executus::duration_serde::option", skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Upstream calls at once, all keys together.
    pub concurrency: Option<i64>,
    /// Calls waiting for a slot.
    pub max_queue: Option<i64>,
    /// `[serve.loops]`.
    #[serde(default)]
    pub loops: RawServeLoops,
    /// `[serve.keys.NAME]`.
    #[serde(default)]
    pub keys: BTreeMap<String, RawKey>,
}

/// A model name pattern of a key's allow-list: exact, or with `*` matching any run of
/// characters (the policies' glob dialect).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPattern(String);

impl ModelPattern {
    /// A pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// True if `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        executus::tool::policy::glob_match(&self.0, name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated `[serve.keys.NAME]`.
#[derive(Clone, PartialEq)]
pub struct KeyConfig {
    /// The key's name (its identity: budgets, rates, lanes, sessions and audit rows key on it).
    pub name: String,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// Allowed model names; `None` = all.
    pub models: Option<Vec<ModelPattern>>,
    /// Policy profile.
    pub profile: Option<String>,
    /// May pick a profile with `x-executus-profile`.
    pub profile_header: bool,
    /// Spend cap in USD.
    pub budget: Option<f64>,
    /// Requests per minute.
    pub rate: Option<u32>,
    /// Upstream calls at once.
    pub concurrency: Option<NonZeroUsize>,
    /// What the key may do in the fleet's views; `None` = nothing.
    pub fleet: Option<FleetAccess>,
}

/// What a key may do in the fleet's views (`[serve.keys.NAME] fleet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetAccess {
    /// See the views.
    View,
    /// See the views and load or unload models.
    Act,
}

impl std::fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hash is not the key, but it has no business in logs either.
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("models", &self.models)
            .field("profile", &self.profile)
            .field("profile_header", &self.profile_header)
            .field("budget", &self.budget)
            .field("rate", &self.rate)
            .field("concurrency", &self.concurrency)
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl KeyConfig {
    /// A key named `name` whose secret is `key` (for hosts that build the configuration in
    /// code; the file takes `sha256` or `key_env`).
    pub fn new(name: impl Into<String>, key: &str) -> Self {
        Self {
            name: name.into(),
            hash: sha256(key.as_bytes()),
            models: None,
            profile: None,
            profile_header: false,
            budget: None,
            rate: None,
            concurrency: None,
            fleet: None,
        }
    }

    /// True if the key may ask for `model`.
    pub fn allows(&self, model: &str) -> bool {
        self.models.as_ref().is_none_or(|patterns| patterns.iter().any(|p| p.matches(model)))
    }
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Loop protection for sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopSettings {
    /// The core's thresholds.
    pub limits: LoopLimits,
    /// Finalize turns and continuations per session, never reset.
    pub finalize_hard_cap: u32,
}

impl Default for LoopSettings {
    fn default() -> Self {
        Self { limits: LoopLimits::default(), finalize_hard_cap: DEFAULT_HARD_CAP }
    }
}

/// The validated `[serve]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Policy profile for keys that name none.
    pub profile: Option<String>,
    /// See [`RawServe::speculative_off_on_tool_turns`].
    pub speculative_off_on_tool_turns: bool,
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Longest upstream silence inside a stream.
    pub idle_timeout: Duration,
    /// Upstream calls at once, all keys together.
    pub concurrency: NonZeroUsize,
    /// Calls waiting for a slot (429 beyond).
    pub max_queue: usize,
    /// Loop protection.
    pub loops: LoopSettings,
    /// Virtual keys; empty = no authentication (loopback only).
    pub keys: Vec<KeyConfig>,
    /// How long open streams get at shutdown (the host sets it from `[runtime] shutdown_grace`).
    pub shutdown_grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN,
            profile: None,
            speculative_off_on_tool_turns: false,
            max_body_bytes: 32 << 20,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            concurrency: NonZeroUsize::new(64).unwrap_or(NonZeroUsize::MIN),
            max_queue: 1024,
            loops: LoopSettings::default(),
            keys: Vec::new(),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// Parses a listen address: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT`.
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 =
            port.parse().map_err(|_| format!("{text:?}: the port is not a number from 0 to 65535"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse().map_err(|_| format!("{text:?} is not IP:PORT (e.g. 127.0.0.1:8787 or [::1]:8787)"))
}

impl RawServe {
    /// Validates into a [`ServeConfig`]. `source_of(key)` names where a key's value came
    /// from; `env(name)` reads an environment variable (for `key_env`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad key.
    pub fn validate(
        self,
        source_of: &dyn Fn(&str) -> String,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServeConfig, ConfigError> {
        let invalid =
            |key: String, reason: String| ConfigError::Invalid { origin: source_of(&key), key, reason };
        let mut cfg = ServeConfig::default();
        if let Some(listen) = self.listen {
            cfg.listen = parse_listen(&listen).map_err(|r| invalid("serve.listen".into(), r))?;
        }
        cfg.profile = self.profile.filter(|p| !p.trim().is_empty());
        cfg.speculative_off_on_tool_turns = self.speculative_off_on_tool_turns.unwrap_or(false);
        if let Some(n) = self.max_body_bytes {
            cfg.max_body_bytes = usize::try_from(n).ok().filter(|n| *n >= 1024).ok_or_else(|| {
                invalid("serve.max_body_bytes".into(), format!("must be at least 1024, got {n}"))
            })?;
        }
        if let Some(t) = self.header_timeout {
            if t.is_zero() {
                return Err(invalid("serve.header_timeout".into(), "must be longer than 0s".into()));
            }
            cfg.header_timeout = t;
        }
        if let Some(t) = self.idle_timeout {
            if t.is_zero() {
                return Err(invalid("serve.idle_timeout".into(), "must be longer than 0s".into()));
            }
            cfg.idle_timeout = t;
        }
        if let Some(n) = self.concurrency {
            cfg.concurrency = usize::try_from(n).ok().and_then(NonZeroUsize::new).ok_or_else(|| {
                invalid("serve.concurrency".into(), format!("must be a whole number of at least 1, got {n}"))
            })?;
        }
        if let Some(n) = self.max_queue {
            cfg.max_queue = usize::try_from(n)
                .map_err(|_| invalid("serve.max_queue".into(), format!("must be 0 or more, got {n}")))?;
        }
        cfg.loops.limits = self
            .loops
            .core()
            .apply(LoopLimits::default())
            .map_err(|(field, reason)| invalid(format!("serve.loops.{field}"), reason))?;
        if let Some(cap) = self.loops.finalize_hard_cap {
            cfg.loops.finalize_hard_cap = cap;
        }
        for (name, raw) in self.keys {
            cfg.keys.push(validate_key(&name, raw, &invalid, env)?);
        }
        Ok(cfg)
    }
}

fn validate_key(
    name: &str,
    raw: RawKey,
    invalid: &dyn Fn(String, String) -> ConfigError,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<KeyConfig, ConfigError> {
    let key = |field: &str| format!("serve.keys.{name}.{field}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(invalid(
            format!("serve.keys.{name}"),
            "a key's name is letters, digits, '-', '_' and '.'".into(),
        ));
    }
    let hash = match (raw.key_env, raw.sha256) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                format!("serve.keys.{name}"),
                "give either key_env or sha256, not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                format!("serve.keys.{name}"),
                "needs key_env (an environment variable holding the key) or sha256 (the key's hash)".into(),
            ));
        }
        (Some(var), None) => match env(&var) {
            Some(value) if !value.trim().is_empty() => sha256(value.trim().as_bytes()),
            _ => {
                return Err(invalid(
                    key("key_env"),
                    format!("environment variable {var} is not set or empty"),
                ));
            }
        },
        (None, Some(hex)) => parse_hash(&hex).map_err(|r| invalid(key("sha256"), r))?,
    };
    let models = match raw.models {
        None => None,
        Some(list) => {
            if let Some(bad) = list.iter().find(|m| m.trim().is_empty()) {
                return Err(invalid(key("models"), format!("{bad:?} is not a model name or pattern")));
            }
            Some(list.into_iter().map(|m| ModelPattern::new(m.trim())).collect())
        }
    };
    if let Some(b) = raw.budget
        && !(b.is_finite() && b >= 0.0)
    {
        return Err(invalid(key("budget"), format!("must be a non-negative number of USD, got {b}")));
    }
    let rate = match raw.rate {
        None => None,
        Some(n) => Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            invalid(key("rate"), format!("must be at least 1 request per minute, got {n}"))
        })?),
    };
    let concurrency = match raw.concurrency {
        None => None,
        Some(n) => Some(
            usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .ok_or_else(|| invalid(key("concurrency"), format!("must be at least 1, got {n}")))?,
        ),
    };
    let fleet = match raw.fleet.as_deref().map(str::trim) {
        None => None,
        Some("view") => Some(FleetAccess::View),
        Some("act") => Some(FleetAccess::Act),
        Some(other) => return Err(invalid(key("fleet"), format!("{other:?}: expected \"view\" or \"act\""))),
    };
    Ok(KeyConfig {
        name: name.to_owned(),
        hash,
        models,
        profile: raw.profile.filter(|p| !p.trim().is_empty()),
        profile_header: raw.profile_header.unwrap_or(false),
        budget: raw.budget,
        rate,
        concurrency,
        fleet,
    })
}

fn parse_hash(hex: &str) -> Result<[u8; 32], String> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(format!("must be 64 hex digits (a SHA-256), got {} characters", hex.chars().count()));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .map_err(|_| "must be hex digits only (0-9, a-f)".to_owned())?;
    }
    Ok(out)
}
