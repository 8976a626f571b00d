//! `executus-run`: the command-line host for executus — run an agent, run a review swarm,
//! chat with a persona, resume interrupted runs, answer approvals, run the cron schedule,
//! drive runs from a shared PostgreSQL queue (`worker`), migrate or copy a store, and inspect
//! models and configuration.
//! generate an image, and inspect models and configuration.
//!
//! Exit codes: 0 success; 1 the run failed; 2 usage or configuration error; 3 budget denied;
//! 4 partial or stopped by a cap; 5 `swarm --fail-on`: findings at or above the threshold;
//! 130 interrupted.

/// `println!` that tolerates a closed stdout: when the reader has gone (`| head`), the rest of
/// the output is dropped instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::write_stdout(format_args!($($arg)*))
    };
}

mod commands;
mod config;
mod host;
mod signals;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the C library's malloc: `serve` allocates a few dozen small buffers per
/// request from two threads, and glibc's allocator (its locking, consolidation and large-chunk
/// paths) was about 15 % of the gateway's CPU per request; the other commands gain too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The run failed.
    Failed = 1,
    /// Usage or configuration error.
    Usage = 2,
    /// Budget denied.
    Budget = 3,
    /// Partial or stopped by a cap.
    Partial = 4,
    /// `swarm --fail-on`: the review has findings at or above the threshold.
    Findings = 5,
    /// Interrupted (SIGINT / SIGTERM).
    Interrupted = 130,
}

impl Exit {
    /// The exit code for a run status.
    pub fn for_status(status: executus::RunStatus) -> Self {
        use executus::RunStatus;
        match status {
            RunStatus::Completed | RunStatus::AwaitingApproval => Self::Ok,
            RunStatus::BudgetDenied => Self::Budget,
            RunStatus::Partial | RunStatus::Stopped => Self::Partial,
            RunStatus::Cancelled => Self::Interrupted,
            _ => Self::Failed,
        }
    }
}

/// A configuration or usage problem (exit 2), as opposed to a failed run (exit 1).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Runs agents and swarms, resumes interrupted runs, answers approvals, runs schedules.
#[derive(Debug, Parser)]
#[command(
    name = "executus-run",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success, 1 the run failed, 2 usage or configuration error, \
                  3 budget denied, 4 partial or stopped by a cap, 5 swarm findings at or above \
                  --fail-on, 130 interrupted."
)]
pub struct Cli {
    /// Configuration file (default: ./executus.toml if it exists).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log filter (also RUST_LOG), e.g. `info` or `executus=debug`.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one agent.
    Run(commands::run::RunArgs),
    /// Review a diff with N models x M lenses (the `[swarm]` section); merged, de-duplicated findings.
    Swarm(commands::swarm::SwarmArgs),
    /// Chat with a persona on stdin/stdout; the conversation is kept in the store.
    Chat(commands::chat::ChatArgs),
    /// List or resume runs left interrupted in the store (a crash, a kill, a shutdown).
    Resume(commands::resume::ResumeArgs),
    /// Approve a tool call a run is waiting on; the run continues.
    Approve(commands::approve::ApproveArgs),
    /// Deny a tool call a run is waiting on; the model is told why and the run continues.
    Deny(commands::approve::DenyArgs),
    /// Run the cron jobs of [schedule.jobs.*] in the foreground until SIGINT or SIGTERM.
    Schedule(commands::schedule::ScheduleArgs),
    /// Drive runs from the PostgreSQL run queue (any number of workers, any machines).
    Worker(commands::worker::WorkerArgs),
    /// Migrate a store, or copy one into another (e.g. SQLite into PostgreSQL).
    Store(commands::store::StoreArgs),
    /// Generate an image with the image chain (--model, else `[image] model`) into a file.
    Image(commands::image::ImageArgs),
    /// Providers, tiers and the chain each tier resolves to, with health.
    Models(commands::models::ModelsArgs),
    /// An OpenAI- and Anthropic-compatible endpoint for coding agents (`[serve]`): every
    /// request through the failover chain and the guardrails, until SIGINT or SIGTERM.
    Serve(commands::serve::ServeArgs),
    /// The llama-swap hosts of [fleet.hosts.*]: status, load / unload, watch, bench.
    Fleet(commands::fleet::FleetArgs),
    /// The effective configuration, secrets redacted, with where each value came from; with
    /// `--check`, only check it (exit 0, or 2 naming the first problem).
    Config(commands::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { Exit::Usage as u8 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let telemetry = init_logging(cli.log.as_deref(), cli.config.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let result = runtime.block_on(commands::dispatch(cli));
    // A read of stdin may still sit on a blocking thread (chat interrupted mid-line): do not
    // wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    // Spans queued for the collector go out before the process ends (bounded).
    if let Some(telemetry) = &telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            let code = if e.downcast_ref::<UsageError>().is_some()
                || e.downcast_ref::<executus::config::ConfigError>().is_some()
            {
                Exit::Usage
            } else {
                Exit::Failed
            };
            ExitCode::from(code as u8)
        }
    }
}

/// Writes one line to stdout, ignoring a closed pipe (see `outln!`).
pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    // Errors are ignored on purpose: the only realistic one is the reader closing the pipe,
    // and the command's result (its exit code) does not depend on who reads its output.
    let _ = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
}

/// Logs to stderr (`--log`, `RUST_LOG`, default `warn`) and, when `[telemetry]` or the
/// `OTEL_*` variables name a collector, exports spans there. The configuration file is read
/// here only for `[telemetry]`; a bad one is reported by the command that loads it.
fn init_logging(filter: Option<&str>, config: Option<&std::path::Path>) -> Option<telemetry::Telemetry> {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal: a log piped to a file or a journal must
        // stay plain text (greppable, no escape codes between a field and its value).
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .with_filter(filter);
    let settings = telemetry_settings(config);
    let (telemetry, otel, problem) = match &settings {
        Ok(None) => (None, None, None),
        Ok(Some(settings)) => match telemetry::Telemetry::start(settings) {
            Ok((t, layer)) => (Some(t), Some(layer), None),
            Err(e) => (None, None, Some(e)),
        },
        Err(e) => (None, None, Some(e.clone())),
    };
    let _ = tracing_subscriber::registry().with(fmt).with(otel).try_init();
    if let Some(problem) = problem {
        tracing::warn!("OpenTelemetry export is off: {problem}");
    }
    telemetry
}

/// `[telemetry]` and the `OTEL_*` variables; an unreadable file means no export (the
/// command reports the file's problem itself).
fn telemetry_settings(config: Option<&std::path::Path>) -> Result<Option<telemetry::Settings>, String> {
    let file = config.map(std::path::Path::to_path_buf).or_else(|| {
        let default = std::path::PathBuf::from("executus.toml");
        default.exists().then_some(default)
    });
    let Ok(figment) = executus::config::figment(file.as_deref(), false) else { return Ok(None) };
    telemetry::Settings::load(&figment, &|v| std::env::var(v).ok()).map_err(|e| e.to_string())
}
