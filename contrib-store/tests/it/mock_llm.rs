//! A loopback OpenAI-compatible mock for the worker tests, with the bookkeeping those tests
//! assert on:
//! - `POST /v1/chat/completions` answers a tool-using agent deterministically: while the
//!   request holds fewer than `steps` tool results it calls `effect` (`call_<n>`, arguments
//!   `{"key":"k<n>"}`), then it answers `done`. Usage: 10 input tokens, `completion_tokens`
//!   output tokens. A run is recognised by `#run=<uuid>` in its messages.
//! - `POST /effect` (the `effect` tool's side effect) counts effects per run and call id.
//! - A per-run driver counter: every request of a run (model or effect) is in flight from
//!   the moment it is read until its answer is written, after `latency`; a run with two
//!   requests in flight at once has two drivers, and is recorded as a violation.
//! - A hold (`State::hold_after`): a model request carrying that many tool results or more
//!   gets no answer until its client hangs up, so a test can stop runs at a known step.
//! - The last transcript each run sent (its tool results: call id and content), so a test
//!   can tell completed calls from interrupted ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
pub struct State {
    /// Requests in flight per run.
    in_flight: HashMap<String, u32>,
    /// Runs that had two requests in flight at once (with the count seen).
    pub violations: Vec<(String, u32)>,
    /// Effects per (run, call id).
    pub effects: BTreeMap<(String, String), u32>,
    /// Processes that applied effects, per (run, call id).
    pub effect_workers: BTreeMap<(String, String), Vec<u64>>,
    /// The tool results of each run's last model request: (call id, content).
    pub transcripts: HashMap<String, Vec<(String, String)>>,
    /// Runs answered `done`.
    pub done: HashMap<String, u32>,
    /// Model requests answered.
    pub model_requests: u64,
    /// Model requests with at least this many tool results are held (unanswered) until the
    /// client hangs up.
    pub hold_after: Option<usize>,
}

impl State {
    /// True when no request is in flight.
    pub fn idle(&self) -> bool {
        self.in_flight.values().all(|n| *n == 0)
    }
}

pub struct MockLlm {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
struct Settings {
    steps: usize,
    latency: Duration,
    completion_tokens: u64,
}

impl MockLlm {
    pub async fn start(steps: usize, latency: Duration, completion_tokens: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let settings = Settings { steps, latency, completion_tokens };
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let state = state.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, state, settings).await;
                    });
                }
            })
        };
        Self { url, state, task }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

/// `#run=<uuid>` in any message of the body.
fn run_key(body: &Value) -> Option<String> {
    let text = body.to_string();
    let at = text.find("#run=")? + 5;
    Some(text[at..].chars().take_while(|c| c.is_ascii_hexdigit() || *c == '-').collect())
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>, settings: Settings) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    let (head_end, content_length) = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while buf.len() < head_end + content_length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let first_line =
        String::from_utf8_lossy(&buf[..buf.iter().position(|b| *b == b'\r').unwrap_or(0)]).to_string();
    let body: Value =
        serde_json::from_slice(&buf[head_end..head_end + content_length]).unwrap_or(Value::Null);
    let mut held = false;
    let (key, answer) = if first_line.contains("/effect") {
        let run = body["run"].as_str().unwrap_or("?").to_owned();
        let call = body["call"].as_str().unwrap_or("?").to_owned();
        enter(&state, &run);
        {
            let mut s = state.lock().unwrap();
            *s.effects.entry((run.clone(), call.clone())).or_default() += 1;
            s.effect_workers
                .entry((run.clone(), call))
                .or_default()
                .push(body["worker"].as_u64().unwrap_or(0));
        }
        (Some(run), json!({"ok": true}))
    } else {
        let key = run_key(&body);
        if let Some(k) = &key {
            enter(&state, k);
        }
        let messages = body["messages"].as_array().cloned().unwrap_or_default();
        let results: Vec<(String, String)> = messages
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| {
                let content = match &m["content"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (m["tool_call_id"].as_str().unwrap_or("").to_owned(), content)
            })
            .collect();
        let n = results.len();
        {
            let mut s = state.lock().unwrap();
            held = s.hold_after.is_some_and(|h| n >= h);
            s.model_requests += 1;
            if let Some(k) = &key {
                s.transcripts.insert(k.clone(), results);
                if n >= settings.steps {
                    *s.done.entry(k.clone()).or_default() += 1;
                }
            }
        }
        let usage = json!({
            "prompt_tokens": 10,
            "completion_tokens": settings.completion_tokens,
            "total_tokens": 10 + settings.completion_tokens
        });
        let message = if n < settings.steps {
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "id": format!("call_{n}"), "type": "function",
                "function": {"name": "effect", "arguments": format!("{{\"key\":\"k{n}\"}}")}
            }]})
        } else {
            json!({"role": "assistant", "content": "done"})
        };
        let finish = if n < settings.steps { "tool_calls" } else { "stop" };
        (
            key,
            json!({
                "id": "chatcmpl-mock", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage
            }),
        )
    };
    if held {
        // No answer: wait for the client to hang up (its run was stopped).
        let mut sink = [0u8; 256];
        while let Ok(n) = stream.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
        leave(&state, key);
        return Ok(());
    }
    tokio::time::sleep(settings.latency).await;
    let payload = answer.to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    let written = stream.write_all(response.as_bytes()).await;
    leave(&state, key);
    written
}

fn leave(state: &Mutex<State>, run: Option<String>) {
    if let Some(k) = run {
        let mut s = state.lock().unwrap();
        if let Some(n) = s.in_flight.get_mut(&k) {
            *n = n.saturating_sub(1);
        }
    }
}

fn enter(state: &Mutex<State>, run: &str) {
    let mut s = state.lock().unwrap();
    let n = s.in_flight.entry(run.to_owned()).or_default();
    *n += 1;
    let now = *n;
    if now > 1 {
        s.violations.push((run.to_owned(), now));
    }
}
