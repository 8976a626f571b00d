//! `run --agent NAME [--input TEXT | -] [--model SPEC] [--identity USER[@TENANT]] [--json]`.
//!
//! SIGINT (Ctrl-C: the person at the terminal gives up) cancels the run: its outcome
//! (`cancelled`, with the transcript so far) is reported and the process exits 130.
//!
//! SIGTERM (a service manager or a deploy stopping the process) shuts down gracefully
//! instead: the run gets `[runtime] shutdown_grace` to finish; if it does not, it is
//! interrupted with its checkpoint flushed, reported with status `interrupted` (and the
//! transcript so far, read back from the store), and `resume` continues it later — no work
//! is lost to a restart. Exit 130 either way unless the run finished within the grace.
//!
//! A run that pauses for a tool approval exits 0 with status `awaiting_approval`; it
//! continues with `approve` / `deny` (from a durable store).
//!
//! With `[runtime] mode = "queue"` (a PostgreSQL store) the run is not driven here: it goes
//! to the run queue and `executus-run worker` processes drive it. `run` then follows it
//! (`--wait`, the default: progress on stderr — queued, picked by which worker, taken over
//! by another — then the same report as a local run), or prints its id and exits at once
//! (`--detach`). A signal while following stops the following, not the run.

use std::io::Read as _;
use std::sync::{Arc, Mutex};

use clap::Args;
use executus::RunRequest;

use super::report::report;
use crate::config::{CliConfig, parse_identity};
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The agent (configured in [agents.NAME] or a persona).
    #[arg(long)]
    pub agent: String,
    /// The input text; `-` reads stdin. Default: stdin when it is not a terminal.
    #[arg(long)]
    pub input: Option<String>,
    /// Override the agent's model spec (a tier or a chain such as `local/qwen3, openai/gpt-4.1`).
    #[arg(long)]
    pub model: Option<String>,
    /// Who the run acts for (budgets, audit, lane fairness). Default: anonymous@default.
    #[arg(long, value_name = "USER[@TENANT]")]
    pub identity: Option<String>,
    /// Print one JSON object: run_id, status, output, steps, usage, error (and more).
    #[arg(long)]
    pub json: bool,
    /// Queue mode: enqueue the run, print its id, and exit without waiting.
    #[arg(long, conflicts_with = "wait")]
    pub detach: bool,
    /// Queue mode: follow the queued run to its end (the default in queue mode).
    #[arg(long)]
    pub wait: bool,
}

pub(crate) fn read_input(input: Option<&str>) -> anyhow::Result<String> {
    use std::io::IsTerminal as _;
    match input {
        Some("-") => read_stdin(),
        Some(text) => Ok(text.to_owned()),
        None if !std::io::stdin().is_terminal() => read_stdin(),
        None => Err(UsageError("no input: pass --input TEXT, or --input - to read stdin".into()).into()),
    }
}

fn read_stdin() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// `--identity`, parsed.
pub(crate) fn identity(arg: Option<&str>) -> anyhow::Result<executus::Identity> {
    match arg {
        None => Ok(executus::Identity::default()),
        Some(text) => Ok(parse_identity(text).map_err(|e| UsageError(format!("--identity: {e}")))?),
    }
}

/// Runs one agent.
///
/// # Errors
/// Unknown agent or bad arguments (exit 2), runtime start failures.
pub async fn run(config: &CliConfig, args: RunArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let identity = identity(args.identity.as_deref())?;
    let queued = config.runtime.mode == executus::config::RunMode::Queue;
    if args.detach && !queued {
        return Err(UsageError(
            "--detach hands the run to workers: it needs [runtime] mode = \"queue\" (and a postgres:// store)"
                .into(),
        )
        .into());
    }
    let input = read_input(args.input.as_deref())?;
    let host = Host::build(config, HostOptions { queue: queued, ..HostOptions::default() }).await?;
    let mut agent = host.runtime.agent(&args.agent).await.map_err(|e| UsageError(e.to_string()))?;
    if let Some(model) = args.model.clone() {
        config
            .registry
            .resolve(&model)
            .map_err(|e| UsageError(format!("--model: model spec {model:?} does not resolve: {e}")))?;
        agent.model = model;
    }
    let request = RunRequest::new(agent, input).identity(identity);
    let handle = host.runtime.spawn_with(request).await?;
    if queued {
        return follow_queued(&host, handle, &args, interrupt).await;
    }
    let exit = tokio::select! {
        outcome = handle.outcome() => report(&outcome, args.json),
        () = interrupt.wait() => {
            if interrupt.which() == Some("SIGTERM") {
                host.close(config.runtime.shutdown_grace).await;
                return Ok(match handle.try_outcome() {
                    Some(outcome) => report(&outcome, args.json),
                    None => report_interrupted(&host, handle.id(), "SIGTERM", args.json).await,
                });
            }
            handle.cancel().await;
            let outcome = handle.outcome().await;
            report(&outcome, args.json);
            Exit::Interrupted
        }
    };
    host.close(config.runtime.shutdown_grace).await;
    Ok(exit)
}

