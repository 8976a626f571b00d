//! server-filesystem on a temporary directory behind the `read-only` policy profile: reads
//! go through, a write is blocked by policy before it reaches the server.

use executus::llm::fake::{FakeProvider, Outcome};
use executus::{RunEnd, RunnableAgent};
use executus_mcp::{McpHub, ServerConfig};
use serde_json::json;

use crate::agent::{call, results, runtime};

#[tokio::test]
async fn reads_pass_and_a_write_is_blocked_by_the_read_only_profile() {
    let peers = crate::peers!();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::write(root.join("notes.txt"), "hello from the file").unwrap();
    let mut fs =
        ServerConfig::stdio("fs", peers.filesystem().to_string_lossy(), &[root.to_string_lossy().as_ref()]);
    fs.read_only = vec!["read_text_file".into(), "list_directory".into()];
    let hub = McpHub::start(vec![fs]).await.unwrap();
    assert!(hub.tool("mcp__fs__read_text_file").is_some());

    let fake = FakeProvider::new("fake");
    let notes = root.join("notes.txt").to_string_lossy().into_owned();
    let evil = root.join("evil.txt").to_string_lossy().into_owned();
    fake.push(
        "m",
        Outcome::tool_calls([
            call("r1", "mcp__fs__read_text_file", json!({"path": notes, "head": null, "tail": null})),
            call("w1", "mcp__fs__write_file", json!({"path": evil, "content": "pwned"})),
            call("l1", "mcp__fs__list_directory", json!({"path": root.to_string_lossy()})),
        ]),
    );
    fake.push("m", Outcome::text("done"));
    let rt = runtime(&fake, &hub);
    let mut agent = RunnableAgent::new("reader", "You read.", "fake/m")
        .with_tools(hub.expand("test", &["mcp:fs/*".into()]).unwrap());
    agent.policy_profile = Some("read-only".into());
    let out = rt.run(agent, "read the notes").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    let got = results(&out.messages);
    assert_eq!((got[0].content.as_str(), got[0].is_error), ("hello from the file", false), "{got:?}");
    assert!(got[1].is_error, "{got:?}");
    assert!(got[1].content.starts_with("blocked by policy rule \"read-only\""), "{}", got[1].content);
    assert!(got[2].content.contains("notes.txt") && !got[2].is_error, "{got:?}");
    assert!(!root.join("evil.txt").exists(), "the write never reached the server");
    hub.shutdown().await;
}
