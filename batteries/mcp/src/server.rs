//! One MCP server: its connection, its current tool list, restarts and shutdown.
//!
//! Guarantees:
//! - A start (spawn or connect, handshake, tool list) finishes within `startup_timeout` or
//!   fails with [`McpError::StartupTimeout`] carrying the server's last stderr lines; the
//!   half-started child is killed.
//! - A stdio server runs in its own process group, its stderr read by us (lines kept for
//!   errors, logged at debug); it is closed by [`Server::shutdown`] (stdin closed, then
//!   SIGTERM to the group, then SIGKILL) and killed when the connection is dropped. If this
//!   process dies without running either, the server sees end-of-file on its stdin, which
//!   ends every conforming MCP stdio server.
//! - A server that exited (crash, kill) is started again by the next call, at most
//!   `max_restarts` times over the server's lifetime; after that every call fails with a
//!   tool error saying so. A call in flight when the server exits fails at once with the
//!   server's last stderr lines; it is not retried (the call may have had effects).
//! - `notifications/tools/list_changed` re-reads the tool list; tools see the new list on
//!   their next call and the model on its next request (schemas). A tool the server no longer
//!   lists is refused with a clear error.
//!
//! What it does not do: add tools that appear after the start to a built tool registry (the
//! core's registry is fixed when the runtime is built; they are logged and offered from the
//! next start), or retry a failed call.

use std::collections::{HashMap, VecDeque};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::{NotificationContext, Peer, RoleClient, RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use executus::llm::Secret;

use crate::config::{ServerConfig, Transport};
use crate::error::McpError;
use crate::schema;

/// Stderr lines kept per server (for error messages).
const STDERR_LINES: usize = 8;
/// Longest stderr line kept (characters).
const STDERR_LINE_CHARS: usize = 300;
/// Bound on closing one server at shutdown before it is killed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A tool as the server lists it, with the schema the model sees.
#[derive(Debug, Clone)]
pub(crate) struct RemoteTool {
    /// The server's name for it.
    pub name: String,
    /// Its description.
    pub description: String,
    /// The server's input schema.
    pub input_schema: Value,
    /// The schema offered to models (through the strict-schema transform).
    pub model_schema: Value,
    /// `readOnlyHint`.
    pub read_only_hint: bool,
    /// `idempotentHint`.
    pub idempotent_hint: bool,
}

impl RemoteTool {
    fn from_listed(tool: &rmcp::model::Tool) -> Self {
        let input_schema = Value::Object(tool.input_schema.as_ref().clone());
        let hints = tool.annotations.as_ref();
        Self {
            name: tool.name.to_string(),
            description: tool.description.as_deref().unwrap_or("").to_owned(),
            model_schema: schema::for_model(&input_schema),
            input_schema,
            read_only_hint: hints.and_then(|a| a.read_only_hint).unwrap_or(false),
            idempotent_hint: hints.and_then(|a| a.idempotent_hint).unwrap_or(false),
        }
    }
}

/// Why a call did not produce a result.
#[derive(Debug)]
pub(crate) enum CallFailure {
    /// The server exited too often.
    GaveUp { restarts: u32 },
    /// Starting it again failed.
    Restart(McpError),
    /// The server exited (or the connection closed) during the call.
    Exited { stderr: Vec<String> },
    /// The call took longer than `call_timeout`.
    Timeout(Duration),
    /// The run cancelled the call.
    Cancelled,
    /// The server answered with a protocol error.
    Protocol(String),
    /// The hub was shut down.
    Shutdown,
}

/// Bound on waiting for a dead child's last stderr lines before reporting its exit.
const STDERR_DRAIN: Duration = Duration::from_millis(500);

/// The last lines a child wrote on stderr, and whether its stderr has ended.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<VecDeque<String>>>, Arc<tokio::sync::watch::Sender<bool>>);

impl StderrTail {
    fn lines(&self) -> Vec<String> {
        self.0.lock().map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }

    /// Waits (at most [`STDERR_DRAIN`]) until the child's stderr has been read to its end, so
    /// an error about its exit carries its last words. Returns at once for a tail that never
    /// followed a stream (HTTP servers).
    async fn drained(&self) {
        let mut rx = self.1.subscribe();
        if Arc::strong_count(&self.1) > 1 || *rx.borrow() {
            let _ = tokio::time::timeout(STDERR_DRAIN, rx.wait_for(|done| *done)).await;
        }
    }

    fn push(&self, server: &str, raw: &[u8], secrets: &[Secret]) {
        let text = String::from_utf8_lossy(raw);
        let text = secrets.iter().fold(text.trim_end().to_owned(), |t, s| s.scrub(&t));
        let line: String = text.chars().take(STDERR_LINE_CHARS).collect();
        if line.is_empty() {
            return;
        }
        tracing::debug!(server, line = %line, "MCP server stderr");
        if let Ok(mut q) = self.0.lock() {
            if q.len() == STDERR_LINES {
                q.pop_front();
            }
            q.push_back(line);
        }
    }

    /// Reads `stderr` to its end in chunks (a line without a newline cannot grow a buffer
    /// past a few KiB).
    /// Lines are cleared of `secrets` (the child's configured environment values) before they
    /// are kept or logged.
    fn follow(&self, server: String, mut stderr: tokio::process::ChildStderr, secrets: Vec<Secret>) {
        let tail = self.clone();
        tokio::spawn(async move {
            // Marks the end however the task ends (EOF, error, runtime shutdown).
            struct Done(Arc<tokio::sync::watch::Sender<bool>>);
            impl Drop for Done {
                fn drop(&mut self) {
                    self.0.send_replace(true);
                }
            }
            let _done = Done(tail.1.clone());
            let mut buf = vec![0u8; 4096];
            let mut line: Vec<u8> = Vec::new();
            loop {
                let n = match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if b == b'\n' {
                        tail.push(&server, &line, &secrets);
                        line.clear();
                    } else if line.len() < 4096 {
                        line.push(b);
                    }
                }
            }
            tail.push(&server, &line, &secrets);
        });
    }
}

