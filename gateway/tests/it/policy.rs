//! Policy profiles on the calls a model returns: a block becomes a tool-free explanation (never
//! a broken stream), a rewrite reaches the client rewritten, a completion gate continues a
//! turn the model ended too early, and every decision is audited with the before and after of
//! a rewrite.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use executus::ports::{AuditEvent, AuditRecord, AuditSink};
use executus::tool::policy::PolicyConfig;
use executus_gateway::ServeConfig;
use executus_gateway::config::KeyConfig;
use figment::providers::Format as _;
use serde_json::{Value, json};

use crate::support::*;
use crate::tcp_stub::Stub;

#[derive(Default)]
struct Recorded(Mutex<Vec<AuditRecord>>);

#[async_trait]
impl AuditSink for Recorded {
    async fn record(&self, record: AuditRecord) {
        self.0.lock().unwrap().push(record);
    }
}

fn policy() -> executus::tool::policy::Policy {
    let raw: PolicyConfig = figment::Figment::new()
        .merge(figment::providers::Toml::string(
            r#"
            [[policy.profiles.build.rules]]
            id = "no-push"
            tool = "Bash"
            args = { "/command" = "git push*" }
            action = "block"
            hint = "Pushing is not allowed; commit locally."
            [[policy.profiles.build.rules]]
            id = "worktree"
            tool = ["Edit", "Write"]
            action = "rewrite"
            replace = { "/file_path" = { prefix = "/repo/", with = "/repo/.wt/feat/" } }
            [[policy.profiles.gated.gates]]
            id = "tests-ran"
            tool = "Bash"
            args = { "/command" = "cargo test*" }
            hint = "Run the tests (cargo test) before you finish."
            "#,
        ))
        .extract_inner("policy")
        .unwrap();
    raw.validate(&|k| k.to_owned()).unwrap()
}

fn tools_request(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "messages": [{"role": "user", "content": "do it"}],
        "tools": [
            {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "Edit", "parameters": {"type": "object"}}}
        ]
    })
}

