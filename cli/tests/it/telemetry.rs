//! OpenTelemetry export from the binary to a real OTLP receiver (rotel, installed by
//! `scripts/peer-mcp.sh`): a tool-using run arrives as `invoke_agent` > `chat` /
//! `execute_tool` spans with the GenAI attributes; a dead collector endpoint costs one
//! warning and the run still completes.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// rotel's stdout, ANSI colour codes removed.
fn plain(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A real OTLP receiver: rotel on two free loopback ports, printing every span it receives to a
/// log file; killed when dropped.
struct Collector {
    child: std::process::Child,
    http: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Collector {
    /// Starts `rotel` and waits (hang guard) until its OTLP/HTTP port accepts connections.
    async fn start(rotel: &std::path::Path) -> Self {
        let (grpc, http) = (free_port(), free_port());
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rotel.out");
        let child = std::process::Command::new(rotel)
            .args([
                "start",
                "--exporter",
                "blackhole",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                "detailed",
            ])
            .args([
                "--otlp-grpc-endpoint",
                &format!("127.0.0.1:{grpc}"),
                "--otlp-http-endpoint",
                &format!("127.0.0.1:{http}"),
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let collector = Self { child, http, log, _dir: dir };
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            // Hang guard only: rotel listens within a second.
            assert!(started.elapsed() < Duration::from_secs(300), "rotel never listened on {http}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        collector
    }

    /// The `OTEL_EXPORTER_OTLP_ENDPOINT` value for it.
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    /// What rotel has printed, once `done` holds of it or after 30 s (a hang guard: the
    /// caller's assertions then say what is missing).
    async fn seen_once(&self, done: impl Fn(&str) -> bool) -> String {
        let mut seen = String::new();
        for _ in 0..600 {
            seen = plain(&std::fs::read(&self.log).unwrap_or_default());
            if done(&seen) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tool_run_server() -> impl Fn(&wiremock::Request) -> ResponseTemplate + Send + Sync + 'static {
    |req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("6 x 7 = 42"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ))
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tool_using_run_arrives_at_a_real_collector_as_a_genai_span_tree() {
    let peers = crate::peers!();
    let Some(rotel) = peers.rotel() else {
        crate::peers::missing("rotel-agent (run scripts/peer-mcp.sh)");
        return;
    };
    let collector = Collector::start(&rotel).await;

    let server = openai_server(tool_run_server()).await;
    // A first target that does not know the model: the chain fails over to `mock`.
    let gone = openai_server(|_| {
        ResponseTemplate::new(404)
            .set_body_json(json!({"error": {"message": "model not found", "code": "model_not_found"}}))
    })
    .await;
    let toml = format!(
        "{}\n[providers.gone]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n\n[agents.failover]\nsystem = \"You help.\"\nmodel = \"gone/test-model, mock/test-model\"\ntools = [\"calc\"]\n",
        base_config(&server.uri()),
        gone.uri()
    );
    let ws = Workspace::new(&toml);
    let mut command = ws.command(&["run", "--agent", "failover", "--input", "What is 6 x 7?", "--json"]);
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint()).env("OTEL_SERVICE_NAME", "executus-it");
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 0);
    let run_id = json_stdout(&out)["run_id"].as_str().unwrap().to_owned();

    // The spans were flushed at exit; wait (hang guard) until rotel has printed them.
    let seen = collector
        .seen_once(|seen| {
            seen.contains("execute_tool calc")
                && seen.contains("invoke_agent failover")
                && seen.matches("Name           : chat ").count() >= 2
        })
        .await;
    for want in [
        "invoke_agent failover",
        "chat gone/test-model, mock/test-model",
        "SPAN_KIND_CLIENT",
        "execute_tool calc",
        "executus-it",
        "gen_ai.operation.name",
        "invoke_agent",
        "execute_tool",
        "gen_ai.conversation.id",
        &run_id,
        "gen_ai.provider.name",
        "gen_ai.usage.input_tokens: Int(20)",
        "gen_ai.usage.output_tokens: Int(9)",
        // The failover is an event of the chat span, with the class of the error.
        "llm failover",
        "error.type: Str(not_found)",
        "gen_ai.response.finish_reasons",
        "tool_calls",
        "gen_ai.tool.name",
    ] {
        assert!(seen.contains(want), "{want:?} not in what the collector received:\n{seen}");
    }
    assert!(!seen.contains("What is 6 x 7"), "message content is not exported unless opted in");

    // Opted in: the model-call spans carry the messages.
    let mut command = ws.command(&["run", "--agent", "helper", "--input", "Content please: 6 x 7?"]);
    command
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint())
        .env("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true");
    assert_exit(&ws.run_with(command, None).await, 0);
    let seen = collector.seen_once(|seen| seen.contains("gen_ai.output.messages")).await;
    let input = seen.lines().find(|l| l.contains("gen_ai.input.messages")).unwrap_or_default();
    assert!(input.contains("Content please: 6 x 7?"), "{seen}");
    assert!(seen.lines().any(|l| l.contains("gen_ai.output.messages") && l.contains("6 x 7 = 42")), "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_are_flushed_when_executus_run_ends_on_sigterm() {
    let peers = crate::peers!();
    let Some(rotel) = peers.rotel() else {
        crate::peers::missing("rotel-agent (run scripts/peer-mcp.sh)");
        return;
    };
    let collector = Collector::start(&rotel).await;
    // The first step answers with a tool call; the second model call never answers.
    let server = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("late")).set_delay(Duration::from_secs(600))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "1+1"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let mut command = ws.command(&["run", "--agent", "helper", "--input", "hi"]);
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint());
    let child = command.spawn().unwrap();
    wait_for_calls(&server, 2).await;
    signal(&child, "TERM");
    let out = wait_exit(child, Duration::from_secs(60)).await;
    assert!(out.status.code().is_some(), "exited by itself: {:?}", out.status);
    let seen = collector.seen_once(|seen| seen.contains("invoke_agent helper")).await;
    assert!(seen.contains("execute_tool calc"), "the finished tool call was exported:\n{seen}");
    assert!(seen.contains("invoke_agent helper"), "the interrupted run's span was flushed at exit:\n{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_costs_one_warning_and_the_run_completes() {
    let dead = free_port();
    let server = openai_server(tool_run_server()).await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let mut command = ws.command(&["run", "--agent", "helper", "--input", "What is 6 x 7?", "--json"]);
    command.env("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://127.0.0.1:{dead}"));
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["output"], "6 x 7 = 42");
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("OpenTelemetry export failed").count(), 1, "one warning:\n{stderr}");
}
