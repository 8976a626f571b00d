//! `run`: the happy path with a tool call, the `--json` shape, and every exit code a run can
//! end with — 0, 1 (the model fails), 2 (usage), 3 (budget cap), 4 (max steps), 130 (SIGINT
//! to a run whose model hangs).

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::common::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_run_calls_a_tool_and_answers_exit_0_with_the_documented_json() {
    let server = openai_server(|req| {
        if has_tool_result(req) {
            assert!(transcript(req).contains("42"), "the tool result reached the model");
            ResponseTemplate::new(200).set_body_json(text_answer("6 x 7 = 42"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let out = ws.run(&["run", "--agent", "helper", "--input", "What is 6 x 7?", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["output"], "6 x 7 = 42");
    assert_eq!(doc["steps"], 2);
    assert_eq!(doc["usage"]["input_tokens"], 32, "both calls' usage is summed");
    assert_eq!(calls(&server).await.len(), 2);
    assert!(ws.path().join("executus.db").is_file(), "the store at [store] url was created");

    // Text mode: the answer alone on stdout.
    let out = ws.run(&["run", "--agent", "helper", "--input", "What is 6 x 7?"], None).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "6 x 7 = 42\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn input_comes_from_stdin_with_a_dash() {
    let server = openai_server(|req| {
        let seen = transcript(req);
        ResponseTemplate::new(200).set_body_json(text_answer(if seen.contains("from a pipe") {
            "got it"
        } else {
            "??"
        }))
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let out = ws.run(&["run", "--agent", "helper", "--input", "-"], Some("text from a pipe\n")).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "got it");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_model_exits_1_with_the_error() {
    let server = openai_server(|_| {
        ResponseTemplate::new(400).set_body_json(json!({
            "error": { "message": "This model does not exist", "type": "invalid_request_error", "code": "model_not_found" }
        }))
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let out = ws.run(&["run", "--agent", "helper", "--input", "hi", "--json"], None).await;
    assert_exit(&out, 1);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "failed");
    assert!(doc["error"].as_str().unwrap().contains("does not exist"), "{doc}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_errors_exit_2() {
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("x"))).await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let out = ws.run(&["run", "--agent", "nobody", "--input", "hi"], None).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unknown agent \"nobody\"") && stderr.contains("helper"), "{stderr}");

    let out = ws.run(&["run", "--agent", "helper", "--input", "hi", "--identity", "two words"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("--identity"), "{}", text(&out.stderr));

    let out = ws.run(&["run", "--agnt", "helper"], None).await;
    assert_exit(&out, 2);
    assert!(calls(&server).await.is_empty(), "no model call for a usage error");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_cap_exits_3_and_applies_per_identity() {
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("fine"))).await;
    let config = format!(
        r#"{}
[budget]
unknown_model = "deny"
[budget.caps]
users = {{ alice = 0.000001 }}
[budget.prices]
"mock/*" = {{ input = 1000.0, output = 1000.0 }}
"#,
        base_config(&server.uri())
    );
    let ws = Workspace::new(&config);
    let out = ws
        .run(&["run", "--agent", "helper", "--input", "hi", "--identity", "alice@acme", "--json"], None)
        .await;
    assert_exit(&out, 3);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "budget_denied");
    assert!(doc["error"].as_str().unwrap().contains("alice"), "the denial names the scope: {doc}");
    assert!(calls(&server).await.is_empty(), "a denied call never reaches the model");

    // Bob has no cap: the same run goes through.
    let out = ws
        .run(&["run", "--agent", "helper", "--input", "hi", "--identity", "bob@acme", "--json"], None)
        .await;
    assert_exit(&out, 0);
    assert_eq!(calls(&server).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_steps_exits_4_with_the_partial_transcript() {
    // A model that never stops calling tools.
    let server = openai_server(|req| {
        let n = messages(req).len();
        ResponseTemplate::new(200).set_body_json(tool_answer(
            &format!("call_{n}"),
            "calc",
            &json!({"expression": format!("{n}+1")}),
        ))
    })
    .await;
    let config = base_config(&server.uri()).replace("max_steps = 6", "max_steps = 2");
    let ws = Workspace::new(&config);
    let out = ws.run(&["run", "--agent", "helper", "--input", "count", "--json"], None).await;
    assert_exit(&out, 4);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "partial");
    assert_eq!(doc["steps"], 2);
    assert!(doc["error"].as_str().unwrap().contains("max steps"), "{doc}");
    // The partial transcript is in the JSON: the input, two calls and their two results.
    let messages = doc["messages"].as_array().unwrap();
    let parts: Vec<&Value> = messages.iter().flat_map(|m| m["parts"].as_array().unwrap()).collect();
    let of = |kind: &str| parts.iter().filter(|p| p["type"] == kind).count();
    assert_eq!((of("tool_call"), of("tool_result")), (2, 2), "{doc}");
    assert_eq!(messages[0]["parts"][0]["text"], "count");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_cancels_a_hanging_run_and_exits_130() {
    let server = openai_server(|_| {
        ResponseTemplate::new(200).set_body_json(text_answer("too late")).set_delay(Duration::from_secs(120))
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let child = ws.command(&["run", "--agent", "helper", "--input", "hang", "--json"]).spawn().unwrap();
    wait_for_calls(&server, 1).await;
    signal(&child, "INT");
    let out = wait_exit(child, HANG).await;
    assert_exit(&out, 130);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "cancelled");
}

#[tokio::test(flavor = "multi_thread")]
async fn skills_and_the_model_override_come_from_the_configuration() {
    let server = openai_server(|req| {
        let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
        let system = transcript(req);
        let tools: Vec<&str> = body["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["function"]["name"].as_str())
            .collect();
        let answer = format!(
            "model={} skill={} tools={}",
            body["model"].as_str().unwrap_or("?"),
            system.contains("## Skill: math") && system.contains("Use calc for sums."),
            tools.join(",")
        );
        ResponseTemplate::new(200).set_body_json(text_answer(&answer))
    })
    .await;
    let config = format!(
        "{}\n[agents.mathy]\nsystem = \"You count.\"\nmodel = \"mock/test-model\"\nskills = [\"math\"]\n\n[skills.math]\ninstructions = \"Use calc for sums.\"\ntools = [\"calc\"]\n\n[audit]\nenabled = true\n",
        base_config(&server.uri())
    );
    let ws = Workspace::new(&config);
    let out =
        ws.run(&["run", "--agent", "mathy", "--input", "1+1?", "--model", "mock/other-model"], None).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout).trim(), "model=other-model skill=true tools=calc");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_critic_extends_a_run_at_its_step_cap() {
    let server = openai_server(|req| {
        let seen = transcript(req);
        if seen.contains("You supervise an autonomous AI agent run") {
            let judgement = json!({"verdict": "extend", "reason": "it is counting up steadily"}).to_string();
            return ResponseTemplate::new(200).set_body_json(text_answer(&judgement));
        }
        let results = messages(req).iter().filter(|m| m["role"] == "tool").count();
        if results < 2 {
            let call = format!("call_{results}");
            ResponseTemplate::new(200).set_body_json(tool_answer(
                &call,
                "calc",
                &json!({"expression": format!("{results}+1")}),
            ))
        } else {
            ResponseTemplate::new(200).set_body_json(text_answer("done counting"))
        }
    })
    .await;
    let config = format!(
        "{}\n[tiers]\njudge = \"mock/judge\"\n\n[critic]\nmodel = \"judge\"\nmax_extensions = 1\nextend_by = {{ time = \"1m\", steps = 3 }}\n",
        base_config(&server.uri()).replace("max_steps = 6", "max_steps = 2")
    );
    let ws = Workspace::new(&config);
    let out = ws.run(&["run", "--agent", "helper", "--input", "count to two", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["steps"], 3, "one step past the cap of 2, granted by the critic");
    let judged = calls(&server).await.iter().filter(|r| transcript(r).contains("You supervise")).count();
    assert_eq!(judged, 1, "the judge was asked once");
}
