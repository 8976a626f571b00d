//! Secrets through the binary: a slice of the suite runs with distinctive fake keys — one in
//! an `api_key_env` variable, one in an `EXECUTUS_LLM_*` DSN — against servers that echo the
//! key back (in error bodies, headers and stream lines, as real APIs and proxies do), at
//! `--log trace` with `RUST_LOG=trace`. Every byte the processes write (stdout, stderr) and
//! every file in the workspace (the SQLite store with its WAL: chat history, audit rows) is
//! searched for the keys: zero hits. Checkpoint payloads are deflated by the store, so a grep
//! of the files cannot see into them: they are searched decoded, both as the store serves
//! them (every entry of every unfinished run) and as they sit in the files (every deflated
//! entry still in the database, a freed page or the WAL, finished runs' included; see
//! `stored`). `a_key_planted_in_a_checkpoint_is_found` proves the search finds a key there.
//!
//! The slice: provider faults (401, 429, 500, a malformed stream line and a reset, each
//! echoing the key; a refused DSN provider), a failover to the DSN provider, a crash
//! (SIGKILL mid-tool-call) and `resume`, `config`, `models --check`, a budget denial.
//! Audit rows and span attributes are searched in-process by `cli/tests/secrets.rs`.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::*;
use crate::fault_cases::{healthy, is_stream};
use crate::stored;
use crate::tcp_stub::{Received, Step, Stub, head, send};

/// A key no real service issued, unique to this process so a hit is never a coincidence.
fn canary(which: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("sk-EXECUTUS-CANARY-{which}-{nanos:x}")
}

/// The bearer token (or `x-api-key`) a request carried.
fn presented_key(req: &Received) -> String {
    req.head
        .lines()
        .find_map(|l| {
            let lower = l.to_ascii_lowercase();
            if lower.starts_with("authorization:") {
                l.split_once("Bearer ").map(|(_, k)| k.trim().to_owned())
            } else if lower.starts_with("x-api-key:") {
                l.split_once(':').map(|(_, k)| k.trim().to_owned())
            } else {
                None
            }
        })
        .unwrap_or_default()
}

/// How the echoing server misbehaves.
#[derive(Clone, Copy)]
enum Echo {
    /// 401 whose message quotes the key, as OpenAI's does.
    Unauthorized,
    /// 429 with the key in the body and in a header.
    RateLimited,
    /// 500 with the key in the body.
    ServerError,
    /// A stream whose second line is broken JSON holding the key.
    MalformedLine,
    /// A harmless first event, then a reset.
    ResetMidStream,
    /// Healthy (step 1 tool call, then an answer).
    Healthy,
}

fn echo_server_script(mode: Echo, req: &Received) -> Vec<Step> {
    let key = presented_key(req);
    let error = |code: u16, reason: &str, extra: String| {
        let body = json!({"error": {
            "message": format!("Incorrect API key provided: {key}. You can find your API key in your account."),
            "type": "invalid_request_error", "code": "invalid_api_key"
        }})
        .to_string();
        vec![send(format!(
            "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-echo-key: {key}\r\n{extra}connection: close\r\n\r\n{body}",
            body.len()
        ))]
    };
    match mode {
        Echo::Unauthorized => error(401, "Unauthorized", String::new()),
        Echo::RateLimited => {
            error(429, "Too Many Requests", format!("retry-after: 0\r\nx-ratelimit-key: {key}\r\n"))
        }
        Echo::ServerError => error(500, "Internal Server Error", String::new()),
        Echo::MalformedLine if is_stream(req) => vec![
            head("text/event-stream"),
            send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n"),
            send(format!("data: {{\"choices\": [ {key} not json\n\n")),
            Step::Stall,
        ],
        Echo::MalformedLine => {
            let body = format!("{{\"choices\": [ {key} not json");
            vec![send(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            ))]
        }
        Echo::ResetMidStream => vec![
            head("text/event-stream"),
            send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n"),
            Step::Reset,
        ],
        Echo::Healthy => healthy(req, "dsn"),
    }
}

async fn echo_server(mode: Echo) -> Stub {
    Stub::route(move |req| echo_server_script(mode, req)).await
}

/// Everything searched, and the keys searched for.
struct Leaks {
    keys: Vec<String>,
    searched: usize,
    places: usize,
    /// Checkpoint entries read back decoded: from the store, and inflated from the files.
    decoded: usize,
    inflated: usize,
}

impl Leaks {
    fn new(keys: &[&str]) -> Self {
        Self {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            searched: 0,
            places: 0,
            decoded: 0,
            inflated: 0,
        }
    }

