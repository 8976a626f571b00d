//! The crash test: a real child process (`executus-crash-agent`) runs a six-step,
//! tool-using agent with the SQLite store against a loopback mock of the OpenAI Chat
//! Completions API, and is killed with SIGKILL at precise points — before the first step,
//! between steps, while a tool call is in flight, while a checkpoint batch is being written
//! (inside the transaction) — then a fresh process resumes the run from the same file.
//!
//! For every kill point: the run completes; its final transcript equals an uninterrupted
//! run's; each tool call's side effect (a line per call id in a file outside the store)
//! happened exactly once; no step is lost or duplicated.
//!
//! Why exactly once holds: the tool is declared idempotent and is so by construction — it
//! writes its call id unless the file already holds it. The core re-runs an idempotent call
//! that was in flight at the crash, and re-asks the model when the model's answer was not
//! yet durable (model answers are saved lazily; tool results durably); the mock answers a
//! request as a pure function of it (the number of tool results so far), so a re-asked
//! model gives the same call id and the tool recognises it.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const AGENT: &str = env!("CARGO_BIN_EXE_executus-crash-agent");
const STEPS: usize = 6;
const WAIT: Duration = Duration::from_secs(30);

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
        std::fs::read_to_string(self.file("counter.txt"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
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
    report
}

/// Kills a fresh scenario at each of `points` in turn (one process per point, all on the
/// same file), resumes, and checks the invariants against the baseline.
async fn survives(points: &[&str]) {
    let server = mock().await;
    let base = baseline(&server).await;
    let scenario = Scenario::new(&server);
    for point in points {
        scenario.kill_at(point).await;
    }
    let resumed = scenario.complete().await;
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
