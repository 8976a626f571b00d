//! The crash test: a real child process (`executus-crash-agent`) runs a six-step,
//! tool-using agent with the SQLite store against a loopback mock of the OpenAI Chat
//! Completions API, and is killed with SIGKILL at precise points — before the first step,
//! between steps, while a tool call is in flight, while a checkpoint batch is being written
//! (inside the transaction) — then a fresh process resumes the run from the same file.
//!
//! For every kill point: the run completes; its final transcript equals an uninterrupted
//! run's; each tool call's side effect (a line per call id in a file outside the store)
//! happened exactly once; no step is lost or duplicated. Every execution of the tool is
//! counted too (a log line per execution, repeats included): no process runs a call twice,
//! a call whose result was durable is never run again, and in total each call ran once plus
//! once per killed process that ran it without its result becoming durable.
//!
//! Why exactly once holds: the tool is declared idempotent and is so by construction — it
//! writes its call id unless the file already holds it. The core re-runs an idempotent call
//! that was in flight at the crash, and re-asks the model when the model's answer was not
//! yet durable (model answers are saved lazily; tool results durably); the mock answers a
//! request as a pure function of it (the number of tool results so far), so a re-asked
//! model gives the same call id and the tool recognises it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use executus_store::{Store, StoreOptions};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const AGENT: &str = env!("CARGO_BIN_EXE_executus-crash-agent");
const STEPS: usize = 6;
/// A hang guard: a child reaches its point or ends in well under a second.
const WAIT: Duration = Duration::from_secs(120);

/// The model: answers are a deterministic function of the request.
struct CountingModel;

impl Respond for CountingModel {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return ResponseTemplate::new(400).set_body_string("not JSON");
        };
        let done =
            body["messages"].as_array().map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count());
        let (message, finish) = if done < STEPS {
            let n = done + 1;
            let call = json!({
                "id": format!("call_{n}"),
                "type": "function",
                "function": {"name": "count", "arguments": json!({"n": n}).to_string()},
            });
            (
                json!({"role": "assistant", "content": format!("Step {n}."), "tool_calls": [call]}),
                "tool_calls",
            )
        } else {
            (json!({"role": "assistant", "content": "Counted to six."}), "stop")
        };
        ResponseTemplate::new(200).set_body_json(json!({
            "id": format!("chatcmpl-{done}"),
            "object": "chat.completion",
            "created": 0,
            "model": "crash-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 10 + done, "completion_tokens": 5, "total_tokens": 15 + done},
        }))
    }
}

async fn mock() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(CountingModel)
        .mount(&server)
        .await;
    server
}

/// One database, counter file and result file, shared by the processes of one scenario.
struct Scenario {
    dir: TempDir,
    dsn: String,
}

/// What a finished child reported.
struct Report {
    result: Value,
    batches: u64,
    /// The child found the run interrupted in the store and resumed it.
    resumed: bool,
}

