//! The provider fault catalogue shared by the runtime's and the CLI's fault suites
//! (`core/tests/it/faults.rs`, `cli/tests/it/faults.rs`, both `#[path]`-include this file
//! and `llm/tests/it/tcp_stub.rs`).
//!
//! Every case is one agent run of two steps against OpenAI-compatible raw TCP stubs: step 1
//! (a request without a tool result) is answered healthily with a `calc` tool call; step 2
//! (the request carrying the tool result) meets the fault. So a fault always lands on a run
//! that already has a transcript to lose. The run's model is either the faulty `head` alone
//! ([`Shape::Single`]) or `head, tail` ([`Shape::Chain`]) where `tail` always answers.
//! [`expect`] says what must happen: which error class the head's failure has, whether the
//! chain fails over, the run's final status, who answers, and how long it may take given
//! the timeouts of [`HEADERS`], [`IDLE`] and [`CONNECT`] and the chain's default retries.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::tcp_stub::{Received, Step, Stub, head, head_with_length, send};

/// Provider connect timeout the suites configure.
pub const CONNECT: Duration = Duration::from_millis(300);
/// Provider time-to-headers timeout the suites configure.
pub const HEADERS: Duration = Duration::from_millis(400);
/// Provider idle timeout the suites configure.
pub const IDLE: Duration = Duration::from_millis(300);
/// The chain's attempts per target (default options: 2 retries).
pub const ATTEMPTS: u32 = 3;
/// The most the chain's default backoff sleeps over one target's retries (250 ms + 500 ms).
pub const BACKOFF: Duration = Duration::from_millis(750);
/// The input of every case.
pub const INPUT: &str = "What is 6 x 7? Use calc.";
const MB: usize = 1 << 20;

/// Whole (`generate`) or streamed calls (`[runtime] streaming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Non-streamed.
    Whole,
    /// Streamed (SSE).
    Streamed,
}

/// The run's model: the faulty head alone, or a failover chain whose tail is healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `head/m`.
    Single,
    /// `head/m, tail/m`.
    Chain,
}

impl Shape {
    /// The model spec of the run.
    pub fn spec(self) -> &'static str {
        match self {
            Self::Single => "head/m",
            Self::Chain => "head/m, tail/m",
        }
    }
}

/// What goes wrong at step 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After: 1` once, then healthy.
    RateLimitedSeconds,
    /// 429 with `Retry-After: <HTTP date 2 s ahead>` once, then healthy.
    RateLimitedDate,
    /// 429 with `Retry-After: 120` every time (above the chain's 30 s ceiling).
    RateLimitedLong,
    /// 500 every time.
    Status500,
    /// 502 every time.
    Status502,
    /// 503 every time.
    Status503,
    /// 529 (overloaded) every time.
    Status529,
    /// Nothing listens on the head's port (so step 1 meets it too).
    Refused,
    /// The connection is reset right after the request.
    ResetBeforeResponse,
    /// Streamed: reset after the first event. Whole: reset mid-body.
    ResetAfterFirstEvent,
    /// Streamed: the first SSE event is broken JSON. Whole: the body is broken JSON.
    Malformed,
    /// Whole: half the announced JSON body, then a clean close. Streamed: the first event,
    /// then a clean close without the end marker.
    Truncated,
    /// Invalid UTF-8 bytes inside the answer's text (streamed: in the first event).
    InvalidUtf8,
    /// A 10 MB line (streamed: one SSE event; whole: the body): within the 16 MiB line and
    /// 64 MiB body limits, so it must be accepted.
    TenMegabyteLine,
    /// A status line and some headers, then silence.
    StalledHeaders,
    /// Whole: headers and half the body, then silence. Streamed: the first event, then silence.
    StalledBody,
    /// The server accepts the connection, reads the request and never writes a byte.
    NeverAnswers,
    /// The port is listening but the server never accepts: the kernel completes the
    /// handshake and buffers the request, nothing ever comes back (a hung process). Step 1
    /// meets it too.
    NeverAccepted,
}

