//! Runaway agents and hostile tool traffic through the binary. Each case is a model server
//! that misbehaves on purpose, and one `run --json` process that must end within its caps
//! with a status, a reason and the partial transcript in the JSON (`messages`):
//!
//! - runaway: the same call forever (ignoring the finalize turn that withholds tools),
//!   distinct calls that learn nothing, a tool that always fails, and a `dispatch_agent`
//!   tree that tries to recurse (into itself with its own input, and ever deeper with new
//!   input) — stopped by loop protection, the tool-error limit and the dispatch caps;
//! - hostile tool traffic: garbage arguments on the wire (broken JSON, an array, a bare
//!   string, a megabyte of noise, an unknown tool, a hostile tool name), an oversized tool
//!   output (a 3 MB page, a child agent's 2 MB answer), and tools that never return (three
//!   `web_fetch` calls to a server that accepts and never answers, cut by `tool_timeout`).
//!
//! The same behaviours are covered in-process by the core's `loops`, `dispatch_tool` and
//! `run_loop` tests; these prove the CLI wiring and its output.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::*;
use crate::tcp_stub::{Step, Stub};

fn config(server: &str, extra: &str) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{server}/v1"

[runtime]
streaming = false
checkpoint_interval = "0s"

[store]
url = "sqlite://{{dir}}/executus.db"
{extra}
"#
    )
}

/// An OpenAI answer with several tool calls: `(id, name, raw arguments string)`.
fn raw_calls(calls: &[(&str, &str, String)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({
        "id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "test-model",
        "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": calls}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    })
}

/// The run's JSON, checked for shape, status set, a reason, and a transcript that starts
/// with the input.
struct Ended {
    doc: Value,
    took: Duration,
}

impl Ended {
    fn status(&self) -> &str {
        self.doc["status"].as_str().unwrap()
    }

    fn reason(&self) -> &str {
        self.doc["error"].as_str().unwrap_or("")
    }

    fn parts(&self) -> Vec<Value> {
        self.doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["parts"].as_array().unwrap().clone())
            .collect()
    }

    /// Tool results in the transcript: `(id, content, is_error)`.
    fn results(&self) -> Vec<(String, String, bool)> {
        self.parts()
            .into_iter()
            .filter(|p| p["type"] == "tool_result")
            .map(|p| {
                (
                    p["id"].as_str().unwrap().to_owned(),
                    p["content"].as_str().unwrap().to_owned(),
                    p["is_error"] == true,
                )
            })
            .collect()
    }
}

async fn run_agent(ws: &Workspace, agent: &str, input: &str) -> Ended {
    let started = Instant::now();
    let out = ws.run(&["run", "--agent", agent, "--input", input, "--json"], None).await;
    let took = started.elapsed();
    assert!(took < HANG, "{agent}: took {took:?} (hang)");
    assert!(!text(&out.stderr).contains("panicked"), "{}", text(&out.stderr));
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    let code = out.status.code().unwrap();
    assert_eq!(code, crate_exit(doc["status"].as_str().unwrap()), "{doc}");
    assert_eq!(doc["messages"][0]["parts"][0]["text"], input, "the transcript starts with the input");
    Ended { doc, took }
}

/// The documented status -> exit code map.
fn crate_exit(status: &str) -> i32 {
    match status {
        "completed" | "awaiting_approval" => 0,
        "budget_denied" => 3,
        "partial" | "stopped" => 4,
        "cancelled" | "interrupted" => 130,
        _ => 1,
    }
}

fn tool_results_seen(req: &Request) -> usize {
    messages(req).iter().filter(|m| m["role"] == "tool").count()
}

