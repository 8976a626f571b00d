//! # executus-tools — built-in tools for executus agents
//!
//! [`Clock`] (`clock`), [`Calc`] (`calc`) and [`WebFetch`] (`web_fetch`, behind the SSRF guard
//! of [`net`]). They live outside the core so that a host that needs none of them (the
//! light host) builds without an HTTP client's extra features, time-zone tables or HTML code.
//!
//! [`standard_tools`] builds all three from a [`RuntimeConfig`]; register them in a
//! [`ToolRegistry`](executus::tool::ToolRegistry) and name them in an agent's allowlist to use
//! them. All three are read-only and idempotent. `dispatch_agent` stays in the core: it is the
//! dispatch guard's tool.
//!
//! [`GenerateImage`] (`generate_image`) is not among them: it needs an image model and an
//! output folder, so a host builds it when it has both and agents opt in by name.
//!
//! ## What it does not do
//! - No tool here runs a process; only `generate_image` writes, and only new files under its
//!   configured folder; network access goes only through [`net::GuardedHttp`] (which refuses
//!   private, loopback and metadata addresses unless they are on the configured allow list) or,
//!   for `generate_image`, through the host's image chain.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use executus::RuntimeConfig;
use executus::tool::{Tool, ToolError, decode_args};

pub mod calc;
pub mod clock;
pub mod generate_image;
pub mod net;
pub mod web_fetch;

pub use calc::Calc;
pub use clock::Clock;
pub use generate_image::GenerateImage;
pub use web_fetch::{WebFetch, WebFetchLimits};

/// `clock` (system time), `calc` and `web_fetch` (allow list and body cap from `config`;
/// invalid allow list entries are logged and admit nothing).
pub fn standard_tools(config: &RuntimeConfig) -> Vec<Arc<dyn Tool>> {
    vec![Arc::new(Clock::system()), Arc::new(Calc::new()), Arc::new(WebFetch::from_config(config))]
}

/// The JSON schema of an args type (see [`executus::tool::schema_of`]).
fn schema_of<A: JsonSchema>() -> Value {
    executus::tool::schema_of::<A>()
}

/// Deserialises a tool's arguments (a JSON object), or an `InvalidArgs` error naming the tool.
fn parse_args<A: DeserializeOwned>(tool: &str, args: Value) -> Result<A, ToolError> {
    decode_args(tool, args)
}
