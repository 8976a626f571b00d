//! server-everything over stdio and over streamable HTTP.

use std::time::Duration;

use executus::tool::{Tool, ToolContext};
use executus::{Identity, RunId};
use executus_mcp::{McpHub, ServerConfig};
use serde_json::json;

pub fn ctx() -> ToolContext {
    ToolContext::new(RunId::new(), Identity::default(), "tester", "call-1")
}

#[tokio::test]
async fn everything_over_stdio_lists_calls_and_refreshes() {
    let peers = crate::peers!();
    let mut config = peers.everything_stdio("everything");
    if let executus_mcp::Transport::Stdio { env, .. } = &mut config.transport {
        env.push(("MCP_TEST_SECRET".into(), executus::llm::Secret::new("hunter2-secret-value")));
    }
    let hub = McpHub::start(vec![config]).await.unwrap();
    let names: Vec<String> = hub.tools().iter().map(|t| t.name().to_owned()).collect();
    for want in ["mcp__everything__echo", "mcp__everything__get-sum", "mcp__everything__get-tiny-image"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    // Schemas went through the strict transform.
    let echo = hub.tool("mcp__everything__echo").unwrap();
    assert_eq!(echo.parameters()["additionalProperties"], json!(false));
    assert_eq!(echo.call(ctx(), json!({"message": "hi"})).await.unwrap().text, "Echo: hi");
    let sum =
        hub.tool("mcp__everything__get-sum").unwrap().call(ctx(), json!({"a": 2, "b": 3})).await.unwrap();
    assert!(sum.text.contains('5'), "{sum:?}");
    // Images arrive as images, decoded.
    let img = hub.tool("mcp__everything__get-tiny-image").unwrap().call(ctx(), json!({})).await.unwrap();
    assert_eq!(img.images.len(), 1, "{img:?}");
    assert_eq!(img.images[0].mime, "image/png");
    assert!(img.images[0].data.starts_with(b"\x89PNG"), "decoded PNG bytes");
    // Structured content: the text carries the JSON.
    let weather = hub
        .tool("mcp__everything__get-structured-content")
        .unwrap()
        .call(ctx(), json!({"location": "Chicago"}))
        .await;
    assert!(weather.unwrap().text.contains("temperature"));
    // Bad arguments are the server's error, as a tool error naming the tool.
    let err = echo.call(ctx(), json!({"message": 5})).await.unwrap_err();
    assert!(err.to_string().contains("mcp__everything__echo"), "{err}");
    // The server announces a tool-list change right after the start; the list is re-read.
    let mut refreshed = false;
    for _ in 0..600 {
        if hub.tool_list_refreshes("everything") > 0 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refreshed, "notifications/tools/list_changed re-read the list");
    // The server dumps its environment: the secret passed to it is scrubbed from the result.
    let env = hub.tool("mcp__everything__get-env").unwrap().call(ctx(), json!({})).await.unwrap();
    assert!(env.text.contains("MCP_TEST_SECRET") && env.text.contains("[redacted]"), "{}", env.text);
    assert!(!env.text.contains("hunter2-secret-value"), "{}", env.text);
    let pid = hub.pid("everything").await.unwrap();
    hub.shutdown().await;
    assert!(crate::peers::gone(pid).await, "the server process ended at shutdown");
    let after = echo.call(ctx(), json!({"message": "late"})).await.unwrap_err();
    assert!(after.to_string().contains("shut down"), "{after}");
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn everything_over_streamable_http() {
    let peers = crate::peers!();
    let port = free_port();
    let mut server = tokio::process::Command::new(peers.everything())
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server-everything listens on {port}");
    let config = ServerConfig::http("web", format!("http://127.0.0.1:{port}/mcp"));
    let hub = McpHub::start(vec![config]).await.unwrap();
    let echo = hub.tool("mcp__web__echo").unwrap();
    assert_eq!(echo.call(ctx(), json!({"message": "over http"})).await.unwrap().text, "Echo: over http");
    let sum = hub.tool("mcp__web__get-sum").unwrap().call(ctx(), json!({"a": 40, "b": 2})).await.unwrap();
    assert!(sum.text.contains("42"), "{sum:?}");
    hub.shutdown().await;
    server.kill().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_http_server_fails_the_start_clearly() {
    let port = free_port();
    let mut config = ServerConfig::http("gone", format!("http://127.0.0.1:{port}/mcp"));
    config.startup_timeout = Duration::from_secs(20);
    let err = McpHub::start(vec![config]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("MCP server gone"), "{text}");
}

#[tokio::test]
async fn http_headers_come_from_variables_and_never_show_in_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that records the first request's head and refuses it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let body = "refused with the token s3cr3t-t0ken-value in the body";
        let answer = format!(
            "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
            body.len()
        );
        let _ = socket.write_all(answer.as_bytes()).await;
        String::from_utf8_lossy(&head).to_ascii_lowercase()
    });
    let raw = executus_mcp::RawServer {
        url: Some(format!("http://127.0.0.1:{port}/mcp")),
        headers_env: [("x-api-key".to_owned(), "MCP_TEST_KEY_VAR".to_owned())].into(),
        startup_timeout: Some("20s".into()),
        ..Default::default()
    };
    let lookup = |v: &str| (v == "MCP_TEST_KEY_VAR").then(|| "s3cr3t-t0ken-value".to_owned());
    let config = raw.validate("guarded", &lookup).unwrap();
    assert!(!format!("{config:?}").contains("s3cr3t"), "the value never prints");
    let err = McpHub::start(vec![config]).await.unwrap_err();
    let head = seen.await.unwrap();
    assert!(head.contains("x-api-key: s3cr3t-t0ken-value"), "the header was sent: {head}");
    assert!(err.to_string().contains("MCP server guarded"), "{err}");
    assert!(!err.to_string().contains("s3cr3t"), "a header value echoed by the server is scrubbed: {err}");
    // An unset variable is a configuration error naming the key and the variable.
    let err = raw.validate("guarded", &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "mcp.servers.guarded.headers_env.x-api-key: variable MCP_TEST_KEY_VAR is not set"
    );
}
