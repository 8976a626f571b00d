//! `executus-run fleet ...` and `auto:*` as a real process against the llama-swap stand-in
//! (`fleet/tests/support/standin.rs`), on a real SQLite store: the status JSON, actions and
//! the lease conflict with `--confirm`, configuration errors naming their key, and — with the
//! llama.cpp peer — the bench, the leaderboard and an agent whose model is `auto:chat`.

use std::sync::Arc;
use std::time::Duration;

use executus_fleet::Leases;
use executus_fleet::clock::SystemClock;
use executus_fleet::store::FleetStore;
use serde_json::{Value, json};

use crate::common::*;
use crate::standin::{ModelDef, Options, Standin};

fn fleet_config(desk: &str, extra: &str) -> String {
    // A port nothing listens on: a host that is down.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).unwrap().port();
    format!(
        r#"
[store]
url = "sqlite://{{dir}}/executus.db"

[fleet.hosts.desk]
base_url = "{desk}"

[fleet.hosts.gone]
base_url = "http://127.0.0.1:{gone}"
{extra}
"#
    )
}

fn llama(test: &str) -> bool {
    if crate::standin::llama_server().is_some() {
        return true;
    }
    let line = format!("SKIPPED {test}: llama-server is not built (../shared/peers/llama-server.sh setup)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{line} (CI=true)");
    }
    eprintln!("{line}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        use std::io::Write as _;
        let _ = writeln!(tty, "{line}");
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn status_json_has_the_documented_shape() {
    let desk =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let ws = Workspace::new(&fleet_config(&desk.url(), ""));
    let out = ws.run(&["fleet", "status", "--json", "--wait", "20s"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    let hosts = doc["hosts"].as_array().expect("hosts");
    assert_eq!(hosts.len(), 2);
    for h in hosts {
        let mut keys: Vec<&str> = h.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["base_url", "in_flight", "liveness", "models", "name", "since"], "{h}");
        assert!(chrono::DateTime::parse_from_rfc3339(h["since"].as_str().unwrap()).is_ok());
    }
    assert_eq!(hosts[0]["name"], "desk");
    assert_eq!(hosts[0]["liveness"], "connected");
    assert_eq!(hosts[0]["models"], json!([{"id": "chat", "state": "stopped"}]));
    assert_eq!(hosts[0]["in_flight"], 0);
    assert_eq!(hosts[1]["name"], "gone");
    assert_eq!(hosts[1]["liveness"], "reconnecting", "a host that refuses is retried");
    // The table, for people.
    let out = ws.run(&["fleet", "status", "--wait", "20s"], None).await;
    assert_exit(&out, 0);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        table.contains("desk") && table.contains("connected") && table.contains("chat (stopped)"),
        "{table}"
    );
    desk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_action_on_a_host_another_process_leased_needs_confirm() {
    let desk =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let ws = Workspace::new(&fleet_config(&desk.url(), ""));
    let out = ws.run(&["fleet", "unload", "--host", "desk", "--model", "chat"], None).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("unload chat on desk: done"));
    assert_eq!(
        desk.requests().iter().filter(|(m, p, _)| m == "POST" && p == "/api/models/unload/chat").count(),
        1
    );

    // This test process holds the host's lease in the same store file, as a bench would.
    let store =
        executus_store::Store::open(&format!("sqlite://{}/executus.db", ws.path().display())).await.unwrap();
    let fleet_store: Arc<dyn FleetStore> = store.fleet().unwrap();
    let leases = Leases::new(Arc::clone(&fleet_store), Arc::new(SystemClock), Duration::from_secs(600));
    let lease = leases.acquire("desk", "bench").await.unwrap();
    let out = ws.run(&["fleet", "unload-all", "--host", "desk"], None).await;
    assert_exit(&out, 1);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(err.contains("leased for bench") && err.contains("--confirm"), "{err}");
    let out = ws.run(&["fleet", "unload-all", "--host", "desk", "--confirm"], None).await;
    assert_exit(&out, 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("took host \"desk\" over"));
    assert!(leases.current("desk").await.unwrap().is_none(), "the lease was revoked");
    let audit: Vec<(String, String)> = fleet_store
        .actions(Some("desk"), 20)
        .await
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| (r.action, r.outcome))
        .collect();
    assert!(audit.contains(&("unload-all".into(), "conflict".into())), "{audit:?}");
    assert!(audit.contains(&("takeover".into(), "done".into())), "{audit:?}");
    assert_eq!(audit.last(), Some(&("unload-all".into(), "done".into())));
    drop(lease);
    let out = ws.run(&["fleet", "load", "--host", "elsewhere", "--model", "chat"], None).await;
    assert_exit(&out, 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown host \"elsewhere\" (configured: desk, gone)")
    );
    desk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fleet_configuration_errors_name_their_key() {
    let cases: &[(&str, &str)] = &[
        ("[fleet.auto.code]\ncandidates = [\"ghost/m\"]\n", "fleet.auto.code.candidates"),
        ("[fleet.auto.code]\ncandidates = [\"no-slash\"]\n", "fleet.auto.code.candidates"),
        ("[fleet.hosts.bad]\nbase_url = \"ftp://x\"\n", "fleet.hosts.bad.base_url"),
        (
            "[fleet.hosts.keyed]\nbase_url = \"http://127.0.0.1:1\"\napi_key_env = \"NOT_SET_ANYWHERE_42\"\n",
            "fleet.hosts.keyed.api_key_env",
        ),
        ("[fleet.retention]\nperf_raw = \"soon\"\n", "fleet.retention.perf_raw"),
        ("[fleet.retention]\nperf_raw = \"30d\"\nperf_buckets = \"1d\"\n", "fleet.retention.perf_buckets"),
        ("[fleet]\nqueue_depth = 0\n", "fleet.queue_depth"),
    ];
    for (extra, key) in cases {
        let ws = Workspace::new(&fleet_config("http://127.0.0.1:9", extra));
        let out = ws.run(&["fleet", "status", "--json"], None).await;
        assert_exit(&out, 2);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(err.contains(key), "{extra}: stderr names {key}: {err}");
    }
    let ws = Workspace::new("[store]\nurl = \"sqlite://{dir}/x.db\"\n");
    let out = ws.run(&["fleet", "status"], None).await;
    assert_exit(&out, 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[fleet.hosts.NAME]"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_leaderboard_and_an_agent_on_auto_chat_against_llama_server() {
    if !llama("fleet::bench_leaderboard_and_an_agent_on_auto_chat_against_llama_server") {
        return;
    }
    let desk =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let extra = r#"
[fleet.auto.chat]
candidates = ["gone/chat", "desk/chat"]

[runtime]
streaming = false
checkpoint_interval = "0s"

[agents.helper]
system = "Answer in one short sentence."
model = "auto:chat"
max_steps = 2
"#;
    let ws = Workspace::new(&fleet_config(&desk.url(), extra));
    let out = ws
        .run(
            &[
                "fleet",
                "bench",
                "--host",
                "desk",
                "--model",
                "chat",
                "--prompt-tokens",
                "16",
                "--gen-tokens",
                "8",
                "--concurrency",
                "1,2",
                "--repetitions",
                "1",
                "--json",
            ],
            None,
        )
        .await;
    assert_exit(&out, 0);
    let run = json_stdout(&out);
    assert_eq!(run["cells"].as_array().map(Vec::len), Some(2));
    for cell in run["cells"].as_array().unwrap() {
        assert!(cell["ttft_ms"]["p50"].as_f64().unwrap() > 0.0, "{cell}");
        assert!(cell["gen_tps"]["p50"].as_f64().unwrap() > 0.0, "{cell}");
        assert_eq!(cell["source"], "timings");
    }
    let out = ws.run(&["fleet", "leaderboard", "--json"], None).await;
    assert_exit(&out, 0);
    let rows: Value = json_stdout(&out);
    assert_eq!(rows[0]["host"], "desk");
    assert_eq!(rows[0]["model"], "chat");

    // An agent whose model is `auto:chat`: the down host is skipped, desk answers.
    let out = ws.run(&["run", "--agent", "helper", "--input", "Say hi.", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert!(desk.requests().iter().any(|(m, p, _)| m == "POST" && p == "/v1/chat/completions"));
    desk.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_prints_the_fleet_then_follows_it_until_sigint() {
    let desk =
        Standin::start(Options { models: vec![ModelDef::new("chat", "tiny-llama3")], ..Options::default() })
            .await;
    let ws = Workspace::new(&fleet_config(&desk.url(), ""));
    let mut child = ws.command(&["fleet", "watch"]).spawn().unwrap();
    let lines = stdout_lines(&mut child);
    let wait_for = move |what: &'static str, pred: fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return (line, lines),
                Ok(_) => {}
                Err(_) => panic!("hang guard: watch never printed {what}"),
            }
        }
    };
    // The table first; desk shows as connected there or in a later line.
    let (_, lines) =
        tokio::task::spawn_blocking(move || wait_for("the table", |l| l.starts_with("HOST"))).await.unwrap();
    let wait_for =
        move |what: &'static str, pred: fn(&str) -> bool, lines: std::sync::mpsc::Receiver<String>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match lines.recv_timeout(left) {
                    Ok(line) if pred(&line) => return (line, lines),
                    Ok(_) => {}
                    Err(_) => panic!("hang guard: watch never printed {what}"),
                }
            }
        };
    let (_, lines) = tokio::task::spawn_blocking(move || {
        wait_for(
            "desk connected",
            |l| l.starts_with("desk  connected") || (l.contains(" desk #") && l.contains("connected;")),
            lines,
        )
    })
    .await
    .unwrap();
    desk.push_activity("chat", 9, 27.5);
    let (line, _lines) = tokio::task::spawn_blocking(move || {
        wait_for("the request", |l| l.contains("request 1 chat 200"), lines)
    })
    .await
    .unwrap();
    assert!(line.contains("9 tokens, 27.5 tok/s"), "{line}");
    signal(&child, "INT");
    let out = wait_exit(child, Duration::from_secs(60)).await;
    assert_exit(&out, 0);
    desk.shutdown().await;
}
