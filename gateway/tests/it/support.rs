//! The harness: a gateway on 127.0.0.1:0 in front of scripted upstreams (the raw TCP stub
//! shared with the provider crate's fault suite), and the wire shapes those upstreams speak.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus_gateway::{Gateway, GatewayBuilder, ServeConfig};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{ChainOptions, HttpOptions, Registry};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::tcp_stub::{Received, Step, Stub, send};

/// A gateway serving on loopback.
pub struct Gw {
    pub url: String,
    pub addr: SocketAddr,
    pub gateway: Gateway,
    pub shutdown: CancellationToken,
    pub task: Option<JoinHandle<Result<(), executus_gateway::GatewayError>>>,
}

impl Gw {
    pub async fn start(config: ServeConfig, registry: Registry) -> Self {
        Self::start_with(config, registry, |b| b).await
    }

    pub async fn start_with(
        config: ServeConfig,
        registry: Registry,
        build: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let gateway = build(Gateway::builder(config, registry).shutdown(shutdown.clone()))
            .build()
            .await
            .expect("gateway builds");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let router = gateway.router();
        let cfg = gateway.config().clone();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { executus_gateway::serve(listener, router, &cfg, token).await });
        Self { url: format!("http://{addr}"), addr, gateway, shutdown, task: Some(task) }
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("client")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client().post(format!("{}{path}", self.url)).json(body).send().await.expect("request sent")
    }
}

impl Drop for Gw {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Fast chains: no waiting between retries.
pub fn registry() -> Registry {
    let registry = Registry::new();
    registry.set_options(ChainOptions { retries: 0, ..ChainOptions::default() });
    registry
}

pub fn http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(5),
        headers_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..HttpOptions::default()
    }
}

/// An OpenAI-compatible provider `name` at the stub.
pub fn add_openai(registry: &Registry, name: &str, stub: &Stub) {
    let provider = OpenAi::new(
        ProviderConfig::new(name, format!("{}/v1", stub.url()))
            .with_key("sk-upstream-secret")
            .with_http(http()),
    );
    registry.add_provider(Arc::new(provider)).expect("provider");
}

/// An Anthropic provider `name` at the stub.
pub fn add_anthropic(registry: &Registry, name: &str, stub: &Stub) {
    let provider = Anthropic::new(
        ProviderConfig::new(name, stub.url()).with_key("sk-ant-upstream-secret").with_http(http()),
    );
    registry.add_provider(Arc::new(provider)).expect("provider");
}

/// The request bodies an upstream stub received, in order.
#[derive(Clone, Default)]
pub struct Seen(pub Arc<Mutex<Vec<Received>>>);

impl Seen {
    pub fn push(&self, r: &Received) {
        self.0.lock().unwrap().push(r.clone());
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    pub fn heads(&self) -> Vec<String> {
        self.0.lock().unwrap().iter().map(|r| r.head.clone()).collect()
    }
}

pub fn is_stream(r: &Received) -> bool {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|b| b.get("stream").and_then(Value::as_bool))
        .unwrap_or(false)
}

/// A whole JSON answer.
pub fn json_reply(status: u16, body: &Value) -> Vec<Step> {
    let text = body.to_string();
    vec![send(format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    ))]
}