impl Scenario {
    fn new(server: &MockServer) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), dsn: format!("openai+http://{}/v1", server.address()) }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, pause: Option<&str>) -> Command {
        let mut cmd = Command::new(AGENT);
        cmd.arg(self.file("store.db")).arg(self.file("counter.txt")).arg(self.file("result.json"));
        if let Some(point) = pause {
            cmd.arg(point);
        }
        // Only the mock provider: nothing from the developer's environment leaks in.
        cmd.env_clear().env("EXECUTUS_LLM_MOCK", &self.dsn);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        cmd
    }

    /// Starts a child that freezes at `point`, waits until it says so, and SIGKILLs it.
    async fn kill_at(&self, point: &str) {
        let mut child = self.command(Some(point)).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let expected = format!("PAUSED {point}");
        let mut seen = Vec::new();
        let reached = tokio::time::timeout(WAIT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line == expected {
                    return true;
                }
                seen.push(line);
            }
            false
        })
        .await
        .unwrap_or(false);
        // tokio's `kill` is SIGKILL on Unix: no destructor, no flush, no graceful anything.
        child.kill().await.unwrap();
        let status = child.wait().await.unwrap();
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use tokio::io::AsyncReadExt;
            let _ = e.read_to_string(&mut stderr).await;
        }
        assert!(reached, "the child never reached {point}; stdout {seen:?}; stderr: {stderr}");
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL at {point}");
        // Whatever the killed process may have reported is not the resumed run's answer.
        let _ = std::fs::remove_file(self.file("result.json"));
    }

    /// Runs a fresh child to the end of the run and returns its report.
    async fn complete(&self) -> Report {
        let output = tokio::time::timeout(WAIT, self.command(None).output())
            .await
            .expect("the resuming child finishes in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "child failed: {:?}\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        let done = stdout.lines().find_map(|l| l.strip_prefix("DONE ")).expect("a DONE line").to_owned();
        let batches = done.split("batches=").nth(1).and_then(|n| n.trim().parse().ok()).expect("batch count");
        let result = serde_json::from_slice(&std::fs::read(self.file("result.json")).unwrap()).unwrap();
        Report { result, batches, resumed: stdout.lines().any(|l| l == "RESUMED") }
    }

    fn counter(&self) -> Vec<String> {
        lines(&self.file("counter.txt"))
    }

    /// Every execution of the tool so far, in order (a call id per execution).
    fn executions(&self) -> Vec<String> {
        lines(&self.file("counter.calls"))
    }

    /// The call ids whose result is durable in the store (the run's log as the next process
    /// will read it; nothing when the file does not exist yet or the run finished).
    async fn durable(&self) -> BTreeSet<String> {
        use executus::ports::CheckpointStore as _;
        let mut done = BTreeSet::new();
        if !self.file("store.db").exists() {
            return done;
        }
        let store = Store::open_path(self.file("store.db"), StoreOptions::default()).await.unwrap();
        let run = run_id();
        if let Some(stored) = store.checkpoints().load(run).await.unwrap() {
            for entry in &stored.entries {
                if let executus::run::Fact::ToolResult { result, .. } =
                    executus::checkpoint::decode(&entry.payload).unwrap()
                {
                    done.insert(result.id);
                }
            }
        }
        store.close().await;
        done
    }

    /// Runs one process life (`life` spawns it and waits for its end), checking the
    /// executions it made: none of a call that was durable before it, none twice. Returns the
    /// calls it ran.
    async fn life<F: std::future::Future<Output = T>, T>(&self, life: F) -> (T, Vec<String>) {
        let durable = self.durable().await;
        let before = self.executions().len();
        let out = life.await;
        let ran: Vec<String> = self.executions()[before..].to_vec();
        let distinct: BTreeSet<&String> = ran.iter().collect();
        assert_eq!(distinct.len(), ran.len(), "a process ran a call twice: {ran:?}");
        assert!(
            ran.iter().all(|id| !durable.contains(id)),
            "a call whose result was durable ran again: {ran:?} (durable: {durable:?})"
        );
        (out, ran)
    }
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// The crash agent's run (`RUN_ID` in `src/bin/crash_agent.rs`).
fn run_id() -> executus::RunId {
    "0190a0f0-0000-7000-8000-00000000c0de".parse().unwrap()
}

fn expected_counter() -> Vec<String> {
    (1..=STEPS).map(|n| format!("call_{n}")).collect()
}

/// An uninterrupted run, checked for the shape the kill scenarios are compared against.
async fn baseline(server: &MockServer) -> Report {
    let scenario = Scenario::new(server);
    let report = scenario.complete().await;
    assert!(!report.resumed);
    assert_eq!(report.result["end"], "completed");
    assert_eq!(report.result["steps"], json!(STEPS + 1));
    let messages = report.result["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages.iter().map(|m| m["role"].as_str().unwrap()).collect();
    let mut expected_roles = vec!["user"];
    for _ in 0..STEPS {
        expected_roles.extend(["assistant", "tool"]);
    }
    expected_roles.push("assistant");
    assert_eq!(roles, expected_roles);
    assert!(messages[2].to_string().contains("step 1 counted (call call_1 is line 1)"), "{}", messages[2]);
    assert_eq!(scenario.counter(), expected_counter());
    assert_eq!(scenario.executions(), expected_counter(), "each call executed once");
    report
}

/// Kills a fresh scenario at each of `points` in turn (one process per point, all on the
/// same file), resumes, and checks the invariants against the baseline.
async fn survives(points: &[&str]) {
    let server = mock().await;
    let base = baseline(&server).await;
    let scenario = Scenario::new(&server);
    // A call a killed process ran without its result becoming durable runs again later.
    let mut reruns: BTreeMap<String, usize> = BTreeMap::new();
    for point in points {
        let ((), ran) = scenario.life(scenario.kill_at(point)).await;
        let durable = scenario.durable().await;
        for id in ran.into_iter().filter(|id| !durable.contains(id)) {
            *reruns.entry(id).or_default() += 1;
        }
    }
    let (resumed, _) = scenario.life(scenario.complete()).await;
    let mut executions: BTreeMap<String, usize> = BTreeMap::new();
    for id in scenario.executions() {
        *executions.entry(id).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = expected_counter()
        .into_iter()
        .map(|id| (id.clone(), 1 + reruns.get(&id).copied().unwrap_or(0)))
        .collect();
    assert_eq!(executions, expected, "every execution counted after kills at {points:?}");
    println!("kills at {points:?}: calls run again {reruns:?}");
    if points.iter().any(|p| p.starts_with("tool-")) {
        assert!(!reruns.is_empty(), "a call in flight at a kill at {points:?} ran again");
    }
    // Killed before the run's start was durable, the run simply starts (nothing to resume).
    let nothing_stored = matches!(points, ["opened"] | ["staged:1"]);
    assert_eq!(resumed.resumed, !nothing_stored, "resumed from the store after {points:?}");
    assert_eq!(resumed.result["end"], "completed", "after kills at {points:?}");
    assert_eq!(resumed.result["steps"], base.result["steps"], "no step lost or duplicated after {points:?}");
    assert_eq!(
        resumed.result["messages"], base.result["messages"],
        "the transcript after kills at {points:?} equals the uninterrupted one"
    );
    assert_eq!(scenario.counter(), expected_counter(), "each side effect exactly once after {points:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_first_step() {
    // Before the run exists at all; then after its start is durable, before the first
    // model call can begin.
    survives(&["opened"]).await;
    survives(&["committed:1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_steps() {
    // Right after a step's tool result committed, before the run is told so.
    survives(&["committed:3"]).await;
    survives(&["committed:5"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_a_tool_call_is_in_flight() {
    // Before the side effect (the model's answer may not be durable yet), and after it
    // (its result not yet saved).
    survives(&["tool-before:1"]).await;
    survives(&["tool-after:3"]).await;
    survives(&["tool-after:6"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_while_a_checkpoint_batch_is_being_written() {
    // Inside the transaction: rows inserted, not committed.
    survives(&["staged:1"]).await;
    survives(&["staged:4"]).await;
    survives(&["finish-staged"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_again_and_again_while_resuming() {
    // Each kill hits a process that is itself resuming the previous one's run.
    survives(&["tool-after:2", "staged:2", "tool-before:4", "committed:2", "tool-after:6"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chosen_batches_exist_in_an_uninterrupted_run() {
    // The kill points above name batches up to 5: an uninterrupted run commits more than
    // that (start + one per tool result), so none of them is vacuous.
    let server = mock().await;
    let base = baseline(&server).await;
    assert!(base.batches > 5 + 1, "only {} batches", base.batches);
}