/// Every fault, in table order.
pub const FAULTS: [Fault; 18] = [
    Fault::RateLimitedSeconds,
    Fault::RateLimitedDate,
    Fault::RateLimitedLong,
    Fault::Status500,
    Fault::Status502,
    Fault::Status503,
    Fault::Status529,
    Fault::Refused,
    Fault::ResetBeforeResponse,
    Fault::ResetAfterFirstEvent,
    Fault::Malformed,
    Fault::Truncated,
    Fault::InvalidUtf8,
    Fault::TenMegabyteLine,
    Fault::StalledHeaders,
    Fault::StalledBody,
    Fault::NeverAnswers,
    Fault::NeverAccepted,
];

impl Fault {
    /// A short label for the table.
    pub fn label(self, mode: Mode) -> &'static str {
        use Mode::{Streamed as S, Whole as W};
        match (self, mode) {
            (Self::RateLimitedSeconds, _) => "429 Retry-After: 1 (once)",
            (Self::RateLimitedDate, _) => "429 Retry-After: HTTP-date +2 s (once)",
            (Self::RateLimitedLong, _) => "429 Retry-After: 120 (always)",
            (Self::Status500, _) => "500",
            (Self::Status502, _) => "502",
            (Self::Status503, _) => "503",
            (Self::Status529, _) => "529 overloaded",
            (Self::Refused, _) => "connection refused",
            (Self::ResetBeforeResponse, _) => "reset before the response",
            (Self::ResetAfterFirstEvent, S) => "reset after the first event",
            (Self::ResetAfterFirstEvent, W) => "reset mid-body",
            (Self::Malformed, S) => "malformed SSE (first event)",
            (Self::Malformed, W) => "malformed JSON body",
            (Self::Truncated, S) => "stream closed without [DONE]",
            (Self::Truncated, W) => "truncated JSON body",
            (Self::InvalidUtf8, _) => "invalid UTF-8",
            (Self::TenMegabyteLine, S) => "10 MB SSE line",
            (Self::TenMegabyteLine, W) => "10 MB body",
            (Self::StalledHeaders, _) => "stalled headers",
            (Self::StalledBody, S) => "stall after the first event",
            (Self::StalledBody, W) => "stalled body",
            (Self::NeverAnswers, _) => "accepts, reads, never answers",
            (Self::NeverAccepted, _) => "listening, never accepts",
        }
    }
}

/// The class of the head's failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No failure (the head answers).
    None,
    /// `transient`.
    Transient,
    /// `decode`.
    Decode,
}

impl Class {
    /// As it appears in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "-",
            Self::Transient => "transient",
            Self::Decode => "decode",
        }
    }
}

/// What a case must produce.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    /// The class of the head's failure.
    pub class: Class,
    /// The chain moves to the tail (only possible before a stream's first event).
    pub fails_over: bool,
    /// `completed` or `failed`.
    pub status: &'static str,
    /// Who gives the final answer (`head` or `tail`), if the run completes.
    pub answered_by: Option<&'static str>,
    /// Step 1's tool call and result are in the transcript (false only when the head is
    /// unreachable from the start and nothing else can answer).
    pub keeps_step_one: bool,
    /// The run may not end sooner (a `Retry-After` that must be honoured).
    pub at_least: Duration,
    /// Time the configured timers, retries and backoff allow; past this plus a fixed slack
    /// for process start-up and a loaded machine, the case counts as a hang.
    pub at_most: Duration,
}

/// Is the fault seen by the chain before anything was yielded (so it can fail over)?
fn before_first_event(fault: Fault, mode: Mode) -> bool {
    !(mode == Mode::Streamed
        && matches!(fault, Fault::ResetAfterFirstEvent | Fault::Truncated | Fault::StalledBody))
}

