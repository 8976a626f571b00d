//! The llama-swap provider against wiremock on 127.0.0.1: management routes (models, running,
//! unload) with the bearer token, and chat delegated to `{base}/v1/chat/completions`.

use executus_llm::providers::ProviderConfig;
use executus_llm::providers::llama_swap::{LlamaSwap, ModelState};
use executus_llm::stream::collect;
use executus_llm::{ErrorKind, Provider, Request};
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "swap-token-9c2e51d7";

fn fixture(dir: &str, name: &str) -> String {
    let path = format!("{}/tests/fixtures/{dir}/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn swap(server: &MockServer) -> LlamaSwap {
    LlamaSwap::new(ProviderConfig::new("swap", server.uri()).with_key(TOKEN))
}

fn bearer() -> wiremock::matchers::HeaderExactMatcher {
    header("authorization", format!("Bearer {TOKEN}").as_str())
}

#[tokio::test]
async fn lists_models_with_optional_fields() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .and(bearer())
        .respond_with(
            ResponseTemplate::new(200).set_body_raw(fixture("llama_swap", "models.json"), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let models = swap(&server).list_models().await.expect("models");
    let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["org/coder:q4", "qwen3-8b", "tiny"]);
    assert_eq!(models[0].name.as_deref(), Some("Coder Q4"));
    assert_eq!(models[0].description.as_deref(), Some("Small coder, fast"));
    assert_eq!(models[0].meta, Some(json!({ "llamaswap": { "context": 32768 } })));
    assert_eq!(models[0].owned_by.as_deref(), Some("llama-swap"));
    assert_eq!(models[0].created, Some(1_741_572_000));
    assert_eq!(models[2].name, None);
    assert_eq!(models[2].description, None);
}

#[tokio::test]
async fn running_models_with_state() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/running"))
        .and(bearer())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("llama_swap", "running.json"), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let running = swap(&server).running().await.expect("running");
    assert_eq!(running.len(), 2);
    assert_eq!(running[0].model, "qwen3-8b");
    assert_eq!(running[0].state, ModelState::Ready);
    assert_eq!(running[0].ttl, Some(300));
    assert_eq!(running[0].proxy.as_deref(), Some("http://127.0.0.1:9001"));
    assert_eq!(running[0].description, None);
    assert_eq!(running[1].model, "org/coder:q4");
    assert_eq!(running[1].state, ModelState::Starting);
    // The launch command (which may hold a backend's key) is not surfaced.
    assert!(!format!("{running:?}").contains("upstream-secret-123"));
}

#[tokio::test]
async fn unload_one_model_and_all() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/models/unload/org/coder:q4"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/unload"))
        .and(bearer())
        .respond_with(ResponseTemplate::new(200).set_body_string("OK"))
        .expect(1)
        .mount(&server)
        .await;
    let s = swap(&server);
    s.unload("org/coder:q4").await.expect("unload one");
    s.unload_all().await.expect("unload all");
}

#[tokio::test]
async fn unload_unknown_model_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/models/unload/nope"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({ "error": "Model not found" })))
        .mount(&server)
        .await;
    let e = swap(&server).unload("nope").await.expect_err("unknown model");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!((e.provider.as_str(), e.model.as_str()), ("swap", "nope"));
    // An id that URL normalisation would turn into another route never leaves the process.
    let e = swap(&server).unload("../running").await.expect_err("bad id");
    assert_eq!(e.kind, ErrorKind::Permanent);
}

#[tokio::test]
async fn management_errors_are_classified_and_scrubbed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/running"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(json!({ "error": format!("unauthorized: invalid API key {TOKEN}") })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "object": "list" })))
        .mount(&server)
        .await;
    let s = swap(&server);
    let e = s.running().await.expect_err("401");
    assert_eq!(e.kind, ErrorKind::Permanent);
    assert!(!e.to_string().contains(TOKEN) && !format!("{e:?}").contains(TOKEN), "{e:?}");
    let e = s.list_models().await.expect_err("no data");
    assert_eq!(e.kind, ErrorKind::Decode);
}

#[tokio::test]
async fn chat_goes_to_v1_chat_completions() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(bearer())
        .and(body_partial_json(
            json!({ "model": "qwen3-8b", "messages": [{ "role": "user", "content": "hi" }] }),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("openai", "llamacpp_text.json"), "application/json"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(bearer())
        .and(body_partial_json(json!({ "model": "qwen3-8b", "stream": true })))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(fixture("openai", "stream_llamacpp_reasoning.sse"), "text/event-stream"),
        )
        // The non-streamed mock's body pattern matches a streamed request too; this one wins.
        .with_priority(1)
        .expect(1)
        .mount(&server)
        .await;
    let s = swap(&server);
    assert_eq!(s.name(), "swap");
    let model = s.model("qwen3-8b");
    assert_eq!((model.provider(), model.model_id()), ("swap", "qwen3-8b"));
    let response = model.generate(Request::user("hi")).await.expect("generate");
    assert_eq!(response.text(), "Hello! How can I help you today?");
    assert_eq!(response.provider, "swap");
    let streamed = collect(model.stream(Request::user("hi")).await.expect("stream")).await.expect("collect");
    assert_eq!(streamed.text(), "Hi there.");
    assert_eq!(streamed.provider, "swap");
}
