//! Loop protection over real requests: a client that keeps sending the growing transcript of a
//! looping model, a stable session, a finalize turn, a model that ignores it, the hard cap,
//! and state that survives a gateway restart.

use std::sync::Arc;

use executus::LoopLimits;
use executus_gateway::ServeConfig;
use executus_gateway::config::LoopSettings;
use executus_gateway::store::{MemorySessionStore, SessionStore};
use serde_json::{Value, json};

use crate::support::*;
use crate::tcp_stub::Stub;

/// An upstream that always calls `Read` with the same arguments — even when offered no tools.
async fn looping_upstream(seen: Seen) -> Stub {
    Stub::route(move |r| {
        seen.push(r);
        Answer::call(&format!("call_{}", seen.0.lock().unwrap().len()), "Read", json!({"path": "same.txt"}))
            .openai(r)
    })
    .await
}

/// The client's side of a loop: its first prompt, then each answer's call executed (always
/// the same result) and sent back.
struct Agent {
    messages: Vec<Value>,
}

impl Agent {
    fn new(prompt: &str) -> Self {
        Self {
            messages: vec![
                json!({"role": "system", "content": format!("now={}", fastrand_like())}),
                json!({"role": "user", "content": prompt}),
            ],
        }
    }

    fn request(&self) -> Value {
        json!({
            "model": "mock/m",
            "messages": self.messages,
            "tools": [{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]
        })
    }

    /// Applies an answer: its tool calls get results. Returns whether it called tools.
    fn apply(&mut self, answer: &Value) -> bool {
        let message = &answer["choices"][0]["message"];
        self.messages.push(message.clone());
        let calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
        for call in &calls {
            self.messages
                .push(json!({"role": "tool", "tool_call_id": call["id"], "content": "same contents"}));
        }
        !calls.is_empty()
    }
}

/// A system prompt that changes with every request (clients put timestamps there).
fn fastrand_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

async fn run_until_the_turn_ends(gw: &Gw, agent: &mut Agent) -> Vec<reqwest::header::HeaderMap> {
    let mut headers = Vec::new();
    for _ in 0..20 {
        let response = gw.post("/v1/chat/completions", &agent.request()).await;
        assert_eq!(response.status(), 200);
        headers.push(response.headers().clone());
        let answer: Value = response.json().await.unwrap();
        if !agent.apply(&answer) {
            return headers;
        }
    }
    panic!("the loop was never broken");
}

#[tokio::test]
async fn a_looping_model_gets_a_finalize_turn_and_the_session_stays_stable() {
    let seen = Seen::default();
    let stub = looping_upstream(seen.clone()).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let gw = Gw::start(ServeConfig::default(), registry).await;
    let mut agent = Agent::new("read same.txt until you understand it");
    let headers = run_until_the_turn_ends(&gw, &mut agent).await;

    let sessions: Vec<&str> = headers.iter().map(|h| h["x-executus-session"].to_str().unwrap()).collect();
    assert!(sessions.windows(2).all(|w| w[0] == w[1]), "one session across the loop: {sessions:?}");
    // Calls 1-3 are executed; the third repeat trips the cycle detector, so request 4 is the
    // finalize turn.
    assert_eq!(headers.len(), 4);
    assert!(headers[3]["x-executus-applied-policies"].to_str().unwrap().contains("loops:finalize"));
    let bodies = seen.bodies();
    assert!(bodies[2].get("tools").is_some());
    assert!(bodies[3].get("tools").is_none(), "the finalize turn offers no tools");
    let last_user =
        bodies[3]["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_owned();
    assert!(last_user.contains("Loop protection") && last_user.contains("repeated 3 times"), "{last_user}");
    // The model called a tool anyway: the client gets a tool-free end of turn.
    let final_message = agent.messages.last().unwrap();
    assert!(final_message.get("tool_calls").is_none());
    assert!(final_message["content"].as_str().unwrap().contains("withheld"), "{final_message}");

    let metrics = gw.client().get(format!("{}/metrics", gw.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("executus_gateway_guard_triggers_total{kind=\"cycle\",action=\"finalize\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("kind=\"finalize_ignored\""), "{metrics}");
}

#[tokio::test]
async fn the_hard_cap_ends_looping_tasks_here_and_survives_a_restart() {
    let seen = Seen::default();
    let stub = looping_upstream(seen.clone()).await;
    let store: Arc<dyn SessionStore> = Arc::new(MemorySessionStore::new());
    let config = ServeConfig {
        loops: LoopSettings { limits: LoopLimits::default(), finalize_hard_cap: 2 },
        ..ServeConfig::default()
    };
    let mut agent = Agent::new("loop forever");
    for task in 0..3 {
        // A fresh gateway process for every task, over the same store.
        let registry = registry();
        add_openai(&registry, "mock", &stub);
        let s = store.clone();
        let gw = Gw::start_with(config.clone(), registry, |b| b.store(s)).await;
        let headers = run_until_the_turn_ends(&gw, &mut agent).await;
        let applied = headers.last().unwrap()["x-executus-applied-policies"].to_str().unwrap().to_owned();
        let served = headers.last().unwrap()["x-executus-served-by"].to_str().unwrap().to_owned();
        if task < 2 {
            assert!(applied.contains("loops:finalize"), "task {task}: {applied}");
            assert_eq!(served, "mock/m");
        } else {
            assert!(applied.contains("loops:stop"), "task {task}: {applied}");
            assert_eq!(served, "executus/loop-guard", "past the hard cap the gateway ends the turn itself");
            let text = agent.messages.last().unwrap()["content"].as_str().unwrap().to_owned();
            assert!(text.contains("hard cap (2)"), "{text}");
        }
        agent.messages.push(json!({"role": "user", "content": format!("next task {task}")}));
    }
}