    /// Where in `bytes` a key (or its distinctive suffix alone) is, with its surroundings.
    fn find(&self, bytes: &[u8]) -> Option<String> {
        for key in &self.keys {
            let suffix = &key[key.len() - 10..];
            for needle in [key.as_str(), suffix] {
                if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle.as_bytes()) {
                    let around = &bytes[at.saturating_sub(200)..(at + needle.len() + 100).min(bytes.len())];
                    return Some(format!("({needle}):\n...{}...", String::from_utf8_lossy(around)));
                }
            }
        }
        None
    }

    /// Fails on any key (or its distinctive suffix alone) in `bytes`.
    #[track_caller]
    fn check(&mut self, place: &str, bytes: &[u8]) {
        self.searched += bytes.len();
        self.places += 1;
        if let Some(hit) = self.find(bytes) {
            panic!("{place} holds a key {hit}");
        }
    }

    #[track_caller]
    fn output(&mut self, what: &str, out: &Output) {
        self.check(&format!("{what}: stdout"), &out.stdout);
        self.check(&format!("{what}: stderr"), &out.stderr);
    }

    /// Every file under `dir` (the store, its WAL and shared memory, the config), as bytes
    /// and with every deflated checkpoint entry in it inflated.
    fn files(&mut self, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                self.files(&path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                self.check(&format!("file {}", path.display()), &bytes);
                for (i, entry) in stored::deflated_entries(&bytes).iter().enumerate() {
                    self.inflated += 1;
                    self.check(&format!("deflated checkpoint entry {i} in {}", path.display()), entry);
                }
            }
        }
    }

    /// The workspace's files, then every checkpoint entry the store serves, decoded.
    async fn workspace(&mut self, dir: &Path) {
        self.files(dir);
        if dir.join("executus.db").exists() {
            for (i, entry) in stored::live_entries(dir).await.iter().enumerate() {
                self.decoded += 1;
                self.check(&format!("checkpoint entry {i} in {}", dir.display()), entry);
            }
        }
    }
}

fn config(head: &str, streaming: bool, model: &str) -> String {
    format!(
        r#"
[providers.head]
kind = "openai"
base_url = "{head}/v1"
api_key_env = "CANARY_FILE_KEY"
connect_timeout = "300ms"
headers_timeout = "400ms"
idle_timeout = "300ms"

[tiers]
probe = "head/m, dsn/m"

[runtime]
streaming = {streaming}
checkpoint_interval = "0s"
shutdown_grace = "1s"

[store]
url = "sqlite://{{dir}}/executus.db"

[audit]
enabled = true

[agents.keyed]
system = "You compute."
model = "{model}"
tools = ["calc"]
"#
    )
}