fn has_tools(req: &Request) -> bool {
    serde_json::from_slice::<Value>(&req.body)
        .is_ok_and(|b| b["tools"].as_array().is_some_and(|t| !t.is_empty()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_call_forever_is_stopped_by_loop_protection() {
    // A stubborn model: the same calc call at every turn, also when tools are withheld.
    let server = openai_server(|req| {
        let n = tool_results_seen(req);
        ResponseTemplate::new(200).set_body_json(tool_answer(
            &format!("call_{n}"),
            "calc",
            &json!({"expression": "1+1"}),
        ))
    })
    .await;
    let ws = Workspace::new(&config(
        &server.uri(),
        "[agents.looper]\nsystem = \"You loop.\"\nmodel = \"mock/test-model\"\ntools = [\"calc\"]\nmax_steps = 30\n",
    ));
    let ended = run_agent(&ws, "looper", "Add one and one, forever.").await;
    assert_eq!(ended.status(), "stopped", "{}", ended.doc);
    assert!(ended.reason().contains("loop protection (finalize_ignored)"), "{}", ended.reason());
    let steps = ended.doc["steps"].as_u64().unwrap();
    assert!(steps < 10, "stopped well before max_steps: {steps}");
    assert!(!ended.results().is_empty(), "the calls made are in the transcript");
    let withheld = calls(&server).await.iter().filter(|r| !has_tools(r)).count();
    assert!(withheld >= 1, "a finalize turn without tools was offered first");
}

#[tokio::test(flavor = "multi_thread")]
async fn distinct_calls_that_learn_nothing_are_stopped_as_stagnation() {
    // Different arguments every time, the same answer every time (0).
    let server = openai_server(|req| {
        let n = tool_results_seen(req);
        ResponseTemplate::new(200).set_body_json(tool_answer(
            &format!("call_{n}"),
            "calc",
            &json!({"expression": format!("0*{}", n + 1)}),
        ))
    })
    .await;
    let ws = Workspace::new(&config(
        &server.uri(),
        "[agents.spinner]\nsystem = \"You spin.\"\nmodel = \"mock/test-model\"\ntools = [\"calc\"]\nmax_steps = 30\n",
    ));
    let ended = run_agent(&ws, "spinner", "Multiply zero by everything.").await;
    assert_eq!(ended.status(), "stopped", "{}", ended.doc);
    assert!(ended.reason().contains("loop protection (finalize_ignored)"), "{}", ended.reason());
    let results = ended.results();
    let args: std::collections::BTreeSet<String> =
        ended.parts().iter().filter(|p| p["type"] == "tool_call").map(|p| p["args"].to_string()).collect();
    assert!(args.len() >= 3, "the calls were distinct: {args:?}");
    // Every executed call said the same; calls made during the finalize turns were refused.
    let (executed, withheld): (Vec<_>, Vec<_>) = results.iter().partition(|(_, _, is_error)| !is_error);
    assert!(executed.len() >= 3 && executed.iter().all(|(_, content, _)| content == "0"), "{results:?}");
    assert!(
        withheld.iter().all(|(_, content, _)| content.contains("withheld by loop protection")),
        "{results:?}"
    );
    assert!(ended.doc["steps"].as_u64().unwrap() < 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_that_always_fails_stops_the_run() {
    let server = openai_server(|req| {
        let n = tool_results_seen(req);
        ResponseTemplate::new(200).set_body_json(tool_answer(
            &format!("call_{n}"),
            "calc",
            &json!({"expression": format!("(({n}")}),
        ))
    })
    .await;
    let ws = Workspace::new(&config(
        &server.uri(),
        "[agents.failer]\nsystem = \"You fail.\"\nmodel = \"mock/test-model\"\ntools = [\"calc\"]\nmax_steps = 30\n",
    ));
    let ended = run_agent(&ws, "failer", "Compute the unparseable.").await;
    assert_eq!(ended.status(), "stopped", "{}", ended.doc);
    let reason = ended.reason();
    assert!(
        reason.contains("loop protection (unproductive)")
            || reason.contains("5 consecutive tool calls failed"),
        "{reason}"
    );
    let results = ended.results();
    assert!(results.len() >= 3 && results.iter().all(|(_, _, is_error)| *is_error), "{results:?}");
    assert!(ended.doc["steps"].as_u64().unwrap() < 10);
}

/// A model that always dispatches: to `agent`, with `input(own input)`.
async fn dispatcher(next_input: fn(&str) -> String) -> MockServer {
    openai_server(move |req| {
        let own = messages(req)
            .iter()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let n = tool_results_seen(req);
        ResponseTemplate::new(200).set_body_json(tool_answer(
            &format!("call_{n}"),
            "dispatch_agent",
            &json!({"agent": "recursor", "input": next_input(&own)}),
        ))
    })
    .await
}

const RECURSOR: &str = "[agents.recursor]\nsystem = \"You delegate.\"\nmodel = \"mock/test-model\"\ntools = [\"dispatch_agent\"]\nmax_steps = 8\n\n[dispatch]\nmax_depth = 3\nmax_fanout = 3\nmax_total = 12\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_into_itself_with_its_own_input_is_refused_as_a_loop() {
    let server = dispatcher(|own| own.to_owned()).await;
    let ws = Workspace::new(&config(&server.uri(), RECURSOR));
    let ended = run_agent(&ws, "recursor", "Solve it by asking yourself.").await;
    assert_eq!(ended.status(), "stopped", "{}", ended.doc);
    let results = ended.results();
    assert!(!results.is_empty() && results.iter().all(|(_, _, e)| *e), "{results:?}");
    assert!(results[0].1.contains("already on the ancestry"), "the refusal says why: {}", results[0].1);
    // No child ever ran: every request is the root's.
    let firsts: std::collections::BTreeSet<String> =
        calls(&server).await.iter().map(|r| messages(r)[1]["content"].to_string()).collect();
    assert_eq!(firsts.len(), 1, "{firsts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dispatch_tree_that_goes_ever_deeper_is_bounded_by_the_caps() {
    let server = dispatcher(|own| format!("{own} (deeper)")).await;
    let ws = Workspace::new(&config(&server.uri(), RECURSOR));
    let ended = run_agent(&ws, "recursor", "Delegate.").await;
    // Every run dispatches, one call per step and each child within its parent's tool call,
    // so the tree is the same every time: the deepest runs are refused a fourth level until
    // their own tool-error limit stops them, and so on up, until the tree holds 12 children;
    // the root then meets refusals only, and its tool-error limit stops it.
    assert_eq!(ended.status(), "stopped", "{}", ended.doc);
    assert_eq!(ended.reason(), "5 consecutive tool calls failed", "{}", ended.doc);
    // Runs by depth: a run's first request carries its input, with one "(deeper)" per level
    // below the root (depth 0).
    let requests = calls(&server).await;
    let mut runs_at_depth = std::collections::BTreeMap::<usize, usize>::new();
    for r in requests.iter().filter(|r| tool_results_seen(r) == 0) {
        let depth = messages(r)[1]["content"].as_str().unwrap_or("").matches("(deeper)").count();
        *runs_at_depth.entry(depth).or_default() += 1;
    }
    let deepest = runs_at_depth.keys().max().copied().unwrap();
    assert_eq!(deepest, 3, "children ran down to max_depth and no further: {runs_at_depth:?}");
    assert!((1..=3).all(|d| runs_at_depth.get(&d).is_some_and(|n| *n > 0)), "{runs_at_depth:?}");
    let child_runs: usize = runs_at_depth.range(1..).map(|(_, n)| n).sum();
    assert_eq!(child_runs, 12, "child runs happened, exactly max_total of them: {runs_at_depth:?}");
    assert_eq!(runs_at_depth[&0], 1, "one root");
    let refusals: Vec<String> =
        ended.results().into_iter().filter(|(_, _, e)| *e).map(|(_, c, _)| c).collect();
    assert!(
        refusals.iter().any(|r| r.contains("already holds 12 dispatches, the maximum is 12")),
        "the root was refused by max_total: {refusals:?}"
    );
    println!(
        "dispatch tree: {} model calls, runs by depth {runs_at_depth:?}, {:?}",
        requests.len(),
        ended.took
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_tool_arguments_on_the_wire_become_error_results_and_the_run_goes_on() {
    let noise: String = (0..(1 << 20)).map(|i| char::from(b'!' + (i % 90) as u8)).collect();
    let server = openai_server(move |req| {
        if tool_results_seen(req) > 0 {
            return ResponseTemplate::new(200).set_body_json(text_answer("recovered"));
        }
        ResponseTemplate::new(200).set_body_json(raw_calls(&[
            ("c_broken", "calc", "{\"expression\": \"1+".to_owned()),
            ("c_array", "calc", "[1, 2, 3]".to_owned()),
            ("c_string", "calc", "\"just a string\"".to_owned()),
            ("c_noise", "calc", noise.clone()),
            ("c_wrong_type", "calc", "{\"expression\": 42}".to_owned()),
            ("c_unknown", "no_such_tool", "{}".to_owned()),
            ("c_hostile", "../../etc/passwd", "{}".to_owned()),
            ("c_ok", "calc", "{\"expression\": \"6*7\"}".to_owned()),
        ]))
    })
    .await;
    let ws = Workspace::new(&config(
        &server.uri(),
        "[agents.robust]\nsystem = \"You compute.\"\nmodel = \"mock/test-model\"\ntools = [\"calc\"]\n",
    ));
    let ended = run_agent(&ws, "robust", "Compute, sloppily.").await;
    assert_eq!(ended.status(), "completed", "{}", ended.doc);
    assert_eq!(ended.doc["output"], "recovered");
    let results = ended.results();
    assert_eq!(results.len(), 8, "one result per call: {results:?}");
    for (id, content, is_error) in &results {
        if id == "c_ok" {
            assert_eq!((content.as_str(), *is_error), ("42", false));
        } else {
            assert!(*is_error, "{id}: {content}");
            assert!(content.len() < 4096, "{id}: the error does not echo a megabyte back: {}", content.len());
        }
    }
    // What the model was told on the next turn: every call answered, none dropped.
    let second = &calls(&server).await[1];
    assert_eq!(tool_results_seen(second), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_tool_output_is_truncated_for_the_model() {
    let page = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/huge"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("y".repeat(3 << 20), "text/plain"))
        .mount(&page)
        .await;
    let url = format!("{}/huge", page.uri());
    let server = openai_server(move |req| {
        let system = messages(req).first().map(|m| m["content"].to_string()).unwrap_or_default();
        if system.contains("You write a lot") {
            return ResponseTemplate::new(200).set_body_json(text_answer(&"z".repeat(2 << 20)));
        }
        match tool_results_seen(req) {
            0 => ResponseTemplate::new(200).set_body_json(raw_calls(&[
                ("c_page", "web_fetch", json!({"url": url}).to_string()),
                ("c_child", "dispatch_agent", json!({"agent": "writer", "input": "write"}).to_string()),
            ])),
            _ => ResponseTemplate::new(200).set_body_json(text_answer("read it all")),
        }
    })
    .await;
    let port = page.address().port();
    let extra = format!(
        "[tools.web_fetch]\nallow = [\"127.0.0.1:{port}\"]\nmax_bytes = 4194304\n\n\
         [agents.reader]\nsystem = \"You read.\"\nmodel = \"mock/test-model\"\ntools = [\"web_fetch\", \"dispatch_agent\"]\n\n\
         [agents.writer]\nsystem = \"You write a lot.\"\nmodel = \"mock/test-model\"\n"
    );
    let ws = Workspace::new(&config(&server.uri(), &extra));
    let ended = run_agent(&ws, "reader", "Read the huge page and ask the writer.").await;
    assert_eq!(ended.status(), "completed", "{}", ended.doc);
    let results = ended.results();
    assert_eq!(results.len(), 2);
    for (id, content, is_error) in &results {
        assert!(!is_error, "{id}");
        // `[runtime] max_tool_output_bytes` (64 KiB) plus the note.
        assert!(content.len() < (64 << 10) + 512, "{id}: {} bytes reached the model", content.len());
        assert!(content.contains("truncated"), "{id}: the model is told it was cut");
    }
    let second = calls(&server).await.into_iter().find(|r| tool_results_seen(r) == 2).unwrap();
    assert!(second.body.len() < 200 << 10, "the next request stays small: {} bytes", second.body.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_that_never_return_are_cut_by_the_tool_timeout() {
    // Accepts, reads the request, never answers.
    let black_hole = Stub::start(vec![Step::Stall]).await;
    let port = black_hole.url().rsplit(':').next().unwrap().to_owned();
    let url = format!("{}/never", black_hole.url());
    let server = openai_server(move |req| match tool_results_seen(req) {
        0 => ResponseTemplate::new(200).set_body_json(raw_calls(&[
            ("c_1", "web_fetch", json!({"url": format!("{url}?1")}).to_string()),
            ("c_2", "web_fetch", json!({"url": format!("{url}?2")}).to_string()),
            ("c_3", "web_fetch", json!({"url": format!("{url}?3")}).to_string()),
        ])),
        _ => ResponseTemplate::new(200).set_body_json(text_answer("the pages never came")),
    })
    .await;
    let extra = format!(
        "[tools.web_fetch]\nallow = [\"127.0.0.1:{port}\"]\n\n\
         [agents.patient]\nsystem = \"You fetch.\"\nmodel = \"mock/test-model\"\ntools = [\"web_fetch\"]\ntool_timeout = \"1s\"\n"
    );
    let ws = Workspace::new(&config(&server.uri(), &extra));
    let ended = run_agent(&ws, "patient", "Fetch three pages.").await;
    assert_eq!(ended.status(), "completed", "{}", ended.doc);
    let results = ended.results();
    assert_eq!(results.len(), 3);
    // Cut by the agent's tool_timeout (1 s), not by web_fetch's own 30 s timer: the error
    // names the timer that fired.
    assert!(
        results.iter().all(|(_, c, e)| *e && c.contains("tool web_fetch timed out after 1s")),
        "{results:?}"
    );
    // The three ran at once and were cut together (about 1 s; the core's run-loop tests prove
    // the concurrency on a paused clock): a timing claim, checked only with the timers.
    if strict_timers() {
        assert!(ended.took < Duration::from_secs(8), "{:?}", ended.took);
    }
    assert_eq!(black_hole.accepts(), 3);
}
