//! [`McpTool`]: one tool of one MCP server as an ordinary [`executus::tool::Tool`], so it goes
//! through the registry, the agent's allowlist, policy profiles, approvals, audit, timeouts
//! and panic recovery exactly as a built-in tool does.
//!
//! It is read-only (for read-only policy profiles) only when the configuration says so
//! (`read_only`) or when `trust_hints` lets the server's `readOnlyHint` count: a server's own
//! word does not lift a policy by default.

use std::sync::Arc;

use async_trait::async_trait;
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput};
use serde_json::Value;

use crate::content::{self, Limits};
use crate::schema;
use crate::server::{CallFailure, RemoteTool, Server};

/// A tool of an MCP server.
pub struct McpTool {
    name: String,
    remote: String,
    description: String,
    /// Schema at start, used if the server stops listing the tool.
    schema: Value,
    read_only: bool,
    idempotent: bool,
    server: Arc<Server>,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("name", &self.name)
            .field("server", &self.server.config.name)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

impl McpTool {
    pub(crate) fn new(name: String, server: Arc<Server>, remote: &RemoteTool) -> Self {
        let config = &server.config;
        let read_only =
            config.configured_read_only(&remote.name) || (config.trust_hints && remote.read_only_hint);
        let idempotent = config.trust_hints && remote.idempotent_hint;
        let description = if remote.description.is_empty() {
            format!("Tool {} of MCP server {}", remote.name, config.name)
        } else {
            remote.description.clone()
        };
        Self {
            name,
            remote: remote.name.clone(),
            description,
            schema: remote.model_schema.clone(),
            read_only,
            idempotent,
            server,
        }
    }

    /// The server's name.
    pub fn server(&self) -> &str {
        &self.server.config.name
    }

    /// The server's own name for the tool.
    pub fn remote_name(&self) -> &str {
        &self.remote
    }

    fn failure(&self, f: CallFailure) -> ToolError {
        let server = &self.server.config.name;
        let message = match f {
            CallFailure::GaveUp { restarts } => {
                format!(
                    "MCP server {server} exited again after {restarts} restarts (max_restarts); it is not started again"
                )
            }
            CallFailure::Restart(e) => format!("MCP server {server} could not be started again: {e}"),
            CallFailure::Exited { stderr } if stderr.is_empty() => {
                format!("MCP server {server} exited during the call (it is started again on the next call)")
            }
            CallFailure::Exited { stderr } => format!(
                "MCP server {server} exited during the call (it is started again on the next call); its last stderr lines: {}",
                stderr.join(" | ")
            ),
            CallFailure::Timeout(after) => return ToolError::Timeout { tool: self.name.clone(), after },
            CallFailure::Cancelled => return ToolError::Cancelled { tool: self.name.clone() },
            CallFailure::Protocol(m) => format!("MCP server {server} refused the call: {m}"),
            CallFailure::Shutdown => format!("MCP server {server} has been shut down"),
        };
        ToolError::failed(self.name.clone(), message)
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        // The latest list's schema (a list_changed may have changed it).
        self.server.tool(&self.remote).map_or_else(|| self.schema.clone(), |t| t.model_schema)
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let Some(current) = self.server.tool(&self.remote) else {
            return Err(ToolError::refused(
                self.name.clone(),
                format!("MCP server {} no longer offers tool {:?}", self.server.config.name, self.remote),
            ));
        };
        let args = match args {
            Value::Null => None,
            Value::Object(map) => Some(schema::server_args(map, &current.input_schema)),
            other => {
                return Err(ToolError::InvalidArgs {
                    tool: self.name.clone(),
                    message: format!("the arguments must be a JSON object, got {other}"),
                });
            }
        };
        let result = self.server.call(&self.remote, args, &ctx.cancel).await.map_err(|f| self.failure(f))?;
        let config = &self.server.config;
        let limits =
            Limits { max_result_bytes: config.max_result_bytes, max_image_bytes: config.max_image_bytes };
        let mut converted = content::convert(&result, limits);
        // A server may print what it was given (an environment dump): the configured secrets
        // never reach the transcript.
        converted.text = crate::server::scrub_all(config, converted.text);
        if converted.is_error {
            return Err(ToolError::failed(self.name.clone(), converted.text));
        }
        Ok(ToolOutput { text: converted.text, images: converted.images })
    }
}
