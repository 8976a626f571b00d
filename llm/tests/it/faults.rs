//! Transport faults wiremock cannot make, served by the raw TCP stub ([`crate::tcp_stub`]):
//! silence, stalls, resets, truncation, malformed and invalid-UTF-8 lines, oversized lines and
//! streams that close without their end marker — against the OpenAI, Anthropic and Ollama
//! clients, whole and streamed, wherever the fault applies to their framing.
//!
//! Each case asserts the documented error class (transient for resets, stalls and truncation;
//! decode for malformed, invalid or oversized data), that it ends within the configured
//! timeouts (every call runs under a hard deadline, so a hang fails instead of hanging CI),
//! and, for faults after the first event, that `collect` hands back the text received.
//! The last tests run the failover chain over real sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::ollama::Ollama;
use executus_llm::providers::openai::OpenAi;
use executus_llm::stream::collect;
use executus_llm::{
    Chain, ChainOptions, ErrorKind, HealthConfig, HealthTracker, HttpOptions, ManualClock, Model, Partial,
    Provider, Request, Response,
};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::tcp_stub::{Step, Stub, head, head_with_length, send};

const CONNECT: Duration = Duration::from_millis(300);
const HEADERS: Duration = Duration::from_millis(400);
const IDLE: Duration = Duration::from_millis(300);
/// Allowance on top of the timer that should end a call, when the timers are checked
/// (release builds, by `scripts/reliability.sh` with `EXECUTUS_STRICT_TIMERS=1`).
const SLACK: Duration = Duration::from_millis(1500);
/// Hard deadline of every call: past this the test fails as a hang. A hang guard, not a
/// timing claim: a debug build on a busy machine never comes near it.
const DEADLINE: Duration = Duration::from_secs(120);

/// True when the timers themselves are checked (see [`SLACK`]).
fn strict_timers() -> bool {
    std::env::var("EXECUTUS_STRICT_TIMERS").is_ok_and(|v| v == "1")
}
const MB: usize = 1 << 20;

fn options() -> HttpOptions {
    HttpOptions {
        connect_timeout: CONNECT,
        headers_timeout: HEADERS,
        idle_timeout: IDLE,
        ..HttpOptions::default()
    }
}

/// The wire clients under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Client {
    OpenAi,
    Anthropic,
    Ollama,
}

use Client::{Anthropic as ANTHROPIC, Ollama as OLLAMA, OpenAi as OPENAI};

const ALL: [Client; 3] = [OPENAI, ANTHROPIC, OLLAMA];

impl Client {
    fn model(self, url: &str, http: HttpOptions) -> Arc<dyn Model> {
        match self {
            OPENAI => OpenAi::new(ProviderConfig::new("oai", format!("{url}/v1")).with_http(http)).model("m"),
            ANTHROPIC => Anthropic::new(ProviderConfig::new("ant", url).with_http(http)).model("m"),
            OLLAMA => Ollama::new(ProviderConfig::new("oll", url).with_http(http)).model("m"),
        }
    }

    /// Content type of a streamed answer.
    fn stream_type(self) -> &'static str {
        match self {
            OLLAMA => "application/x-ndjson",
            OPENAI | ANTHROPIC => "text/event-stream",
        }
    }

    /// What opens a stream before any text (Anthropic's message and text block).
    fn open(self) -> &'static str {
        match self {
            ANTHROPIC => {
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n\
                 event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
            }
            OPENAI | OLLAMA => "",
        }
    }

    /// One streamed event carrying `text`.
    fn event(self, text: &str) -> String {
        let text = serde_json::to_string(text).expect("string");
        match self {
            OPENAI => format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{text}}}}}]}}\n\n"),
            ANTHROPIC => format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":{text}}}}}\n\n"
            ),
            OLLAMA => format!(
                "{{\"model\":\"m\",\"message\":{{\"role\":\"assistant\",\"content\":{text}}},\"done\":false}}\n"
            ),
        }
    }

    /// The end of a stream (finish reason, usage and end marker).
    fn end(self) -> &'static str {
        match self {
            OPENAI => {
                "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n"
            }
            ANTHROPIC => {
                "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
                 event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n\
                 event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
            }
            OLLAMA => {
                "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":3,\"eval_count\":2}\n"
            }
        }
    }

    /// A line of the stream's framing whose payload is broken JSON.
    fn malformed(self) -> &'static str {
        match self {
            OPENAI => "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\n\n",
            ANTHROPIC => {
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\n\n"
            }
            OLLAMA => "{\"model\":\"m\",\"message\":{\"role\":\n",
        }
    }

    /// A complete non-streamed answer whose text is "whole answer".
    fn whole(self) -> &'static str {
        match self {
            OPENAI => {
                r#"{"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"whole answer"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#
            }
            ANTHROPIC => {
                r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"whole answer"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#
            }
            OLLAMA => {
                r#"{"model":"m","message":{"role":"assistant","content":"whole answer"},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#
            }
        }
    }
}

