//! Crash and restart through the binary and the SQLite store: a 10-tool-step run (an agent
//! whose loopback model asks for `web_fetch` of `/hit/K` at step K, deterministically by the
//! number of tool results it has seen, and answers after the tenth) is killed with SIGKILL
//! at chosen points and finished by `executus-run resume`.
//!
//! The side effect lives outside the store: a loopback "marker" server (allow-listed for
//! `web_fetch`) counts GETs per call. Kill points are found by markers, not guessed: the
//! model server or the marker server holds the request of the armed point and reports it,
//! and the test kills the process while that call is in flight — `Model(K)`: step K's model
//! call; `Tool(K)`: step K's tool call.
//!
//! After every kill the test reads the SQLite file as a new process would and notes which
//! calls have a checkpointed result (completed) and how often each ran so far. The
//! invariants: every run completes; a call completed in the store is never executed again
//! (its count never moves); a call in flight at the kill runs again (web_fetch is
//! idempotent); the final transcript has each of the ten calls and results exactly once, in
//! order, and 11 steps (no step lost, none doubled).
//!
//! In the normal test run (and CI): the gauntlet (one run killed at all 20 points in turn,
//! each resume killed at the next point), two single kills, four independent runs killed at
//! the first and last step's model and tool calls, and 3 runs killed at random times, over
//! and over, until they finish. The full forms (`scripts/reliability.sh`, the figures in
//! RELIABILITY.md): `EXECUTUS_CRASH_FULL=1` kills each of the 20 points in its own run and
//! `EXECUTUS_CRASH_RANDOM=N` kills N runs at random times.
//!
//! SIGTERM: `run` and `schedule` shut down gracefully — the in-flight run gets
//! `[runtime] shutdown_grace`, is checkpointed, the process exits (within 2 s of the signal,
//! checked when `EXECUTUS_STRICT_TIMERS=1`) — and `resume` finishes the run.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

/// Tool steps of the run (then one answering step).
const STEPS: u32 = 10;
/// How long a held request waits (far past any kill).
const HOLD: Duration = Duration::from_secs(120);

/// Where a process is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// While step K's model call is in flight.
    Model(u32),
    /// While step K's tool call (GET /hit/K) is in flight.
    Tool(u32),
}

/// All 20 points, in the order a run passes them.
fn points() -> Vec<Point> {
    (1..=STEPS).flat_map(|k| [Point::Model(k), Point::Tool(k)]).collect()
}

#[derive(Default)]
struct Shared {
    /// GETs per call number.
    hits: Mutex<BTreeMap<u32, u32>>,
    armed: Mutex<Option<Point>>,
    reached: AtomicBool,
    /// The model has given the final answer (to some process).
    answered: AtomicBool,
}

impl Shared {
    fn hold(&self, point: Point) -> bool {
        let armed = *self.armed.lock().unwrap();
        if armed == Some(point) {
            self.reached.store(true, Ordering::SeqCst);
            true
        } else {
            false
        }
    }

    fn arm(&self, point: Option<Point>) {
        *self.armed.lock().unwrap() = point;
        self.reached.store(false, Ordering::SeqCst);
    }

    fn hits(&self) -> BTreeMap<u32, u32> {
        self.hits.lock().unwrap().clone()
    }
}

/// The model server, the marker server and a workspace whose configuration points at both.
struct Harness {
    _model: MockServer,
    _marker: MockServer,
    shared: Arc<Shared>,
    ws: Workspace,
    /// For each call seen completed in the store after a kill: its count at that moment.
    frozen: BTreeMap<u32, u32>,
    kills: u32,
}

fn tool_results(messages: &[Value]) -> usize {
    messages.iter().filter(|m| m["role"] == "tool").count()
}

