//! The provider fault matrix through the `executus-run` binary: the catalogue of
//! `core/tests/support/fault_cases.rs` (shared with the runtime's own fault suite) served by
//! raw TCP stubs, each case one `run --agent faulty --json --log info` process whose
//! provider timeouts come from `[providers.NAME] connect_timeout / headers_timeout /
//! idle_timeout`, with the faulty head alone and in front of a healthy tail.
//!
//! For each case: the exit code and JSON status, who answered, the error class (in the JSON
//! error when the run failed, in the `llm attempt failed` log line otherwise), whether the
//! chain failed over (the `llm failover` log line), the transcript in the JSON (input, step
//! 1's tool call and result), no panic on stderr, the time against the configured timers,
//! and no run left for `resume` in the store. The table it prints (`--nocapture`) is the
//! one in RELIABILITY.md.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use serde_json::Value;

use crate::common::*;
use crate::fault_cases::{
    CONNECT, Class, Fault, HEADERS, IDLE, INPUT, Mode, Shape, big_answer, cases, expect, start_head,
    start_tail,
};

/// Allowance on top of a case's timers when the timers are checked (release builds, by
/// `scripts/reliability.sh`, which sets `EXECUTUS_STRICT_TIMERS=1`; the tables in RELIABILITY.md
/// come from there).
const SLACK: Duration = Duration::from_secs(6);

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn config(head: &str, tail: &str, mode: Mode, shape: Shape) -> String {
    let provider = |name: &str, url: &str| {
        format!(
            "[providers.{name}]\nkind = \"openai\"\nbase_url = \"{url}/v1\"\nconnect_timeout = \"{}\"\nheaders_timeout = \"{}\"\nidle_timeout = \"{}\"\n\n",
            ms(CONNECT),
            ms(HEADERS),
            ms(IDLE)
        )
    };
    format!(
        "{}{}[runtime]\nstreaming = {}\ncheckpoint_interval = \"0s\"\n\n[store]\nurl = \"sqlite://{{dir}}/executus.db\"\n\n[agents.faulty]\nsystem = \"You compute.\"\nmodel = \"{}\"\ntools = [\"calc\"]\n",
        provider("head", head),
        provider("tail", tail),
        mode == Mode::Streamed,
        shape.spec()
    )
}

struct Ran {
    code: Option<i32>,
    doc: Value,
    stderr: String,
    elapsed: Duration,
    interrupted_left: usize,
}

async fn run_case(fault: Fault, mode: Mode, shape: Shape) -> Ran {
    let head = start_head(fault).await;
    let tail = start_tail().await;
    let ws = Workspace::new(&config(&head.url, &tail.url(), mode, shape));
    let started = Instant::now();
    let out = ws.run(&["--log", "info", "run", "--agent", "faulty", "--input", INPUT, "--json"], None).await;
    let elapsed = started.elapsed();
    let stdout = text(&out.stdout);
    let doc = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{}: stdout is not one JSON object ({e})\n--- stderr\n{}",
            fault.label(mode),
            text(&out.stderr)
        )
    });
    let url = format!("sqlite://{}/executus.db", ws.path().display());
    let store = executus_store::Store::open(&url).await.unwrap();
    let interrupted_left =
        executus::ports::CheckpointStore::list_interrupted(&store.checkpoints()).await.unwrap().len();
    store.close().await;
    drop(head);
    Ran { code: out.status.code(), doc, stderr: text(&out.stderr), elapsed, interrupted_left }
}

fn check(fault: Fault, mode: Mode, shape: Shape, ran: &Ran) {
    let expected = expect(fault, mode, shape);
    let label = format!("{} / {mode:?} / {shape:?}", fault.label(mode));
    let doc = &ran.doc;
    let context =
        format!("{label}\n--- json (truncated)\n{:.2000}\n--- stderr\n{}", doc.to_string(), ran.stderr);
    assert_run_json_shape(doc);
    assert_eq!(doc["status"], expected.status, "{context}");
    assert_eq!(ran.code, Some(if expected.status == "completed" { 0 } else { 1 }), "{context}");
    assert!(!ran.stderr.contains("panicked"), "{context}");
    match expected.answered_by {
        Some(_) if fault == Fault::TenMegabyteLine => {
            assert!(doc["output"].as_str() == Some(big_answer()), "{label}: the 10 MB answer intact");
        }
        Some(who) => assert_eq!(doc["output"], format!("answered by {who}"), "{context}"),
        None => {
            let error = doc["error"].as_str().unwrap_or_default();
            assert!(error.contains(expected.class.as_str()), "{label}: the error names the class: {error}");
        }
    }
    if expected.class != Class::None {
        let class = format!("error.type=\"{}\"", expected.class.as_str());
        let logged = ran.stderr.lines().any(|l| {
            (l.contains("llm attempt failed") || l.contains("model call failed")) && l.contains(&class)
        });
        assert!(logged, "{label}: the failed attempt is logged with {class}\n{}", ran.stderr);
    }
    // The chain's own failover, or the run re-issuing a step whose stream broke past its
    // first event on the chain's next target.
    let failed_over =
        ran.stderr.contains("llm failover") || ran.stderr.contains("on the next target (failover)");
    assert_eq!(failed_over, expected.fails_over, "{context}");
    // The transcript: the input, then step 1's call and its result.
    let messages = doc["messages"].as_array().unwrap();
    assert_eq!(messages[0]["parts"][0]["text"], INPUT, "{label}");
    let parts: Vec<&Value> = messages.iter().flat_map(|m| m["parts"].as_array().unwrap()).collect();
    let called = parts.iter().any(|p| p["type"] == "tool_call" && p["id"] == "call_1");
    let result = parts.iter().any(|p| {
        p["type"] == "tool_result"
            && p["id"] == "call_1"
            && p["content"].as_str().unwrap_or("").contains("42")
    });
    assert_eq!((called, result), (expected.keeps_step_one, expected.keeps_step_one), "{context}");
    assert_eq!(ran.interrupted_left, 0, "{label}: an ended run leaves nothing to resume");
    assert!(ran.elapsed >= expected.at_least, "{label}: Retry-After honoured: {:?}", ran.elapsed);
    if strict_timers() {
        assert!(ran.elapsed < expected.at_most + SLACK, "{label}: took {:?}", ran.elapsed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_fault_through_the_cli_ends_cleanly_with_the_transcript() {
    let mut all = Vec::new();
    for (fault, mode) in cases() {
        for shape in [Shape::Single, Shape::Chain] {
            all.push((fault, mode, shape));
        }
    }
    let results: Vec<_> = futures::stream::iter(all)
        .map(|(fault, mode, shape)| async move { (fault, mode, shape, run_case(fault, mode, shape).await) })
        .buffer_unordered(6)
        .collect()
        .await;
    let mut rows = Vec::new();
    for (fault, mode, shape, ran) in &results {
        check(*fault, *mode, *shape, ran);
        let expected = expect(*fault, *mode, *shape);
        rows.push(format!(
            "| {} | {:?} | {:?} | {} | {} | {} (exit {}) | {} ms |",
            fault.label(*mode),
            mode,
            shape,
            expected.class.as_str(),
            if expected.fails_over { "yes" } else { "no" },
            expected.status,
            ran.code.unwrap_or(-1),
            ran.elapsed.as_millis()
        ));
    }
    rows.sort();
    println!("| fault | mode | model | class | failover | status | took |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for row in rows {
        println!("{row}");
    }
}
