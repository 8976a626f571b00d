//! The Python test server: optional arguments, a hostile 10 MB result, images, a tool list
//! that changes, and two servers with the same tool names.

use std::time::Duration;

use executus::tool::{Tool, ToolError, ToolRegistry};
use executus_mcp::{McpError, McpHub};
use serde_json::json;

use crate::everything::ctx;

#[tokio::test]
async fn the_model_s_nulls_for_optional_arguments_are_not_sent() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve")]).await.unwrap();
    let echo = hub.tool("mcp__py__echo").unwrap();
    // The strict schema makes `suffix` required and nullable: the model may send null.
    assert_eq!(echo.parameters()["required"], json!(["suffix", "text"]));
    let out = echo.call(ctx(), json!({"text": "a", "suffix": null})).await.unwrap();
    assert_eq!(out.text, "echo: a");
    let out = echo.call(ctx(), json!({"text": "a", "suffix": "b"})).await.unwrap();
    assert_eq!(out.text, "echo: a b");
    let err = echo.call(ctx(), json!(["a"])).await.unwrap_err();
    assert!(matches!(err, ToolError::InvalidArgs { .. }), "{err}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_hostile_ten_megabyte_result_is_bounded_with_a_note() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve")]).await.unwrap();
    let big = hub.tool("mcp__py__big").unwrap();
    let out = big.call(ctx(), json!({"n": 10_000_000})).await.unwrap();
    let limit = executus_mcp::DEFAULT_MAX_RESULT_BYTES;
    assert!(out.text.len() < limit + 100, "bounded: {} bytes", out.text.len());
    assert!(out.text.ends_with(&format!("[result truncated: 10000000 bytes, showing the first {limit}]")));
    // The server is still usable afterwards.
    let echo = hub.tool("mcp__py__echo").unwrap();
    assert_eq!(echo.call(ctx(), json!({"text": "after"})).await.unwrap().text, "echo: after");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_message_past_the_transport_bound_is_dropped_and_the_call_ends_at_its_timeout() {
    let peers = crate::peers!();
    let mut config = peers.py_server("py", "serve");
    config.call_timeout = Duration::from_secs(5);
    let hub = McpHub::start(vec![config]).await.unwrap();
    // 10 MB as text and again as structured content: a 20 MB line, past the 16 MiB bound of
    // the stdio transport, which drops it rather than buffer it.
    let err =
        hub.tool("mcp__py__big_twice").unwrap().call(ctx(), json!({"n": 10_000_000})).await.unwrap_err();
    assert!(matches!(err, ToolError::Timeout { .. }), "{err}");
    let echo = hub.tool("mcp__py__echo").unwrap();
    assert_eq!(echo.call(ctx(), json!({"text": "after"})).await.unwrap().text, "echo: after");
    hub.shutdown().await;
}

#[tokio::test]
async fn images_come_back_as_images() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve")]).await.unwrap();
    let out = hub.tool("mcp__py__picture").unwrap().call(ctx(), json!({})).await.unwrap();
    assert_eq!(out.text, "a red pixel");
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].mime, "image/png");
    assert!(out.images[0].data.starts_with(b"\x89PNG\r\n\x1a\n"));
    hub.shutdown().await;
}

#[tokio::test]
async fn list_changed_refreshes_the_list_and_a_removed_tool_is_refused() {
    let peers = crate::peers!();
    let hub = McpHub::start(vec![peers.py_server("py", "serve")]).await.unwrap();
    let before = hub.tool_list_refreshes("py");
    let big = hub.tool("mcp__py__big").unwrap().clone();
    let grown = hub.tool("mcp__py__grow").unwrap().call(ctx(), json!({})).await.unwrap();
    assert_eq!(grown.text, "grown");
    let mut refreshed = false;
    for _ in 0..600 {
        if hub.tool_list_refreshes("py") > before {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refreshed, "the list was re-read after notifications/tools/list_changed");
    let err = big.call(ctx(), json!({"n": 1})).await.unwrap_err();
    assert!(matches!(err, ToolError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("no longer offers tool \"big\""), "{err}");
    hub.shutdown().await;
}

#[tokio::test]
async fn same_tool_names_on_two_servers_stay_apart_and_sanitising_collisions_are_hashed() {
    let peers = crate::peers!();
    let hub =
        McpHub::start(vec![peers.py_server("py", "serve"), peers.py_server("py2", "serve")]).await.unwrap();
    let a = hub.tool("mcp__py__pid").unwrap().call(ctx(), json!({})).await.unwrap().text;
    let b = hub.tool("mcp__py2__pid").unwrap().call(ctx(), json!({})).await.unwrap().text;
    assert_ne!(a, b, "each name reaches its own server");
    // `twin.tool` and `twin_tool` both sanitise to mcp__py__twin_tool: one keeps the plain name
    // (the first in order, `twin.tool`), the other gets a hash suffix; both reach their tool.
    let plain = hub.name_of("py", "twin.tool").unwrap();
    let hashed = hub.name_of("py", "twin_tool").unwrap();
    assert_eq!(plain, "mcp__py__twin_tool");
    assert!(hashed.starts_with("mcp__py__twin_tool_") && hashed.len() == plain.len() + 9, "{hashed}");
    assert_eq!(hub.tool(plain).unwrap().call(ctx(), json!({})).await.unwrap().text, "dot");
    assert_eq!(hub.tool(hashed).unwrap().call(ctx(), json!({})).await.unwrap().text, "underscore");
    // Selections expand per server and per tool; errors name the key and what exists.
    let sel =
        hub.expand("agents.a.tools", &["calc".into(), "mcp:py2/echo".into(), "mcp:py/*".into()]).unwrap();
    assert_eq!(sel[..2], ["calc".to_owned(), "mcp__py2__echo".to_owned()]);
    assert!(sel.contains(&"mcp__py__die".to_owned()) && !sel.iter().any(|n| n.starts_with("mcp__py2__d")));
    let err = hub.expand("agents.a.tools", &["mcp:nope/*".into()]).unwrap_err();
    assert!(
        matches!(err, McpError::UnknownServer { .. }) && err.to_string().contains("servers: py, py2"),
        "{err}"
    );
    let err = hub.expand("agents.a.tools", &["mcp:py/nope".into()]).unwrap_err();
    assert!(err.to_string().starts_with("agents.a.tools: \"mcp:py/nope\""), "{err}");
    assert!(matches!(hub.expand("k", &["mcp:py".into()]), Err(McpError::BadSelector { .. })));
    // Registering twice is refused, naming the tool.
    let mut registry = ToolRegistry::new();
    hub.register(&mut registry).unwrap();
    let err = hub.register(&mut registry).unwrap_err();
    assert!(matches!(err, McpError::AlreadyRegistered { .. }), "{err}");
    hub.shutdown().await;
}