impl Harness {
    async fn new() -> Self {
        let shared = Arc::new(Shared::default());
        let marker = MockServer::start().await;
        let s = Arc::clone(&shared);
        Mock::given(method("GET"))
            .and(path_regex(r"^/hit/\d+$"))
            .respond_with(move |req: &wiremock::Request| {
                let k: u32 = req.url.path().rsplit('/').next().unwrap().parse().unwrap();
                *s.hits.lock().unwrap().entry(k).or_default() += 1;
                let response =
                    ResponseTemplate::new(200).set_body_raw(format!("hit {k} recorded"), "text/plain");
                if s.hold(Point::Tool(k)) { response.set_delay(HOLD) } else { response }
            })
            .mount(&marker)
            .await;
        let s = Arc::clone(&shared);
        let marker_uri = marker.uri();
        let model = openai_server(move |req| {
            let done = u32::try_from(tool_results(&messages(req))).unwrap();
            let step = done + 1;
            let response = if done < STEPS {
                ResponseTemplate::new(200).set_body_json(tool_answer(
                    &format!("call_{step}"),
                    "web_fetch",
                    &json!({ "url": format!("{marker_uri}/hit/{step}") }),
                ))
            } else {
                s.answered.store(true, Ordering::SeqCst);
                ResponseTemplate::new(200).set_body_json(text_answer(&format!("done: {done} results")))
            };
            if s.hold(Point::Model(step)) { response.set_delay(HOLD) } else { response }
        })
        .await;
        let port = marker.address().port();
        let config = format!(
            r#"
[providers.mock]
kind = "openai"
base_url = "{}/v1"

[runtime]
streaming = false
checkpoint_interval = "0s"
shutdown_grace = "1s"

[store]
url = "sqlite://{{dir}}/executus.db"

[tools.web_fetch]
allow = ["127.0.0.1:{port}"]

[agents.worker]
system = "You fetch each page you are told to."
model = "mock/test-model"
tools = ["web_fetch"]
max_steps = 12
tool_timeout = "2m"
"#,
            model.uri()
        );
        let ws = Workspace::new(&config);
        Self { _model: model, _marker: marker, shared, ws, frozen: BTreeMap::new(), kills: 0 }
    }

    fn run_command(&self) -> std::process::Command {
        self.ws.command(&["run", "--agent", "worker", "--input", "Fetch the ten pages.", "--json"])
    }

    /// One life of the process (`run` for the first, `resume` after), killed at `point`.
    async fn kill_at(&mut self, first: bool, point: Point) {
        self.shared.arm(Some(point));
        let command = if first { self.run_command() } else { self.ws.command(&["resume", "--json"]) };
        let child = spawn(command);
        let child =
            wait_until(child, || self.shared.reached.load(Ordering::SeqCst), &format!("{point:?}")).await;
        let exited = self.kill(child).await;
        assert!(exited.is_none(), "{point:?}: the process was held there, it cannot have exited");
    }

    /// SIGKILL, then the store's view as the next process will see it. A process that
    /// exited on its own just before the signal is handed back instead.
    async fn kill(&mut self, mut child: Child) -> Option<std::process::Output> {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.code().is_some() {
            return Some(out);
        }
        self.kills += 1;
        let completed = self.completed_in_store().await;
        let hits = self.shared.hits();
        for call in completed {
            let count = hits.get(&call).copied().unwrap_or(0);
            assert!(count >= 1, "call {call} has a result in the store, so it ran");
            let frozen = *self.frozen.entry(call).or_insert(count);
            assert_eq!(frozen, count, "call {call} was completed; it ran again: {hits:?}");
        }
        None
    }

    /// Call numbers whose result is checkpointed, read from the SQLite file.
    async fn completed_in_store(&self) -> BTreeSet<u32> {
        use executus::ports::CheckpointStore as _;
        let url = format!("sqlite://{}/executus.db", self.ws.path().display());
        let store = executus_store::Store::open(&url).await.unwrap();
        let checkpoints = store.checkpoints();
        let mut done = BTreeSet::new();
        for (meta, _) in checkpoints.list_interrupted().await.unwrap() {
            let run = checkpoints.load(meta.run_id).await.unwrap().unwrap();
            for entry in &run.entries {
                if let Ok(executus::run::Fact::ToolResult { result, .. }) =
                    executus::checkpoint::decode(&entry.payload)
                {
                    done.insert(result.id.trim_start_matches("call_").parse().unwrap());
                }
            }
        }
        store.close().await;
        done
    }

    /// The last life: `resume` with nothing armed; checks the finished run.
    async fn finish(&mut self) -> Value {
        self.shared.arm(None);
        let out = self.ws.run(&["resume", "--json"], None).await;
        assert_exit(&out, 0);
        let doc = json_stdout(&out);
        self.check_finished(&doc);
        doc
    }

