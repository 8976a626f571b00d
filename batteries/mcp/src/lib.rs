//! executus battery: the tools of MCP (Model Context Protocol) servers, for agents.
//!
//! A host configures servers (`[mcp.servers.NAME]`: a `command` started as a child speaking
//! stdio, or a streamable HTTP `url`), starts them with [`McpHub::start`], registers their
//! tools in its [`executus::tool::ToolRegistry`] ([`McpHub::register`]) and expands agents'
//! selections such as `mcp:fs/*` or `mcp:everything/echo` ([`McpHub::expand`]). Built on the
//! official Rust SDK, `rmcp`, client side only.
//!
//! Guarantees:
//! - An MCP tool is an ordinary `Tool`: the registry, the agent's allowlist, the runtime
//!   policy (profiles, rewrites, blocks, approvals), audit, timeouts and panic recovery apply
//!   to it as to any other. It counts as read-only only when configured so.
//! - Models see `mcp__<server>__<tool>` ([`naming`]), a schema passed through the
//!   strict-schema transform ([`schema`]), and results bounded in size ([`content`]): text,
//!   structured content, `isError` as a tool error, images as the output's images.
//! - Starts are bounded (`startup_timeout`), calls are bounded (`call_timeout` and the
//!   agent's tool timeout), a crashed stdio server is started again on the next call (at
//!   most `max_restarts` times), `notifications/tools/list_changed` re-reads the list, and
//!   [`McpHub::shutdown`] (or dropping the hub) leaves no child process behind.
//! - The values of `env` and `headers_env` (secrets) never appear in an error, a log line or
//!   a tool result: a server that echoes them has them replaced by `[redacted]`.
//!
//! What it does not do: serve MCP, use a server's prompts or resources, sample or elicit for a
//! server, or authenticate with OAuth (HTTP servers get static headers from variables).

mod config;
pub mod content;
mod error;
mod hub;
pub mod naming;
pub mod schema;
mod server;
mod tool;

pub use config::{
    DEFAULT_CALL_TIMEOUT, DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_RESTARTS, DEFAULT_MAX_RESULT_BYTES,
    DEFAULT_STARTUP_TIMEOUT, McpConfigError, RawServer, ServerConfig, Transport, check_server_name,
};
pub use error::McpError;
pub use hub::{McpHub, SELECTOR_PREFIX};
pub use tool::McpTool;