/// Whole (`generate`) or streamed (`stream` + `collect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Whole,
    Streamed,
}

use Mode::{Streamed as STREAMED, Whole as WHOLE};

/// How a call ended, and how long it took.
struct Outcome {
    label: String,
    result: Result<Response, (executus_llm::Error, Partial)>,
    elapsed: Duration,
}

impl Outcome {
    /// Asserts a failure of `kind` (that ended before `timer + SLACK` when the timers are
    /// checked); returns it for more checks.
    fn fails(&self, kind: ErrorKind, timer: Duration) -> (&executus_llm::Error, &Partial) {
        let label = &self.label;
        let (error, partial) = match &self.result {
            Ok(r) => panic!("{label}: expected a {kind} error, got a response: {:?}", r.text()),
            Err((error, partial)) => (error, partial),
        };
        assert_eq!(error.kind, kind, "{label}: {error}");
        if strict_timers() {
            assert!(self.elapsed < timer + SLACK, "{label}: took {:?}", self.elapsed);
        }
        (error, partial)
    }

    fn response(self) -> Response {
        let label = self.label;
        self.result.unwrap_or_else(|(e, _)| panic!("{label}: expected a response, got {e}"))
    }
}

/// Runs one call of `client` in `mode` against a stub playing `script`.
async fn call_with(client: Client, mode: Mode, script: Vec<Step>, http: HttpOptions) -> Outcome {
    let stub = Stub::start(script).await;
    let model = client.model(&stub.url(), http);
    let label = format!("{client:?}/{mode:?}");
    let started = Instant::now();
    let run = async {
        match mode {
            WHOLE => model.generate(Request::user("hi")).await.map_err(|e| (e, Partial::default())),
            STREAMED => match model.stream(Request::user("hi")).await {
                Err(e) => Err((e, Partial::default())),
                Ok(stream) => collect(stream).await.map_err(|f| (f.error, f.partial)),
            },
        }
    };
    let result = tokio::time::timeout(DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("{label}: no result within {DEADLINE:?} (hang)"));
    Outcome { label, result, elapsed: started.elapsed() }
}

async fn call(client: Client, mode: Mode, script: Vec<Step>) -> Outcome {
    call_with(client, mode, script, options()).await
}

/// Headers of a streamed answer, then the first event ("partial").
fn started(client: Client) -> Vec<Step> {
    vec![head(client.stream_type()), send(client.open()), send(client.event("partial"))]
}

/// The whole answer's headers (true length) and its first half.
fn half_body(client: Client) -> Vec<Step> {
    let whole = client.whole();
    vec![head_with_length("application/json", whole.len()), send(&whole[..whole.len() / 2])]
}

fn with(mut steps: Vec<Step>, more: impl IntoIterator<Item = Step>) -> Vec<Step> {
    steps.extend(more);
    steps
}

#[tokio::test]
async fn the_stub_itself_serves_a_whole_and_a_streamed_answer() {
    // Control case: the same framing, intact, is accepted by every client.
    for client in ALL {
        let whole = client.whole();
        let script = vec![head_with_length("application/json", whole.len()), send(whole)];
        assert_eq!(call(client, WHOLE, script).await.response().text(), "whole answer");
        let script = with(started(client), [send(client.event(" and more")), send(client.end())]);
        let response = call(client, STREAMED, script).await.response();
        assert_eq!((response.text().as_str(), response.usage.output_tokens), ("partial and more", 2));
    }
}