    fn check_finished(&self, doc: &Value) {
        assert_run_json_shape(doc);
        assert_eq!(doc["status"], "completed", "{doc}");
        assert_eq!(doc["output"], format!("done: {STEPS} results"));
        assert_eq!(doc["steps"], STEPS + 1, "ten tool steps and the answer: no step lost or doubled");
        // Each call and each result exactly once, in order.
        let parts: Vec<Value> = doc["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["parts"].as_array().unwrap().clone())
            .collect();
        let ids = |kind: &str| -> Vec<String> {
            parts.iter().filter(|p| p["type"] == kind).map(|p| p["id"].as_str().unwrap().to_owned()).collect()
        };
        let expected: Vec<String> = (1..=STEPS).map(|k| format!("call_{k}")).collect();
        assert_eq!(ids("tool_call"), expected);
        assert_eq!(ids("tool_result"), expected);
        for p in parts.iter().filter(|p| p["type"] == "tool_result") {
            assert_eq!(p["is_error"], Value::Null, "no interrupted-call error results: {p}");
        }
        self.check_calls();
    }

    /// Every call ran; none ran again once completed.
    fn check_calls(&self) {
        let hits = self.shared.hits();
        assert_eq!(
            hits.keys().copied().collect::<Vec<_>>(),
            (1..=STEPS).collect::<Vec<_>>(),
            "every call ran"
        );
        for (call, frozen) in &self.frozen {
            assert_eq!(hits[call], *frozen, "call {call} ran again after it was completed: {hits:?}");
        }
    }
}

fn spawn(mut command: std::process::Command) -> Child {
    command.stdout(std::process::Stdio::null());
    command.spawn().unwrap()
}

/// Polls until `reached()`; fails (with the process's stderr) if the process exits first or
/// nothing happens in 30 s.
async fn wait_until(mut child: Child, reached: impl Fn() -> bool, what: &str) -> Child {
    let started = Instant::now();
    loop {
        if reached() {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            panic!("the process exited ({status}) before {what}\n--- stderr\n{}", text(&out.stderr));
        }
        assert!(started.elapsed() < HANG, "{what} not reached in {HANG:?} (hang)");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_run_killed_at_all_twenty_points_in_turn_completes_without_repeating_a_call() {
    let mut h = Harness::new().await;
    for (i, point) in points().into_iter().enumerate() {
        h.kill_at(i == 0, point).await;
    }
    assert_eq!(h.kills, 20);
    h.finish().await;
    // Every call was in flight at exactly one kill (its `Tool` point) and ran once more
    // after it; every other kill found it either not yet started or completed.
    let hits = h.shared.hits();
    assert!(hits.values().all(|n| *n == 2), "{hits:?}");
}

/// One run killed once at `point`, then resumed to the end; the expected call counts.
async fn single_kill(point: Point) {
    let mut h = Harness::new().await;
    h.kill_at(true, point).await;
    h.finish().await;
    let hits = h.shared.hits();
    for k in 1..=STEPS {
        let expected = if point == Point::Tool(k) { 2 } else { 1 };
        assert_eq!(hits[&k], expected, "{point:?}: call {k}: {hits:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_killed_in_a_model_call_or_a_tool_call_resumes_to_the_end() {
    single_kill(Point::Model(4)).await;
    single_kill(Point::Tool(7)).await;
}

/// Each kill point in its own fresh run: all 20 with `EXECUTUS_CRASH_FULL=1`; otherwise both
/// kinds of point at both ends of the run (the first step, before anything is stored but the
/// start, and the last, with nine completed calls behind it).
#[tokio::test(flavor = "multi_thread")]
async fn every_kill_point_as_its_own_run() {
    let chosen = if std::env::var_os("EXECUTUS_CRASH_FULL").is_some() {
        points()
    } else {
        vec![Point::Model(1), Point::Tool(1), Point::Model(STEPS), Point::Tool(STEPS)]
    };
    let started = Instant::now();
    for point in &chosen {
        single_kill(*point).await;
    }
    println!("{} independent kill points: {:?}", chosen.len(), started.elapsed());
}

/// `EXECUTUS_CRASH_RANDOM` runs (default 3) killed at random times until they finish.
#[tokio::test(flavor = "multi_thread")]
async fn runs_killed_at_random_times_until_they_finish() {
    let runs = std::env::var("EXECUTUS_CRASH_RANDOM").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(3);
    let started = Instant::now();
    let mut total_kills = 0;
    let mut finished_unseen = 0;
    for _ in 0..runs {
        let mut h = Harness::new().await;
        let mut first = true;
        loop {
            let command = if first { h.run_command() } else { h.ws.command(&["resume", "--json"]) };
            let mut command = command;
            command.stdout(std::process::Stdio::piped());
            let mut child = command.spawn().unwrap();
            // Somewhere in the first 150 ms of the process's life (a whole run takes about
            // that long here): start-up, store open,
            // a model call, a tool call, a checkpoint write.
            let delay = Duration::from_millis(fastrand_ms(150));
            let deadline = Instant::now() + delay;
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let exited = if child.try_wait().unwrap().is_some() {
                Some(child.wait_with_output().unwrap())
            } else {
                h.kill(child).await
            };
            if let Some(out) = exited {
                if out.stdout.is_empty() && text(&out.stderr).contains("no interrupted runs") {
                    // The previous life was killed after the run had finished in the store
                    // but before it printed the outcome: the run is done (the model gave
                    // the final answer, every call ran), its output went with that process.
                    assert!(h.shared.answered.load(Ordering::SeqCst), "the run vanished unfinished");
                    h.check_calls();
                    finished_unseen += 1;
                    break;
                }
                let doc = json_stdout(&out);
                if doc["status"] == "completed" {
                    h.check_finished(&doc);
                    break;
                }
                panic!("a life ended without completing: {doc}");
            }
            if !run_is_stored(&h).await {
                if h.shared.answered.load(Ordering::SeqCst) {
                    // Killed after the run finished (and left the store), before printing.
                    h.check_calls();
                    finished_unseen += 1;
                    break;
                }
                // Killed before the run's start was saved: nothing can have run yet.
                assert!(first, "an admitted run vanished from the store unfinished");
                assert!(h.shared.hits().is_empty(), "a tool ran for a run the store does not have");
                continue;
            }
            first = false;
        }
        total_kills += h.kills;
    }
    println!(
        "{runs} runs, {total_kills} random kills, all completed ({finished_unseen} finished in a life that was \
         killed before printing): {:?}",
        started.elapsed()
    );
}

async fn run_is_stored(h: &Harness) -> bool {
    use executus::ports::CheckpointStore as _;
    let url = format!("sqlite://{}/executus.db", h.ws.path().display());
    let store = executus_store::Store::open(&url).await.unwrap();
    let stored = !store.checkpoints().list_interrupted().await.unwrap().is_empty();
    store.close().await;
    stored
}

/// A pseudo-random number of milliseconds below `max` (no extra dependency: the clock's
/// nanoseconds are random enough to spread kill points).
fn fastrand_ms(max: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    u64::from(nanos.wrapping_mul(2_654_435_761)) % max
}

/// The process waited for `shutdown_grace` (1 s) before it gave up on the held run; that it
/// then exited promptly (within 2 s of the signal) is a timing claim, checked with the timers
/// (`scripts/reliability.sh`), the figure in RELIABILITY.md.
#[track_caller]
fn assert_grace(took: Duration) {
    // The signal reaches the process a moment before `kill` returns and the clock starts.
    assert!(took >= Duration::from_millis(900), "exited before the grace ran out: {took:?}");
    if strict_timers() {
        assert!(took < Duration::from_secs(2), "SIGTERM to exit: {took:?}");
    }
}

/// Sends SIGTERM once `point` is reached and returns the process's output and the time from
/// the signal to its exit.
async fn terminate_at(
    h: &Harness,
    command: std::process::Command,
    point: Point,
) -> (std::process::Output, Duration) {
    h.shared.arm(Some(point));
    let mut command = command;
    command.stdout(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    let child = wait_until(child, || h.shared.reached.load(Ordering::SeqCst), &format!("{point:?}")).await;
    signal(&child, "TERM");
    let signalled = Instant::now();
    let out = wait_exit(child, HANG).await;
    (out, signalled.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_checkpoints_a_running_run_after_the_grace_and_resume_finishes_it() {
    // Held in step 5's tool call: the run cannot finish within the grace (1 s).
    let mut h = Harness::new().await;
    let (out, took) = terminate_at(&h, h.run_command(), Point::Tool(5)).await;
    assert_exit(&out, 130);
    assert_grace(took);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["status"], "interrupted", "{doc}");
    assert!(doc["error"].as_str().unwrap().contains("executus-run resume"), "{doc}");
    let results = doc["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
    assert_eq!(results, 4, "the transcript so far, read back from the store: {doc}");
    // The checkpoint holds calls 1-4; nothing of them runs again.
    let completed = h.completed_in_store().await;
    assert_eq!(completed, (1..=4).collect::<BTreeSet<u32>>());
    let hits = h.shared.hits();
    for call in completed {
        h.frozen.insert(call, hits[&call]);
    }
    let doc = h.finish().await;
    assert_eq!(doc["run_id"], json_stdout(&out)["run_id"]);
    let hits = h.shared.hits();
    assert_eq!(hits[&5], 2, "the call in flight at the signal ran again (web_fetch is idempotent)");
    assert!(hits.iter().filter(|(k, _)| **k != 5).all(|(_, n)| *n == 1), "{hits:?}");
    println!("run: SIGTERM -> exit {took:?} (shutdown_grace 1s)");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_to_schedule_checkpoints_its_run_after_the_grace_and_resume_finishes_it() {
    let mut h = Harness::new().await;
    let job = "\n[schedule.jobs.fetcher]\ncron = \"* * * * * *\"\nagent = \"worker\"\ninput = \"Fetch the ten pages.\"\n";
    let config = std::fs::read_to_string(h.ws.config_path()).unwrap();
    std::fs::write(h.ws.config_path(), format!("{config}{job}")).unwrap();
    let (out, took) = terminate_at(&h, h.ws.command(&["schedule"]), Point::Model(3)).await;
    assert_exit(&out, 0);
    assert_grace(took);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("SIGTERM: no more fires; 1 run(s) in flight"), "{stderr}");
    assert_eq!(h.completed_in_store().await, (1..=2).collect::<BTreeSet<u32>>());
    for (call, n) in h.shared.hits() {
        h.frozen.insert(call, n);
    }
    // `resume` without the job: the interrupted run is finished, nothing new is fired.
    std::fs::write(h.ws.config_path(), config).unwrap();
    h.finish().await;
    assert!(h.shared.hits().values().all(|n| *n == 1), "{:?}", h.shared.hits());
    println!("schedule: SIGTERM -> exit {took:?} (shutdown_grace 1s)");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_resumes_of_one_run_at_once_do_not_run_its_calls_twice() {
    // Regression: each process resumed the run and executed calls 3-10 (every one twice).
    let mut h = Harness::new().await;
    h.kill_at(true, Point::Model(3)).await;
    h.shared.arm(None);
    let a = h.ws.command(&["resume", "--json"]).spawn().unwrap();
    let b = h.ws.command(&["resume", "--json"]).spawn().unwrap();
    let (a, b) = (wait_exit(a, HANG).await, wait_exit(b, HANG).await);
    assert_exit(&a, 0);
    assert_exit(&b, 0);
    let docs: Vec<Value> = [&a, &b].iter().filter(|o| !o.stdout.is_empty()).map(|o| json_stdout(o)).collect();
    assert_eq!(docs.len(), 1, "one process resumed the run, the other left it alone");
    h.check_finished(&docs[0]);
    assert!(h.shared.hits().values().all(|n| *n == 1), "{:?}", h.shared.hits());
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_leaves_alone_a_run_another_process_is_driving() {
    // Regression: `resume` took the in-flight run of a live `run` process for interrupted.
    let mut h = Harness::new().await;
    h.shared.arm(Some(Point::Tool(4)));
    let child = spawn(h.run_command());
    let child = wait_until(child, || h.shared.reached.load(Ordering::SeqCst), "Tool(4)").await;
    let out = h.ws.run(&["resume", "--json"], None).await;
    assert_exit(&out, 0);
    assert!(out.stdout.is_empty(), "nothing resumed: {}", text(&out.stdout));
    assert!(text(&out.stderr).contains("being driven by another process"), "{}", text(&out.stderr));
    let out = h.ws.run(&["resume", "--list", "--json"], None).await;
    let run_id = json_stdout(&out)["run_id"].as_str().unwrap().to_owned();
    let out = h.ws.run(&["resume", &run_id], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("active in another process"), "{}", text(&out.stderr));
    assert_eq!(h.shared.hits()[&4], 1, "call 4 ran once, in the first process");
    // Once that process is gone (killed), the run is free to resume.
    assert!(h.kill(child).await.is_none());
    h.finish().await;
    let hits = h.shared.hits();
    assert_eq!(hits[&4], 2, "the call in flight at the kill ran again");
    assert!(hits.iter().filter(|(k, _)| **k != 4).all(|(_, n)| *n == 1), "{hits:?}");
}
