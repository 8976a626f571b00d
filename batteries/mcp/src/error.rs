//! [`McpError`]: why a server could not be started or used. Variants carry the evidence (the
//! server, the bound that passed, the last lines the server wrote on stderr) and never a
//! secret: header and environment values are not part of any message.

use std::time::Duration;

use crate::config::McpConfigError;

/// Why the hub, a server or a tool selection failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// A configuration value is not acceptable.
    #[error(transparent)]
    Config(#[from] McpConfigError),
    /// The server's program could not be started.
    #[error("MCP server {server}: could not start {command:?}: {reason}")]
    Spawn {
        /// Server name.
        server: String,
        /// The program.
        command: String,
        /// The operating system's reason.
        reason: String,
    },
    /// The server did not finish its start (handshake and tool list) in time.
    #[error("MCP server {server} did not start within {after:?}{}", stderr_note(.stderr))]
    StartupTimeout {
        /// Server name.
        server: String,
        /// The bound.
        after: Duration,
        /// Its last stderr lines (stdio servers).
        stderr: Vec<String>,
    },
    /// The handshake or the tool list failed.
    #[error("MCP server {server} failed to start: {reason}{}", stderr_note(.stderr))]
    Startup {
        /// Server name.
        server: String,
        /// What failed.
        reason: String,
        /// Its last stderr lines (stdio servers).
        stderr: Vec<String>,
    },
    /// Two tools cannot be given distinct names.
    #[error("MCP tool names collide: {}", .pairs.iter().map(|(s, t)| format!("{s}/{t}")).collect::<Vec<_>>().join(", "))]
    NameCollision {
        /// The (server, tool) pairs involved.
        pairs: Vec<(String, String)>,
    },
    /// A tool of this hub has the name of a tool already in the registry.
    #[error("MCP tool {name} ({server}/{tool}) has the name of a tool already registered")]
    AlreadyRegistered {
        /// The exposed name.
        name: String,
        /// Server name.
        server: String,
        /// The server's name for the tool.
        tool: String,
    },
    /// An `mcp:` tool selection names no configured server.
    #[error("{key}: {selector:?} names MCP server {server:?}, which is not configured (servers: {known})")]
    UnknownServer {
        /// Where the selection was written (e.g. `agents.coder.tools`).
        key: String,
        /// The selection.
        selector: String,
        /// The server it names.
        server: String,
        /// Configured servers.
        known: String,
    },
    /// An `mcp:` tool selection names a tool the server does not offer.
    #[error("{key}: {selector:?}: MCP server {server} offers no tool {tool:?} (tools: {known})")]
    UnknownTool {
        /// Where the selection was written.
        key: String,
        /// The selection.
        selector: String,
        /// Server name.
        server: String,
        /// The tool asked for.
        tool: String,
        /// What the server offers.
        known: String,
    },
    /// An `mcp:` tool selection is not of the form `mcp:SERVER/TOOL` or `mcp:SERVER/*`.
    #[error("{key}: {selector:?} is not an MCP tool selection (write mcp:SERVER/TOOL or mcp:SERVER/*)")]
    BadSelector {
        /// Where it was written.
        key: String,
        /// The selection.
        selector: String,
    },
}

fn stderr_note(lines: &[String]) -> String {
    if lines.is_empty() { String::new() } else { format!("; its last stderr lines: {}", lines.join(" | ")) }
}