/// Queue mode: the run is in the queue; print its id (`--detach`) or follow it to its end.
async fn follow_queued(
    host: &Host,
    handle: executus::RunHandle,
    args: &RunArgs,
    interrupt: &Interrupt,
) -> anyhow::Result<Exit> {
    let run = handle.id();
    if args.detach {
        if args.json {
            outln!("{}", serde_json::json!({ "run_id": run.to_string(), "status": "queued" }));
        } else {
            outln!("{run}");
            eprintln!("run {run} queued; `executus-run worker` processes drive it");
        }
        return Ok(Exit::Ok);
    }
    eprintln!("run {run} queued");
    let queue = host.stores.store.as_ref().and_then(|s| s.as_postgres()).map(|pg| pg.queue());
    let seen = Arc::new(Mutex::new((0u32, None::<String>)));
    let progress = queue.clone().map(|queue| {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                show_progress(&queue, run, &seen).await;
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        })
    });
    let exit = tokio::select! {
        outcome = handle.outcome() => report(&outcome, args.json),
        () = interrupt.wait() => {
            eprintln!(
                "run {run}: stopped following ({}); the run goes on in the workers",
                interrupt.which().unwrap_or("signal")
            );
            Exit::Interrupted
        }
    };
    if let Some(task) = progress {
        task.abort();
    }
    // The last word on who drove it (a quick run may end between two looks).
    if let Some(queue) = &queue {
        show_progress(queue, run, &seen).await;
    }
    host.close(std::time::Duration::ZERO).await;
    Ok(exit)
}

/// Prints, on stderr, which worker picked the run, when that changed since `seen`.
async fn show_progress(
    queue: &executus_store::postgres::PgRunQueue,
    run: executus::RunId,
    seen: &Mutex<(u32, Option<String>)>,
) {
    let Ok(Some(entry)) = queue.entry(run).await else { return };
    let now = (entry.picks, entry.picked_by.clone());
    let mut last = seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if entry.picks == 0 || *last == now {
        return;
    }
    let by = entry.picked_by.as_deref().unwrap_or("?");
    if entry.picks == 1 {
        eprintln!("run {run} picked by worker {by}");
    } else {
        eprintln!("run {run} taken over by worker {by} (pick {})", entry.picks);
    }
    *last = now;
}

/// Reports a run interrupted by a graceful shutdown: its checkpoint holds the transcript so
/// far, and `resume` continues it.
async fn report_interrupted(host: &Host, run: executus::RunId, signal: &str, as_json: bool) -> Exit {
    // The runtime is closed by now; its checkpoint store still answers.
    let state = executus::checkpoint::load_stored(host.stores.checkpoints.as_ref(), run)
        .await
        .ok()
        .flatten()
        .map(|stored| stored.state);
    let hint = if host.stores.durable {
        format!("checkpointed; continue it with: executus-run resume {run}")
    } else {
        "the store is in memory, so it cannot be resumed".to_owned()
    };
    let reason = format!("interrupted by {signal}: {hint}");
    if as_json {
        let (agent, output, steps, usage, messages) = match &state {
            Some(st) => (
                serde_json::json!(st.agent.name),
                serde_json::json!(st.last_text()),
                serde_json::json!(st.step),
                serde_json::json!(st.usage),
                serde_json::json!(st.messages),
            ),
            None => (
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::json!(0),
                serde_json::json!(executus_llm::Usage::default()),
                serde_json::json!([]),
            ),
        };
        outln!(
            "{}",
            serde_json::json!({
                "run_id": run.to_string(),
                "agent": agent,
                "status": "interrupted",
                "output": output,
                "typed": null,
                "steps": steps,
                "usage": usage,
                "error": reason,
                "pending_approvals": [],
                "messages": messages,
            })
        );
    } else {
        eprintln!("run {run} {reason}");
    }
    Exit::Interrupted
}