/// The binary with both keys in its environment and every log at trace.
fn keyed(ws: &Workspace, file_key: &str, dsn: &str, args: &[&str]) -> std::process::Command {
    let mut full = vec!["--log", "trace"];
    full.extend_from_slice(args);
    let mut command = ws.command(&full);
    command.env("CANARY_FILE_KEY", file_key).env("EXECUTUS_LLM_DSN", dsn).env("RUST_LOG", "trace");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_reaches_any_output_log_or_stored_byte() {
    let file_key = canary("FILE");
    let dsn_key = canary("DSN");
    let mut leaks = Leaks::new(&[&file_key, &dsn_key]);
    let run = ["run", "--agent", "keyed", "--input", "What is 6 x 7?", "--json"];

    // Provider faults echoing the key, streamed and whole; the DSN provider healthy.
    let dsn_server = echo_server(Echo::Healthy).await;
    let dsn = format!("openai+http://{dsn_key}@{}/v1", dsn_server.url().trim_start_matches("http://"));
    let mut runs = 0;
    for mode in
        [Echo::Unauthorized, Echo::RateLimited, Echo::ServerError, Echo::MalformedLine, Echo::ResetMidStream]
    {
        let server = echo_server(mode).await;
        for streaming in [true, false] {
            for model in ["head/m", "head/m, dsn/m"] {
                let ws = Workspace::new(&config(&server.url(), streaming, model));
                let out = ws.run_with(keyed(&ws, &file_key, &dsn, &run), None).await;
                let doc = json_stdout(&out);
                assert_run_json_shape(&doc);
                leaks
                    .output(&format!("run against an echoing server ({model}, streaming {streaming})"), &out);
                leaks.workspace(ws.path()).await;
                runs += 1;
            }
        }
    }

    // A DSN provider whose port refuses connections (its URL once carried the key).
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let refused_dsn = format!("openai+http://{dsn_key}@127.0.0.1:{refused}/v1");
    let server = echo_server(Echo::Healthy).await;
    let ws = Workspace::new(&config(&server.url(), true, "dsn/m"));
    let out = ws.run_with(keyed(&ws, &file_key, &refused_dsn, &run), None).await;
    assert_exit(&out, 1);
    leaks.output("run against a refused DSN provider", &out);

    // `config` and `models --check` (one call per provider, both answering 401 with the key).
    let unauthorized = echo_server(Echo::Unauthorized).await;
    let dsn_401 = format!("openai+http://{dsn_key}@{}/v1", unauthorized.url().trim_start_matches("http://"));
    let ws = Workspace::new(&config(&unauthorized.url(), true, "head/m"));
    let out = ws.run_with(keyed(&ws, &file_key, &dsn_401, &["config"]), None).await;
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("providers.dsn"), "the DSN provider is shown");
    leaks.output("config", &out);
    let out = ws.run_with(keyed(&ws, &file_key, &dsn_401, &["models", "--check"]), None).await;
    assert!(text(&out.stdout).contains("permanent"), "{}", text(&out.stdout));
    leaks.output("models --check", &out);

    // A budget denial.
    let budget = "\n[budget.caps]\ndefault_user = 0.0000001\n[budget.prices]\n\"head/*\" = { input = 1000.0, output = 1000.0 }\n";
    let ws = Workspace::new(&format!("{}{budget}", config(&dsn_server.url(), true, "head/m")));
    let out = ws.run_with(keyed(&ws, &file_key, &dsn, &run), None).await;
    assert_exit(&out, 3);
    leaks.output("run denied by the budget", &out);
    leaks.workspace(ws.path()).await;

    // A crash and a resume: SIGKILL while the model call of step 2 hangs, then resume.
    let hanging = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("late")).set_delay(Duration::from_secs(120))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&config(&hanging.uri(), false, "head/m"));
    let mut child = keyed(&ws, &file_key, &dsn, &run).spawn().unwrap();
    wait_for_calls(&hanging, 2).await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    leaks.output("the killed run", &out);
    let (decoded, inflated) = (leaks.decoded, leaks.inflated);
    leaks.workspace(ws.path()).await;
    // The killed run's checkpoint (the input, the tool call and its result) was read back.
    assert!(leaks.decoded >= decoded + 3, "entries served by the store: {}", leaks.decoded - decoded);
    assert!(leaks.inflated >= inflated + 3, "entries found in the files: {}", leaks.inflated - inflated);
    let answering =
        openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("6 x 7 = 42"))).await;
    ws.write_config(&config(&answering.uri(), false, "head/m"));
    let out = ws.run_with(keyed(&ws, &file_key, &dsn, &["resume", "--json"]), None).await;
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["output"], "6 x 7 = 42");
    leaks.output("resume", &out);
    leaks.workspace(ws.path()).await;
    // The files searched hold the audit rows (`[audit] enabled`): read them back as rows too.
    let audit_rows = audit_rows_text(ws.path()).await;
    assert!(audit_rows.contains("model_call") && audit_rows.contains("tool_call"), "{audit_rows:.2000}");
    leaks.check("audit rows read back from the store", audit_rows.as_bytes());
    // The requests did carry the keys (the search would find them if they leaked).
    let presented: Vec<String> =
        calls(&answering).await.iter().map(|r| format!("{:?}", r.headers.get("authorization"))).collect();
    assert!(presented.iter().all(|h| h.contains(&file_key)), "{presented:?}");
    println!(
        "secrets: {runs} fault runs + refused DSN + config + models --check + budget denial + kill/resume; \
         {} places, {} bytes searched ({} checkpoint entries served by the store, {} inflated from the \
         files), 0 hits",
        leaks.places, leaks.searched, leaks.decoded, leaks.inflated
    );
}

/// The search above must be able to fail: a key planted in a checkpoint (the input of a run
/// killed mid-call, so its log stays in the store) is invisible to a grep of the files,
/// because the store deflates it, and found both in the entries the store serves and in the
/// entries inflated from the files.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_planted_in_a_checkpoint_is_found() {
    let key = canary("PLANTED");
    let hanging = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("late")).set_delay(Duration::from_secs(120))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&base_config(&hanging.uri()));
    let input = format!("Keep this for later, it is my key: {key}. Now, what is 6 x 7?");
    let mut child = ws.command(&["run", "--agent", "helper", "--input", &input]).spawn().unwrap();
    wait_for_calls(&hanging, 2).await;
    child.kill().unwrap();
    let _ = child.wait_with_output().unwrap();

    let leaks = Leaks::new(&[&key]);
    let mut grepped = 0;
    let mut inflated = Vec::new();
    for entry in std::fs::read_dir(ws.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            grepped += bytes.len();
            assert_eq!(leaks.find(&bytes), None, "{} holds the key as plain bytes", path.display());
            inflated.extend(stored::deflated_entries(&bytes));
        }
    }
    assert!(grepped > 0);
    assert!(
        inflated.iter().any(|entry| leaks.find(entry).is_some()),
        "the key is in an entry inflated from the files ({} entries)",
        inflated.len()
    );
    let live = stored::live_entries(ws.path()).await;
    assert!(
        live.iter().any(|entry| leaks.find(entry).is_some()),
        "the key is in an entry the store serves ({} entries)",
        live.len()
    );
}

/// Every audit row in the workspace's store, as text (the audit store's own query).
async fn audit_rows_text(dir: &Path) -> String {
    use executus_audit::{AuditQuery, AuditStore as _};
    let store =
        executus_store::Store::open(&format!("sqlite://{}/executus.db", dir.display())).await.unwrap();
    let page = store.audit().query(&AuditQuery::new().limit(1000)).await.unwrap();
    store.close().await;
    page.records.iter().map(|r| serde_json::to_string(r).unwrap()).collect::<Vec<_>>().join("\n")
}
