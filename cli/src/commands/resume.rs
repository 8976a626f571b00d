//! `resume [RUN] [--list] [--json]`: the runs left interrupted in the store — by a crash, a
//! kill, or a shutdown that checkpointed them — listed, or resumed from their last
//! checkpoint and waited for. Completed tool calls are never executed again; a call that
//! was in flight runs again only if its tool is idempotent.
//!
//! Without `RUN`, every interrupted run that is not waiting for an approval is resumed
//! (those are answered with `approve` / `deny`), except runs another process is driving
//! (a `run` or `schedule` still going, another `resume`): a run is claimed in the store by
//! the one process that drives it, so two processes never execute its tool calls twice. SIGINT or SIGTERM interrupts the resumed
//! runs again — their checkpoints are flushed, so `resume` picks them up next time — and
//! exits 130. Exit code: that of the first run that did not complete, else 0.

use std::time::{Duration, UNIX_EPOCH};

use clap::Args;
use executus::ports::StoredStatus;
use executus::{RunHandle, RunId, RuntimeError};
use serde_json::json;

use super::report::{combined, report};
use crate::config::CliConfig;
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Resume only this run (an id from `--list`).
    pub run: Option<String>,
    /// List the interrupted runs instead of resuming them.
    #[arg(long)]
    pub list: bool,
    /// JSON lines: one object per run (listed or resumed).
    #[arg(long)]
    pub json: bool,
}

/// Lists or resumes interrupted runs.
///
/// # Errors
/// A bad run id or a run that cannot be resumed (exit 2), store failures (exit 1).
pub async fn resume(config: &CliConfig, args: ResumeArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let host = Host::build(config, HostOptions::default()).await?;
    let exit =
        if args.list { list(&host, args.json).await } else { resume_runs(&host, &args, interrupt).await };
    // Interrupted: no grace, so the runs are checkpointed now rather than finished.
    let grace = if interrupt.token().is_cancelled() { Duration::ZERO } else { config.runtime.shutdown_grace };
    host.close(grace).await;
    exit
}

async fn list(host: &Host, as_json: bool) -> anyhow::Result<Exit> {
    let runs = host.stores.checkpoints.list_interrupted().await?;
    if runs.is_empty() && !as_json {
        eprintln!("no interrupted runs in {}{}", host.stores.location, memory_note(host));
    }
    for (meta, status) in runs {
        let created = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(meta.created_ms));
        if as_json {
            outln!(
                "{}",
                json!({
                    "run_id": meta.run_id.to_string(),
                    "status": status.as_str(),
                    "agent": meta.agent,
                    "user": meta.identity.user,
                    "tenant": meta.identity.tenant,
                    "parent": meta.parent.map(|p| p.to_string()),
                    "created": created.to_string(),
                })
            );
        } else {
            let hint = match status {
                StoredStatus::AwaitingApproval => "  (answer with approve / deny)",
                _ => "",
            };
            outln!(
                "{}  {:<17}  {}  {}@{}  {created}{hint}",
                meta.run_id,
                status.as_str(),
                meta.agent,
                meta.identity.user,
                meta.identity.tenant
            );
        }
    }
    Ok(Exit::Ok)
}

async fn resume_runs(host: &Host, args: &ResumeArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let handles: Vec<RunHandle> = match &args.run {
        Some(id) => {
            let run: RunId = id.parse().map_err(|e| UsageError(format!("{id:?} is not a run id: {e}")))?;
            vec![host.runtime.resume(run).await.map_err(|e| not_resumable(host, e))?]
        }
        None => host.runtime.resume_interrupted().await?,
    };
    if handles.is_empty() {
        let running = host
            .stores
            .checkpoints
            .list_interrupted()
            .await?
            .iter()
            .filter(|(_, status)| *status == StoredStatus::Running)
            .count();
        if running > 0 {
            eprintln!(
                "no run to resume in {}: {running} interrupted run(s) are being driven by another process",
                host.stores.location
            );
        } else {
            eprintln!("no interrupted runs to resume in {}{}", host.stores.location, memory_note(host));
        }
        return Ok(Exit::Ok);
    }
    if !args.json {
        let ids: Vec<String> = handles.iter().map(|h| h.id().to_string()).collect();
        eprintln!("resuming {} run(s): {}", handles.len(), ids.join(", "));
    }
    let mut exits = Vec::new();
    for handle in handles {
        tokio::select! {
            outcome = handle.outcome() => exits.push(report(&outcome, args.json)),
            () = interrupt.wait() => {
                eprintln!("resume: interrupted; the runs are checkpointed and resume next time");
                return Ok(Exit::Interrupted);
            }
        }
    }
    Ok(combined(exits))
}

/// A run id that cannot be resumed is a usage problem (exit 2), with a hint when the store
/// cannot have it.
pub(crate) fn not_resumable(host: &Host, e: RuntimeError) -> anyhow::Error {
    match e {
        e @ (RuntimeError::UnknownRun { .. }
        | RuntimeError::NotAwaitingApproval { .. }
        | RuntimeError::AlreadyActive { .. }
        | RuntimeError::ActiveElsewhere { .. }
        | RuntimeError::Replay { .. }) => UsageError(format!("{e}{}", memory_note(host))).into(),
        other => other.into(),
    }
}

fn memory_note(host: &Host) -> &'static str {
    if host.stores.durable {
        ""
    } else {
        " (the store is in memory: runs do not outlive the process that started them)"
    }
}
