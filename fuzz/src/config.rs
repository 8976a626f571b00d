//! Target `config`: an arbitrary `executus.toml` through figment
//! (`figment::providers::Toml::string`), `RawConfig` extraction and `RawConfig::validate`
//! (as `RuntimeConfig::from_figment` runs them).
//!
//! Input: the file's text (lossy UTF-8).
//!
//! Properties: no panic; a value that is not acceptable is `ConfigError::Invalid` naming a
//! dotted key under a known section and where it came from; a file that is valid TOML but
//! does not fit the schema gets an error naming the key; an accepted config keeps the
//! invariants the runtime relies on (a `default` lane, capacities of at least 1, a
//! compaction threshold in (0, 1], a tool-output cap of at least 256 bytes, agents with a
//! model, web-fetch allow entries that are `host:port`).

use executus::RuntimeConfig;
use executus::config::ConfigError;
use figment::Figment;
use figment::providers::{Format, Toml};

const SECTIONS: [&str; 7] = ["lanes", "runtime", "dispatch", "tiers", "agents", "compaction", "tools"];

/// The fuzz target.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let fig = Figment::from(Toml::string(&text));
    match RuntimeConfig::from_figment(&fig) {
        Ok(cfg) => {
            assert!(cfg.lanes.contains_key("default"), "no default lane");
            assert!(cfg.compaction.threshold > 0.0 && cfg.compaction.threshold <= 1.0);
            assert!(cfg.max_tool_output_bytes >= 256);
            assert!(cfg.web_fetch_max_bytes >= 1);
            assert!(
                cfg.dispatch.max_depth >= 1 && cfg.dispatch.max_fanout >= 1 && cfg.dispatch.max_total >= 1
            );
            for agent in cfg.agents.values() {
                assert!(!agent.model.trim().is_empty(), "agent without a model");
                assert!(agent.limits.max_steps >= 1);
            }
            for spec in cfg.tiers.values() {
                assert!(!spec.trim().is_empty(), "empty tier");
            }
            for entry in &cfg.network_allow {
                let port = entry.rsplit_once(':').map(|(_, p)| p.parse::<u16>());
                assert!(matches!(port, Some(Ok(_))), "allow entry {entry:?} is not host:port");
            }
        }
        Err(ConfigError::Invalid { key, origin, reason }) => {
            let section = key.split('.').next().unwrap_or_default();
            assert!(SECTIONS.contains(&section), "error names key {key:?} outside the known sections");
            assert!(!origin.is_empty() && !reason.is_empty(), "{key}: empty origin or reason");
        }
        Err(ConfigError::Load(message)) => {
            assert!(!message.is_empty());
            // Syntax errors are TOML's to describe; a file that parses but does not fit the
            // schema must say which key.
            if fig.extract::<figment::value::Dict>().is_ok() {
                assert!(message.contains("key"), "schema error without a key: {message}");
            }
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
}
