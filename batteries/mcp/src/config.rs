//! `[mcp.servers.NAME]`: how to reach one MCP server, in two stages — [`RawServer`] as serde
//! reads it from the host's configuration, then [`RawServer::validate`] into a
//! [`ServerConfig`] (durations parsed, variables read, names checked). Every error names the
//! dotted key (`mcp.servers.NAME.KEY`) it is about.
//!
//! Secrets never sit in the file: `env` and `headers_env` map a name to the *variable* that
//! holds the value, read once at validation; the values are kept as [`Secret`]s, which never
//! print.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use executus::llm::Secret;
use serde::Deserialize;

/// Default bound on a server's start (spawn or connect, handshake, first tool list).
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound on one tool call (the agent's own tool timeout may cut it sooner).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default number of restarts of a crashed stdio server over the hub's lifetime.
pub const DEFAULT_MAX_RESTARTS: u32 = 3;
/// Default bound on the text of one tool result handed to the model (bytes).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 256 * 1024;
/// Default bound on the images of one tool result (decoded bytes, all images together).
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;
/// Longest server name accepted (tool names must fit in 64 characters).
pub const MAX_SERVER_NAME: usize = 24;

/// One server as written in the configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Program to start (stdio transport).
    pub command: Option<String>,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment of the child: variable name -> name of the host variable holding the value.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory of the child.
    pub cwd: Option<PathBuf>,
    /// Streamable HTTP endpoint (instead of `command`).
    pub url: Option<String>,
    /// HTTP headers: header name -> name of the host variable holding the value.
    #[serde(default)]
    pub headers_env: BTreeMap<String, String>,
    /// Bound on the start, e.g. `"30s"`.
    pub startup_timeout: Option<String>,
    /// Bound on one call, e.g. `"60s"`.
    pub call_timeout: Option<String>,
    /// Restarts of a crashed stdio server before calls fail for good.
    pub max_restarts: Option<u32>,
    /// Tools of this server that count as read-only for policy (`"*"` for all).
    #[serde(default)]
    pub read_only: Vec<String>,
    /// Believe the server's `readOnlyHint` / `idempotentHint` annotations (off by default: a
    /// server's own word must not lift a read-only policy).
    #[serde(default)]
    pub trust_hints: bool,
    /// Bound on the text of one result, bytes.
    pub max_result_bytes: Option<usize>,
    /// Bound on the images of one result, bytes.
    pub max_image_bytes: Option<usize>,
}

/// How to reach a server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Transport {
    /// A child process speaking JSON-RPC on stdin/stdout.
    Stdio {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Environment added to the host's (values read from the named variables).
        env: Vec<(String, Secret)>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP.
    Http {
        /// Endpoint URL.
        url: String,
        /// Headers sent with every request.
        headers: Vec<(String, Secret)>,
    },
}

/// One server, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Its name (the key under `[mcp.servers]`).
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Bound on the start.
    pub startup_timeout: Duration,
    /// Bound on one call.
    pub call_timeout: Duration,
    /// Restarts of a crashed stdio server.
    pub max_restarts: u32,
    /// Tools that count as read-only (`"*"`: all).
    pub read_only: Vec<String>,
    /// Believe the server's annotations.
    pub trust_hints: bool,
    /// Bound on a result's text, bytes.
    pub max_result_bytes: usize,
    /// Bound on a result's images, bytes.
    pub max_image_bytes: usize,
}

impl ServerConfig {
    /// A stdio server with default limits.
    pub fn stdio(name: impl Into<String>, command: impl Into<String>, args: &[&str]) -> Self {
        Self::with_transport(
            name,
            Transport::Stdio {
                command: command.into(),
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                env: Vec::new(),
                cwd: None,
            },
        )
    }

    /// A streamable HTTP server with default limits.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::with_transport(name, Transport::Http { url: url.into(), headers: Vec::new() })
    }

    fn with_transport(name: impl Into<String>, transport: Transport) -> Self {
        Self {
            name: name.into(),
            transport,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            max_restarts: DEFAULT_MAX_RESTARTS,
            read_only: Vec::new(),
            trust_hints: false,
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
        }
    }

    /// True if `tool` (the server's own name for it) counts as read-only by configuration.
    pub fn configured_read_only(&self, tool: &str) -> bool {
        self.read_only.iter().any(|t| t == "*" || t == tool)
    }
}

/// A configuration value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct McpConfigError {
    /// Dotted key, e.g. `mcp.servers.fs.startup_timeout`.
    pub key: String,
    /// Why.
    pub reason: String,
}

