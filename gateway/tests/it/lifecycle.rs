//! Health, models, metrics, and a graceful shutdown with a stream open.

use std::time::Duration;

use executus_gateway::ServeConfig;
use serde_json::{Value, json};

use crate::support::*;
use crate::tcp_stub::{Step, Stub, send};

#[tokio::test]
async fn models_list_tiers_targets_and_speaks_both_forms() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "local", &stub);
    registry.set_alias("fast", "local/qwen3:30b, local/small").unwrap();
    let gw = Gw::start_with(ServeConfig::default(), registry, |b| b.extra_models(["auto:coding".to_owned()]))
        .await;
    let client = gw.client();
    let openai: Value =
        client.get(format!("{}/v1/models", gw.url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(openai["object"], "list");
    let ids: Vec<&str> =
        openai["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["auto:coding", "fast", "local/qwen3:30b", "local/small"]);
    let anthropic: Value = client
        .get(format!("{}/v1/models", gw.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["data"][1]["type"], "model");
    assert_eq!(anthropic["has_more"], false);
    let health = client.get(format!("{}/healthz", gw.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    gw.post("/v1/chat/completions", &chat("fast", false)).await;
    let metrics = client.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert!(metrics.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = metrics.text().await.unwrap();
    assert!(text.contains("executus_gateway_requests_total{dialect=\"chat\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("executus_gateway_upstream_seconds_count{target=\"local/qwen3:30b\"} 1"), "{text}");
    assert!(text.contains("executus_gateway_tokens_total{direction=\"input\"} 12"), "{text}");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_ends_open_streams_with_an_error_event_after_the_grace() {
    // The upstream writes one piece of text and then holds the stream open.
    let stub = Stub::route(|_| {
        vec![
            send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"),
            send(format!(
                "data: {}\n\n",
                json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "thinking..."}}]})
            )),
            Step::Stall,
        ]
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let config = ServeConfig { shutdown_grace: Duration::from_millis(300), ..ServeConfig::default() };
    let mut gw = Gw::start(config, registry).await;
    let messages = json!({"model": "mock/m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let mut response = gw.post("/v1/messages", &messages).await;
    assert_eq!(response.status(), 200);
    let mut body = String::new();
    while !body.contains("thinking...") {
        let chunk = response.chunk().await.unwrap().expect("the stream is open");
        body.push_str(&String::from_utf8_lossy(&chunk));
    }
    gw.shutdown.cancel();
    // Hang guard only: the stream ends on its own after the grace.
    let rest = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(chunk) = response.chunk().await.unwrap() {
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
    let events = sse_events(&body);
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"));
    assert_eq!(data["error"]["message"], "the gateway is shutting down");
    let served =
        tokio::time::timeout(Duration::from_secs(60), gw.task.take().unwrap()).await.unwrap().unwrap();
    assert!(served.is_ok());
    let refused = reqwest::Client::new().get(format!("{}/healthz", gw.url)).send().await;
    assert!(refused.is_err(), "nothing listens any more");
    gw.gateway.close(Duration::from_millis(10)).await;
}

#[tokio::test]
async fn agent_models_run_a_configured_executus_agent_for_any_client() {
    // The agent's own model is the scripted upstream; the client only names `agent:helper`.
    let seen = Seen::default();
    let s = seen.clone();
    let stub = Stub::route(move |r| {
        s.push(r);
        Answer::text("I am the helper agent.").openai(r)
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let mut config = executus::RuntimeConfig::default();
    config
        .agents
        .insert("helper".into(), executus::RunnableAgent::new("helper", "You help.", "mock/agent-model"));
    let runtime = executus::Runtime::builder().registry(registry.clone()).config(config).build();
    let gw = Gw::start_with(ServeConfig::default(), registry, |b| b.runtime(runtime)).await;

    // The run's span names the client's session as its conversation.
    let conversations = RunConversations::default();
    let _spans = tracing::subscriber::set_default(tracing_subscriber::layer::SubscriberExt::with(
        tracing_subscriber::registry(),
        conversations.clone(),
    ));
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-session-id", "sess-helper-1")
        .json(&chat("agent:helper", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-executus-served-by"], "agent:helper");
    assert_eq!(response.headers()["x-executus-session"], "sess-helper-1");
    assert_eq!(conversations.seen(), ["sess-helper-1"], "the session is the run's conversation");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "I am the helper agent.");

    let messages = json!({"model": "agent:helper", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "who are you?"}]});
    let events = sse_events(&gw.post("/v1/messages", &messages).await.text().await.unwrap());
    let text: String = events.iter().filter_map(|(_, d)| d["delta"]["text"].as_str()).collect();
    assert_eq!(text, "I am the helper agent.");
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));

    let upstream = seen.bodies();
    assert_eq!(
        upstream[0]["messages"][0],
        json!({"role": "system", "content": "You help."}),
        "the agent's own system prompt"
    );
    assert_eq!(upstream[0]["model"], "agent-model");
    let models: Value =
        gw.client().get(format!("{}/v1/models", gw.url)).send().await.unwrap().json().await.unwrap();
    assert!(models["data"].as_array().unwrap().iter().any(|m| m["id"] == "agent:helper"), "{models}");
    let unknown = gw.post("/v1/chat/completions", &chat("agent:nobody", false)).await;
    assert_eq!(unknown.status(), 404);
}

/// Records the `gen_ai.conversation.id` of every `run` span.
#[derive(Clone, Default)]
struct RunConversations(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl RunConversations {
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for RunConversations {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _id: &tracing::span::Id,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Find<'a>(&'a mut Option<String>);
        impl tracing::field::Visit for Find<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "gen_ai.conversation.id" {
                    *self.0 = Some(format!("{value:?}"));
                }
            }
        }
        if attrs.metadata().name() != "run" {
            return;
        }
        let mut found = None;
        attrs.record(&mut Find(&mut found));
        if let Some(id) = found {
            self.0.lock().unwrap().push(id);
        }
    }
}
