//! `store migrate [--url URL]` and `store copy --from URL --to URL`.
//!
//! - `migrate`: opens the store (`[store] url`, or `--url`), which creates it if missing and
//!   applies the embedded migrations of its backend, and says where it is. Every command
//!   migrates on open too; this is for deploys that migrate first, then start workers.
//! - `copy`: copies everything a store holds (interrupted runs with their logs, personas,
//!   skills, audit, budget spend, schedule jobs and watermarks, conversations, the gateway's
//!   sessions, the review cache, the fleet's history; see `executus_store::copy`)
//!   into a new, empty store — typically `--from sqlite://executus.db --to
//!   postgres://user@host/db` when one machine is no longer enough. Stop every process using
//!   the source first. On PostgreSQL the copied interrupted runs are in the run queue:
//!   `executus-run worker` resumes them.
//!
//! Passwords in URLs are never printed.

use clap::{Args, Subcommand};
use executus_store::Store;
use executus_store::postgres::redact;

use crate::Exit;
use crate::config::CliConfig;

/// Arguments of `store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// `store` subcommands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store if missing and apply its schema migrations.
    Migrate {
        /// The store (default: `[store] url`).
        #[arg(long)]
        url: Option<String>,
    },
    /// Copy everything from one store into a new, empty one (any backend to any backend).
    Copy {
        /// The source store, e.g. `sqlite://executus.db`.
        #[arg(long)]
        from: String,
        /// The target store, e.g. `postgres://executus@db.internal/executus`; must be empty.
        #[arg(long)]
        to: String,
    },
}

/// Runs `store`.
///
/// # Errors
/// A store that cannot be opened or copied, naming it (passwords redacted).
pub async fn store(config: &CliConfig, args: StoreArgs) -> anyhow::Result<Exit> {
    let options = config.store.options();
    match args.command {
        StoreCommand::Migrate { url } => {
            let url = url.unwrap_or_else(|| config.store_url.clone());
            let store = Store::open_with(&url, options)
                .await
                .map_err(|e| anyhow::anyhow!("store migrate {}: {e}", redact(&url)))?;
            outln!("store {} ({}): schema up to date", store.location(), store.backend_name());
            store.close().await;
            Ok(Exit::Ok)
        }
        StoreCommand::Copy { from, to } => {
            let source = Store::open_with(&from, options.clone())
                .await
                .map_err(|e| anyhow::anyhow!("store copy: opening the source {}: {e}", redact(&from)))?;
            let target = Store::open_with(&to, options)
                .await
                .map_err(|e| anyhow::anyhow!("store copy: opening the target {}: {e}", redact(&to)))?;
            let report = executus_store::copy(&source, &target).await.map_err(|e| {
                anyhow::anyhow!("store copy {} -> {}: {e}", source.location(), target.location())
            })?;
            outln!(
                "copied {} -> {}: {} interrupted run(s) ({} log entries), {} persona(s), {} skill(s) ({} versions), {} audit record(s), {} spend row(s), {} job(s), {} watermark(s), {} conversation(s) ({} messages), {} gateway session(s), {} review cache answer(s), fleet history: {} activity row(s), {} perf sample(s), {} perf bucket(s), {} model state change(s), {} bench run(s), {} action record(s)",
                source.location(),
                target.location(),
                report.runs,
                report.entries,
                report.personas,
                report.skills,
                report.skill_versions,
                report.audit_records,
                report.spend_rows,
                report.jobs,
                report.watermarks,
                report.conversations,
                report.chat_messages,
                report.sessions,
                report.review_cells,
                report.fleet_activity,
                report.fleet_samples,
                report.fleet_buckets,
                report.fleet_model_states,
                report.fleet_bench_runs,
                report.fleet_actions
            );
            source.close().await;
            target.close().await;
            Ok(Exit::Ok)
        }
    }
}
