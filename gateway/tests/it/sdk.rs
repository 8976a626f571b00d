//! The official `openai` and `anthropic` Python SDKs (pinned, scripts/peer-gateway.sh) as the
//! gateway's clients: plain, streamed, tool round trip, typed output, and every error class
//! mapped to the SDK's own exception — against scripted loopback upstreams, and against the
//! real llama.cpp server through both of its endpoints. The cases live in
//! gateway/tests/sdk/*.py; each prints `ok NAME`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use executus::ports::PortError;
use executus_gateway::ServeConfig;
use executus_gateway::config::{KeyConfig, ModelPattern};
use executus_gateway::guard::SessionState;
use executus_gateway::store::{MemorySessionStore, SessionStore};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::openai::OpenAi;
use serde_json::{Value, json};

use crate::peers;
use crate::support::*;
use crate::tcp_stub::{Received, Step, Stub, send};

/// The mock's answers: structured output for a schema, the weather after a tool result, a
/// weather call when tools are offered, a greeting otherwise.
fn mock_answer(r: &Received) -> Vec<Step> {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let last_role = body["messages"].as_array().and_then(|m| m.last()).map(|m| m["role"].clone());
    let answer = if body.get("response_format").is_some() {
        Answer::text(r#"{"city": "Paris", "population": 2100000}"#)
    } else if last_role == Some(json!("tool")) {
        Answer::text("The weather in Paris is sunny.")
    } else if body["tools"].as_array().is_some_and(|t| !t.is_empty()) {
        Answer::call("call_w1", "get_weather", json!({"city": "Paris"}))
    } else {
        Answer::text("Hello from the mock.")
    };
    answer.openai(r)
}

/// A session store that fails for the session `boom` (the 500 case).
struct FailsOnBoom(MemorySessionStore);

#[async_trait]
impl SessionStore for FailsOnBoom {
    async fn load(&self, key: &str) -> Result<Option<SessionState>, PortError> {
        if key.ends_with("\u{1f}boom") {
            return Err(PortError::Backend { port: "sessions", message: "disk on fire".into() });
        }
        self.0.load(key).await
    }

    async fn save(&self, key: &str, state: &SessionState, now_ms: u64) -> Result<(), PortError> {
        self.0.save(key, state, now_ms).await
    }

    async fn prune(&self, before_ms: u64) -> Result<u64, PortError> {
        self.0.prune(before_ms).await
    }

    async fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<executus_gateway::store::StoredSession>, PortError> {
        self.0.list(after, limit).await
    }
}

async fn run_script(python: &Path, script: &str, gw: &Gw, mode: &str, key: &str) {
    let path = peers::root().join("gateway/tests/sdk").join(script);
    let mut command = tokio::process::Command::new(python);
    command
        .arg(&path)
        .env("GW", &gw.url)
        .env("KEY", key)
        .env("MODE", mode)
        .env("LIMITED_KEY", "sk-limited")
        .env("SLOW_KEY", "sk-slow")
        // The SDKs must not reach anything but the gateway.
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .env("NO_PROXY", "*")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("the SDK script finished (hang guard)")
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script} ({mode}) failed\nstdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with("all ")), "{stdout}");
    println!("{script} ({mode}):\n{stdout}");
}

async fn mock_gateway() -> (Gw, Vec<Stub>) {
    let mock = Stub::route(mock_answer).await;
    let garbage = Stub::route(|_| {
        vec![send("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\nconnection: close\r\n\r\nnot json!!!")]
    })
    .await;
    let down = Stub::route(|_| json_reply(500, &json!({"error": {"message": "upstream broke"}}))).await;
    let busy = Stub::route(|_| {
        json_reply(
            529,
            &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        )
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &mock);
    add_openai(&registry, "garbage", &garbage);
    add_openai(&registry, "down", &down);
    add_anthropic(&registry, "busy", &busy);
    let keys = vec![
        KeyConfig::new("sdk", "sk-sdk"),
        KeyConfig {
            models: Some(vec![ModelPattern::new("mock/*")]),
            ..KeyConfig::new("limited", "sk-limited")
        },
        KeyConfig { rate: Some(1), ..KeyConfig::new("slow", "sk-slow") },
    ];
    let config = ServeConfig { keys, ..ServeConfig::default() };
    let store = Arc::new(FailsOnBoom(MemorySessionStore::new()));
    let gw = Gw::start_with(config, registry, |b| b.store(store)).await;
    (gw, vec![mock, garbage, down, busy])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_against_scripted_upstreams() {
    let Some(python) = peers::python("openai_sdk_against_scripted_upstreams") else { return };
    let (gw, _stubs) = mock_gateway().await;
    run_script(&python, "openai_client.py", &gw, "mock", "sk-sdk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_sdk_against_scripted_upstreams() {
    let Some(python) = peers::python("anthropic_sdk_against_scripted_upstreams") else { return };
    let (gw, _stubs) = mock_gateway().await;
    run_script(&python, "anthropic_client.py", &gw, "mock", "sk-sdk").await;
}

async fn llama_gateway(url: &str) -> Gw {
    let registry = registry();
    let http = executus_llm::HttpOptions { headers_timeout: Duration::from_secs(300), ..http() };
    registry
        .add_provider(Arc::new(OpenAi::new(
            ProviderConfig::new("llama", format!("{url}/v1")).with_http(http.clone()),
        )))
        .unwrap();
    registry
        .add_provider(Arc::new(Anthropic::new(ProviderConfig::new("llama-messages", url).with_http(http))))
        .unwrap();
    Gw::start(ServeConfig::default(), registry).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sdks_against_the_real_llama_server() {
    let test = "both_sdks_against_the_real_llama_server";
    let Some(python) = peers::python(test) else { return };
    let Some(url) = peers::llama(test) else { return };
    let gw = llama_gateway(&url).await;
    run_script(&python, "openai_client.py", &gw, "llama", "dummy").await;
    run_script(&python, "anthropic_client.py", &gw, "llama", "dummy").await;
}
