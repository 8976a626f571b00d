//! `worker [--concurrency N] [--no-schedule]`: drives runs from the PostgreSQL run queue
//! (`[store] url = "postgres://..."`) until SIGINT or SIGTERM — run as many as you like, on
//! any machines, against one database (see `executus_store::worker` for the guarantees).
//!
//! It picks queued runs (`run` and `schedule` enqueue them in `[runtime] mode = "queue"`) and
//! orphans (runs whose worker died: their lease expired), resumes checkpointed runs from their
//! log, heartbeats its leases, and records each outcome for whoever waits on it (`run`). It
//! also runs the `[schedule.jobs.*]` (unless `--no-schedule` or `[worker] schedule = false`),
//! shared: each fire is claimed by exactly one worker, which drives its run.
//!
//! On SIGINT/SIGTERM it stops picking, gives running runs `[runtime] shutdown_grace`,
//! checkpoints the rest, releases its leases at once (another worker takes over without
//! waiting for their expiry) and exits 0. If it loses its database connection it stops every
//! run at once and exits 1: its leases are about to expire, and other workers resume them.
//! What it does is logged on stderr, one line per run started or ended; outputs of delivered
//! runs (cron jobs) go to stdout.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use executus::ports::StdoutDelivery;
use executus_store::worker::{Worker, WorkerError, WorkerEvent, WorkerSettings};

use crate::config::CliConfig;
use crate::host::{Host, HostOptions};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Runs this worker drives at once (default: `[worker] concurrency`, 4).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Do not run the `[schedule.jobs.*]` here.
    #[arg(long)]
    pub no_schedule: bool,
}

/// Runs a worker until a signal.
///
/// # Errors
/// A store that is not PostgreSQL (exit 2); store failures (exit 1).
pub async fn worker(config: &CliConfig, args: WorkerArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    if !executus_store::postgres::is_postgres_url(&config.store_url) {
        return Err(UsageError(format!(
            "worker needs a store that workers share: [store] url = \"postgres://...\" (got {})",
            config.store_location()
        ))
        .into());
    }
    let jobs = !args.no_schedule && config.host.worker.schedule && !config.host.jobs.is_empty();
    let host = Host::build(
        config,
        HostOptions {
            delivery: Some(Arc::new(StdoutDelivery)),
            schedule: jobs,
            shared_schedule: true,
            ..HostOptions::default()
        },
    )
    .await?;
    let Some(pg) = host.stores.store.as_ref().and_then(|s| s.as_postgres()).cloned() else {
        return Err(anyhow::anyhow!("internal: a postgres URL opened another backend"));
    };
    let settings = WorkerSettings::default()
        .concurrency(args.concurrency.unwrap_or(config.host.worker.concurrency))
        .tenant_cap(config.host.worker.tenant_cap)
        .poll(config.host.worker.poll)
        .shutdown_grace(config.runtime.shutdown_grace);
    let owner = pg.owner().to_owned();
    let stop = interrupt.token().child_token();
    let mut schedule_task = None;
    if jobs && let Some(schedule) = host.schedule.clone() {
        for job in &config.host.jobs {
            if let Err(e) = host.runtime.agent(&job.agent).await {
                let key = format!("schedule.jobs.{}.agent", job.id);
                let origin = executus::config::source_of(&config.figment, &key);
                return Err(UsageError(format!(
                    "invalid configuration value for {key} (from {origin}): {e}"
                ))
                .into());
            }
            schedule.add_job(job.clone()).await.map_err(|e| UsageError(e.to_string()))?;
        }
        let runtime = host.runtime.clone();
        let stop = stop.clone();
        schedule_task = Some(tokio::spawn(async move { runtime.run_schedule(stop).await }));
    }
    let worker = Worker::new(host.runtime.clone(), pg, settings.clone());
    let mut events = worker.subscribe();
    let log = {
        let owner = owner.clone();
        tokio::spawn(async move {
            while let Ok(event) = events.recv().await {
                match event {
                    WorkerEvent::Started { run, resumed, orphan } => {
                        let how = match (resumed, orphan) {
                            (true, true) => "resumed (taken over from a worker that is gone)",
                            (true, false) => "resumed",
                            (false, true) => "started (taken over before its first checkpoint)",
                            (false, false) => "started",
                        };
                        eprintln!("worker {owner}: run {run} {how}");
                    }
                    WorkerEvent::Ended { run, status } => {
                        eprintln!("worker {owner}: run {run} ended {status}")
                    }
                    WorkerEvent::Refused { run, error } => {
                        eprintln!("worker {owner}: run {run} cannot start: {error}")
                    }
                    WorkerEvent::HandedBack { run, reason } => {
                        eprintln!("worker {owner}: run {run} handed back: {reason}")
                    }
                    other => eprintln!("worker {owner}: {other:?}"),
                }
            }
        })
    };
    eprintln!(
        "worker {owner}: driving up to {} run(s) from {}{}; stop with Ctrl-C or SIGTERM",
        settings.concurrency,
        config.store_location(),
        if jobs { format!(", running {} cron job(s)", config.host.jobs.len()) } else { String::new() }
    );
    let result = worker.run(stop.clone()).await;
    stop.cancel();
    if let Some(task) = schedule_task {
        let _ = task.await;
    }
    log.abort();
    match result {
        Ok(report) => {
            eprintln!(
                "worker {owner}: stopped ({}): {} started, {} resumed, {} ended, {} refused, {} handed over checkpointed",
                interrupt.which().unwrap_or("stop"),
                report.started,
                report.resumed,
                report.ended,
                report.refused,
                report.interrupted
            );
            if let Some(audit) = &host.audit {
                audit.shutdown().await;
            }
            if let Some(store) = &host.stores.store {
                store.close().await;
            }
            Ok(Exit::Ok)
        }
        Err(e @ WorkerError::LeaseLost { .. }) => {
            eprintln!("error: {e}");
            // Nothing more may run here; do not wait for a database that is gone.
            if let Some(audit) = &host.audit {
                let _ = tokio::time::timeout(Duration::from_secs(1), audit.shutdown()).await;
            }
            Ok(Exit::Failed)
        }
        Err(e) => Err(e.into()),
    }
}