/// The expectation for a case.
pub fn expect(fault: Fault, mode: Mode, shape: Shape) -> Expected {
    let class = match fault {
        Fault::RateLimitedSeconds | Fault::RateLimitedDate | Fault::TenMegabyteLine => Class::None,
        Fault::Malformed | Fault::InvalidUtf8 => Class::Decode,
        _ => Class::Transient,
    };
    let early = before_first_event(fault, mode);
    // A transient break past the first event re-issues the step's call once (the runtime's
    // default `stream_restarts`), on the tail when there is one, else on the head again.
    let restarted = !early && class == Class::Transient;
    let fails_over = class != Class::None && shape == Shape::Chain && (early || restarted);
    let (status, answered_by) = match (class, fails_over) {
        (Class::None, _) => ("completed", Some("head")),
        (_, true) => ("completed", Some("tail")),
        (_, false) => ("failed", None),
    };
    let at_least = match fault {
        Fault::RateLimitedSeconds => Duration::from_millis(900),
        // An HTTP date has a resolution of one second: 2 s ahead is at least 1 s of waiting.
        Fault::RateLimitedDate => Duration::from_millis(900),
        _ => Duration::ZERO,
    };
    // Each attempt on the head may take its timer; decode errors and above-ceiling waits
    // are not retried; a transient one is, with the backoff in between.
    let per_attempt = match (fault, mode) {
        (Fault::StalledHeaders | Fault::NeverAnswers | Fault::NeverAccepted, _) => HEADERS,
        (Fault::StalledBody, _) => HEADERS + IDLE,
        (Fault::Refused, _) => CONNECT,
        _ => Duration::from_millis(100),
    };
    let attempts = match class {
        Class::Transient if early && fault != Fault::RateLimitedLong => ATTEMPTS,
        _ => 1,
    };
    let waits = match fault {
        Fault::RateLimitedSeconds | Fault::RateLimitedDate => Duration::from_secs(2),
        _ if attempts > 1 => BACKOFF,
        _ => Duration::ZERO,
    };
    // A head that is unreachable from the start fails step 1 too.
    let from_start = matches!(fault, Fault::Refused | Fault::NeverAccepted);
    let steps_meeting_it = if from_start { 2 } else { 1 };
    let calls = if restarted && shape == Shape::Single { 2 } else { 1 };
    let at_most = (per_attempt * attempts + waits) * steps_meeting_it * calls;
    let keeps_step_one = !(from_start && shape == Shape::Single);
    Expected { class, fails_over, status, answered_by, keeps_step_one, at_least, at_most }
}

/// Faults whose form depends on the framing (run in both modes); the others are the same
/// bytes whatever was asked and run streamed only.
pub fn body_dependent(fault: Fault) -> bool {
    matches!(
        fault,
        Fault::ResetAfterFirstEvent
            | Fault::Malformed
            | Fault::Truncated
            | Fault::InvalidUtf8
            | Fault::TenMegabyteLine
            | Fault::StalledBody
    )
}

/// The cases: every fault streamed, and the body-dependent ones whole too.
pub fn cases() -> Vec<(Fault, Mode)> {
    let mut out: Vec<(Fault, Mode)> = FAULTS.iter().map(|f| (*f, Mode::Streamed)).collect();
    out.extend(FAULTS.iter().filter(|f| body_dependent(**f)).map(|f| (*f, Mode::Whole)));
    out
}

/// Does the request ask for a stream?
pub fn is_stream(req: &Received) -> bool {
    serde_json::from_slice::<Value>(&req.body).is_ok_and(|b| b["stream"] == json!(true))
}

/// Does the request carry a tool result (step 2 or later)?
pub fn has_tool_result(req: &Received) -> bool {
    serde_json::from_slice::<Value>(&req.body)
        .is_ok_and(|b| b["messages"].as_array().is_some_and(|ms| ms.iter().any(|m| m["role"] == "tool")))
}

fn whole_body(body: &Value) -> Vec<Step> {
    let text = body.to_string();
    vec![head_with_length("application/json", text.len()), send(text)]
}

fn sse(events: &[Value]) -> String {
    let mut out = String::new();
    for e in events {
        out.push_str("data: ");
        out.push_str(&e.to_string());
        out.push_str("\n\n");
    }
    out.push_str("data: [DONE]\n\n");
    out
}