#[tokio::test]
async fn silent_server_is_transient_after_the_headers_timeout() {
    for client in ALL {
        for mode in [WHOLE, STREAMED] {
            let outcome = call(client, mode, vec![Step::Stall]).await;
            let (error, _) = outcome.fails(ErrorKind::Transient, HEADERS);
            assert!(error.message.contains("response headers"), "{error}");
            assert!(outcome.elapsed >= HEADERS, "{}: {:?}", outcome.label, outcome.elapsed);
        }
    }
}

#[tokio::test]
async fn stall_after_the_headers_is_transient_after_the_idle_timeout() {
    for client in ALL {
        for (mode, content_type) in [(WHOLE, "application/json"), (STREAMED, client.stream_type())] {
            let outcome = call(client, mode, vec![head(content_type), Step::Stall]).await;
            let (error, _) = outcome.fails(ErrorKind::Transient, IDLE);
            assert!(error.message.contains("idle timeout"), "{error}");
            assert!(outcome.elapsed >= IDLE, "{}: {:?}", outcome.label, outcome.elapsed);
        }
    }
}

#[tokio::test]
async fn stall_mid_body_is_transient_and_keeps_the_partial_text() {
    for client in ALL {
        let outcome = call(client, WHOLE, with(half_body(client), [Step::Stall])).await;
        let (error, _) = outcome.fails(ErrorKind::Transient, IDLE);
        assert!(error.message.contains("idle timeout"), "{error}");

        let outcome = call(client, STREAMED, with(started(client), [Step::Stall])).await;
        let (error, partial) = outcome.fails(ErrorKind::Transient, IDLE);
        assert!(error.message.contains("idle timeout"), "{error}");
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

#[tokio::test]
async fn the_idle_timeout_counts_from_when_the_next_chunk_is_asked_for() {
    use futures::StreamExt;
    // The consumer takes longer than the idle timeout over the first event; the server has
    // stalled since. The silence is only counted once the consumer waits again: the timeout
    // bounds the server's silence, not the consumer's own pace.
    for client in ALL {
        let stub = Stub::start(with(started(client), [Step::Stall])).await;
        let model = client.model(&stub.url(), options());
        let run = async {
            let mut stream = model.stream(Request::user("hi")).await.expect("stream opens");
            stream.next().await.expect("an event").expect("the first event is fine");
            tokio::time::sleep(IDLE * 2).await;
            let resumed = Instant::now();
            let mut next = stream.next().await;
            while let Some(Ok(_)) = next {
                next = stream.next().await;
            }
            (next, resumed.elapsed())
        };
        let (next, waited) = tokio::time::timeout(DEADLINE, run).await.expect("no hang");
        let error = next.expect("an error ends the stream").expect_err("the stall is an error");
        assert_eq!(error.kind, ErrorKind::Transient, "{client:?}: {error}");
        assert!(error.message.contains("idle timeout"), "{client:?}: {error}");
        assert!(waited >= IDLE, "{client:?}: timed out {waited:?} after the consumer resumed");
    }
}

#[tokio::test]
async fn reset_before_any_response_is_transient() {
    for client in ALL {
        for mode in [WHOLE, STREAMED] {
            let outcome = call(client, mode, vec![Step::Reset]).await;
            // No timer is involved: a reset is reported at once.
            outcome.fails(ErrorKind::Transient, Duration::ZERO);
        }
    }
}

#[tokio::test]
async fn reset_mid_body_or_after_the_first_event_is_transient_and_keeps_the_partial_text() {
    for client in ALL {
        let outcome = call(client, WHOLE, with(half_body(client), [Step::Reset])).await;
        outcome.fails(ErrorKind::Transient, Duration::ZERO);

        let outcome = call(client, STREAMED, with(started(client), [Step::Reset])).await;
        let (_, partial) = outcome.fails(ErrorKind::Transient, Duration::ZERO);
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

#[tokio::test]
async fn truncated_body_is_transient() {
    for client in ALL {
        // Content-Length promises the whole answer; half arrives, then a clean close.
        let outcome = call(client, WHOLE, half_body(client)).await;
        let (error, _) = outcome.fails(ErrorKind::Transient, Duration::ZERO);
        assert!(error.message.contains("response body failed"), "{error}");

        // A streamed answer announced as 64 KiB that closes after its first event.
        let script = vec![
            head_with_length(client.stream_type(), 64 << 10),
            send(client.open()),
            send(client.event("partial")),
        ];
        let outcome = call(client, STREAMED, script).await;
        let (_, partial) = outcome.fails(ErrorKind::Transient, Duration::ZERO);
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

#[tokio::test]
async fn clean_close_without_the_end_marker_is_transient_truncation() {
    for client in ALL {
        let outcome = call(client, STREAMED, started(client)).await;
        let (error, partial) = outcome.fails(ErrorKind::Transient, Duration::ZERO);
        assert!(error.message.contains("truncated"), "{error}");
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

#[tokio::test]
async fn a_line_that_is_not_an_sse_field_is_ignored_as_the_sse_spec_says() {
    // A line without a colon is a field name with no value: SSE parsers ignore unknown fields.
    for client in [OPENAI, ANTHROPIC] {
        let script = with(started(client), [send("this is not sse\n\n"), send(client.end())]);
        assert_eq!(call(client, STREAMED, script).await.response().text(), "partial");
    }
}

#[tokio::test]
async fn malformed_data_is_a_decode_error() {
    for client in ALL {
        let body = "{\"choices\": [ not json";
        let script = vec![head_with_length("application/json", body.len()), send(body)];
        let outcome = call(client, WHOLE, script).await;
        outcome.fails(ErrorKind::Decode, Duration::ZERO);

        // The server stays connected after the bad line: the error must not wait for a timer.
        let script = with(started(client), [send(client.malformed()), Step::Stall]);
        let outcome = call(client, STREAMED, script).await;
        let (_, partial) = outcome.fails(ErrorKind::Decode, Duration::ZERO);
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

/// `bytes` with `\xff\xfe` spliced into the text "partial" of `client`'s first event.
fn with_invalid_utf8(text_carrier: String) -> Step {
    let mut bytes = text_carrier.into_bytes();
    let at = bytes.windows(7).position(|w| w == b"invalid").expect("marker") + 2;
    bytes.splice(at..at, [0xff, 0xfe]);
    Step::Send(bytes)
}

#[tokio::test]
async fn invalid_utf8_is_a_decode_error() {
    for client in ALL {
        let whole = client.whole().replace("whole answer", "invalid");
        let script = vec![head_with_length("application/json", whole.len() + 2), with_invalid_utf8(whole)];
        let outcome = call(client, WHOLE, script).await;
        outcome.fails(ErrorKind::Decode, Duration::ZERO);

        // Followed by a proper end, and followed by silence on an open connection: both must
        // fail as decode errors at once, keeping the text before the bad bytes.
        for tail in [send(client.end()), Step::Stall] {
            let script = with(started(client), [with_invalid_utf8(client.event("invalid")), tail]);
            let outcome = call(client, STREAMED, script).await;
            let (error, partial) = outcome.fails(ErrorKind::Decode, Duration::ZERO);
            assert!(error.message.contains("UTF-8"), "{error}");
            assert_eq!(partial.text, "partial", "{}", outcome.label);
        }
    }
}

#[tokio::test]
async fn ten_megabyte_line_within_the_default_limit_is_accepted() {
    let big = "x".repeat(10 * MB);
    for client in ALL {
        let script = vec![
            head(client.stream_type()),
            send(client.open()),
            send(client.event(&big)),
            send(client.end()),
        ];
        // The default limit is 16 MiB; the idle timeout stays short (the data keeps flowing).
        let http = HttpOptions { max_line_bytes: 16 * MB, ..options() };
        assert_eq!(http.max_line_bytes, HttpOptions::default().max_line_bytes);
        let outcome = call_with(client, STREAMED, script, http).await;
        let label = outcome.label.clone();
        assert!(outcome.response().text() == big, "{label}: the 10 MiB text arrives intact");
    }
}

#[tokio::test]
async fn ten_megabyte_line_past_a_lowered_limit_is_a_decode_error() {
    let big = "x".repeat(10 * MB);
    for client in ALL {
        let script = with(started(client), [send(client.event(&big)), send(client.end())]);
        let http = HttpOptions { max_line_bytes: MB, ..options() };
        let outcome = call_with(client, STREAMED, script, http).await;
        let (error, partial) = outcome.fails(ErrorKind::Decode, Duration::ZERO);
        assert!(error.message.contains("exceeds"), "{error}");
        assert_eq!(partial.text, "partial", "{}", outcome.label);
    }
}

/// A `local/m` model at `url`, for the chain tests.
fn openai_at(name: &str, url: &str) -> Arc<dyn Model> {
    OpenAi::new(ProviderConfig::new(name, format!("{url}/v1")).with_http(options())).model("m")
}

async fn healthy_tail() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(OPENAI.whole(), "application/json"))
        .mount(&server)
        .await;
    server
}

/// A chain on a manual clock (so a bench never expires during the test and no retry sleeps).
fn chain(head: Arc<dyn Model>, tail: Arc<dyn Model>, health: HealthConfig) -> Chain {
    let clock = ManualClock::new();
    let tracker = HealthTracker::with_clock(health, Arc::new(clock.clone()));
    let options = ChainOptions { retries: 1, ..ChainOptions::default() }.with_sleeper(Arc::new(clock));
    Chain::new("head, tail", [head, tail], tracker).with_options(options)
}

#[tokio::test]
async fn chain_fails_over_from_a_refused_port_to_a_healthy_server() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }; // dropped: nothing listens there any more
    let tail = healthy_tail().await;
    let chain = chain(
        openai_at("head", &format!("http://127.0.0.1:{refused}")),
        openai_at("tail", &tail.uri()),
        HealthConfig::default(),
    );
    for mode in [WHOLE, STREAMED] {
        let run = async {
            match mode {
                WHOLE => chain.generate(Request::user("hi")).await.expect("tail answers"),
                STREAMED => collect(chain.stream(Request::user("hi")).await.expect("stream"))
                    .await
                    .expect("tail streams"),
            }
        };
        let response = tokio::time::timeout(DEADLINE, run).await.expect("no hang");
        assert_eq!((response.provider.as_str(), response.text().as_str()), ("tail", "whole answer"));
    }
    let head = chain.health().snapshot().into_iter().find(|h| h.target == "head/m").expect("head tracked");
    assert_eq!(head.total_failures, 2, "one failure per call, without a retry");
}

#[tokio::test]
async fn a_refused_connection_is_marked_and_a_reset_is_not() {
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let dead = openai_at("dead", &format!("http://127.0.0.1:{refused}"));
    let e = tokio::time::timeout(DEADLINE, dead.generate(Request::user("hi"))).await.expect("no hang");
    let e = e.expect_err("nothing listens");
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(e.connection_refused, "{e}");

    let reset = Stub::start(vec![Step::Reset]).await;
    let e = tokio::time::timeout(DEADLINE, openai_at("reset", &reset.url()).generate(Request::user("hi")))
        .await
        .expect("no hang")
        .expect_err("reset");
    assert_eq!(e.kind, ErrorKind::Transient, "{e}");
    assert!(!e.connection_refused, "a reset reached a server: {e}");
}

#[tokio::test]
async fn benched_head_gets_no_further_connection_attempts() {
    let head = Stub::start(vec![Step::Reset]).await;
    let tail = healthy_tail().await;
    let health = HealthConfig { failure_threshold: 2, ..HealthConfig::default() };
    let chain = chain(openai_at("head", &head.url()), openai_at("tail", &tail.uri()), health);
    let run = async {
        // Two calls, each trying the head twice (one retry), bench it.
        for _ in 0..2 {
            let response = chain.generate(Request::user("hi")).await.expect("tail answers");
            assert_eq!(response.provider, "tail");
        }
        assert!(chain.health().is_benched("head/m").is_some(), "head benched");
        let attempts = head.accepts();
        assert_eq!(attempts, 4, "two calls x (one try + one retry)");
        for _ in 0..10 {
            let response = chain.generate(Request::user("hi")).await.expect("tail answers");
            assert_eq!(response.provider, "tail");
        }
        assert_eq!(head.accepts(), attempts, "no connection to the benched head");
    };
    tokio::time::timeout(DEADLINE, run).await.expect("no hang");
    let served = tail.received_requests().await.expect("recording").len();
    assert_eq!(served, 12);
}
