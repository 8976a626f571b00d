//! `executus-run serve`: configuration errors, a restart that keeps session state, and real
//! coding agents as clients — Claude Code and Codex (pinned, scripts/peer-gateway.sh) inside a
//! loopback-only network namespace (`unshare -n`, `lo` up) with their telemetry and update
//! checks off, against a scripted upstream (gateway/tests/peers/mock_upstream.py) and the real
//! llama.cpp server:
//!
//! 1. a tool round trip (the file the tool read comes back in the agent's answer);
//! 2. a model that makes the agent loop: the session id stays the agent's own across its
//!    requests, the finalize turn breaks the loop (same call: cycle; distinct failing calls:
//!    unproductive streak), the session's hard cap ends a later looping task, and the agent
//!    exits 0 every time;
//! 3. a policy that blocks one tool: the agent is told, and exits cleanly.
//!
//! Under `CI=true` a missing agent, `unshare` or llama.cpp fails the test; otherwise it says so
//! loudly and returns.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{BIN, Workspace};
use crate::tcp_stub::{Received, Step, Stub, send};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn missing(test: &str, what: &str) {
    let message = format!("NOTICE serve::{test}: {what} — this scenario did NOT run");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true: every peer must be present)");
    }
    eprintln!("{message}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{message}");
    }
}

// ------------------------------------------------------------------ configuration and restart

#[tokio::test]
async fn a_non_loopback_listen_without_keys_is_refused_with_exit_2() {
    let ws = Workspace::new("[serve]\nlisten = \"0.0.0.0:0\"\n");
    let out = ws.run(&["serve"], None).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("[serve] listen") && stderr.contains("no keys"), "{stderr}");
    let out = ws.run(&["serve", "--listen", "[::]:0"], None).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn serve_configuration_errors_name_the_key() {
    for (toml, expected) in [
        ("[serve.keys.alice]\nkey_env = \"EXECUTUS_TEST_UNSET_KEY_VAR\"\n", "serve.keys.alice.key_env"),
        ("[serve.keys.bob]\nsha256 = \"abc\"\n", "serve.keys.bob.sha256"),
        ("[serve.loops]\ncycle = 1\n", "serve.loops.cycle"),
        ("[serve]\nlisten = \"here\"\n", "serve.listen"),
        ("[serve]\nprofile = \"nope\"\n", "serve.profile"),
        (
            "[serve.keys.c]\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nbudget = 1.0\n",
            "serve.keys.c.budget",
        ),
        (
            "[serve.keys.d]\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nfleet = \"admin\"\n",
            "serve.keys.d.fleet",
        ),
    ] {
        let ws = Workspace::new(toml);
        let out = ws.run(&["serve"], None).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{toml}: {stderr}");
        assert!(stderr.contains(expected), "{toml}: {stderr}");
    }
}

/// A running `executus-run serve`.
struct Serving {
    child: std::process::Child,
    url: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Serving {
    fn start(ws: &Workspace) -> Self {
        let mut command = ws.command(&["--log", "executus_gateway=info", "serve", "--listen", "127.0.0.1:0"]);
        command.stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = rx.recv_timeout(Duration::from_secs(120)).expect("serve announced its address");
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_owned();
            }
        };
        Self { child, url, stderr: rx }
    }

    /// Sends SIGTERM and waits for the exit; returns its code and the rest of stderr.
    fn stop(mut self) -> (Option<i32>, String) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), rest.join("\n"))
    }
}

