//! Generic tools shipped in core: [`Clock`] (`clock`), [`Calc`] (`calc`) and
//! [`WebFetch`] (`web_fetch`, behind the SSRF guard of [`crate::net`]).
//!
//! [`standard_tools`] builds all three from a [`RuntimeConfig`]; register them in a
//! [`crate::tool::ToolRegistry`] and name them in an agent's allowlist to use them. All
//! three are read-only and idempotent. `dispatch_agent` lives with dispatch, not here.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{Tool, ToolError};
use crate::RuntimeConfig;

pub mod calc;
pub mod clock;
pub mod web_fetch;

pub use calc::Calc;
pub use clock::Clock;
pub use web_fetch::{WebFetch, WebFetchLimits};

/// `clock` (system time), `calc` and `web_fetch` (allow list and body cap from `config`;
/// invalid allow list entries are logged and admit nothing).
pub fn standard_tools(config: &RuntimeConfig) -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(Clock::system()), Arc::new(Calc::new()), Arc::new(WebFetch::from_config(config))]
}

/// The JSON schema of an args type, trimmed as [`crate::tool::typed`] trims it.
fn schema_of<A: JsonSchema>() -> Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut schema {
        map.remove("$schema");
        map.remove("title");
    }
    schema
}

/// Deserialises a tool's arguments (a JSON object), or an `InvalidArgs` error naming the tool.
fn parse_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, ToolError> {
    super::decode_args(tool, args)
}
