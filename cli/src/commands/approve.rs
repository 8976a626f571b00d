//! `approve RUN CALL` / `deny RUN CALL [--reason TEXT]`: answers a tool call a run is
//! waiting on (see `[policy] require_approval`), then continues the run from its checkpoint
//! and waits for it — in this process, whichever process paused it. A denial is given to
//! the model as the call's (error) result, with the reason.
//!
//! SIGINT or SIGTERM interrupts the continued run (its checkpoint is flushed; `resume`
//! picks it up) and exits 130. Exit code: that of the run's outcome.

use clap::Args;
use executus::{RunHandle, RunId};

use super::report::report;
use super::resume::not_resumable;
use crate::config::CliConfig;
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `approve`.
#[derive(Debug, Args)]
pub struct ApproveArgs {
    /// The run (its id, as printed by `run` or `resume --list`).
    pub run: String,
    /// The tool call id the run waits on.
    pub call: String,
    /// Print the continued run's outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `deny`.
#[derive(Debug, Args)]
pub struct DenyArgs {
    /// The run.
    pub run: String,
    /// The tool call id the run waits on.
    pub call: String,
    /// Why, for the model.
    #[arg(long, default_value = "no reason given")]
    pub reason: String,
    /// Print the continued run's outcome as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Approves the call and continues the run.
///
/// # Errors
/// A bad run id, or a call that is not waiting (exit 2); store failures (exit 1).
pub async fn approve(config: &CliConfig, args: ApproveArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let run = parse_run(&args.run)?;
    let host = Host::build(config, HostOptions::default()).await?;
    let handle = host.runtime.approve(run, &args.call).await.map_err(|e| not_resumable(&host, e));
    finish(config, host, handle, args.json, interrupt).await
}

/// Denies the call and continues the run.
///
/// # Errors
/// As [`approve`].
pub async fn deny(config: &CliConfig, args: DenyArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let run = parse_run(&args.run)?;
    let host = Host::build(config, HostOptions::default()).await?;
    let handle = host.runtime.deny(run, &args.call, &args.reason).await.map_err(|e| not_resumable(&host, e));
    finish(config, host, handle, args.json, interrupt).await
}

fn parse_run(text: &str) -> anyhow::Result<RunId> {
    Ok(text.parse().map_err(|e| UsageError(format!("{text:?} is not a run id: {e}")))?)
}

async fn finish(
    config: &CliConfig,
    host: Host,
    handle: anyhow::Result<RunHandle>,
    as_json: bool,
    interrupt: &Interrupt,
) -> anyhow::Result<Exit> {
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            host.close(config.runtime.shutdown_grace).await;
            return Err(e);
        }
    };
    let exit = tokio::select! {
        outcome = handle.outcome() => report(&outcome, as_json),
        () = interrupt.wait() => {
            eprintln!("interrupted; run {} is checkpointed and resumes with `executus-run resume`", handle.id());
            host.close(std::time::Duration::ZERO).await;
            return Ok(Exit::Interrupted);
        }
    };
    host.close(config.runtime.shutdown_grace).await;
    Ok(exit)
}
