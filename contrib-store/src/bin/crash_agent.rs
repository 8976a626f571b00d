//! `executus-crash-agent`: the child process of the crash test (`tests/it/crash.rs`).
//!
//! It runs one six-step, tool-using agent (run id [`RUN_ID`]) on an executus runtime whose
//! checkpoints go to the SQLite store at `<db>`, against the OpenAI-compatible server named
//! by `EXECUTUS_LLM_MOCK` (the test's loopback mock). On start it resumes the run if the
//! store holds it interrupted, starts it if the store has never seen it, and refuses if it
//! already finished. When the run ends it writes the outcome (end, steps, transcript) as
//! JSON to `<result>` and prints `DONE <status> batches=<checkpoint batches committed>`.
//!
//! ```text
//! executus-crash-agent <db> <counter> <result> [pause-point]
//! ```
//!
//! The tool `count` records its call id as one line of the `<counter>` file — a side effect
//! outside the store. It is declared idempotent and makes itself so: a call id already in
//! the file is not written again (the core re-runs an idempotent call that was in flight at
//! a crash, and re-asks the model when its answer was not yet saved; the mock answers the
//! same request with the same call id). Every execution, a repeat included, is also logged
//! unconditionally as one line of `<counter>` with the extension `calls`, so the test counts
//! executions, not only distinct calls.
//!
//! A pause point freezes the process at a precise moment and prints `PAUSED <point>`, so
//! the test can SIGKILL it exactly there:
//! - `opened`: the store is open, the run not yet started;
//! - `staged:N` / `committed:N`: inside the N-th checkpoint batch, before / after its
//!   commit (observed through the store's `executus_store::checkpoint` trace events);
//! - `finish-staged`: inside the transaction marking the run finished;
//! - `tool-before:N` / `tool-after:N`: inside tool call N, before / after its side effect.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use executus::llm::{HttpOptions, Registry};
use executus::ports::Ports;
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use executus::{RunId, RunRequest, RunnableAgent, Runtime, RuntimeConfig};
use executus_store::{Store, StoreOptions};
use serde_json::{Value, json};

/// The run this agent drives (fixed, so a fresh process finds it again).
pub const RUN_ID: &str = "0190a0f0-0000-7000-8000-00000000c0de";

/// A paused process is killed by the test; if the test itself died, give up after this.
const PAUSE_LIMIT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where to freeze, if anywhere.
#[derive(Debug, Clone, Default)]
struct Pause(Option<String>);

impl Pause {
    fn is(&self, point: &str) -> bool {
        self.0.as_deref() == Some(point)
    }

    /// Blocks this thread for good (the test kills the process), after saying so.
    fn freeze_thread(&self, point: &str) {
        if self.is(point) {
            announce(point);
            std::thread::sleep(PAUSE_LIMIT);
            std::process::exit(3);
        }
    }

    /// Parks this task for good (the test kills the process), after saying so.
    async fn freeze_task(&self, point: &str) {
        if self.is(point) {
            announce(point);
            tokio::time::sleep(PAUSE_LIMIT).await;
            std::process::exit(3);
        }
    }
}

fn announce(point: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PAUSED {point}");
    let _ = out.flush();
}

/// Checkpoint batches committed by this process (reported in the `DONE` line).
static COMMITTED: AtomicU64 = AtomicU64::new(0);

/// A minimal tracing subscriber that watches the store's checkpoint events and freezes the
/// writing task at the chosen batch.
struct Hooks {
    pause: Pause,
    staged: AtomicU64,
    committed: AtomicU64,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for Hooks {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("executus_store::checkpoint")
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        match message.0.as_str() {
            "checkpoint batch staged" => {
                let n = self.staged.fetch_add(1, Ordering::SeqCst) + 1;
                self.pause.freeze_thread(&format!("staged:{n}"));
            }
            "checkpoint batch committed" => {
                let n = self.committed.fetch_add(1, Ordering::SeqCst) + 1;
                COMMITTED.store(n, Ordering::SeqCst);
                self.pause.freeze_thread(&format!("committed:{n}"));
            }
            "checkpoint finish staged" => self.pause.freeze_thread("finish-staged"),
            _ => {}
        }
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}

/// The counting tool: one line per call id in a file outside the store, exactly once; and
/// one line per execution in the executions log.
struct Count {
    file: PathBuf,
    executions: PathBuf,
    pause: Pause,
}

#[async_trait]
impl Tool for Count {
    fn name(&self) -> &str {
        "count"
    }