impl RawServer {
    /// Validates the server called `name`, reading the variables `env` and `headers_env`
    /// name through `var` (the process environment in a host: `|v| std::env::var(v).ok()`).
    ///
    /// # Errors
    /// An [`McpConfigError`] naming the key: a bad name, neither or both of `command` and
    /// `url`, an unset variable, an unparseable duration, a zero bound.
    pub fn validate(
        &self,
        name: &str,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ServerConfig, McpConfigError> {
        let key = |k: &str| format!("mcp.servers.{name}.{k}");
        let err = |k: &str, reason: String| McpConfigError { key: key(k), reason };
        check_server_name(name)?;
        let read = |section: &str, map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(k, variable)| match var(variable) {
                    Some(value) => Ok((k.clone(), Secret::new(value))),
                    None => Err(err(&format!("{section}.{k}"), format!("variable {variable} is not set"))),
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let transport = match (&self.command, &self.url) {
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err(err("command", "must not be empty".into()));
                }
                if !self.headers_env.is_empty() {
                    return Err(err("headers_env", "only applies to a server reached by url".into()));
                }
                for k in self.env.keys() {
                    if k.is_empty() || k.contains('=') || k.contains('\0') {
                        return Err(err(&format!("env.{k}"), "not a valid variable name".into()));
                    }
                }
                Transport::Stdio {
                    command: command.clone(),
                    args: self.args.clone(),
                    env: read("env", &self.env)?,
                    cwd: self.cwd.clone(),
                }
            }
            (None, Some(url)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(err("url", format!("must be an http:// or https:// URL, got {url:?}")));
                }
                if !self.args.is_empty() || !self.env.is_empty() || self.cwd.is_some() {
                    return Err(err(
                        "url",
                        "args, env and cwd only apply to a server started by command".into(),
                    ));
                }
                for k in self.headers_env.keys() {
                    if http::HeaderName::from_bytes(k.as_bytes()).is_err() {
                        return Err(err(&format!("headers_env.{k}"), "not a valid header name".into()));
                    }
                }
                let headers = read("headers_env", &self.headers_env)?;
                for (k, v) in &headers {
                    if http::HeaderValue::from_str(v.expose()).is_err() {
                        // The value is a secret: say which variable, never what it holds.
                        return Err(err(
                            &format!("headers_env.{k}"),
                            "the variable's value is not a valid header value".into(),
                        ));
                    }
                }
                Transport::Http { url: url.clone(), headers }
            }
            (None, None) => {
                return Err(err(
                    "command",
                    "one of command (stdio) or url (streamable HTTP) is required".into(),
                ));
            }
            (Some(_), Some(_)) => return Err(err("url", "give either command or url, not both".into())),
        };
        let duration = |k: &str, raw: &Option<String>, default: Duration| match raw {
            None => Ok(default),
            Some(text) => match humantime::parse_duration(text.trim()) {
                Ok(d) if d.is_zero() => Err(err(k, "must be more than zero".into())),
                Ok(d) => Ok(d),
                Err(e) => Err(err(k, format!("not a duration ({e}), e.g. \"30s\""))),
            },
        };
        let positive = |k: &str, raw: Option<usize>, default: usize| match raw {
            Some(0) => Err(err(k, "must be at least 1".into())),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        Ok(ServerConfig {
            name: name.to_owned(),
            transport,
            startup_timeout: duration("startup_timeout", &self.startup_timeout, DEFAULT_STARTUP_TIMEOUT)?,
            call_timeout: duration("call_timeout", &self.call_timeout, DEFAULT_CALL_TIMEOUT)?,
            max_restarts: self.max_restarts.unwrap_or(DEFAULT_MAX_RESTARTS),
            read_only: self.read_only.clone(),
            trust_hints: self.trust_hints,
            max_result_bytes: positive("max_result_bytes", self.max_result_bytes, DEFAULT_MAX_RESULT_BYTES)?,
            max_image_bytes: positive("max_image_bytes", self.max_image_bytes, DEFAULT_MAX_IMAGE_BYTES)?,
        })
    }
}

/// A server name: `[A-Za-z0-9-]` words joined by single `_`, at most `MAX_SERVER_NAME` (24)
/// characters (so `mcp__NAME__tool` stays readable and unambiguous).
///
/// # Errors
/// An [`McpConfigError`] on `mcp.servers.NAME` saying what is wrong.
pub fn check_server_name(name: &str) -> Result<(), McpConfigError> {
    let err = |reason: &str| McpConfigError { key: format!("mcp.servers.{name}"), reason: reason.to_owned() };
    if name.is_empty() || name.len() > MAX_SERVER_NAME {
        return Err(err(&format!("a server name has 1 to {MAX_SERVER_NAME} characters")));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(err("a server name uses only letters, digits, '-' and '_'"));
    }
    if name.contains("__") || name.starts_with('_') || name.ends_with('_') {
        return Err(err(
            "a server name must not start or end with '_' nor contain '__' (it separates parts of tool names)",
        ));
    }
    Ok(())
}
