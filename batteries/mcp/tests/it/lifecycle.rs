//! Starts that hang or fail, servers that die mid-call or are killed, bounded restarts,
//! call timeouts, and no process left behind.

use std::time::Duration;

use executus::tool::{Tool, ToolError};
use executus_mcp::{McpError, McpHub};
use serde_json::json;

use crate::everything::ctx;
use crate::peers::{gone, pids, with_pidfile};

#[tokio::test]
async fn a_server_hanging_at_startup_times_out_clearly_and_is_killed() {
    let peers = crate::peers!();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let mut config = with_pidfile(peers.py_server("stuck", "hang"), &pidfile);
    config.startup_timeout = Duration::from_secs(5);
    let err = McpHub::start(vec![config]).await.unwrap_err();
    assert!(matches!(err, McpError::StartupTimeout { .. }), "{err}");
    let text = err.to_string();
    assert!(text.starts_with("MCP server stuck did not start within 5s"), "{text}");
    assert!(text.contains("hanging before the handshake"), "stderr is evidence: {text}");
    let pid = pids(&pidfile)[0];
    assert!(gone(pid).await, "the hung server was killed");
}

#[tokio::test]
async fn a_server_failing_at_startup_says_why() {
    let peers = crate::peers!();
    let err = McpHub::start(vec![peers.py_server("db", "crash-at-start")]).await.unwrap_err();
    assert!(matches!(err, McpError::Startup { .. }), "{err}");
    assert!(err.to_string().contains("cannot open the database: /nonexistent/db"), "{err}");
    let err = McpHub::start(vec![executus_mcp::ServerConfig::stdio("nope", "/nonexistent/mcp-server", &[])])
        .await
        .unwrap_err();
    assert!(
        matches!(err, McpError::Spawn { .. }) && err.to_string().contains("/nonexistent/mcp-server"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_start_of_one_server_closes_the_others() {
    let peers = crate::peers!();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let good = with_pidfile(peers.py_server("good", "serve"), &pidfile);
    let err = McpHub::start(vec![good, peers.py_server("bad", "crash-at-start")]).await.unwrap_err();
    assert!(err.to_string().contains("MCP server bad"), "{err}");
    let pid = pids(&pidfile)[0];
    assert!(gone(pid).await, "the server that did start was closed");
}

#[tokio::test]
async fn a_server_dying_mid_call_fails_that_call_and_restarts_on_the_next_until_the_bound() {
    let peers = crate::peers!();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let mut config = with_pidfile(peers.py_server("py", "serve"), &pidfile);
    config.max_restarts = 2;
    let hub = McpHub::start(vec![config]).await.unwrap();
    let die = hub.tool("mcp__py__die").unwrap();
    let echo = hub.tool("mcp__py__echo").unwrap();

    let err = die.call(ctx(), json!({})).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, ToolError::Failed { .. }), "{text}");
    assert!(text.contains("exited during the call"), "{text}");
    assert!(text.contains("dying now"), "the server's last words: {text}");
    // Restart 1 of 2, transparently.
    assert_eq!(echo.call(ctx(), json!({"text": "back"})).await.unwrap().text, "echo: back");

    // Killed from outside between calls: restart 2 of 2 on the next call.
    let pid = hub.pid("py").await.unwrap();
    std::process::Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    assert!(gone(pid).await);
    assert_eq!(echo.call(ctx(), json!({"text": "again"})).await.unwrap().text, "echo: again");
    assert_eq!(pids(&pidfile).len(), 3, "started three times");

    // It dies once more: the bound is reached and calls fail clearly from then on.
    let _ = die.call(ctx(), json!({})).await.unwrap_err();
    let err = echo.call(ctx(), json!({"text": "no"})).await.unwrap_err();
    assert!(
        err.to_string().contains("exited again after 2 restarts (max_restarts); it is not started again"),
        "{err}"
    );
    for pid in pids(&pidfile) {
        assert!(gone(pid).await, "process {pid} is gone");
    }
    hub.shutdown().await;
}

#[tokio::test]
async fn a_call_past_its_timeout_is_a_timeout_error_and_the_server_goes_on() {
    let peers = crate::peers!();
    let mut config = peers.py_server("py", "serve");
    config.call_timeout = Duration::from_millis(500);
    let hub = McpHub::start(vec![config]).await.unwrap();
    let err = hub.tool("mcp__py__slow").unwrap().call(ctx(), json!({"seconds": 30})).await.unwrap_err();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err}");
    let echo = hub.tool("mcp__py__echo").unwrap();
    assert_eq!(echo.call(ctx(), json!({"text": "still here"})).await.unwrap().text, "echo: still here");
    hub.shutdown().await;
}

#[tokio::test]
async fn dropping_the_hub_without_shutdown_kills_its_children() {
    let peers = crate::peers!();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let hub = McpHub::start(vec![with_pidfile(peers.py_server("py", "serve"), &pidfile)]).await.unwrap();
    let pid = pids(&pidfile)[0];
    assert!(crate::peers::alive(pid));
    drop(hub);
    assert!(gone(pid).await, "no orphan after the hub is dropped");
}
