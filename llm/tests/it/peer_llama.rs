//! Against a real llama.cpp `llama-server` this project did not write (tiny random-weight
//! `tiny-llama3`, see `../shared/peers/README.md`), started outside the tests — by
//! `scripts/peer-llama.sh` in CI — and found through `EXECUTUS_TEST_LLAMA_URL`
//! (`http://127.0.0.1:PORT`). Without the variable, under `CI=true` every test fails (a CI
//! run must not pass without its peer); elsewhere every test returns without running, and
//! the first one writes a loud line straight to stderr, which the test harness does not
//! capture (it captures only `print!`-style output), so the skip shows in every run's log.
//!
//! The model's text is random, so these tests assert structure only: finish reasons, usage,
//! event order, JSON that decodes into Rust types, tool calls whose arguments match the tool's
//! schema, and how the server's errors are classified.
//!
//! What llama-server does that the assertions document:
//! - it serves whatever model it loaded under any `model` name (no router): an unknown model
//!   is *not* an error, and `Response::model` reports the one that answered;
//! - a wrong path is `404 {"error":{"code":404,"message":"File Not Found",...}}`, which this
//!   crate classifies as `NotFound` (the chain advances without a health penalty);
//! - a field of the wrong type is `400 invalid_request_error` (`Permanent`), on
//!   `/v1/chat/completions` and `/v1/messages` alike, both with OpenAI-shaped error bodies;
//! - with `logit_bias {"90": 50}` (token 90 is `{`) and a required tool, a string argument
//!   fills up with `{` until the output cap: the tool here takes an enum and an integer, and
//!   the request raises `max_tokens` above the server's `-n 64`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::llama_swap::LlamaSwap;
use executus_llm::providers::openai::OpenAi;
use executus_llm::stream::{collect, drive};
use executus_llm::{
    ChainOptions, ErrorKind, FinishReason, HttpOptions, Model, Provider, Registry, Request, Response, Role,
    StreamEvent, ToolChoice, ToolSpec, generate_typed,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The served model's alias (`-a` at start).
const ALIAS: &str = "tiny-llama3";
/// Every test's hard deadline: the tiny model answers in a few seconds even on a busy machine.
const DEADLINE: Duration = Duration::from_secs(120);

/// The server's base URL, or `None` (after a notice) when the variable is not set.
///
/// # Panics
/// Under `CI=true` without the variable: the peer could not be started, and CI must say so.
fn server(test: &str) -> Option<String> {
    match std::env::var("EXECUTUS_TEST_LLAMA_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "peer_llama::{test}: CI=true and EXECUTUS_TEST_LLAMA_URL is not set: the llama.cpp peer \
                 could not be started (scripts/test.sh starts it with scripts/peer-llama.sh start)"
            );
            announce_skip();
            println!("peer_llama::{test}: EXECUTUS_TEST_LLAMA_URL not set, skipped");
            None
        }
    }
}

/// Once per test process, a line on stderr that the harness does not capture: `eprintln!`
/// goes through the harness's capture, a write to the stderr handle does not.
fn announce_skip() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use std::io::Write as _;
        let line = "\n*** SKIPPED: the llama.cpp peer tests (llm/tests/it/peer_llama.rs) did not run: \
                    EXECUTUS_TEST_LLAMA_URL is not set (start a peer with scripts/peer-llama.sh start; \
                    under CI=true they fail instead) ***\n";
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    });
}

fn http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(5),
        headers_timeout: Duration::from_secs(90),
        ..HttpOptions::default()
    }
}

fn openai(url: &str) -> Arc<dyn Model> {
    OpenAi::new(ProviderConfig::new("llama", format!("{url}/v1")).with_http(http())).model(ALIAS)
}

async fn within<T>(what: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, what).await.expect("llama-server answered within the deadline")
}

/// A short chat request (the cap keeps every reply small).
fn hello() -> Request {
    Request { max_tokens: Some(24), seed: Some(7), ..Request::user("Say hello.") }
}

/// Streams `request`, returning every event and the collected response.
async fn stream_events(model: &dyn Model, request: Request) -> (Vec<StreamEvent>, Response) {
    let stream = model.stream(request).await.expect("stream starts");
    let mut events = Vec::new();
    let response = drive(stream, |e| {
        events.push(e.clone());
        Ok::<(), Infallible>(())
    })
    .await
    .expect("stream completes");
    (events, response)
}

