//! [`McpHub`]: every configured server, started together; their tools named, registered and
//! selected for agents; shut down together.
//!
//! Guarantees: [`McpHub::start`] either starts every server and names every tool, or fails
//! with the first error after closing what it had started (no child outlives a failed
//! start). Tool names are assigned by [`crate::naming::assign`] over all servers at once, so
//! a collision between two servers' tools is resolved the same way on every start.
//! [`McpHub::shutdown`] closes every server; dropping the hub kills what is still running.

use std::collections::BTreeMap;
use std::sync::Arc;

use executus::tool::{ArcTool, Tool as _, ToolRegistry};

use crate::config::ServerConfig;
use crate::error::McpError;
use crate::naming;
use crate::server::Server;
use crate::tool::McpTool;

/// The prefix of an agent's tool selection that names MCP tools: `mcp:SERVER/TOOL`,
/// `mcp:SERVER/*`.
pub const SELECTOR_PREFIX: &str = "mcp:";

/// Running MCP servers and their tools.
pub struct McpHub {
    servers: BTreeMap<String, Arc<Server>>,
    tools: Vec<Arc<McpTool>>,
}

impl std::fmt::Debug for McpHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHub")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .field("tools", &self.tools.iter().map(|t| t.name().to_owned()).collect::<Vec<_>>())
            .finish()
    }
}

impl McpHub {
    /// A hub with no servers.
    pub fn empty() -> Self {
        Self { servers: BTreeMap::new(), tools: Vec::new() }
    }