    fn description(&self) -> &str {
        "Records counting step n."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]})
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let n = args.get("n").and_then(Value::as_u64).ok_or_else(|| ToolError::InvalidArgs {
            tool: "count".into(),
            message: "n must be an integer".into(),
        })?;
        append_line(&self.executions, &ctx.call_id).map_err(|e| ToolError::failed("count", e.to_string()))?;
        self.pause.freeze_task(&format!("tool-before:{n}")).await;
        let line =
            record_once(&self.file, &ctx.call_id).map_err(|e| ToolError::failed("count", e.to_string()))?;
        self.pause.freeze_task(&format!("tool-after:{n}")).await;
        Ok(format!("step {n} counted (call {} is line {line})", ctx.call_id).into())
    }
}

/// Appends `id` as a line unless a complete line already holds it; returns its line number.
/// The append is one `write(2)` of a few bytes to an `O_APPEND` file, which a signal cannot
/// split, so a kill leaves the line either whole or absent.
fn record_once(file: &Path, id: &str) -> std::io::Result<usize> {
    let existing = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let lines: Vec<&str> = existing.split_terminator('\n').collect();
    if let Some(i) = lines.iter().position(|l| *l == id) {
        return Ok(i + 1);
    }
    append_line(file, id)?;
    Ok(lines.len() + 1)
}

/// Appends `line` in one `write(2)` to an `O_APPEND` file (a kill leaves it whole or absent).
fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    f.write_all(format!("{line}\n").as_bytes())
}

fn agent() -> RunnableAgent {
    RunnableAgent::new("counter", "Count to six, one tool call per step.", "mock/crash-model")
        .with_tools(["count"])
}

async fn run(db: &Path, counter: &Path, result: &Path, pause: Pause) -> Result<(), BoxError> {
    let run_id: RunId = RUN_ID.parse()?;
    let store = Store::open_path(db, StoreOptions::default()).await?;
    pause.freeze_thread("opened");
    let registry = Registry::from_vars(std::env::vars(), &HttpOptions::default())?;
    let tools = ToolRegistry::new().with(Arc::new(Count {
        file: counter.to_path_buf(),
        executions: counter.with_extension("calls"),
        pause: pause.clone(),
    }));
    let ports = Ports { checkpoints: Arc::new(store.checkpoints()), ..Ports::default() };
    let config = RuntimeConfig {
        streaming: false,
        checkpoint_interval: Duration::from_millis(20),
        ..RuntimeConfig::default()
    };
    let runtime =
        Runtime::builder().registry(registry).tools(tools).ports(ports).config(config).try_build()?;
    let resumed = runtime.resume_interrupted().await?;
    let handle = match resumed.into_iter().find(|h| h.id() == run_id) {
        Some(handle) => {
            println!("RESUMED");
            handle
        }
        None => match store.checkpoints().status(run_id).await? {
            None => {
                runtime.spawn_with(RunRequest::new(agent(), "Please count to six.").run_id(run_id)).await?
            }
            Some(status) => {
                return Err(format!("run {run_id} is {} and was not resumed", status.as_str()).into());
            }
        },
    };
    let outcome = handle.outcome().await;
    let report = json!({
        "end": outcome.status(),
        "steps": outcome.steps,
        "messages": outcome.messages,
    });
    let tmp = result.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&report)?)?;
    std::fs::rename(&tmp, result)?;
    println!("DONE {} batches={}", outcome.status(), COMMITTED.load(Ordering::SeqCst));
    runtime.shutdown(Duration::from_secs(2)).await;
    store.close().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: executus-crash-agent <db> <counter> <result> [pause-point]");
        return std::process::ExitCode::from(2);
    }
    let pause = Pause(args.get(4).cloned());
    if tracing::subscriber::set_global_default(Hooks {
        pause: pause.clone(),
        staged: AtomicU64::new(0),
        committed: AtomicU64::new(0),
    })
    .is_err()
    {
        eprintln!("could not install the tracing hooks");
        return std::process::ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(Path::new(&args[1]), Path::new(&args[2]), Path::new(&args[3]), pause)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("executus-crash-agent: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