/// The shape every plain chat answer has, whatever the random text.
fn assert_chat_answer(response: &Response, provider: &str, cap: u64) {
    assert_eq!(response.provider, provider);
    assert_eq!(response.model, ALIAS, "the server reports its alias");
    assert_eq!(response.message.role, Role::Assistant);
    assert!(
        matches!(response.finish_reason, FinishReason::Stop | FinishReason::Length),
        "{:?}",
        response.finish_reason
    );
    assert!(response.usage.input_tokens + response.usage.cache_read_tokens > 0, "{:?}", response.usage);
    assert!((1..=cap).contains(&response.usage.output_tokens), "{:?}", response.usage);
    if response.finish_reason == FinishReason::Length {
        assert_eq!(response.usage.output_tokens, cap, "a length stop is the cap");
    }
    assert!(response.tool_calls().is_empty());
}

/// Text deltas in order, then usage, then `Done` last.
fn assert_stream_shape(events: &[StreamEvent], response: &Response) {
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, response.text(), "the deltas are the answer");
    assert!(matches!(events.last(), Some(StreamEvent::Done { .. })), "Done comes last: {events:?}");
    let usage_at =
        events.iter().rposition(|e| matches!(e, StreamEvent::Usage { .. })).expect("a usage event");
    let last_text = events.iter().rposition(|e| matches!(e, StreamEvent::TextDelta { .. }));
    assert!(last_text.is_none_or(|t| t < usage_at), "usage arrives after the text (final chunk)");
}

#[tokio::test]
async fn openai_chat_whole() {
    let Some(url) = server("openai_chat_whole") else { return };
    let response = within(openai(&url).generate(hello())).await.expect("answer");
    assert_chat_answer(&response, "llama", 24);
}

#[tokio::test]
async fn openai_chat_streamed_with_usage_from_the_final_chunk() {
    let Some(url) = server("openai_chat_streamed_with_usage_from_the_final_chunk") else { return };
    let (events, response) = within(stream_events(openai(&url).as_ref(), hello())).await;
    assert_chat_answer(&response, "llama", 24);
    assert_stream_shape(&events, &response);
    let usages: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Usage { usage } => Some(*usage),
            _ => None,
        })
        .collect();
    assert_eq!(usages.len(), 1, "llama-server sends usage once, in the final chunk");
    assert!(usages[0].input_tokens > 0 && usages[0].output_tokens > 0, "{:?}", usages[0]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Sky {
    Clear,
    Cloudy,
    Rain,
}

/// A structured answer: an enum, a list of enums and a flag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Forecast {
    today: Sky,
    next_days: Vec<Sky>,
    windy: bool,
}

#[tokio::test]
async fn generate_typed_with_a_json_schema_decodes_into_the_rust_type() {
    let Some(url) = server("generate_typed_with_a_json_schema_decodes_into_the_rust_type") else { return };
    let request = Request { max_tokens: Some(512), seed: Some(3), ..Request::user("Forecast for Oslo?") };
    let typed = within(generate_typed::<Forecast>(openai(&url).as_ref(), request)).await.expect("typed");
    // Grammar-constrained decoding: the first reply is valid, so no retry was needed.
    assert_eq!(typed.usage, typed.response.usage, "one attempt");
    assert_eq!(typed.response.finish_reason, FinishReason::Stop);
    let raw: serde_json::Value = serde_json::from_str(&typed.response.text()).expect("the reply is JSON");
    assert_eq!(raw, serde_json::to_value(&typed.value).expect("serialise"), "decoded losslessly");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Unit {
    Celsius,
    Fahrenheit,
}

/// The arguments of [`forecast_tool`], as the tool would decode them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastArgs {
    unit: Unit,
    days: u8,
}

fn forecast_tool() -> ToolSpec {
    ToolSpec {
        name: "get_forecast".into(),
        description: "Weather forecast for the next days".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7}
            },
            "required": ["unit", "days"],
            "additionalProperties": false
        }),
    }
}

/// A request that makes the tiny model call the tool every time (see the module docs).
fn tool_request() -> Request {
    let mut request = Request {
        tools: vec![forecast_tool()],
        tool_choice: ToolChoice::Required,
        max_tokens: Some(512),
        seed: Some(11),
        ..Request::user("What is the weather in Oslo?")
    };
    request.extra.insert("logit_bias".into(), json!({"90": 50}));
    request
}

