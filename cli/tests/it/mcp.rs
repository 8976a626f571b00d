//! `[mcp.servers.*]` in the binary: an agent calls a real MCP server's tool (the Python test
//! server of executus-mcp), configuration errors name their key, and the server process never
//! outlives executus-run — after a normal exit, SIGTERM, or SIGKILL of executus-run.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::*;
use crate::peers::{Peers, gone, pids};

fn mcp_config(server: &str, peers: &Peers) -> String {
    format!(
        r#"{base}
[agents.mcp_user]
system = "You use MCP tools."
model = "mock/test-model"
tools = ["mcp:py/echo", "mcp:py/slow", "calc"]
max_steps = 6

[mcp.servers.py]
command = "{python}"
args = ["{script}", "serve"]
env = {{ PIDFILE = "TEST_MCP_PIDFILE" }}
startup_timeout = "60s"
"#,
        base = base_config(server),
        python = peers.python().display(),
        script = peers.py_script().display(),
    )
}

fn with_pidfile(mut command: std::process::Command, file: &Path) -> std::process::Command {
    command.env("TEST_MCP_PIDFILE", file);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_calls_an_mcp_tool_and_the_server_ends_with_the_run() {
    let peers = crate::peers!();
    let server = openai_server(|req| {
        if has_tool_result(req) {
            assert!(transcript(req).contains("echo: from mcp"), "the MCP result reached the model");
            ResponseTemplate::new(200).set_body_json(text_answer("the server said: echo: from mcp"))
        } else {
            let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
            let tools: Vec<&str> = body["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap())
                .collect();
            assert!(tools.contains(&"mcp__py__echo") && tools.contains(&"calc"), "{tools:?}");
            assert!(!tools.contains(&"mcp__py__die"), "only the selected MCP tools: {tools:?}");
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "mcp__py__echo",
                &json!({"text": "from mcp"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&mcp_config(&server.uri(), &peers));
    let pidfile = ws.path().join("pids");
    let command =
        with_pidfile(ws.command(&["run", "--agent", "mcp_user", "--input", "go", "--json"]), &pidfile);
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["output"], "the server said: echo: from mcp");
    let pid = pids(&pidfile)[0];
    assert!(gone(pid).await, "the MCP server exited with executus-run");
}

#[tokio::test(flavor = "multi_thread")]
async fn mcp_configuration_errors_name_the_key() {
    let peers = crate::peers!();
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("x"))).await;
    let base = mcp_config(&server.uri(), &peers);
    let cases = [
        (
            base.replace("env = { PIDFILE = \"TEST_MCP_PIDFILE\" }", "url = \"http://127.0.0.1:1/mcp\""),
            "mcp.servers.py.url",
        ),
        (
            base.replace("TEST_MCP_PIDFILE", "NOT_SET_ANYWHERE"),
            "for mcp.servers.py.env.PIDFILE (from TOML file",
        ),
        (base.replace("TEST_MCP_PIDFILE", "NOT_SET_ANYWHERE"), "variable NOT_SET_ANYWHERE is not set"),
        (
            base.replace("startup_timeout = \"60s\"", "startup_timeout = \"soon\""),
            "mcp.servers.py.startup_timeout",
        ),
        (base.replace("[mcp.servers.py]", "[mcp.servers.\"my__py\"]"), "mcp.servers.my__py"),
        (
            base.replace("\"mcp:py/echo\"", "\"mcp:nope/echo\""),
            "agents.mcp_user.tools (from TOML file executus.toml): unknown tool \"mcp:nope/echo\" (known: calc, clock, dispatch_agent, web_fetch, mcp:py/*, mcp__py__*)",
        ),
        (
            base.replace("\"mcp:py/echo\"", "\"mcp:py/nope\""),
            "agents.mcp_user.tools: \"mcp:py/nope\": MCP server py offers no tool \"nope\"",
        ),
    ];
    for (toml, want) in cases {
        let ws = Workspace::new(&toml);
        let command =
            with_pidfile(ws.command(&["run", "--agent", "mcp_user", "--input", "go"]), &ws.path().join("p"));
        let out = ws.run_with(command, None).await;
        assert_exit(&out, 2);
        assert!(text(&out.stderr).contains(want), "want {want:?} in:\n{}", text(&out.stderr));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_mcp_server_outlives_executus_run_after_sigterm_or_sigkill() {
    let peers = crate::peers!();
    // The model asks for a tool call that takes long, so the run is busy when the signal comes.
    let server = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("done"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "mcp__py__slow",
                &json!({"seconds": 600}),
            ))
        }
    })
    .await;
    for sig in ["TERM", "KILL"] {
        let ws = Workspace::new(&mcp_config(&server.uri(), &peers));
        let pidfile = ws.path().join("pids");
        let mut command =
            with_pidfile(ws.command(&["run", "--agent", "mcp_user", "--input", "go"]), &pidfile);
        let child = command.spawn().unwrap();
        // Wait until the server runs and the model has been asked (the slow call is under way).
        let started = std::time::Instant::now();
        while pids(&pidfile).is_empty() || calls(&server).await.is_empty() {
            assert!(started.elapsed() < Duration::from_secs(120), "the run did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        signal(&child, sig);
        let out = wait_exit(child, Duration::from_secs(60)).await;
        if sig == "TERM" {
            assert!(out.status.code().is_some(), "exited by itself after SIGTERM: {:?}", out.status);
        }
        let pid = pids(&pidfile)[0];
        assert!(gone(pid).await, "SIG{sig}: the MCP server {pid} is gone");
        server.reset().await;
    }
}
