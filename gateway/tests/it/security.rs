//! The gateway holds upstream keys: it must not become an open relay. Keys, model
//! allow-lists, body size, malformed bodies, slow clients, non-loopback binds, rates, budgets
//! and a full queue.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use executus::ports::{Budget, BudgetDenied, Reservation, SpendRequest};
use executus_gateway::config::{KeyConfig, ModelPattern};
use executus_gateway::{GatewayError, ServeConfig};
use executus_llm::Usage;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;
use crate::tcp_stub::{Step, Stub, send};

fn keyed(keys: Vec<KeyConfig>) -> ServeConfig {
    ServeConfig { keys, ..ServeConfig::default() }
}

#[tokio::test]
async fn keys_are_required_and_checked_in_both_header_forms() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let gw = Gw::start(keyed(vec![KeyConfig::new("alice", "sk-alice")]), registry).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let client = gw.client();

    let none = client.post(&url).json(&chat("mock/m", false)).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let body: Value = none.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    let wrong =
        client.post(&url).bearer_auth("sk-mallory").json(&chat("mock/m", false)).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(!wrong.text().await.unwrap().contains("sk-mallory"), "a presented key is never echoed");

    let messages =
        json!({"model": "mock/m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let anthropic = client.post(format!("{}/v1/messages", gw.url)).json(&messages).send().await.unwrap();
    assert_eq!(anthropic.status(), 401);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "401 in the Anthropic form: {body}");

    let bearer = client.post(&url).bearer_auth("sk-alice").json(&chat("mock/m", false)).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let x_api_key =
        client.post(&url).header("x-api-key", "sk-alice").json(&chat("mock/m", false)).send().await.unwrap();
    assert_eq!(x_api_key.status(), 200);
    let metrics = client.get(format!("{}/metrics", gw.url)).send().await.unwrap();
    assert_eq!(metrics.status(), 401, "metrics name keys and targets: they need a key too");
    assert_eq!(client.get(format!("{}/healthz", gw.url)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_key_asking_for_a_model_it_may_not_use_gets_403() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    registry.set_alias("fast", "mock/m").unwrap();
    let key = KeyConfig {
        models: Some(vec![ModelPattern::new("fast"), ModelPattern::new("mock/small-*")]),
        ..KeyConfig::new("alice", "sk-alice")
    };
    let gw = Gw::start(keyed(vec![key]), registry).await;
    let client = gw.client();
    let ask = |model: &str| {
        client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-alice")
            .json(&chat(model, false))
            .send()
    };
    assert_eq!(ask("fast").await.unwrap().status(), 200);
    assert_eq!(ask("mock/small-7b").await.unwrap().status(), 200);
    let refused = ask("mock/m").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "permission_error");
    let models: Value = client
        .get(format!("{}/v1/models", gw.url))
        .bearer_auth("sk-alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> =
        models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["fast"], "the model list is filtered by the key: {models}");
}

#[tokio::test]
async fn a_33_mib_body_is_413_and_malformed_json_is_400_in_each_dialect() {
    let gw = Gw::start(ServeConfig::default(), registry()).await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(33 << 20)}]});
    let response = gw.post("/v1/chat/completions", &big).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_too_large");
    let response = gw.post("/v1/messages", &big).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "request_too_large");

    let client = gw.client();
    for (path, check) in [
        ("/v1/chat/completions", "/error/type"),
        ("/v1/responses", "/error/type"),
        ("/v1/messages", "/error/type"),
    ] {
        let response = client
            .post(format!("{}{path}", gw.url))
            .header("content-type", "application/json")
            .body("{\"model\": \"m\", \"messages\": [")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body.pointer(check).and_then(Value::as_str),
            Some("invalid_request_error"),
            "{path}: {body}"
        );
        if path == "/v1/messages" {
            assert_eq!(body["type"], "error", "the Anthropic envelope");
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let config = ServeConfig { header_timeout: Duration::from_millis(300), ..ServeConfig::default() };
    let gw = Gw::start(config, registry()).await;
    let mut socket = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    socket.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: appl").await.unwrap();
    let mut buf = [0u8; 1024];
    // Hang guard only: the gateway must close the connection on its own.
    let read = tokio::time::timeout(Duration::from_secs(60), socket.read(&mut buf))
        .await
        .expect("the gateway closed the connection");
    match read {
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "closed, or a 408 then closed: {text:?}");
        }
        Err(e) => assert!(matches!(e.kind(), std::io::ErrorKind::ConnectionReset), "{e}"),
    }
}