fn assert_forecast_call(response: &Response) {
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let calls = response.tool_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].name, "get_forecast");
    assert!(!calls[0].id.is_empty());
    let args: ForecastArgs = serde_json::from_value(calls[0].args.clone())
        .unwrap_or_else(|e| panic!("arguments {} do not fit the schema: {e}", calls[0].args));
    assert!((1..=7).contains(&args.days), "{args:?}");
    assert!(matches!(args.unit, Unit::Celsius | Unit::Fahrenheit));
}

#[tokio::test]
async fn tool_call_whole() {
    let Some(url) = server("tool_call_whole") else { return };
    let response = within(openai(&url).generate(tool_request())).await.expect("answer");
    assert_forecast_call(&response);
}

#[tokio::test]
async fn tool_call_streamed_is_assembled_from_fragments() {
    let Some(url) = server("tool_call_streamed_is_assembled_from_fragments") else { return };
    let (events, response) = within(stream_events(openai(&url).as_ref(), tool_request())).await;
    assert_forecast_call(&response);
    let fragments: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { index, id, name, args } => Some((*index, id, name, args.as_str())),
            _ => None,
        })
        .collect();
    assert!(fragments.len() > 1, "the arguments arrive in fragments: {fragments:?}");
    let call = &response.tool_calls()[0];
    // The first fragment carries id and name; the fragments concatenate to the arguments.
    assert_eq!(
        (fragments[0].1.as_deref(), fragments[0].2.as_deref()),
        (Some(call.id.as_str()), Some("get_forecast"))
    );
    assert!(fragments.iter().all(|f| f.0 == 0));
    let joined: String = fragments.iter().map(|f| f.3).collect();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&joined).expect("JSON"), call.args);
}

fn anthropic(url: &str) -> Arc<dyn Model> {
    Anthropic::new(ProviderConfig::new("llama-msg", url).with_http(http())).model(ALIAS)
}

#[tokio::test]
async fn anthropic_messages_whole_and_streamed() {
    let Some(url) = server("anthropic_messages_whole_and_streamed") else { return };
    let response = within(anthropic(&url).generate(hello())).await.expect("answer");
    assert_chat_answer(&response, "llama-msg", 24);

    let (events, response) = within(stream_events(anthropic(&url).as_ref(), hello())).await;
    assert_chat_answer(&response, "llama-msg", 24);
    assert_stream_shape(&events, &response);
}

#[tokio::test]
async fn llama_swap_style_model_listing() {
    let Some(url) = server("llama_swap_style_model_listing") else { return };
    // The root and the `/v1` base name the same server.
    for base in [url.clone(), format!("{url}/v1")] {
        let swap = LlamaSwap::new(ProviderConfig::new("swap", base).with_http(http()));
        let models = within(swap.list_models()).await.expect("models");
        assert_eq!(models.len(), 1, "{models:?}");
        assert_eq!(models[0].id, ALIAS);
        assert_eq!(models[0].owned_by.as_deref(), Some("llamacpp"));
        let meta = models[0].meta.as_ref().expect("llama-server describes the model in meta");
        assert!(meta.get("n_ctx").and_then(serde_json::Value::as_u64).is_some_and(|n| n > 0), "{meta}");
        // Chat through the same provider works too.
        let response = within(swap.model(ALIAS).generate(hello())).await.expect("chat");
        assert_eq!(response.model, ALIAS);
    }
}

#[tokio::test]
async fn invalid_request_bodies_are_permanent_400s() {
    let Some(url) = server("invalid_request_bodies_are_permanent_400s") else { return };
    let mut bad = hello();
    bad.extra.insert("temperature".into(), json!("hot"));
    for model in [openai(&url), anthropic(&url)] {
        let e = within(model.generate(bad.clone())).await.expect_err("rejected");
        assert_eq!((e.kind, e.status), (ErrorKind::Permanent, Some(400)), "{e}");
        assert!(e.message.contains("temperature"), "the server's message survives: {e}");
        let e = within(model.stream(bad.clone())).await.err().expect("rejected before any event");
        assert_eq!((e.kind, e.status), (ErrorKind::Permanent, Some(400)), "{e}");
    }
    let mut bad = hello();
    bad.extra.insert("messages".into(), json!("not an array"));
    let e = within(openai(&url).generate(bad)).await.expect_err("rejected");
    assert_eq!((e.kind, e.status), (ErrorKind::Permanent, Some(400)), "{e}");
}

