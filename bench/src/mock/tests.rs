//! The mock server over real loopback HTTP: executus's own OpenAI client (whole and
//! streamed) gets the scripted answers; counters, gap pairing and accept-and-close work.

use std::sync::Arc;

use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::llm::{Message, Provider, Request, ToolSpec};

use super::*;

fn request(tool_results: usize) -> Request {
    let mut messages = vec![Message::user("go #run=7")];
    for i in 0..tool_results {
        let call = executus::llm::ToolCall {
            id: format!("call_{}", i + 1),
            name: "lookup".into(),
            args: serde_json::json!({"key": "k"}),
            signature: None,
        };
        messages.push(Message {
            role: executus::llm::Role::Assistant,
            parts: vec![executus::llm::Part::ToolCall(call)],
        });
        messages.push(Message::tool_results([executus::llm::ToolResult {
            id: format!("call_{}", i + 1),
            name: "lookup".into(),
            content: "v".into(),
            is_error: false,
        }]));
    }
    Request {
        messages,
        tools: vec![ToolSpec {
            name: "lookup".into(),
            description: "d".into(),
            parameters: serde_json::json!({"type": "object"}),
        }],
        ..Request::default()
    }
}

#[tokio::test]
async fn answers_executus_whole_and_streamed_and_counts() {
    let mock = Mock::start(MockConfig { record_gaps: true, capture_key: Some(7), ..MockConfig::default() })
        .await
        .unwrap();
    let model = OpenAi::new(ProviderConfig::new("mock", mock.url())).model("m");
    let r = model.generate(request(0)).await.unwrap();
    assert_eq!(r.message.tool_calls().count(), 1);
    let r = model.generate(request(1)).await.unwrap();
    assert_eq!(r.tool_calls()[0].args["key"], "k2");
    let r = model.generate(request(2)).await.unwrap();
    assert_eq!(r.text(), "done after 2 lookups");
    let stream = model.stream(request(2)).await.unwrap();
    let r = executus::llm::stream::collect(stream).await.unwrap();
    assert_eq!(r.text(), "done after 2 lookups");
    assert!(r.usage.input_tokens > 0, "usage from the final chunk");
    let snap = mock.snapshot();
    assert_eq!(snap.requests, 4);
    assert_eq!(snap.captured.len(), 4);
    assert_eq!(snap.gaps_us.len(), 2, "steps 1->2 and 2->3 of run 7 are paired");
    assert!(mock.first_byte_at().is_some());
    mock.reset();
    assert_eq!(mock.snapshot().requests, 0);
}

#[tokio::test]
async fn stats_and_unknown_routes_over_http() {
    let mock = Mock::start(MockConfig::default()).await.unwrap();
    let client = reqwest::Client::new();
    let base = format!("http://{}", mock.addr());
    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let snap: Snapshot = client.get(format!("{base}/stats")).send().await.unwrap().json().await.unwrap();
    assert_eq!(snap.connections, 1, "one keep-alive connection served both requests");
    let r = client.post(format!("{base}/v1/chat/completions")).body("{oops").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn accept_and_close_counts_and_fails_the_client() {
    let mock = Mock::start(MockConfig { behaviour: Behaviour::AcceptAndClose, ..MockConfig::default() })
        .await
        .unwrap();
    let model = Arc::new(OpenAi::new(ProviderConfig::new("head", mock.url()))).model("m");
    let err = model.generate(request(0)).await.unwrap_err();
    assert_eq!(err.kind, executus::llm::ErrorKind::Transient, "{err}");
    assert!(mock.connections() >= 1);
}
