//! `executus-pg-worker`: the worker process of the PostgreSQL process tests
//! (`tests/it/workers.rs`) and of the benchmark: `executus_store::worker::Worker` — the loop
//! `executus-run worker` runs — around a runtime with one tool-using agent, against the
//! OpenAI-compatible server at `<mock>` (the test's loopback mock).
//!
//! ```text
//! executus-pg-worker <postgres-url> <mock-base-url> [concurrency=N] [lease_ms=N] [poll_ms=N]
//!     [cron=EXPR] [budget=JSON] [steps=N]
//! ```
//!
//! The agent `effector` may call `effect` (a side effect outside the store: `POST
//! <mock>/effect` with the run, the call id and this process's id). The tool is **not**
//! idempotent: a call in flight when a worker dies is never run again (resume turns it into
//! an error result), so the mock can check that every completed call had its effect exactly
//! once. `cron=EXPR` adds a shared cron job `tick` (claimed once per fire across workers),
//! `budget=JSON` a `SpendBudget` (an `executus_budget::BudgetConfig` as JSON) over the
//! store's budget.
//!
//! Stdout, one line each: `READY <owner>`, `STARTED <run> <resumed> <orphan>`,
//! `ENDED <run> <status>`, `FIRED <job> <fire-ms> <run> <first-ms>` (a catch-up run stands for
//! the missed fires from `first-ms`), `SKIPPED <job> <fire-ms> <first-ms> <reason>` (fires
//! this worker handled without a run: overlap, missed fires skipped), `STOPPED <started>
//! <resumed> <ended> <interrupted>`. SIGTERM stops the worker gracefully; SIGKILL is what the
//! tests use to kill it.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use executus::llm::{HttpOptions, Registry};
use executus::ports::Ports;
use executus::tool::{Tool, ToolContext, ToolError, ToolOutput, ToolRegistry};
use executus::{Limits, RunnableAgent, Runtime, RuntimeConfig};
use executus_store::worker::{Worker, WorkerEvent, WorkerSettings};
use executus_store::{Store, StoreOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The agent every queued test run uses.
pub fn agent(steps: u32) -> RunnableAgent {
    let mut agent = RunnableAgent::new(
        "effector",
        format!("Apply {steps} effects, one tool call per step, then say done."),
        "mock/m",
    )
    .with_tools(["effect"]);
    agent.max_tokens = Some(64);
    agent.limits = Limits { max_steps: steps + 3, tool_error_limit: steps + 1, ..Limits::default() };
    agent
}

struct Effect {
    mock: String,
}

#[async_trait]
impl Tool for Effect {
    fn name(&self) -> &str {
        "effect"
    }

    fn description(&self) -> &str {
        "Applies one effect (not idempotent)."
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]})
    }

    async fn call(&self, ctx: ToolContext, args: Value) -> Result<ToolOutput, ToolError> {
        let key = args.get("key").and_then(Value::as_str).unwrap_or("?").to_owned();
        let body = json!({
            "run": ctx.run_id.to_string(),
            "call": ctx.call_id,
            "worker": std::process::id(),
        })
        .to_string();
        post(&self.mock, "/effect", &body).await.map_err(|e| ToolError::failed("effect", e.to_string()))?;
        Ok(format!("effect {key} applied (call {})", ctx.call_id).into())
    }
}

/// A minimal HTTP/1.1 POST over a fresh loopback connection (the mock answers and closes).
async fn post(base: &str, path: &str, body: &str) -> Result<(), BoxError> {
    let host = base.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    if !response.starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "effect endpoint answered {:?}",
            String::from_utf8_lossy(&response[..response.len().min(40)])
        )
        .into());
    }
    Ok(())
}