/// Receives the server's notifications.
#[derive(Clone)]
pub(crate) struct Handler {
    server: String,
    tools: Arc<RwLock<Vec<RemoteTool>>>,
    refreshes: Arc<AtomicU64>,
}

impl rmcp::ClientHandler for Handler {
    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        // Read the list in a task of its own: the notification arrives on the connection's
        // loop, which must stay free to carry the answer.
        let peer = context.peer.clone();
        let this = self.clone();
        tokio::spawn(async move {
            match peer.list_all_tools().await {
                Ok(listed) => {
                    let fresh: Vec<RemoteTool> = listed.iter().map(RemoteTool::from_listed).collect();
                    this.replace(fresh);
                    this.refreshes.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => tracing::warn!(server = %this.server, error = %e, "MCP tool list refresh failed"),
            }
        });
    }
}

impl Handler {
    fn replace(&self, fresh: Vec<RemoteTool>) {
        if let Ok(mut tools) = self.tools.write() {
            for t in &fresh {
                if !tools.iter().any(|old| old.name == t.name) && !tools.is_empty() {
                    tracing::warn!(
                        server = %self.server,
                        tool = %t.name,
                        "MCP server lists a new tool; it is offered to agents from the next start"
                    );
                }
            }
            *tools = fresh;
        }
    }
}

struct Live {
    service: RunningService<RoleClient, Handler>,
    stderr: StderrTail,
    pid: Option<u32>,
    generation: u64,
}

#[derive(Default)]
struct ConnState {
    live: Option<Live>,
    restarts: u32,
    generation: u64,
    shut: bool,
}

/// One configured server.
pub(crate) struct Server {
    pub(crate) config: ServerConfig,
    handler: Handler,
    conn: tokio::sync::Mutex<ConnState>,
}

impl Server {
    /// Starts the server and reads its tool list.
    pub(crate) async fn start(config: ServerConfig) -> Result<Arc<Self>, McpError> {
        let handler =
            Handler { server: config.name.clone(), tools: Arc::default(), refreshes: Arc::default() };
        let (live, listed) = connect(&config, handler.clone(), 0).await?;
        handler.replace(listed);
        let state = ConnState { live: Some(live), ..ConnState::default() };
        Ok(Arc::new(Self { config, handler, conn: tokio::sync::Mutex::new(state) }))
    }