const USAGE: &str = r#"{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}"#;

fn usage() -> Value {
    serde_json::from_str(USAGE).unwrap_or(Value::Null)
}

/// Step 1's answer: a `calc` call for `6*7`.
pub fn tool_call(stream: bool) -> Vec<Step> {
    let args = json!({"expression": "6*7"}).to_string();
    if stream {
        let call = json!({"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[
            {"index":0,"id":"call_1","type":"function","function":{"name":"calc","arguments":args}}]}}]});
        let end = json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":usage()});
        vec![head("text/event-stream"), send(sse(&[call, end]))]
    } else {
        whole_body(&json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant",
                "content": null,
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "calc", "arguments": args}}]}}],
            "usage": usage()
        }))
    }
}

/// A final answer with `text`.
pub fn text_answer(stream: bool, text: &str) -> Vec<Step> {
    if stream {
        let delta = json!({"choices":[{"index":0,"delta":{"role":"assistant","content":text}}]});
        let end = json!({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":usage()});
        vec![head("text/event-stream"), send(sse(&[delta, end]))]
    } else {
        whole_body(&json!({
            "id": "chatcmpl-2", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
            "usage": usage()
        }))
    }
}

/// A healthy server named `who`: a tool call at step 1, `answered by {who}` after.
pub fn healthy(req: &Received, who: &str) -> Vec<Step> {
    if has_tool_result(req) {
        text_answer(is_stream(req), &format!("answered by {who}"))
    } else {
        tool_call(is_stream(req))
    }
}

fn status(code: u16, reason: &str, extra: &str) -> Vec<Step> {
    let body = json!({"error": {"message": format!("injected {code}"), "type": "server_error"}}).to_string();
    vec![send(format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    ))]
}

fn invalid_utf8(text_with_marker: String) -> Step {
    let mut bytes = text_with_marker.into_bytes();
    if let Some(at) = bytes.windows(7).position(|w| w == b"invalid") {
        bytes.splice(at + 2..at + 2, [0xff, 0xfe]);
    }
    Step::Send(bytes)
}

/// A streamed first event carrying `text`.
pub fn first_event(text: &str) -> String {
    let e = json!({"choices":[{"index":0,"delta":{"role":"assistant","content":text}}]});
    format!("data: {e}\n\n")
}

/// The fault's script for a step-2 request (`nth`: 0 for the first one this stub saw).
fn fault_script(fault: Fault, stream: bool, nth: usize) -> Vec<Step> {
    let whole_text = |text: &str| {
        json!({"id": "x", "object": "chat.completion", "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": text}}],
            "usage": usage()})
        .to_string()
    };
    match fault {
        Fault::RateLimitedSeconds if nth == 0 => status(429, "Too Many Requests", "retry-after: 1\r\n"),
        Fault::RateLimitedDate if nth == 0 => {
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
            status(429, "Too Many Requests", &format!("retry-after: {date}\r\n"))
        }
        Fault::RateLimitedSeconds | Fault::RateLimitedDate => text_answer(stream, "answered by head"),
        Fault::RateLimitedLong => status(429, "Too Many Requests", "retry-after: 120\r\n"),
        Fault::Status500 => status(500, "Internal Server Error", ""),
        Fault::Status502 => status(502, "Bad Gateway", ""),
        Fault::Status503 => status(503, "Service Unavailable", ""),
        Fault::Status529 => status(529, "Overloaded", ""),
        Fault::Refused => Vec::new(),
        Fault::ResetBeforeResponse => vec![Step::Reset],
        Fault::ResetAfterFirstEvent if stream => {
            vec![head("text/event-stream"), send(first_event("partial")), Step::Reset]
        }
        Fault::ResetAfterFirstEvent => {
            let body = whole_text("never whole");
            vec![head_with_length("application/json", body.len()), send(&body[..body.len() / 2]), Step::Reset]
        }
        Fault::Malformed if stream => {
            vec![
                head("text/event-stream"),
                send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\n\n"),
                Step::Stall,
            ]
        }
        Fault::Malformed => {
            let body = "{\"choices\": [ not json";
            vec![head_with_length("application/json", body.len()), send(body)]
        }
        Fault::Truncated if stream => vec![head("text/event-stream"), send(first_event("partial"))],
        Fault::Truncated => {
            let body = whole_text("never whole");
            vec![head_with_length("application/json", body.len()), send(&body[..body.len() / 2])]
        }
        Fault::InvalidUtf8 if stream => {
            vec![head("text/event-stream"), invalid_utf8(first_event("invalid")), Step::Stall]
        }
        Fault::InvalidUtf8 => {
            let body = whole_text("invalid");
            vec![head_with_length("application/json", body.len() + 2), invalid_utf8(body)]
        }
        Fault::TenMegabyteLine => big_script(stream).clone(),
        Fault::StalledHeaders => {
            vec![send("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"), Step::Stall]
        }
        Fault::StalledBody if stream => {
            vec![head("text/event-stream"), send(first_event("partial")), Step::Stall]
        }
        Fault::StalledBody => {
            let body = whole_text("never whole");
            vec![head_with_length("application/json", body.len()), send(&body[..body.len() / 2]), Step::Stall]
        }
        Fault::NeverAnswers => vec![Step::Stall],
        Fault::NeverAccepted => Vec::new(),
    }
}