async fn run(args: Vec<String>) -> Result<(), BoxError> {
    let url = args.get(1).ok_or("usage: executus-pg-worker <postgres-url> <mock-base-url> [key=value...]")?;
    let mock = args.get(2).ok_or("missing <mock-base-url>")?.trim_end_matches('/').to_owned();
    let mut concurrency = 8usize;
    let mut lease = Duration::from_secs(10);
    let mut poll = Duration::from_millis(200);
    let mut cron: Option<String> = None;
    let mut budget: Option<String> = None;
    let mut steps = 5u32;
    for arg in &args[3..] {
        let (k, v) = arg.split_once('=').ok_or_else(|| format!("bad argument {arg:?}"))?;
        match k {
            "concurrency" => concurrency = v.parse()?,
            "lease_ms" => lease = Duration::from_millis(v.parse()?),
            "poll_ms" => poll = Duration::from_millis(v.parse()?),
            "cron" => cron = Some(v.to_owned()),
            "budget" => budget = Some(v.to_owned()),
            "steps" => steps = v.parse()?,
            other => return Err(format!("unknown option {other:?}").into()),
        }
    }
    let store = Store::open_with(url, StoreOptions::default().lease_expiry(lease)).await?;
    let pg = store.as_postgres().ok_or("not a postgres:// URL")?.clone();
    let registry = Registry::from_vars(
        [(
            "EXECUTUS_LLM_MOCK".to_owned(),
            format!("openai+http://{}/v1", mock.trim_start_matches("http://")),
        )],
        &HttpOptions::default(),
    )?;
    let tools = ToolRegistry::new().with(Arc::new(Effect { mock: mock.clone() }));
    let mut ports = Ports { checkpoints: Arc::new(store.checkpoints()), ..Ports::default() };
    if let Some(json) = &budget {
        let config: executus_budget::BudgetConfig = serde_json::from_str(json)?;
        let settings = config.validate()?;
        ports.budget = Arc::new(executus_budget::SpendBudget::new(settings, Arc::new(store.budget())));
    }
    let schedule = cron.as_ref().map(|_| {
        executus_schedule::CronSchedule::builder().store(Arc::new(store.schedule())).shared(true).build()
    });
    if let Some(s) = &schedule {
        ports.schedule = Arc::new(s.clone());
    }
    let mut config = RuntimeConfig {
        streaming: false,
        checkpoint_interval: Duration::from_millis(20),
        ..RuntimeConfig::default()
    };
    config.agents.insert("effector".into(), agent(steps));
    if let Some(lane) = config.lanes.get_mut("default") {
        lane.capacity =
            std::num::NonZeroUsize::new(concurrency.max(1)).unwrap_or(std::num::NonZeroUsize::MIN);
    }
    let runtime =
        Runtime::builder().registry(registry).tools(tools).ports(ports).config(config).try_build()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let mut schedule_task = None;
    if let (Some(expr), Some(s)) = (cron, schedule) {
        s.add_job(executus_schedule::JobDef::new("tick", expr, "effector", "One tick.")).await?;
        let mut events = s.subscribe();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                use executus_schedule::{ScheduleEvent, SkipReason};
                match event {
                    ScheduleEvent::Fired { job, fire, run_id, catch_up_from, .. } => {
                        let from = catch_up_from.unwrap_or(fire).timestamp_millis();
                        say(&format!("FIRED {job} {} {run_id} {from}", fire.timestamp_millis()));
                    }
                    ScheduleEvent::Skipped { reason: SkipReason::ClaimedElsewhere, .. } => {}
                    ScheduleEvent::Skipped { job, fire, reason, .. } => {
                        let from = match reason {
                            SkipReason::CatchUp { first } => first,
                            _ => fire,
                        };
                        say(&format!(
                            "SKIPPED {job} {} {} {reason:?}",
                            fire.timestamp_millis(),
                            from.timestamp_millis()
                        ));
                    }
                    _ => {}
                }
            }
        });
        let (runtime, stop) = (runtime.clone(), stop.clone());
        schedule_task = Some(tokio::spawn(async move { runtime.run_schedule(stop).await }));
    }
    let worker = Worker::new(
        runtime,
        pg.clone(),
        WorkerSettings::default().concurrency(concurrency).poll(poll).shutdown_grace(Duration::from_secs(2)),
    );
    let mut events = worker.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                WorkerEvent::Started { run, resumed, orphan } => {
                    say(&format!("STARTED {run} {resumed} {orphan}"))
                }
                WorkerEvent::Ended { run, status } => say(&format!("ENDED {run} {status}")),
                other => say(&format!("EVENT {other:?}")),
            }
        }
    });
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                term.recv().await;
                stop.cancel();
            }
        });
    }
    say(&format!("READY {}", pg.owner()));
    let report = worker.run(stop.clone()).await?;
    stop.cancel();
    if let Some(task) = schedule_task {
        let _ = task.await;
    }
    say(&format!("STOPPED {} {} {} {}", report.started, report.resumed, report.ended, report.interrupted));
    store.close().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(std::env::args().collect())) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("executus-pg-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