/// An SSE answer (the body ends with the connection).
pub fn sse_reply(events: &[String]) -> Vec<Step> {
    let mut steps =
        vec![send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")];
    steps.extend(events.iter().map(send));
    steps
}

/// What an OpenAI-compatible upstream answers: text and tool calls `(id, name, args)`.
pub struct Answer {
    pub text: String,
    pub calls: Vec<(String, String, Value)>,
}

impl Answer {
    pub fn text(text: &str) -> Self {
        Self { text: text.into(), calls: Vec::new() }
    }

    pub fn call(id: &str, name: &str, args: Value) -> Self {
        Self { text: String::new(), calls: vec![(id.into(), name.into(), args)] }
    }

    /// The answer in the OpenAI shape, whole or streamed as the request asked.
    pub fn openai(&self, r: &Received) -> Vec<Step> {
        let finish = if self.calls.is_empty() { "stop" } else { "tool_calls" };
        if is_stream(r) {
            let mut events = vec![format!(
                "data: {}\n\n",
                json!({"id": "c1", "object": "chat.completion.chunk", "model": "up-model", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
            )];
            // Text in two pieces, so a client sees more than one delta.
            let cut = self.text.char_indices().nth(self.text.chars().count() / 2).map_or(0, |(i, _)| i);
            for piece in [&self.text[..cut], &self.text[cut..]] {
                if !piece.is_empty() {
                    events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "model": "up-model", "choices": [{"index": 0, "delta": {"content": piece}}]})));
                }
            }
            for (i, (id, name, args)) in self.calls.iter().enumerate() {
                let args = args.to_string();
                let (a, b) = args.split_at(args.len() / 2);
                events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": a}}]}}]})));
                events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": i, "function": {"arguments": b}}]}}]})));
            }
            events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})));
            events.push(format!("data: {}\n\n", json!({"id": "c1", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}})));
            events.push("data: [DONE]\n\n".into());
            sse_reply(&events)
        } else {
            let calls: Vec<Value> = self
                .calls
                .iter()
                .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
                .collect();
            let mut message = json!({"role": "assistant", "content": if self.text.is_empty() { Value::Null } else { json!(self.text) }});
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            json_reply(
                200,
                &json!({"id": "c1", "object": "chat.completion", "model": "up-model", "choices": [{"index": 0, "message": message, "finish_reason": finish}], "usage": {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}}),
            )
        }
    }

    /// The answer in the Anthropic shape, whole or streamed as the request asked.
    pub fn anthropic(&self, r: &Received) -> Vec<Step> {
        let stop = if self.calls.is_empty() { "end_turn" } else { "tool_use" };
        if is_stream(r) {
            let mut events = vec![format!(
                "event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {"id": "m1", "type": "message", "role": "assistant", "model": "claude-up", "content": [], "usage": {"input_tokens": 20, "output_tokens": 1}}})
            )];
            let mut index = 0;
            if !self.text.is_empty() {
                events.push(format!("event: content_block_start\ndata: {}\n\n", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                events.push(format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": self.text}})));
                events.push(format!(
                    "event: content_block_stop\ndata: {}\n\n",
                    json!({"type": "content_block_stop", "index": 0})
                ));
                index = 1;
            }
            for (i, (id, name, args)) in self.calls.iter().enumerate() {
                let at = index + i;
                events.push(format!("event: content_block_start\ndata: {}\n\n", json!({"type": "content_block_start", "index": at, "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}}})));
                events.push(format!("event: content_block_delta\ndata: {}\n\n", json!({"type": "content_block_delta", "index": at, "delta": {"type": "input_json_delta", "partial_json": args.to_string()}})));
                events.push(format!(
                    "event: content_block_stop\ndata: {}\n\n",
                    json!({"type": "content_block_stop", "index": at})
                ));
            }
            events.push(format!("event: message_delta\ndata: {}\n\n", json!({"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 6}})));
            events.push(format!("event: message_stop\ndata: {}\n\n", json!({"type": "message_stop"})));
            sse_reply(&events)
        } else {
            let mut content = Vec::new();
            if !self.text.is_empty() {
                content.push(json!({"type": "text", "text": self.text}));
            }
            for (id, name, args) in &self.calls {
                content.push(json!({"type": "tool_use", "id": id, "name": name, "input": args}));
            }
            json_reply(
                200,
                &json!({"id": "m1", "type": "message", "role": "assistant", "model": "claude-up", "content": content, "stop_reason": stop, "usage": {"input_tokens": 20, "output_tokens": 6}}),
            )
        }
    }
}

/// `(event name, data)` of each SSE event in a body.
pub fn sse_events(body: &str) -> Vec<(Option<String>, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let mut name = None;
            let mut data = Value::Null;
            for line in e.lines() {
                if let Some(n) = line.strip_prefix("event: ") {
                    name = Some(n.to_owned());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.to_owned()));
                }
            }
            (name, data)
        })
        .collect()
}

/// A chat request body.
pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hello"}]})
}