    /// Starts every server (concurrently) and names their tools.
    ///
    /// # Errors
    /// The first [`McpError`] of a server that could not start (spawn, handshake, tool
    /// list, `startup_timeout`), or [`McpError::NameCollision`]; everything started is
    /// closed first.
    pub async fn start(configs: Vec<ServerConfig>) -> Result<Self, McpError> {
        let mut seen = std::collections::BTreeSet::new();
        for c in &configs {
            crate::config::check_server_name(&c.name)?;
            if !seen.insert(c.name.clone()) {
                return Err(McpError::Config(crate::config::McpConfigError {
                    key: format!("mcp.servers.{}", c.name),
                    reason: "configured twice".into(),
                }));
            }
        }
        let started = futures::future::join_all(configs.into_iter().map(Server::start)).await;
        let mut servers = BTreeMap::new();
        let mut first_error = None;
        for r in started {
            match r {
                Ok(s) => {
                    servers.insert(s.config.name.clone(), s);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let hub = Self { servers, tools: Vec::new() };
        if let Some(e) = first_error {
            hub.shutdown().await;
            return Err(e);
        }
        match hub.name_tools() {
            Ok(tools) => Ok(Self { tools, ..hub }),
            Err(e) => {
                hub.shutdown().await;
                Err(e)
            }
        }
    }

    fn name_tools(&self) -> Result<Vec<Arc<McpTool>>, McpError> {
        let mut entries = Vec::new();
        for server in self.servers.values() {
            let mut listed = std::collections::BTreeSet::new();
            for t in server.tools() {
                if !listed.insert(t.name.clone()) {
                    tracing::warn!(server = %server.config.name, tool = %t.name, "MCP server lists a tool twice; the first is used");
                    continue;
                }
                entries.push((server.clone(), t));
            }
        }
        let pairs: Vec<(String, String)> =
            entries.iter().map(|(s, t)| (s.config.name.clone(), t.name.clone())).collect();
        let names = naming::assign(&pairs).map_err(|pairs| McpError::NameCollision { pairs })?;
        for ((server, remote), name) in pairs.iter().zip(&names) {
            if *name != naming::exposed_name(server, remote) {
                tracing::warn!(server = %server, tool = %remote, name = %name, "MCP tool name collides with another; it is offered under a hashed name");
            }
        }
        Ok(entries
            .into_iter()
            .zip(names)
            .map(|((server, t), name)| Arc::new(McpTool::new(name, server, &t)))
            .collect())
    }

    /// Every tool of every server.
    pub fn tools(&self) -> Vec<ArcTool> {
        self.tools.iter().map(|t| t.clone() as ArcTool).collect()
    }

    /// The tool called `name` (its exposed name), if any.
    pub fn tool(&self, name: &str) -> Option<&Arc<McpTool>> {
        self.tools.iter().find(|t| executus::tool::Tool::name(t.as_ref()) == name)
    }

    /// The exposed name of `tool` on `server`.
    pub fn name_of(&self, server: &str, tool: &str) -> Option<&str> {
        self.tools
            .iter()
            .find(|t| t.server() == server && t.remote_name() == tool)
            .map(|t| executus::tool::Tool::name(t.as_ref()))
    }

    /// Registers every tool.
    ///
    /// # Errors
    /// [`McpError::AlreadyRegistered`] if the registry already has a tool of that name (it
    /// is left unchanged then).
    pub fn register(&self, registry: &mut ToolRegistry) -> Result<(), McpError> {
        for t in &self.tools {
            let name = executus::tool::Tool::name(t.as_ref());
            if registry.get(name).is_some() {
                return Err(McpError::AlreadyRegistered {
                    name: name.to_owned(),
                    server: t.server().to_owned(),
                    tool: t.remote_name().to_owned(),
                });
            }
        }
        for t in &self.tools {
            registry.register(t.clone());
        }
        Ok(())
    }

    /// Expands the `mcp:` entries of a tool selection (`mcp:SERVER/TOOL`, `mcp:SERVER/*`)
    /// into exposed names; other entries pass through. Duplicates are dropped, first wins.
    /// `key` says where the selection was written, for errors.
    ///
    /// # Errors
    /// [`McpError::BadSelector`], [`McpError::UnknownServer`], [`McpError::UnknownTool`].
    pub fn expand(&self, key: &str, selection: &[String]) -> Result<Vec<String>, McpError> {
        let mut out: Vec<String> = Vec::with_capacity(selection.len());
        let push = |name: String, out: &mut Vec<String>| {
            if !out.contains(&name) {
                out.push(name);
            }
        };
        for entry in selection {
            let Some(rest) = entry.strip_prefix(SELECTOR_PREFIX) else {
                push(entry.clone(), &mut out);
                continue;
            };
            let bad = || McpError::BadSelector { key: key.to_owned(), selector: entry.clone() };
            let (server, tool) = rest.split_once('/').ok_or_else(bad)?;
            if server.is_empty() || tool.is_empty() {
                return Err(bad());
            }
            if !self.servers.contains_key(server) {
                return Err(McpError::UnknownServer {
                    key: key.to_owned(),
                    selector: entry.clone(),
                    server: server.to_owned(),
                    known: list(self.servers.keys().map(String::as_str)),
                });
            }
            let of_server = self.tools.iter().filter(|t| t.server() == server);
            if tool == "*" {
                for t in of_server {
                    push(executus::tool::Tool::name(t.as_ref()).to_owned(), &mut out);
                }
                continue;
            }
            match self.name_of(server, tool) {
                Some(name) => push(name.to_owned(), &mut out),
                None => {
                    return Err(McpError::UnknownTool {
                        key: key.to_owned(),
                        selector: entry.clone(),
                        server: server.to_owned(),
                        tool: tool.to_owned(),
                        known: list(of_server.map(|t| t.remote_name())),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Names of the configured servers.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }

    /// Process id of a stdio server's running child (for supervision and tests).
    pub async fn pid(&self, server: &str) -> Option<u32> {
        self.servers.get(server)?.pid().await
    }

    /// How many times `server`'s tool list was re-read after `notifications/tools/list_changed`.
    pub fn tool_list_refreshes(&self, server: &str) -> u64 {
        self.servers.get(server).map_or(0, |s| s.refreshes())
    }

    /// Closes every server (concurrently); later calls of their tools fail with an error.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.servers.values().map(|s| s.shutdown())).await;
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.collect();
    if all.is_empty() { "none".to_owned() } else { all.join(", ") }
}
