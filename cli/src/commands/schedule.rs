//! `schedule [--list]`: runs the cron jobs of `[schedule.jobs.ID]` in the foreground until
//! SIGINT or SIGTERM; each fire is a run admitted through its lane whose output is
//! delivered to stdout (`[agent run-id status] output`). What the scheduler does (fires,
//! skips, failures, run ends) is logged on stderr.
//!
//! At start-up it resumes runs a previous process left interrupted. On SIGINT/SIGTERM it
//! shuts down gracefully: the scheduler stops admitting fires, running jobs get
//! `[runtime] shutdown_grace` to finish, and every run still going is interrupted with its
//! checkpoint flushed, to resume at the next start. Exit code 0 after a graceful stop.
//! Watermarks (the last fire handled per job) live in the store: fires missed while it was
//! not running are caught up per job's `catch_up` policy.
//!
//! With `[runtime] mode = "queue"` each fire is enqueued for `executus-run worker` processes
//! instead of driven here, and several `schedule` processes may run against the same
//! PostgreSQL store: each fire is claimed by exactly one of them.

use std::sync::Arc;

use clap::Args;
use executus::ports::StdoutDelivery;
use executus_schedule::ScheduleEvent;

use crate::config::CliConfig;
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `schedule`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Print the jobs and their next fire times, then exit.
    #[arg(long)]
    pub list: bool,
}

/// Runs the scheduler.
///
/// # Errors
/// No jobs, a job naming an unknown agent (exit 2); store failures (exit 1).
pub async fn schedule(config: &CliConfig, args: ScheduleArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let jobs = &config.host.jobs;
    if jobs.is_empty() {
        return Err(UsageError(
            "no jobs to schedule: add [schedule.jobs.ID] sections (cron, agent, input) to the configuration"
                .into(),
        )
        .into());
    }
    // Queue mode: fires are enqueued for the workers, and several `schedule` processes may
    // run (each fire is claimed by one of them).
    let queued = config.runtime.mode == executus::config::RunMode::Queue;
    let host = Host::build(
        config,
        HostOptions {
            delivery: Some(Arc::new(StdoutDelivery)),
            schedule: true,
            queue: queued,
            shared_schedule: queued,
            ..HostOptions::default()
        },
    )
    .await?;
    let Some(schedule) = host.schedule.clone() else {
        return Err(anyhow::anyhow!("internal: the host was built without its schedule"));
    };
    for job in jobs {
        if let Err(e) = host.runtime.agent(&job.agent).await {
            let key = format!("schedule.jobs.{}.agent", job.id);
            let origin = executus::config::source_of(&config.figment, &key);
            return Err(
                UsageError(format!("invalid configuration value for {key} (from {origin}): {e}")).into()
            );
        }
        schedule.add_job(job.clone()).await.map_err(|e| UsageError(e.to_string()))?;
    }
    let now = chrono::Utc::now();
    for job in jobs {
        let next = schedule.job(&job.id).and_then(|j| j.next_after(now));
        let next = next.map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
        if args.list {
            outln!(
                "{}  {:<20}  {} ({})  agent {}  next {next}",
                job.id,
                job.cron,
                job.timezone,
                format!("overlap {:?}", job.overlap).to_lowercase(),
                job.agent
            );
        } else {
            eprintln!(
                "schedule: job {} ({} {}) -> agent {}; next fire {next}",
                job.id, job.cron, job.timezone, job.agent
            );
        }
    }
    if args.list {
        host.close(config.runtime.shutdown_grace).await;
        return Ok(Exit::Ok);
    }

    let resumed = host.runtime.resume_interrupted().await?;
    if !resumed.is_empty() {
        eprintln!("schedule: resumed {} interrupted run(s) from {}", resumed.len(), host.stores.location);
    }
    let mut events = schedule.subscribe();
    let log = tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => log_event(&event),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("schedule: {n} events not shown (the log fell behind)");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let stop = interrupt.token().child_token();
    let runner = {
        let runtime = host.runtime.clone();
        let stop = stop.clone();
        tokio::spawn(async move { runtime.run_schedule(stop).await })
    };
    eprintln!("schedule: running {} job(s); stop with Ctrl-C or SIGTERM", jobs.len());
    interrupt.wait().await;
    let signal = interrupt.which().unwrap_or("signal");
    let active = host.runtime.active_runs().await;
    eprintln!(
        "schedule: {signal}: no more fires; {active} run(s) in flight get {} to finish, then are checkpointed",
        humantime::format_duration(config.runtime.shutdown_grace)
    );
    stop.cancel();
    let _ = runner.await;
    host.close(config.runtime.shutdown_grace).await;
    log.abort();
    eprintln!("schedule: stopped");
    Ok(Exit::Ok)
}

fn log_event(event: &ScheduleEvent) {
    match event {
        ScheduleEvent::Fired { job, fire, run_id, catch_up_from, .. } => match catch_up_from {
            Some(from) => {
                eprintln!("schedule: {job}: fired run {run_id} (catching up fires from {from} to {fire})")
            }
            None => eprintln!("schedule: {job}: fired run {run_id} for {fire}"),
        },
        ScheduleEvent::Skipped { job, fire, reason, .. } => {
            eprintln!("schedule: {job}: skipped the fire of {fire} ({reason:?})");
        }
        ScheduleEvent::Queued { job, fire, .. } => {
            eprintln!("schedule: {job}: the fire of {fire} waits for the running run")
        }
        ScheduleEvent::Failed { job, fire, error, .. } => {
            eprintln!("schedule: {job}: the fire of {fire} failed: {error}")
        }
        ScheduleEvent::RunEnded { job, run_id, status, .. } => {
            eprintln!("schedule: {job}: run {run_id} ended {status}")
        }
        other => eprintln!("schedule: {other:?}"),
    }
}
