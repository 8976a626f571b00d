//! Shared helpers: running the binary, configuration files in a temp dir, and a loopback
//! OpenAI-compatible mock server whose answers are computed from the request.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_executus-run");

/// How long a test waits for something that takes a few seconds at most before calling it a
/// hang: many times the expected time, for a debug build on a busy machine. A hang guard,
/// never a timing claim (those are checked with [`strict_timers`] or in the benchmarks).
pub const HANG: Duration = Duration::from_secs(120);

/// True when timing claims are checked too: `scripts/reliability.sh` sets
/// `EXECUTUS_STRICT_TIMERS=1` (release builds; the figures in RELIABILITY.md come from there).
pub fn strict_timers() -> bool {
    std::env::var("EXECUTUS_STRICT_TIMERS").is_ok_and(|v| v == "1")
}

/// A temp dir with an `executus.toml`.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    /// A workspace whose configuration is `toml`; `{dir}` in it is replaced by the temp dir.
    pub fn new(toml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ws = Self { dir };
        ws.write_config(toml);
        ws
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.path().join("executus.toml")
    }

    /// Replaces the configuration.
    pub fn write_config(&self, toml: &str) {
        let text = toml.replace("{dir}", &self.path().display().to_string());
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// A command for the binary with `args`, run in the workspace with `--config` and a clean
    /// environment (only PATH kept).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.path())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs the binary to completion with `stdin` (none: /dev/null).
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_with(self.command(args), stdin).await
    }

    /// Runs a prepared command to completion (on a blocking thread, so the mock server keeps
    /// serving), bounded by [`HANG`].
    pub async fn run_with(&self, mut command: Command, stdin: Option<&str>) -> Output {
        let stdin = stdin.map(str::to_owned);
        if stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let task = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().unwrap();
            if let Some(text) = stdin {
                child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
            }
            child.wait_with_output().unwrap()
        });
        tokio::time::timeout(HANG, task).await.expect("the binary finished (hang guard)").unwrap()
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, printing both streams when it differs.
#[track_caller]
pub fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code\n--- stdout\n{}\n--- stderr\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The single JSON object on stdout.
#[track_caller]
pub fn json_stdout(out: &Output) -> Value {
    let stdout = text(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"))
}

/// Checks the documented `--json` shape of a run outcome.
#[track_caller]
pub fn assert_run_json_shape(doc: &Value) {
    const STATUSES: [&str; 8] = [
        "completed",
        "failed",
        "partial",
        "stopped",
        "cancelled",
        "budget_denied",
        "awaiting_approval",
        "interrupted",
    ];
    let run_id = doc["run_id"].as_str().expect("run_id is a string");
    assert_eq!(run_id.len(), 36, "run_id is a UUID: {run_id}");
    let status = doc["status"].as_str().expect("status is a string");
    assert!(STATUSES.contains(&status), "status {status} is in the documented set");
    assert!(doc["output"].is_string() || doc["output"].is_null(), "output: {}", doc["output"]);
    assert!(doc["steps"].is_u64(), "steps: {}", doc["steps"]);
    assert!(doc["usage"].is_object(), "usage: {}", doc["usage"]);
    assert!(doc["usage"]["input_tokens"].is_u64(), "usage.input_tokens: {}", doc["usage"]);
    assert!(doc["error"].is_string() || doc["error"].is_null(), "error: {}", doc["error"]);
    assert_eq!(doc["error"].is_null(), status == "completed", "error is null exactly when completed");
    let messages = doc["messages"].as_array().expect("messages (the transcript) is an array");
    if status != "cancelled" || !messages.is_empty() {
        assert_eq!(
            messages.first().map(|m| &m["role"]),
            Some(&json!("user")),
            "the transcript starts with the input"
        );
    }
}

/// An OpenAI chat-completion body answering with text.
pub fn text_answer(text: &str) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_741_570_283,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": text },
            "finish_reason": "stop"
        }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 }
    })
}

/// An OpenAI chat-completion body asking for one tool call.
pub fn tool_answer(id: &str, tool: &str, args: &Value) -> Value {
    json!({
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1_741_570_283,
        "model": "test-model",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": id,
                    "type": "function",
                    "function": { "name": tool, "arguments": args.to_string() }
                }]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": { "prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29 }
    })
}

/// The request's chat messages.
pub fn messages(request: &Request) -> Vec<Value> {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    body["messages"].as_array().cloned().unwrap_or_default()
}

/// The text of every message of the request, joined (to check what the model saw).
pub fn transcript(request: &Request) -> String {
    messages(request).iter().map(|m| m.to_string()).collect::<Vec<_>>().join("\n")
}

/// True when the request carries a tool result.
pub fn has_tool_result(request: &Request) -> bool {
    messages(request).iter().any(|m| m["role"] == "tool")
}

/// A mock OpenAI server answering `POST /v1/chat/completions` with `respond(request)`.
pub async fn openai_server<F>(respond: F) -> MockServer
where
    F: Fn(&Request) -> ResponseTemplate + Send + Sync + 'static,
{
    let server = MockServer::builder().start().await;
    Mock::given(method("POST")).and(path("/v1/chat/completions")).respond_with(respond).mount(&server).await;
    server
}

/// Chat-completion requests the server received so far.
pub async fn calls(server: &MockServer) -> Vec<Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/chat/completions")
        .collect()
}

/// Waits (polling, up to [`HANG`]) until the server has received `n` chat requests.
pub async fn wait_for_calls(server: &MockServer, n: usize) {
    let started = Instant::now();
    while calls(server).await.len() < n {
        assert!(started.elapsed() < HANG, "the model was not called {n} times in {HANG:?} (hang)");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The configuration every test starts from: provider `mock` at `server`, non-streaming
/// calls, a store in the temp dir, agent `helper` (tools `calc`, `clock`).
pub fn base_config(server: &str) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{server}/v1"

[runtime]
streaming = false
checkpoint_interval = "0s"
shutdown_grace = "1s"

[store]
url = "sqlite://{{dir}}/executus.db"

[agents.helper]
system = "You help."
model = "mock/test-model"
tools = ["calc", "clock"]
max_steps = 6
"#
    )
}

/// Sends `signal` (`INT`, `TERM`, `KILL`) to a child process.
pub fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success(), "kill -{signal} failed");
}

/// Reads a child's stdout lines on a thread; lines arrive on the returned channel.
pub fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a child to exit, up to `limit`; kills it and fails the test past that.
pub async fn wait_exit(mut child: Child, limit: Duration) -> Output {
    let task = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                return Ok(child.wait_with_output().unwrap());
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                return Err(child.wait_with_output().unwrap());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    match task.await.unwrap() {
        Ok(out) => out,
        Err(out) => panic!("the process did not exit within {limit:?}\n--- stderr\n{}", text(&out.stderr)),
    }
}