#[tokio::test]
async fn a_blocked_call_becomes_an_explanation_and_a_rewrite_reaches_the_client_rewritten() {
    let stub = Stub::route(|r| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let wants_push = body["messages"][0]["content"] == "push";
        let call = if wants_push {
            ("call_p", "Bash", json!({"command": "git push origin main"}))
        } else {
            ("call_e", "Edit", json!({"file_path": "/repo/src/lib.rs", "old": "a", "new": "b"}))
        };
        Answer { text: "On it.".into(), calls: vec![(call.0.into(), call.1.into(), call.2)] }.openai(r)
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let audit = Arc::new(Recorded::default());
    let a = audit.clone();
    let key = KeyConfig { profile: Some("build".into()), ..KeyConfig::new("alice", "sk-alice") };
    let config = ServeConfig { keys: vec![key], ..ServeConfig::default() };
    let gw = Gw::start_with(config, registry, |b| b.policy(policy()).audit(a)).await;
    let client = gw.client();

    for stream in [false, true] {
        let mut push = tools_request("mock/m", stream);
        push["messages"][0]["content"] = json!("push");
        let response = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth("sk-alice")
            .json(&push)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["x-executus-applied-policies"].to_str().unwrap().contains("profile:build")
        );
        let body = response.text().await.unwrap();
        let (text, calls, finish) = if stream {
            let events = sse_events(&body);
            let text: String = events
                .iter()
                .filter_map(|(_, d)| d["choices"].get(0)?["delta"]["content"].as_str().map(str::to_owned))
                .collect();
            let calls = events
                .iter()
                .filter(|(_, d)| d["choices"].get(0).is_some_and(|c| c["delta"].get("tool_calls").is_some()))
                .count();
            let finish = events
                .iter()
                .find_map(|(_, d)| d["choices"].get(0)?["finish_reason"].as_str().map(str::to_owned))
                .unwrap();
            assert_eq!(events.last().unwrap().1, Value::String("[DONE]".into()), "a proper stream end");
            (text, calls, finish)
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            let calls = v["choices"][0]["message"]["tool_calls"].as_array().map_or(0, Vec::len);
            (
                v["choices"][0]["message"]["content"].as_str().unwrap().to_owned(),
                calls,
                v["choices"][0]["finish_reason"].as_str().unwrap().to_owned(),
            )
        };
        assert_eq!(calls, 0, "the blocked call never reaches the client");
        assert!(
            text.starts_with("On it.") && text.contains("Pushing is not allowed") && text.contains("no-push"),
            "{text}"
        );
        assert_eq!(finish, "stop");
    }

    let edit = tools_request("mock/m", true);
    let response = client
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth("sk-alice")
        .json(&edit)
        .send()
        .await
        .unwrap();
    let events = sse_events(&response.text().await.unwrap());
    let call = events.iter().find_map(|(_, d)| d["choices"].get(0)?["delta"].get("tool_calls")).unwrap();
    let args: Value = serde_json::from_str(call[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["file_path"], "/repo/.wt/feat/src/lib.rs");

    let records = audit.0.lock().unwrap();
    let decisions: Vec<(&str, &str, &str)> = records
        .iter()
        .filter_map(|r| match &r.event {
            AuditEvent::PolicyDecision { session, decision, rule, .. } => {
                assert!(session.starts_with("fp:"), "{session}");
                Some((decision.as_str(), rule.as_str(), r.identity.user.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        decisions,
        [
            ("block", "no-push", "key:alice"),
            ("block", "no-push", "key:alice"),
            ("rewrite", "worktree", "key:alice")
        ]
    );
    let rewrite = records
        .iter()
        .find_map(|r| match &r.event {
            AuditEvent::PolicyDecision { before: Some(before), after: Some(after), .. } => {
                Some((before.clone(), after.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(rewrite.0["file_path"], "/repo/src/lib.rs");
    assert_eq!(rewrite.1["file_path"], "/repo/.wt/feat/src/lib.rs");
}

#[tokio::test]
async fn a_completion_gate_continues_a_turn_the_model_ended_too_early() {
    let seen = Seen::default();
    let s = seen.clone();
    let stub = Stub::route(move |r| {
        s.push(r);
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let last =
            body["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap_or("").to_owned();
        if last.contains("Before you finish") {
            Answer::call("call_t", "Bash", json!({"command": "cargo test --all"})).openai(r)
        } else {
            Answer::text("All done!").openai(r)
        }
    })
    .await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let config = ServeConfig { profile: Some("gated".into()), ..ServeConfig::default() };
    let gw = Gw::start_with(config, registry, |b| b.policy(policy())).await;
    let events = sse_events(
        &gw.post("/v1/chat/completions", &tools_request("mock/m", true)).await.text().await.unwrap(),
    );
    let text: String = events
        .iter()
        .filter_map(|(_, d)| d["choices"].get(0)?["delta"]["content"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "All done!");
    let call = events
        .iter()
        .find_map(|(_, d)| d["choices"].get(0)?["delta"].get("tool_calls"))
        .expect("the continuation's call");
    assert_eq!(call[0]["function"]["name"], "Bash");
    let finish: Vec<&str> =
        events.iter().filter_map(|(_, d)| d["choices"].get(0)?["finish_reason"].as_str()).collect();
    assert_eq!(finish, ["tool_calls"], "one stream, one end");
    let bodies = seen.bodies();
    assert_eq!(bodies.len(), 2);
    let continued = bodies[1]["messages"].as_array().unwrap();
    assert_eq!(continued[continued.len() - 2]["content"], "All done!");
    assert!(continued.last().unwrap()["content"].as_str().unwrap().contains("Run the tests"));

    // Once the transcript holds the test run, the gate is open: the model's end passes.
    let mut done = tools_request("mock/m", false);
    done["messages"] = json!([
        {"role": "user", "content": "do it"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_t", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"cargo test --all\"}"}}]},
        {"role": "tool", "tool_call_id": "call_t", "content": "ok"}
    ]);
    let body: Value = gw.post("/v1/chat/completions", &done).await.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "All done!");
    assert_eq!(seen.bodies().len(), 3, "no continuation");
}

#[tokio::test]
async fn a_key_picks_a_profile_by_header_only_when_allowed() {
    let stub = Stub::route(|r| Answer::text("ok").openai(r)).await;
    let registry = registry();
    add_openai(&registry, "mock", &stub);
    let may = KeyConfig { profile_header: true, ..KeyConfig::new("ops", "sk-ops") };
    let may_not = KeyConfig::new("dev", "sk-dev");
    let config = ServeConfig { keys: vec![may, may_not], ..ServeConfig::default() };
    let gw = Gw::start_with(config, registry, |b| b.policy(policy())).await;
    let send = |key: &'static str, profile: &'static str| {
        gw.client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(key)
            .header("x-executus-profile", profile)
            .json(&chat("mock/m", false))
            .send()
    };
    let ok = send("sk-ops", "build").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-executus-applied-policies"], "profile:build");
    assert_eq!(send("sk-ops", "nope").await.unwrap().status(), 400);
    assert_eq!(send("sk-dev", "build").await.unwrap().status(), 403);
}