#[tokio::test]
async fn unknown_model_is_served_and_unknown_path_is_not_found() {
    let Some(url) = server("unknown_model_is_served_and_unknown_path_is_not_found") else { return };
    // llama-server (one model, no router) ignores the model name: not an error. The response
    // names the model that actually answered, so a caller can notice.
    let model = OpenAi::new(ProviderConfig::new("llama", format!("{url}/v1")).with_http(http()))
        .model("no-such-model");
    let response = within(model.generate(hello())).await.expect("served anyway");
    assert_eq!(response.model, ALIAS);

    // A wrong base path is a 404 "File Not Found": NotFound, like an unknown model elsewhere.
    let model = OpenAi::new(ProviderConfig::new("llama", format!("{url}/v2")).with_http(http())).model(ALIAS);
    let e = within(model.generate(hello())).await.expect_err("no such route");
    assert_eq!((e.kind, e.status), (ErrorKind::NotFound, Some(404)), "{e}");
    assert!(e.message.contains("File Not Found"), "{e}");
}

#[tokio::test]
async fn registry_and_chain_from_an_env_style_dsn() {
    let Some(url) = server("registry_and_chain_from_an_env_style_dsn") else { return };
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let vars = [
        ("EXECUTUS_LLM_LOCAL".to_owned(), format!("openai+{url}/v1")),
        ("EXECUTUS_LLM_DEAD".to_owned(), format!("openai+http://127.0.0.1:{refused}/v1")),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ];
    let registry = Registry::from_vars(vars, &http()).expect("registry");
    assert_eq!(registry.provider_names(), ["dead", "local"]);
    registry.set_options(ChainOptions { retries: 0, ..ChainOptions::default() });
    registry.set_alias("tiny", format!("dead/{ALIAS}, local/{ALIAS}")).expect("alias");

    let chain = registry.parse("tiny").expect("chain");
    let response = within(chain.generate(hello())).await.expect("the local server answers");
    assert_chat_answer(&response, "local", 24);
    let response =
        within(async { collect(chain.stream(hello()).await.expect("stream")).await.expect("collect") }).await;
    assert_chat_answer(&response, "local", 24);
    let dead = registry.health().snapshot().into_iter().find(|h| h.target == format!("dead/{ALIAS}"));
    assert_eq!(dead.map(|h| h.total_failures), Some(2), "the refused head failed once per call");
}

/// A 3000 x 2000 photo-like JPEG (several megabytes), over the compatible row's 2048 px.
fn big_photo() -> Vec<u8> {
    let mut state = 0x51ed_270b_u32;
    let img = image::RgbImage::from_fn(3000, 2000, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x3f) as u8;
        image::Rgb([(x / 12) as u8 ^ n, (y / 8) as u8 ^ n, 60 ^ n])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img).write_to(&mut out, image::ImageFormat::Jpeg).expect("jpeg");
    out.into_inner()
}

#[tokio::test]
async fn a_normalised_image_reaches_the_server_without_a_transport_error() {
    use executus_llm::media::{MediaKind, inspect};
    use executus_llm::{Message, Part};
    let Some(url) = server("a_normalised_image_reaches_the_server_without_a_transport_error") else { return };
    let registry = Registry::new();
    let llama = OpenAi::new(ProviderConfig::new("llama", format!("{url}/v1")).with_http(http()));
    registry.add_provider(Arc::new(llama)).expect("provider");
    registry.set_options(ChainOptions { retries: 0, ..ChainOptions::default() });
    let chain = registry.chain(&format!("llama/{ALIAS}")).expect("chain");
    let photo = big_photo();
    assert!(inspect(&photo).expect("jpeg").long_side() > MediaKind::OpenAiCompatible.limits().max_long_side);
    let request = Request {
        max_tokens: Some(8),
        messages: vec![Message {
            role: Role::User,
            parts: vec![
                Part::Text { text: "What is in the picture?".into() },
                Part::Image { mime: "image/jpeg".into(), data: photo },
            ],
        }],
        ..Request::default()
    };
    let error = within(chain.generate(request)).await.expect_err("a text-only model");
    // The server read the request and its image and answered, over HTTP, that this model has
    // no vision (no multimodal projector loaded): no transport error, no retry, no bench.
    assert_eq!(error.kind, ErrorKind::Exhausted, "{error}");
    let attempt = &error.attempts[0];
    assert_eq!((attempt.kind, attempt.status), (ErrorKind::Unsupported, Some(500)), "{error}");
    assert!(attempt.message.contains("image input is not supported"), "{error}");
    assert_eq!(error.attempts.len(), 1, "not retried");
    assert_eq!(chain.media_cache().stats().misses, 1, "the photo was converted before it left");
    assert!(registry.health().snapshot().iter().all(|h| h.total_failures == 0), "no health penalty");
}