#[tokio::test]
async fn a_non_loopback_address_without_keys_is_refused() {
    let open = "0.0.0.0:8787".parse().unwrap();
    let err = executus_gateway::check_bind(open, 0).unwrap_err();
    assert!(matches!(err, GatewayError::OpenRelay { .. }));
    assert!(err.to_string().contains("[serve] listen"), "{err}");
    assert!(executus_gateway::check_bind(open, 1).is_ok(), "keys make it acceptable");
    assert!(executus_gateway::check_bind("[::1]:1".parse().unwrap(), 0).is_ok());

    let gateway =
        executus_gateway::Gateway::builder(ServeConfig::default(), registry()).build().await.unwrap();
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let served =
        executus_gateway::serve(listener, gateway.router(), gateway.config(), gateway.shutdown_token()).await;
    assert!(matches!(served, Err(GatewayError::OpenRelay { .. })), "{served:?}");
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let key = KeyConfig { rate: Some(2), ..KeyConfig::new("alice", "sk-alice") };
    let gw = Gw::start(keyed(vec![key]), registry).await;
    let client = gw.client();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let response = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-alice")
            .json(&chat("mock/m", false))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 429 {
            let retry: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["type"], "rate_limit_error");
        }
    }
    assert_eq!(statuses, [200, 200, 429]);
}

/// Denies every reservation of `alice`, and records what was settled.
struct Denying(std::sync::Mutex<Vec<Usage>>);

#[async_trait]
impl Budget for Denying {
    async fn reserve(&self, request: &SpendRequest) -> Result<Reservation, BudgetDenied> {
        assert_eq!(request.identity.user, "key:alice");
        assert_eq!(request.targets, ["mock/m"]);
        Err(BudgetDenied::Exhausted {
            scope: "user:key:alice".into(),
            spent: 4.5,
            reserved: 0.0,
            requested: 0.6,
            cap: 5.0,
            window: Duration::from_secs(7 * 24 * 3600),
        })
    }

    async fn settle(&self, _reservation: Reservation, usage: &Usage, _provider: &str, _model: &str) {
        self.0.lock().unwrap().push(*usage);
    }
}

#[tokio::test]
async fn a_request_that_would_overspend_is_429_and_charges_nothing() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let budget = Arc::new(Denying(std::sync::Mutex::new(Vec::new())));
    let b = budget.clone();
    let gw = Gw::start_with(keyed(vec![KeyConfig::new("alice", "sk-alice")]), registry, |builder| {
        builder.budget(b)
    })
    .await;
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("sk-alice")
        .json(&chat("mock/m", false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("budget exhausted for user:key:alice"),
        "{body}"
    );
    assert_eq!(stub.accepts(), 0, "nothing reached the upstream");
    assert!(budget.0.lock().unwrap().is_empty(), "nothing was settled: no partial charge");
}

/// A gateway in front of `stub` with one slot and no queue.
async fn one_slot_gateway(stub: &Stub) -> Gw {
    let registry = registry();
    add_openai(&registry, "mock", stub);
    let config =
        ServeConfig { concurrency: std::num::NonZeroUsize::MIN, max_queue: 0, ..ServeConfig::default() };
    Gw::start(config, registry).await
}

/// Waits (a hang guard of 12 s) until `stub` has accepted a connection.
async fn until_accepted(stub: &Stub) {
    for _ in 0..600 {
        if stub.accepts() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_full_queue_is_429_with_retry_after() {
    // The upstream holds every answer open: the one slot stays busy.
    let stub = Stub::route(|_| {
        vec![send("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"), Step::Stall]
    })
    .await;
    let gw = one_slot_gateway(&stub).await;
    let client = gw.client();
    let url = format!("{}/v1/chat/completions", gw.url);
    let first = tokio::spawn(client.post(&url).json(&chat("mock/m", true)).send());
    // Wait until the first request holds the slot (it reached the upstream).
    until_accepted(&stub).await;
    assert_eq!(stub.accepts(), 1);
    let second = client.post(&url).json(&chat("mock/m", false)).send().await.unwrap();
    assert_eq!(second.status(), 429);
    assert_eq!(second.headers()["retry-after"], "1");
    let body: Value = second.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("at capacity"), "{body}");
    first.abort();
}

#[tokio::test]
async fn a_client_that_goes_away_frees_its_slot() {
    // The first request's upstream never answers; every later one answers at once.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let stub = Stub::route(move |r| {
        if seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            vec![Step::Stall]
        } else {
            Answer::text("after").openai(r)
        }
    })
    .await;
    // One slot, no queue: while the abandoned request held its slot, any other would be 429.
    let gw = one_slot_gateway(&stub).await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let abandoned = tokio::spawn(gw.client().post(&url).json(&chat("mock/m", false)).send());
    until_accepted(&stub).await;
    assert_eq!(stub.accepts(), 1, "the first request reached the upstream");
    // The client goes away: its connection closes.
    abandoned.abort();
    let client = gw.client();
    let mut statuses = Vec::new();
    for _ in 0..600 {
        let response = client.post(&url).json(&chat("mock/m", false)).send().await.unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == 200 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["choices"][0]["message"]["content"], "after");
            break;
        }
        assert_eq!(response.status(), 429, "only 'at capacity' while the slot is being freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(statuses.last(), Some(&200), "the abandoned request's slot was never freed: {statuses:?}");
}