    /// The current tool list.
    pub(crate) fn tools(&self) -> Vec<RemoteTool> {
        self.handler.tools.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// The current entry for `name`, if the server still lists it.
    pub(crate) fn tool(&self, name: &str) -> Option<RemoteTool> {
        self.handler.tools.read().ok()?.iter().find(|t| t.name == name).cloned()
    }

    /// Tool list refreshes so far (after `list_changed`).
    pub(crate) fn refreshes(&self) -> u64 {
        self.handler.refreshes.load(Ordering::SeqCst)
    }

    /// Process id of the running stdio child, if any.
    pub(crate) async fn pid(&self) -> Option<u32> {
        self.conn.lock().await.live.as_ref().and_then(|l| l.pid)
    }

    /// Calls `tool` with `args`, bounded by `call_timeout` and `cancel`.
    pub(crate) async fn call(
        &self,
        tool: &str,
        args: Option<JsonObject>,
        cancel: &CancellationToken,
    ) -> Result<CallToolResult, CallFailure> {
        let (peer, generation) = self.peer().await?;
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = args;
        let after = self.config.call_timeout;
        let outcome = tokio::select! {
            r = tokio::time::timeout(after, peer.call_tool(params)) => r,
            () = cancel.cancelled() => return Err(CallFailure::Cancelled),
        };
        match outcome {
            Err(_) => Err(CallFailure::Timeout(after)),
            Ok(Ok(result)) => Ok(result),
            Ok(Err(ServiceError::McpError(e))) => {
                Err(CallFailure::Protocol(scrub_all(&self.config, e.message.to_string())))
            }
            Ok(Err(ServiceError::TransportClosed | ServiceError::TransportSend(_))) => {
                Err(CallFailure::Exited { stderr: self.drop_connection(generation).await })
            }
            Ok(Err(other)) => Err(CallFailure::Protocol(scrub_all(&self.config, other.to_string()))),
        }
    }

    /// A live peer: the current connection, or a new one when the last has closed (counted
    /// against `max_restarts`).
    async fn peer(&self) -> Result<(Peer<RoleClient>, u64), CallFailure> {
        let mut st = self.conn.lock().await;
        if st.shut {
            return Err(CallFailure::Shutdown);
        }
        if let Some(live) = &st.live
            && !live.service.is_closed()
            && live.pid.is_none_or(process_alive)
        {
            return Ok((live.service.peer().clone(), live.generation));
        }
        let last = st.live.take().map(|l| l.stderr.lines()).unwrap_or_default();
        if st.restarts >= self.config.max_restarts {
            return Err(CallFailure::GaveUp { restarts: st.restarts });
        }
        st.restarts += 1;
        st.generation += 1;
        tracing::warn!(
            server = %self.config.name,
            restart = st.restarts,
            max = self.config.max_restarts,
            last_stderr = %last.join(" | "),
            "MCP server is not running; starting it again"
        );
        let (live, listed) =
            connect(&self.config, self.handler.clone(), st.generation).await.map_err(CallFailure::Restart)?;
        self.handler.replace(listed);
        let peer = live.service.peer().clone();
        let generation = live.generation;
        st.live = Some(live);
        Ok((peer, generation))
    }

    /// Forgets the connection of `generation` (it closed under a call); returns the server's
    /// last stderr lines. Dropping it kills the child if it still runs.
    async fn drop_connection(&self, generation: u64) -> Vec<String> {
        let mut st = self.conn.lock().await;
        match &st.live {
            Some(live) if live.generation == generation => {
                let Some(live) = st.live.take() else { return Vec::new() };
                live.stderr.drained().await;
                live.stderr.lines()
            }
            Some(live) => live.stderr.lines(),
            None => Vec::new(),
        }
    }

    /// Closes the server for good: stdin closed, then SIGTERM, then SIGKILL (stdio), or the
    /// session ended (HTTP). Later calls fail with a shutdown error.
    pub(crate) async fn shutdown(&self) {
        let live = {
            let mut st = self.conn.lock().await;
            st.shut = true;
            st.live.take()
        };
        if let Some(mut live) = live {
            // rmcp closes stdin, waits, signals the group, then kills it; bounded here too.
            let closed = live.service.close_with_timeout(SHUTDOWN_GRACE * 2).await;
            if let Err(e) = closed {
                tracing::warn!(server = %self.config.name, error = %e, "MCP server did not close cleanly");
            }
        }
    }
}

/// Starts one connection and reads the tool list, within `startup_timeout`.
async fn connect(
    config: &ServerConfig,
    handler: Handler,
    generation: u64,
) -> Result<(Live, Vec<RemoteTool>), McpError> {
    let stderr = StderrTail::default();
    let name = config.name.clone();
    let startup = async {
        let (service, pid) = match &config.transport {
            Transport::Stdio { command, args, env, cwd } => {
                let mut cmd = tokio::process::Command::new(command);
                cmd.args(args);
                for (k, v) in env {
                    cmd.env(k, v.expose());
                }
                if let Some(dir) = cwd {
                    cmd.current_dir(dir);
                }
                let mut wrap = CommandWrap::from(cmd);
                wrap.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
                let (child, err) =
                    TokioChildProcess::builder(wrap).stderr(Stdio::piped()).spawn().map_err(|e| {
                        McpError::Spawn {
                            server: name.clone(),
                            command: command.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                let pid = child.id();
                if let Some(err) = err {
                    stderr.follow(name.clone(), err, env.iter().map(|(_, v)| v.clone()).collect());
                }
                let service = match handler.serve(child).await {
                    Ok(service) => service,
                    Err(e) => {
                        // It usually died saying why: wait for its last stderr lines.
                        stderr.drained().await;
                        let reason = scrub_all(config, e.to_string());
                        return Err(McpError::Startup {
                            server: name.clone(),
                            reason,
                            stderr: stderr.lines(),
                        });
                    }
                };
                (service, pid)
            }
            Transport::Http { url, headers } => {
                let mut map = HashMap::new();
                for (k, v) in headers {
                    let invalid = |what: &str| McpError::Startup {
                        server: name.clone(),
                        reason: format!("header {k}: invalid {what}"),
                        stderr: Vec::new(),
                    };
                    let hn = http::HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid("name"))?;
                    let mut hv = http::HeaderValue::from_str(v.expose()).map_err(|_| invalid("value"))?;
                    hv.set_sensitive(true);
                    map.insert(hn, hv);
                }
                let cfg = StreamableHttpClientTransportConfig::with_uri(url.as_str()).custom_headers(map);
                let transport = StreamableHttpClientTransport::from_config(cfg);
                // A server may echo a header back in an error body: its values never reach
                // our messages.
                let scrub = |text: String| headers.iter().fold(text, |t, (_, v)| v.scrub(&t));
                let service = handler.serve(transport).await.map_err(|e| McpError::Startup {
                    server: name.clone(),
                    reason: scrub(e.to_string()),
                    stderr: Vec::new(),
                })?;
                (service, None)
            }
        };
        let listed = service.peer().list_all_tools().await.map_err(|e| McpError::Startup {
            server: name.clone(),
            reason: scrub_all(config, format!("tools/list failed: {e}")),
            stderr: stderr.lines(),
        })?;
        let tools: Vec<RemoteTool> = listed.iter().map(RemoteTool::from_listed).collect();
        Ok::<_, McpError>((service, pid, tools))
    };
    match tokio::time::timeout(config.startup_timeout, startup).await {
        Err(_) => Err(McpError::StartupTimeout {
            server: name,
            after: config.startup_timeout,
            stderr: stderr.lines(),
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok((service, pid, tools))) => Ok((Live { service, stderr, pid, generation }, tools)),
    }
}

/// False once a child has exited (gone, or a zombie not yet reaped): the connection's loop
/// may not have seen the end of its stdout yet, and a call sent now would only fail.
#[cfg(target_os = "linux")]
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => !stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}

/// Elsewhere the connection's own view decides.
#[cfg(not(target_os = "linux"))]
fn process_alive(_pid: u32) -> bool {
    true
}

/// `text` with every configured secret (HTTP header values, child environment values)
/// replaced by `[redacted]`.
pub(crate) fn scrub_all(config: &ServerConfig, text: String) -> String {
    let secrets = match &config.transport {
        Transport::Stdio { env, .. } => env,
        Transport::Http { headers, .. } => headers,
    };
    secrets.iter().fold(text, |t, (_, v)| v.scrub(&t))
}