/// An upstream that always calls `Read` on the same file.
fn looping(r: &Received) -> Vec<Step> {
    let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let message = if body.get("tools").is_some() {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": format!("call_{}", body["messages"].as_array().map_or(0, Vec::len)), "type": "function", "function": {"name": "Read", "arguments": "{\"path\":\"same\"}"}}]})
    } else {
        json!({"role": "assistant", "content": "wrapping up"})
    };
    let text = json!({"id": "x", "object": "chat.completion", "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).to_string();
    vec![send(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    ))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_survives_a_restart_in_the_store() {
    let stub = Stub::route(looping).await;
    let ws = Workspace::new(&format!(
        "[providers.mock]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n[store]\nurl = \"sqlite://{{dir}}/store.db\"\n[serve.loops]\nfinalize_hard_cap = 1\n",
        stub.url()
    ));
    let client = reqwest::Client::new();
    let mut messages = vec![json!({"role": "user", "content": "loop please"})];
    let tools = json!([{"type": "function", "function": {"name": "Read", "parameters": {"type": "object"}}}]);
    for task in 0..2 {
        let serving = Serving::start(&ws);
        let mut last_headers = None;
        for _ in 0..10 {
            let response = client
                .post(format!("{}/v1/chat/completions", serving.url))
                .json(&json!({"model": "mock/m", "messages": messages, "tools": tools}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            last_headers = Some(response.headers().clone());
            let body: Value = response.json().await.unwrap();
            let message = body["choices"][0]["message"].clone();
            messages.push(message.clone());
            let Some(calls) = message["tool_calls"].as_array().cloned() else { break };
            for call in calls {
                messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "same"}));
            }
        }
        let applied = last_headers.unwrap()["x-executus-applied-policies"].to_str().unwrap().to_owned();
        let (code, log) = serving.stop();
        assert_eq!(code, Some(0), "a graceful stop exits 0: {log}");
        if task == 0 {
            assert!(applied.contains("loops:finalize"), "{applied}");
        } else {
            assert!(applied.contains("loops:stop"), "the hard cap survived the restart: {applied}");
        }
        messages.push(json!({"role": "user", "content": "again"}));
    }
}

// ------------------------------------------------------------------ the fleet's views

/// `[fleet.hosts.*]` configured: `serve` answers `/fleet` and `/api/fleet/*` next to the
/// gateway's routes. With keys, only a key given `fleet = "view"` sees them (a header or the
/// login cookie), acting needs `"act"`; without keys on loopback everyone there may look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_mounts_the_fleet_views_behind_the_gateway_keys() {
    // SHA-256 of "sk-alice" and "sk-bob".
    let ws = Workspace::new(
        "[store]\nurl = \"sqlite://{dir}/store.db\"\n[fleet.hosts.gone]\nbase_url = \"http://127.0.0.1:1\"\n\
         [serve.keys.alice]\nsha256 = \"099295a3784e1bd368dc348843a7398c1931b6b8ec2504c73e91ed2040bdc46c\"\nfleet = \"view\"\n\
         [serve.keys.bob]\nsha256 = \"36c76b48bb2ee1d9d37140550e9d7ed7d395cf56f41050dc2a72e5291c0011f0\"\n",
    );
    let serving = Serving::start(&ws);
    let client = reqwest::Client::new();
    let get = |path: &str, key: Option<&str>| {
        let mut request = client.get(format!("{}{path}", serving.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    assert_eq!(get("/fleet", None).await.unwrap().status(), 401, "no key");
    assert_eq!(get("/api/fleet/status", None).await.unwrap().status(), 401, "no key");
    assert_eq!(get("/fleet", Some("sk-wrong")).await.unwrap().status(), 401, "unknown key");
    assert_eq!(get("/fleet", Some("sk-bob")).await.unwrap().status(), 401, "a key without fleet access");
    let page = get("/fleet", Some("sk-alice")).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("gone"), "the page lists the configured host");
    let status: Value = get("/api/fleet/status", Some("sk-alice")).await.unwrap().json().await.unwrap();
    assert_eq!(status["hosts"][0]["name"], "gone", "{status}");
    // The login cookie works like the header.
    let cookie = client
        .get(format!("{}/fleet", serving.url))
        .header("cookie", "executus_fleet_key=sk-alice")
        .send()
        .await
        .unwrap();
    assert_eq!(cookie.status(), 200);
    // A view key may not act.
    let act = client
        .post(format!("{}/api/fleet/actions", serving.url))
        .bearer_auth("sk-alice")
        .json(&json!({"host": "gone", "action": "unload-all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(act.status(), 403);
    // The gateway's own routes are still there, and still keyed.
    assert_eq!(get("/healthz", None).await.unwrap().status(), 200);
    assert_eq!(get("/v1/models", None).await.unwrap().status(), 401);
    let (code, log) = serving.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(!log.contains("sk-alice"), "no key in the log: {log}");

    // No keys, loopback: the views are open to loopback peers.
    let open = Workspace::new(
        "[store]\nurl = \"sqlite://{dir}/store.db\"\n[fleet.hosts.gone]\nbase_url = \"http://127.0.0.1:1\"\n",
    );
    let serving = Serving::start(&open);
    let page = client.get(format!("{}/fleet", serving.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let (code, log) = serving.stop();
    assert_eq!(code, Some(0), "{log}");
}

// ------------------------------------------------------------------ agents in a network namespace

/// What the agent scenarios need on this machine.
struct Peers {
    claude: PathBuf,
    codex: PathBuf,
}

fn peers(test: &str) -> Option<Peers> {
    let bin = root().join("target/peers/gateway/npm/node_modules/.bin");
    let (claude, codex) = (bin.join("claude"), bin.join("codex"));
    if !claude.exists() || !codex.exists() {
        missing(test, "Claude Code / Codex are not installed (run scripts/peer-gateway.sh)");
        return None;
    }
    let netns = std::process::Command::new("unshare")
        .args(["-n", "ip", "link", "set", "lo", "up"])
        .status()
        .is_ok_and(|s| s.success());
    if !netns {
        missing(
            test,
            "`unshare -n` with `ip link set lo up` is not available (the agents only run in a loopback-only namespace)",
        );
        return None;
    }
    Some(Peers { claude, codex })
}

/// The llama.cpp binary and model of scripts/peer-llama.sh's cache.
fn llama(test: &str) -> Option<(PathBuf, PathBuf)> {
    let cache = std::env::var_os("EXECUTUS_PEERS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/executus-peers")
    });
    let (server, model) =
        (cache.join("llama.cpp/build/bin/llama-server"), cache.join("models/tiny-llama3.gguf"));
    if server.exists() && model.exists() {
        Some((server, model))
    } else {
        missing(test, "llama.cpp is not set up (run scripts/peer-llama.sh)");
        None
    }
}

/// A scenario's folder (under target/, since Codex refuses a home under /tmp).
struct Scene {
    dir: tempfile::TempDir,
}

const MOCK_PORT: u16 = 19001;
const SERVE_PORT: u16 = 19002;
const LLAMA_PORT: u16 = 19003;

impl Scene {
    /// A scene whose gateway has `serve` lines in `[serve]` and `config` besides; Codex asks
    /// for `codex_model`, Claude Code for `probe-model` unless told otherwise.
    fn new(name: &str, codex_model: &str, serve: &str, config: &str) -> Self {
        let base = root().join("target/tmp-serve");
        std::fs::create_dir_all(&base).unwrap();
        let dir = tempfile::Builder::new().prefix(name).tempdir_in(base).unwrap();
        let scene = Self { dir };
        let full = format!(
            "[store]\nurl = \"sqlite://{}/store.db\"\n[serve]\nlisten = \"127.0.0.1:{SERVE_PORT}\"\n{serve}\n{config}",
            scene.path().display()
        );
        std::fs::write(scene.path().join("executus.toml"), full).unwrap();
        std::fs::write(scene.path().join("notes.txt"), "SECRET-CONTENT-42 from the notes file\n").unwrap();
        let codex = scene.path().join("codex");
        std::fs::create_dir_all(&codex).unwrap();
        std::fs::write(
            codex.join("config.toml"),
            format!(
                "model = \"{codex_model}\"\nmodel_provider = \"gw\"\napproval_policy = \"never\"\nsandbox_mode = \"read-only\"\n\
                 check_for_update_on_startup = false\n[model_providers.gw]\nname = \"executus\"\n\
                 base_url = \"http://127.0.0.1:{SERVE_PORT}/v1\"\nenv_key = \"GW_API_KEY\"\nwire_api = \"responses\"\n\
                 request_max_retries = 0\nstream_max_retries = 0\n[analytics]\nenabled = false\n[features]\nplugins = false\nremote_plugin = false\n"
            ),
        )
        .unwrap();
        scene
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_default()
    }

    /// The exit code an agent run wrote.
    fn code(&self, run: &str) -> Option<i32> {
        self.read(&format!("{run}.code")).trim().parse().ok()
    }

    /// Everything about a run, for failure messages.
    fn report(&self, run: &str) -> String {
        format!(
            "--- {run} stdout:\n{}\n--- {run} stderr (tail):\n{}\n--- serve stderr (tail):\n{}",
            self.read(&format!("{run}.out")),
            tail(&self.read(&format!("{run}.err")), 30),
            tail(&self.read("serve.err"), 40)
        )
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Claude Code run (`claude -p`) named `run`, with extra arguments.
fn claude(peers: &Peers, run: &str, prompt: &str, extra: &str) -> String {
    format!(
        "ANTHROPIC_BASE_URL=http://127.0.0.1:{SERVE_PORT} ANTHROPIC_API_KEY=dummy DISABLE_TELEMETRY=1 \
         DISABLE_AUTOUPDATER=1 DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
         timeout 300 '{}' -p '{prompt}' --model probe-model {extra} < /dev/null > {run}.out 2> {run}.err; echo $? > {run}.code",
        peers.claude.display()
    )
}

/// A Codex run (`codex exec`) named `run`.
fn codex(peers: &Peers, run: &str, prompt: &str) -> String {
    format!(
        "CODEX_HOME=$PWD/codex GW_API_KEY=dummy timeout 300 '{}' exec --skip-git-repo-check '{prompt}' \
         < /dev/null > {run}.out 2> {run}.err; echo $? > {run}.code",
        peers.codex.display()
    )
}

/// The scripted upstream, calling `tool` with `args` in `scenario`.
fn mock(scenario: &str, tool: &str, args: &Value) -> String {
    format!(
        "MOCK_TOOL='{tool}' MOCK_ARGS='{args}' python3 '{}' {MOCK_PORT} {scenario} mock.log > mock.out 2>&1 &\n\
         for i in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/{MOCK_PORT}) 2>/dev/null && break; sleep 0.1; done",
        root().join("gateway/tests/peers/mock_upstream.py").display()
    )
}

/// Runs `setup` (upstreams), `serve`, then `runs` (agent commands) inside a new network
/// namespace with only loopback, then stops `serve` with SIGTERM.
async fn run_scene(scene: &Scene, setup: &str, runs: &[String]) {
    let script = format!(
        "set -u\nip link set lo up\ncd '{dir}'\nexport HOME='{dir}/home'\nmkdir -p \"$HOME\"\n{setup}\n\
         '{bin}' --log executus_gateway=info --config executus.toml serve > serve.out 2> serve.err &\nSERVE=$!\n\
         for i in $(seq 1 600); do grep -q 'listening on' serve.err && break; sleep 0.1; done\n\
         {runs}\nkill -TERM $SERVE\nwait $SERVE\necho $? > serve.code\nkill $(jobs -p) 2>/dev/null\nwait\n",
        dir = scene.path().display(),
        bin = BIN,
        runs = runs.join("\n"),
    );
    std::fs::write(scene.path().join("scene.sh"), &script).unwrap();
    let mut command = tokio::process::Command::new("unshare");
    command.arg("-n").arg("bash").arg(scene.path().join("scene.sh")).kill_on_drop(true);
    let status = tokio::time::timeout(Duration::from_secs(1200), command.status())
        .await
        .expect("the scene finished (hang guard)")
        .expect("unshare runs");
    assert!(status.success(), "scene script failed: {status}\n{}", tail(&scene.read("serve.err"), 40));
    assert_eq!(
        scene.read("serve.code").trim(),
        "0",
        "serve stops gracefully with 0:\n{}",
        tail(&scene.read("serve.err"), 40)
    );
}

/// The `sess=` values of the gateway's request log lines.
fn sessions(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("executus_gateway: request "))
        .filter_map(|l| l.split("sess=").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or_default().trim_matches('"').to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_make_a_tool_round_trip_through_serve() {
    let test = "agents_make_a_tool_round_trip_through_serve";
    let Some(peers) = peers(test) else { return };
    // Claude Code reads with `Read`, Codex runs `exec_command`: one scripted upstream each.
    let config = "[providers.mock]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19001/v1\"\n\
                  [providers.mock2]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19004/v1\"\n\
                  [tiers]\nprobe-model = \"mock/probe-model\"\n";
    let scene = Scene::new("roundtrip", "mock2/probe-model", "", config);
    let notes = scene.path().join("notes.txt").display().to_string();
    let setup = [
        mock("roundtrip", "Read", &json!({"file_path": notes})),
        mock_on(19004, "roundtrip", "exec_command", &json!({"cmd": format!("cat {notes}")})),
    ]
    .join("\n");
    run_scene(
        &scene,
        &setup,
        &[
            claude(&peers, "claude", "Read notes.txt and tell me what it says", ""),
            codex(&peers, "codex", "Read notes.txt and tell me what it says"),
        ],
    )
    .await;
    for run in ["claude", "codex"] {
        assert_eq!(scene.code(run), Some(0), "{}", scene.report(run));
        let out = scene.read(&format!("{run}.out"));
        assert!(
            out.contains("ROUNDTRIP-OK") && out.contains("SECRET-CONTENT-42"),
            "the tool's result came back: {}",
            scene.report(run)
        );
    }
    let log = scene.read("serve.err");
    assert!(
        log.contains("served_by=mock/probe-model") && log.contains("served_by=mock2/probe-model"),
        "{}",
        tail(&log, 40)
    );
    assert!(
        log.contains("x-codex-turn-metadata=<"),
        "the machine details Codex sends are masked: {}",
        tail(&log, 40)
    );
}

/// `mock` on another port.
fn mock_on(port: u16, scenario: &str, tool: &str, args: &Value) -> String {
    mock(scenario, tool, args)
        .replace(&MOCK_PORT.to_string(), &port.to_string())
        .replace("mock.log", &format!("mock{port}.log"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn looping_agents_are_stopped_cleanly_with_a_stable_session() {
    let test = "looping_agents_are_stopped_cleanly_with_a_stable_session";
    let Some(peers) = peers(test) else { return };
    let config = "[providers.same]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19001/v1\"\n\
                  [providers.distinct]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19004/v1\"\n\
                  [providers.codexloop]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19005/v1\"\n\
                  [tiers]\nprobe-model = \"same/probe-model\"\n[serve.loops]\nfinalize_hard_cap = 2\n";
    let scene = Scene::new("loops", "codexloop/probe-model", "", config);
    let notes = scene.path().join("notes.txt").display().to_string();
    let missing_file = scene.path().join("missing").display().to_string();
    let setup = [
        mock("loop-same", "Read", &json!({"file_path": notes})),
        mock_on(19004, "loop-distinct", "Read", &json!({"file_path": missing_file})),
        mock_on(19005, "loop-same", "exec_command", &json!({"cmd": "true"})),
    ]
    .join("\n");
    let session = "5f0c4e2a-1b7d-4c55-9a0e-3f1d2c3b4a59";
    let runs = [
        // The same call again and again: the cycle detector.
        claude(&peers, "same", "Study notes.txt", &format!("--session-id {session}")),
        // Distinct calls that all fail: the unproductive streak.
        claude(&peers, "distinct", "Find the missing files", "--model distinct/probe-model"),
        // The first session again: its second finalize turn (the cap is 2).
        claude(&peers, "again", "Study it once more", &format!("--resume {session}")),
        // And a third looping task: past the hard cap, the gateway ends the turn itself.
        claude(&peers, "capped", "And once more", &format!("--resume {session}")),
        codex(&peers, "codex", "Check the repository"),
    ];
    run_scene(&scene, &setup, &runs).await;
    let log = scene.read("serve.err");
    for run in ["same", "distinct", "again", "capped", "codex"] {
        assert_eq!(scene.code(run), Some(0), "the agent exits cleanly: {}", scene.report(run));
    }
    assert!(scene.read("same.out").contains("FINALIZED"), "{}", scene.report("same"));
    assert!(scene.read("again.out").contains("FINALIZED"), "{}", scene.report("again"));
    assert!(scene.read("capped.out").contains("hard cap (2)"), "{}", scene.report("capped"));
    assert!(scene.read("distinct.out").contains("FINALIZED"), "{}", scene.report("distinct"));
    assert!(scene.read("codex.out").contains("FINALIZED"), "{}", scene.report("codex"));
    assert!(
        log.contains("trigger=\"cycle\"") && log.contains("trigger=\"unproductive\""),
        "{}",
        tail(&log, 60)
    );
    let ids = sessions(&log);
    let ours: Vec<&String> = ids.iter().filter(|s| s.as_str() == session).collect();
    assert!(
        ours.len() >= 6,
        "the looping session's requests all carry Claude Code's own session id: {ids:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_tool_is_explained_to_the_agent_which_carries_on() {
    let test = "a_blocked_tool_is_explained_to_the_agent_which_carries_on";
    let Some(peers) = peers(test) else { return };
    let config = "[providers.mock]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19001/v1\"\n\
                  [providers.mock2]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:19004/v1\"\n\
                  [tiers]\nprobe-model = \"mock/probe-model\"\n\
                  [[policy.profiles.guarded.rules]]\nid = \"no-notes\"\ntool = \"Read\"\n\
                  args = { \"/file_path\" = \"*notes*\" }\naction = \"block\"\nhint = \"Reading the notes is not allowed here.\"\n\
                  [[policy.profiles.guarded.rules]]\nid = \"no-notes-shell\"\ntool = \"exec_command\"\n\
                  args = { \"/cmd\" = \"*notes*\" }\naction = \"block\"\nhint = \"Reading the notes is not allowed here.\"\n";
    let scene = Scene::new("block", "mock2/probe-model", "profile = \"guarded\"", config);
    let notes = scene.path().join("notes.txt").display().to_string();
    let setup = [
        mock("block", "Read", &json!({"file_path": notes})),
        mock_on(19004, "block", "exec_command", &json!({"cmd": format!("cat {notes}")})),
    ]
    .join("\n");
    run_scene(
        &scene,
        &setup,
        &[claude(&peers, "claude", "Read notes.txt", ""), codex(&peers, "codex", "Read notes.txt")],
    )
    .await;
    for run in ["claude", "codex"] {
        assert_eq!(scene.code(run), Some(0), "{}", scene.report(run));
        let out = scene.read(&format!("{run}.out"));
        assert!(
            out.contains("Reading the notes is not allowed here"),
            "the agent saw the block: {}",
            scene.report(run)
        );
        assert!(!out.contains("SECRET-CONTENT-42"), "the blocked tool never ran: {}", scene.report(run));
    }
    let log = scene.read("serve.err");
    assert!(log.contains("decision=\"block\""), "{}", tail(&log, 40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_reach_the_real_llama_server_through_serve() {
    let test = "agents_reach_the_real_llama_server_through_serve";
    let Some(peers) = peers(test) else { return };
    let Some((server, model)) = llama(test) else { return };
    // Claude Code through llama.cpp's Anthropic endpoint, Codex through its OpenAI one. The
    // agents' prompts and tool lists are large: the server gets a 64k context (the tiny model
    // says it was trained for 4k, which the server would cap the slots to otherwise).
    let config = format!(
        "[providers.llama]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{LLAMA_PORT}/v1\"\nheaders_timeout = \"600s\"\n\
         [providers.llama-messages]\nkind = \"anthropic\"\nbase_url = \"http://127.0.0.1:{LLAMA_PORT}\"\nheaders_timeout = \"600s\"\n\
         [tiers]\nprobe-model = \"llama-messages/tiny-llama3\"\n"
    );
    let scene = Scene::new("llama", "llama/tiny-llama3", "", &config);
    let setup = format!(
        "'{}' -m '{}' -a tiny-llama3 --host 127.0.0.1 --port {LLAMA_PORT} --jinja -c 65536 --override-kv llama.context_length=int:65536 -n 64 -t 2 --no-webui > llama.log 2>&1 &\n\
         for i in $(seq 1 600); do (exec 3<>/dev/tcp/127.0.0.1/{LLAMA_PORT}) 2>/dev/null && grep -q 'server is listening' llama.log && break; sleep 0.2; done",
        server.display(),
        model.display()
    );
    // llama.cpp's own tool-call parser rejects some of the random tiny model's outputs (its
    // 500 "does not match the expected ... format" reaches the agent unchanged, as any
    // upstream error would): such a run is repeated, up to four attempts in all. Any other
    // failure fails the test.
    let again = |run: &str, command: String| {
        format!(
            "for attempt in 1 2 3 4; do {command}; grep -q 'does not match the expected' {run}.err || break; \
             echo \"{run}: attempt $attempt hit the parser\" >> retries.log; done"
        )
    };
    run_scene(
        &scene,
        &setup,
        &[
            again("claude", claude(&peers, "claude", "Say hello.", "")),
            again("codex", codex(&peers, "codex", "Say hello.")),
        ],
    )
    .await;
    for run in ["claude", "codex"] {
        assert_eq!(scene.code(run), Some(0), "{}\n{}", scene.report(run), scene.read("retries.log"));
    }
    let log = scene.read("serve.err");
    assert!(
        log.contains("served_by=llama-messages/tiny-llama3"),
        "Claude Code's turn was answered by llama.cpp: {}",
        tail(&log, 40)
    );
    assert!(
        log.contains("served_by=llama/tiny-llama3"),
        "Codex's turn was answered by llama.cpp: {}",
        tail(&log, 40)
    );
    assert!(!log.contains(" refused "), "{}", tail(&log, 40));
}
