//! Queue mode and workers through the binary, on a real PostgreSQL (see
//! `contrib-store/tests/it/pg.rs` for when it runs): `store migrate`, `worker`, `run` in
//! `[runtime] mode = "queue"` (following a run to its end, `--detach`), `serve` enqueueing
//! `agent:NAME` runs for a worker and answering with their outcome, a worker stopped with
//! SIGTERM handing its run to another worker at once, `store copy` (a gateway session's
//! guard state included), and the configuration errors that keep queue mode off SQLite.

use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::common::*;
use crate::pg::PgDb;

const HANG: Duration = Duration::from_secs(300);

fn queue_config(server: &str, url: &str, grace: &str) -> String {
    format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{server}/v1"

[runtime]
streaming = false
checkpoint_interval = "0s"
shutdown_grace = "{grace}"
mode = "queue"

[store]
url = "{url}"
lease_expiry = "30s"

[worker]
concurrency = 2
poll = "200ms"

[agents.helper]
system = "You help."
model = "mock/test-model"
tools = ["calc"]
max_steps = 6
"#
    )
}

/// Starts `executus-run worker` and waits for its start line on stderr.
fn start_worker(ws: &Workspace) -> (Child, std::sync::mpsc::Receiver<String>) {
    let mut child = ws.command(&["worker"]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let ready = loop {
        match rx.recv_timeout(HANG) {
            Ok(line) if line.contains("driving up to") => break true,
            Ok(_) if started.elapsed() < HANG => {}
            _ => break false,
        }
    };
    if !ready {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the worker never printed its start line");
    }
    (child, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queued_runs_are_driven_by_workers_and_followed_to_their_end() {
    let Some(db) = PgDb::create("queued_runs_are_driven_by_workers_and_followed_to_their_end").await else {
        return;
    };
    // Step 1 asks for calc, step 2 answers with the tool result seen.
    let server = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("the sum is 5"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer("c1", "calc", &json!({"expression": "2+3"})))
        }
    })
    .await;
    let ws = Workspace::new(&queue_config(&server.uri(), &db.url, "1s"));
    let out = ws.run(&["store", "migrate"], None).await;
    assert_exit(&out, 0);
    assert!(text(&out.stdout).contains("(postgres): schema up to date"), "{}", text(&out.stdout));

    let (mut worker, _log) = start_worker(&ws);
    let out = ws.run(&["run", "--agent", "helper", "--input", "add 2 and 3", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["status"], "completed", "{doc}");
    assert_eq!(doc["output"], "the sum is 5");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("queued") && stderr.contains("picked by worker"), "{stderr}");

    // --detach: the id at once; the worker drives it anyway.
    let out = ws.run(&["run", "--agent", "helper", "--input", "again", "--detach"], None).await;
    assert_exit(&out, 0);
    let run = text(&out.stdout).trim().to_owned();
    assert!(run.parse::<executus::RunId>().is_ok(), "{run}");
    let store = executus_store::Store::open(&db.url).await.unwrap();
    let queue = store.as_postgres().unwrap().queue();
    let started = Instant::now();
    loop {
        let entry = queue.entry(run.parse().unwrap()).await.unwrap().unwrap();
        if entry.status.as_deref() == Some("completed") {
            break;
        }
        assert!(started.elapsed() < HANG, "the detached run never completed: {entry:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    signal(&worker, "TERM");
    let status = worker.wait().unwrap();
    assert!(status.success(), "SIGTERM: a graceful stop exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_stopped_by_sigterm_hands_its_run_over_at_once() {
    let Some(db) = PgDb::create("a_worker_stopped_by_sigterm_hands_its_run_over_at_once").await else {
        return;
    };
    // The first model call of the run takes long (the worker is stopped during it); every
    // later call answers at once.
    let slow_first = Arc::new(AtomicBool::new(true));
    let server = {
        let slow_first = slow_first.clone();
        openai_server(move |req| {
            if has_tool_result(req) {
                return ResponseTemplate::new(200).set_body_json(text_answer("handed over and done"));
            }
            let answer = ResponseTemplate::new(200).set_body_json(tool_answer(
                "c1",
                "calc",
                &json!({"expression": "1+1"}),
            ));
            // Far longer than the grace: the stop always catches the run in this call.
            if slow_first.swap(false, Ordering::SeqCst) {
                answer.set_delay(Duration::from_secs(20))
            } else {
                answer
            }
        })
        .await
    };
    // Lease expiry 1 h: a takeover within the test's hang guard proves the lease was
    // released, not expired.
    let ws = Workspace::new(
        &queue_config(&server.uri(), &db.url, "200ms")
            .replace("lease_expiry = \"30s\"", "lease_expiry = \"1h\""),
    );
    let (first, first_log) = start_worker(&ws);
    let mut waiter = ws.command(&["run", "--agent", "helper", "--input", "go", "--json"]).spawn().unwrap();
    wait_for_calls(&server, 1).await;
    signal(&first, "TERM");
    let out = wait_exit(first, HANG).await;
    assert_exit(&out, 0);
    let log: Vec<String> = first_log.iter().collect();
    assert!(log.iter().any(|l| l.contains("1 handed over checkpointed")), "{log:?}");
    // Released at once: no lease row is left behind.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let leases: i64 =
        sqlx::query_scalar("SELECT count(*) FROM executus.run_leases").fetch_one(&pool).await.unwrap();
    assert_eq!(leases, 0, "the stopped worker's lease is released, not left to expire");
    pool.close().await;
    let (second, _log2) = start_worker(&ws);
    let status = tokio::task::spawn_blocking(move || waiter.wait().unwrap()).await.unwrap();
    assert!(status.success());
    signal(&second, "TERM");
    assert_exit(&wait_exit(second, HANG).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_copy_moves_a_sqlite_store_into_postgres_once() {
    let Some(db) = PgDb::create("store_copy_moves_a_sqlite_store_into_postgres_once").await else { return };
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("hi"))).await;
    let ws = Workspace::new(&base_config(&server.uri()));
    // Something in the SQLite store: a schedule watermark and a job, through `schedule --list`.
    ws.write_config(&format!(
        "{}\n[schedule.jobs.nightly]\ncron = \"@daily\"\nagent = \"helper\"\ninput = \"go\"\n",
        base_config(&server.uri())
    ));
    assert_exit(&ws.run(&["schedule", "--list"], None).await, 0);
    let sqlite = format!("sqlite://{}/executus.db", ws.path().display());
    // And a gateway session near its finalize hard cap (as `serve` leaves it).
    {
        let store = executus_store::Store::open(&sqlite).await.unwrap();
        let mut state = executus_gateway::guard::SessionState::new();
        for _ in 0..5 {
            state.count_continuation();
        }
        store.gateway_sessions().unwrap().save("key:ci\u{1f}fp:9", &state, 1_000).await.unwrap();
        store.close().await;
    }
    let out = ws.run(&["store", "copy", "--from", &sqlite, "--to", &db.url], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("1 job(s), 1 watermark(s)"), "{stdout}");
    assert!(
        stdout.contains("1 gateway session(s), 0 review cache answer(s), fleet history: 0 activity row(s)"),
        "{stdout}"
    );
    let target = executus_store::Store::open(&db.url).await.unwrap();
    let copied = target.gateway_sessions().unwrap().load("key:ci\u{1f}fp:9").await.unwrap().unwrap();
    assert_eq!(copied.finalize_total, 5, "the session's finalize count moved with it");
    target.close().await;
    let out = ws.run(&["store", "copy", "--from", &sqlite, "--to", &db.url], None).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("not empty"), "{}", text(&out.stderr));
}

#[tokio::test]
async fn queue_mode_and_workers_need_a_postgres_store() {
    let ws = Workspace::new(
        &format!("{}\n", base_config("http://127.0.0.1:9"))
            .replace("[runtime]\n", "[runtime]\nmode = \"queue\"\n"),
    );
    let out = ws.run(&["run", "--agent", "helper", "--input", "x"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("runtime.mode"), "{}", text(&out.stderr));
    let ws = Workspace::new(&base_config("http://127.0.0.1:9"));
    let out = ws.run(&["worker"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("postgres://"), "{}", text(&out.stderr));
    let out = ws.run(&["run", "--agent", "helper", "--input", "x", "--detach"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("--detach"), "{}", text(&out.stderr));
    // A password in the store URL never shows.
    let ws = Workspace::new(
        &base_config("http://127.0.0.1:9")
            .replace("sqlite://{dir}/executus.db", "postgres://ada:hunter2@127.0.0.1:1/x"),
    );
    let out = ws.run(&["config"], None).await;
    assert!(!text(&out.stdout).contains("hunter2") && !text(&out.stderr).contains("hunter2"));
    let out = ws.run(&["store", "migrate"], None).await;
    assert_exit(&out, 1);
    assert!(!text(&out.stderr).contains("hunter2"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("postgres://ada@127.0.0.1:1/x"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_loses_its_lease_connection_stops_and_another_takes_over() {
    let Some(db) =
        PgDb::create("a_worker_that_loses_its_lease_connection_stops_and_another_takes_over").await
    else {
        return;
    };
    let slow_first = Arc::new(AtomicBool::new(true));
    let server = {
        let slow_first = slow_first.clone();
        openai_server(move |req| {
            if has_tool_result(req) {
                return ResponseTemplate::new(200).set_body_json(text_answer("survived"));
            }
            let answer = ResponseTemplate::new(200).set_body_json(tool_answer(
                "c1",
                "calc",
                &json!({"expression": "1+1"}),
            ));
            // Far longer than the lease: the cut always catches the run in this call.
            if slow_first.swap(false, Ordering::SeqCst) {
                answer.set_delay(Duration::from_secs(20))
            } else {
                answer
            }
        })
        .await
    };
    let ws = Workspace::new(
        &queue_config(&server.uri(), &db.url, "1s")
            .replace("lease_expiry = \"30s\"", "lease_expiry = \"2s\""),
    );
    let (first, first_log) = start_worker(&ws);
    let out = ws.run(&["run", "--agent", "helper", "--input", "go", "--detach"], None).await;
    assert_exit(&out, 0);
    let run: executus::RunId = text(&out.stdout).trim().parse().unwrap();
    wait_for_calls(&server, 1).await;
    // The server loses the worker's lease connection (a network cut, a failover).
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT backend_pid FROM executus.run_leases WHERE run_id = $1")
        .bind(run.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query("SELECT pg_terminate_backend($1)").bind(pid).execute(&pool).await.unwrap();
    let out = wait_exit(first, HANG).await;
    assert_exit(&out, 1);
    let log: Vec<String> = first_log.iter().collect();
    assert!(log.iter().any(|l| l.contains("lease connection lost")), "{log:?}");
    // Another worker resumes the run once the lease expired.
    let (second, _log) = start_worker(&ws);
    let store = executus_store::Store::open(&db.url).await.unwrap();
    let queue = store.as_postgres().unwrap().queue();
    let started = Instant::now();
    let entry = loop {
        let entry = queue.entry(run).await.unwrap().unwrap();
        if entry.status.as_deref() == Some("completed") {
            break entry;
        }
        assert!(started.elapsed() < HANG, "the run never completed: {entry:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(entry.picks >= 2, "{entry:?}");
    signal(&second, "TERM");
    assert_exit(&wait_exit(second, HANG).await, 0);
}

/// Reads `executus-run serve`'s stderr until it announces its address.
fn start_serve(ws: &Workspace) -> (Child, String, std::sync::mpsc::Receiver<String>) {
    let mut child =
        ws.command(&["--log", "executus_gateway=info", "serve", "--listen", "127.0.0.1:0"]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let url = loop {
        match rx.recv_timeout(HANG) {
            Ok(line) => {
                if let Some(url) = line.split("listening on ").nth(1) {
                    break url.trim().to_owned();
                }
                assert!(started.elapsed() < HANG, "serve never announced its address");
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("serve never announced its address");
            }
        }
    };
    (child, url, rx)
}

/// The value of `key=` in a log line.
fn log_field(line: &str, key: &str) -> Option<String> {
    let at = line.find(&format!("{key}="))? + key.len() + 1;
    Some(line[at..].split(|c: char| c.is_whitespace()).next()?.trim_matches('"').to_owned())
}

/// `[runtime] mode = "queue"`: `serve` hands `agent:NAME` runs to the queue, a worker drives
/// them, and serve answers each client (whole and streamed) with the run's outcome; a
/// queued run that fails answers like a failed local run (502).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serve_in_queue_mode_enqueues_agent_runs_for_the_workers() {
    let Some(db) = PgDb::create("serve_in_queue_mode_enqueues_agent_runs_for_the_workers").await else {
        return;
    };
    let server = openai_server(|req| {
        if transcript(req).contains("please fail") {
            ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": "bad request upstream", "type": "invalid_request_error"}}),
            )
        } else if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("the sum is 5"))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer("c1", "calc", &json!({"expression": "2+3"})))
        }
    })
    .await;
    let ws = Workspace::new(&queue_config(&server.uri(), &db.url, "1s"));
    assert_exit(&ws.run(&["store", "migrate"], None).await, 0);
    let (mut worker, worker_log) = start_worker(&ws);
    let (mut serve, url, serve_log) = start_serve(&ws);
    let client = reqwest::Client::new();
    let ask = |content: &str, stream: bool| {
        client.post(format!("{url}/v1/chat/completions")).json(&json!({
            "model": "agent:helper",
            "stream": stream,
            "messages": [{"role": "user", "content": content}],
        }))
    };

    let response = tokio::time::timeout(HANG, ask("add 2 and 3", false).send()).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-executus-served-by"], "agent:helper");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "the sum is 5", "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");

    let response = tokio::time::timeout(HANG, ask("add them again", true).send()).await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let sse = tokio::time::timeout(HANG, response.text()).await.unwrap().unwrap();
    let mut answer = String::new();
    let mut finish = None;
    let mut done = false;
    for data in sse.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let chunk: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        if let Some(choice) = chunk["choices"].get(0) {
            answer.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
            if let Some(reason) = choice["finish_reason"].as_str() {
                finish = Some(reason.to_owned());
            }
        }
    }
    assert_eq!(answer, "the sum is 5", "{sse}");
    assert_eq!(finish.as_deref(), Some("stop"), "{sse}");
    assert!(done, "the stream ends with [DONE]: {sse}");

    // A run that fails on the worker is the client's 502, as when driven in-process.
    let response = tokio::time::timeout(HANG, ask("please fail", false).send()).await.unwrap().unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("the agent run failed"), "{body}");

    // Serve named each run; the worker drove every one of them, and only it.
    signal(&serve, "TERM");
    let status = tokio::task::spawn_blocking(move || serve.wait().unwrap()).await.unwrap();
    assert!(status.success(), "a graceful stop exits 0");
    let serve_lines: Vec<String> = serve_log.try_iter().collect();
    let runs: Vec<executus::RunId> = serve_lines
        .iter()
        .filter(|l| l.contains("agent run ended") || l.contains("agent stream ended"))
        .filter_map(|l| log_field(l, "run")?.parse().ok())
        .collect();
    assert_eq!(runs.len(), 3, "{serve_lines:?}");
    let store = executus_store::Store::open(&db.url).await.unwrap();
    let queue = store.as_postgres().unwrap().queue();
    let mut owners = std::collections::BTreeSet::new();
    for run in &runs {
        let entry = queue.entry(*run).await.unwrap().expect("serve's run is in the queue");
        assert_eq!(entry.picks, 1, "{entry:?}");
        owners.insert(entry.picked_by.clone().unwrap());
    }
    assert_eq!(entry_statuses(&queue, &runs).await, ["completed", "completed", "failed"]);
    signal(&worker, "TERM");
    let status = tokio::task::spawn_blocking(move || worker.wait().unwrap()).await.unwrap();
    assert!(status.success());
    let log: Vec<String> = worker_log.try_iter().collect();
    let owner = owners.into_iter().collect::<Vec<_>>();
    assert_eq!(owner.len(), 1, "one worker drove them all: {owner:?}");
    for run in &runs {
        assert!(
            log.iter().any(|l| l.starts_with(&format!("worker {}: run {run} ended", owner[0]))),
            "the worker logged run {run}: {log:?}"
        );
    }
}

async fn entry_statuses(
    queue: &executus_store::postgres::PgRunQueue,
    runs: &[executus::RunId],
) -> Vec<String> {
    let mut out = Vec::new();
    for run in runs {
        out.push(queue.entry(*run).await.unwrap().unwrap().status.unwrap_or_default());
    }
    out
}
