//! executus-mcp integration tests against real MCP servers: the reference servers
//! (`@modelcontextprotocol/server-everything` over stdio and streamable HTTP,
//! `server-filesystem`) and a small server written with the Python `mcp` package
//! (`tests/support/py_server.py`), all installed by `scripts/peer-mcp.sh`.

#![allow(clippy::unwrap_used)]

mod agent;
mod everything;
mod filesystem;
mod lifecycle;
#[allow(dead_code)] // shared with the CLI tests, which use other parts
#[path = "../support/peers.rs"]
mod peers;
mod python;