/// The 10 MB answer of [`Fault::TenMegabyteLine`] (so callers can compare).
pub fn big_answer() -> &'static str {
    static BIG: OnceLock<String> = OnceLock::new();
    BIG.get_or_init(|| {
        let mut text = String::from("answered by head ");
        text.push_str(&"x".repeat(10 * MB));
        text
    })
}

/// The 10 MB answer's script, built once before any request (building it takes longer
/// than the short headers timeout in a debug build).
fn big_script(stream: bool) -> &'static Vec<Step> {
    static SCRIPTS: OnceLock<[Vec<Step>; 2]> = OnceLock::new();
    let scripts = SCRIPTS.get_or_init(|| [text_answer(false, big_answer()), text_answer(true, big_answer())]);
    &scripts[usize::from(stream)]
}

/// The faulty head server of a case; keep it alive for the run.
pub struct Head {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stub: Option<Stub>,
    _listener: Option<std::net::TcpListener>,
    step2: Arc<AtomicUsize>,
}

impl Head {
    /// Requests of step 2 (or later) it received.
    pub fn step2_requests(&self) -> usize {
        self.step2.load(Ordering::SeqCst)
    }

    /// Connections it accepted.
    pub fn accepts(&self) -> usize {
        self.stub.as_ref().map_or(0, Stub::accepts)
    }
}

/// Starts the head server for `fault`.
pub async fn start_head(fault: Fault) -> Head {
    let step2 = Arc::new(AtomicUsize::new(0));
    match fault {
        Fault::Refused => {
            let port = {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
                listener.local_addr().expect("addr").port()
            }; // dropped: nothing listens there any more
            Head { url: format!("http://127.0.0.1:{port}"), stub: None, _listener: None, step2 }
        }
        Fault::NeverAccepted => {
            // Bound and listening, never accepted: the kernel completes the handshake and
            // buffers the request; no byte ever comes back.
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let url = format!("http://{}", listener.local_addr().expect("addr"));
            Head { url, stub: None, _listener: Some(listener), step2 }
        }
        _ => {
            if fault == Fault::TenMegabyteLine {
                big_script(true);
            }
            let counter = Arc::clone(&step2);
            let stub = Stub::route(move |req| {
                if has_tool_result(req) {
                    let nth = counter.fetch_add(1, Ordering::SeqCst);
                    fault_script(fault, is_stream(req), nth)
                } else {
                    tool_call(is_stream(req))
                }
            })
            .await;
            Head { url: stub.url(), stub: Some(stub), _listener: None, step2 }
        }
    }
}

/// The healthy tail server.
pub async fn start_tail() -> Stub {
    Stub::route(|req| healthy(req, "tail")).await
}
