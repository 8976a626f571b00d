//! `fleet status|load|unload|unload-all|watch|bench|leaderboard`: the llama-swap hosts of
//! `[fleet.hosts.*]`, live; actions through each host's queue (a leased host needs
//! `--confirm`); the bench; the leaderboard of stored runs. History, bench runs, leases and
//! the action audit live in the store (`[store] url`), shared with `serve` and other
//! processes.

use std::io::{IsTerminal as _, Write as _};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use executus::config::ConfigError;
use executus_fleet::state::{Change, HostView};
use executus_fleet::{
    ActionKind, ActionRequest, BenchGrid, Fleet, FleetConfig, FleetError, LazyFleet, Snapshot, Status,
};
use executus_llm::{ChainOptions, Registry};

use crate::config::CliConfig;
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// Arguments of `fleet`.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FleetCommand,
}

/// `fleet` subcommands.
#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Every host: liveness and since when, models and their states, requests in flight.
    Status(StatusArgs),
    /// Load (warm) a model on a host, through the host's action queue.
    Load(ModelAction),
    /// Unload a model on a host.
    Unload(ModelAction),
    /// Unload every model on a host.
    UnloadAll(HostAction),
    /// Follow the fleet live until Ctrl-C.
    Watch,
    /// Bench a model on a host over a grid (holds the host's lease).
    Bench(BenchArgs),
    /// The best stored bench run per model and host.
    Leaderboard(JsonArg),
}

/// `fleet status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON: {"hosts":[{"name","base_url","liveness","since","models":[{"id","state"}],"in_flight"}]}.
    #[arg(long)]
    pub json: bool,
    /// How long to wait for the hosts' first answers.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
}

/// An action on one model.
#[derive(Debug, Args)]
pub struct ModelAction {
    /// The host (`[fleet.hosts.NAME]`).
    #[arg(long)]
    pub host: String,
    /// The model id.
    #[arg(long)]
    pub model: String,
    /// Take the host over if a bench holds it.
    #[arg(long)]
    pub confirm: bool,
}

/// An action on a host.
#[derive(Debug, Args)]
pub struct HostAction {
    /// The host (`[fleet.hosts.NAME]`).
    #[arg(long)]
    pub host: String,
    /// Take the host over if a bench holds it.
    #[arg(long)]
    pub confirm: bool,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `fleet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The host (`[fleet.hosts.NAME]`).
    #[arg(long)]
    pub host: String,
    /// The model id.
    #[arg(long)]
    pub model: String,
    /// Prompt lengths in tokens (approximate), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [128u32, 512])]
    pub prompt_tokens: Vec<u32>,
    /// Generated tokens, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [32u32, 128])]
    pub gen_tokens: Vec<u32>,
    /// Requests at once, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1u32, 2])]
    pub concurrency: Vec<u32>,
    /// Rounds per cell.
    #[arg(long, default_value_t = 3)]
    pub repetitions: u32,
    /// Print the run as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Registers `[fleet.auto.*]` as `auto:NAME` models in `registry`; the fleet behind them
/// (on the store at `store_url`) starts on the first request.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `fleet.auto.NAME` when the registry refuses the name.
pub fn register_auto(fleet: &FleetConfig, store_url: &str, registry: &Registry) -> Result<(), ConfigError> {
    if fleet.autos.is_empty() {
        return Ok(());
    }
    let (config, url) = (fleet.clone(), store_url.to_owned());
    let lazy = LazyFleet::new(
        move || {
            let (config, url) = (config.clone(), url.clone());
            Box::pin(async move {
                let store = executus_store::Store::open(&url).await.map_err(|e| FleetError::Config {
                    key: "store.url".into(),
                    reason: format!("cannot open the store {}: {e}", executus_store::postgres::redact(&url)),
                })?;
                let fleet = store.fleet().map_err(|e| FleetError::Config {
                    key: "store.url".into(),
                    reason: format!("the fleet's stores: {e}"),
                })?;
                Fleet::builder(config).store(fleet).build().await
            })
        },
        Duration::from_secs(3),
    );
    lazy.register_auto(fleet, registry, &ChainOptions::default()).map_err(|e| ConfigError::Invalid {
        key: "fleet.auto".into(),
        origin: "configuration".into(),
        reason: e.to_string(),
    })
}

/// Builds and starts the fleet of the configuration on the store (`long_lived`: also perf
/// polling and retention, for `watch`).
///
/// # Errors
/// [`UsageError`] without hosts; the store's or the fleet's error.
pub async fn open_fleet(config: &CliConfig, long_lived: bool) -> anyhow::Result<Fleet> {
    if config.fleet.hosts.is_empty() {
        return Err(UsageError(
            "no fleet hosts configured: add [fleet.hosts.NAME] base_url = \"http://host:port\" to executus.toml".into(),
        )
        .into());
    }
    let url = config.store_url.as_str();
    if let Some(dir) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .filter(|p| *p != ":memory:")
        .map(std::path::Path::new)
        .and_then(std::path::Path::parent)
        .filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store's folder {}", dir.display()))?;
    }
    let store = executus_store::Store::open(url).await.with_context(|| {
        format!("opening the store {} ([store] url)", executus_store::postgres::redact(url))
    })?;
    let mut fleet_config = config.fleet.clone();
    if !long_lived {
        fleet_config.perf_poll = None;
    }
    let fleet_store =
        store.fleet().map_err(|e| UsageError(format!("[fleet] needs its stores in the store: {e}")))?;
    let fleet = Fleet::builder(fleet_config).store(fleet_store).retention(long_lived).build().await?;
    fleet.start();
    Ok(fleet)
}

/// Runs a `fleet` subcommand.
///
/// # Errors
/// Configuration errors (exit 2) and failures (exit 1).
pub async fn fleet(config: &CliConfig, args: FleetArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    match args.command {
        FleetCommand::Status(a) => status(config, a).await,
        FleetCommand::Load(a) => act(config, &a.host, ActionKind::Load(a.model), a.confirm).await,
        FleetCommand::Unload(a) => act(config, &a.host, ActionKind::Unload(a.model), a.confirm).await,
        FleetCommand::UnloadAll(a) => act(config, &a.host, ActionKind::UnloadAll, a.confirm).await,
        FleetCommand::Watch => watch(config, interrupt).await,
        FleetCommand::Bench(a) => bench(config, a, interrupt).await,
        FleetCommand::Leaderboard(a) => leaderboard(config, a).await,
    }
}

fn host_error(e: FleetError) -> anyhow::Error {
    match e {
        e @ FleetError::UnknownHost { .. } => UsageError(e.to_string()).into(),
        FleetError::Leased { host, holder, purpose } => anyhow::anyhow!(
            "host {host:?} is leased for {purpose} by {holder} (a bench is running); repeat with --confirm to take it over"
        ),
        e => e.into(),
    }
}

fn models_of(h: &HostView) -> String {
    if h.models.is_empty() {
        return "-".into();
    }
    h.models.iter().map(|m| format!("{} ({})", m.id, m.state)).collect::<Vec<_>>().join(", ")
}

fn table(s: &Snapshot) {
    let width = s.hosts.iter().map(|h| h.name.len()).max().unwrap_or(4).max(4);
    outln!("{:width$}  {:12}  {:20}  {:9}  MODELS", "HOST", "LIVENESS", "SINCE", "IN FLIGHT");
    for h in &s.hosts {
        let mut liveness = h.liveness.to_string();
        if h.lease.is_some() {
            liveness.push('*');
        }
        outln!(
            "{:width$}  {:12}  {:20}  {:9}  {}",
            h.name,
            liveness,
            h.since.format("%Y-%m-%dT%H:%M:%SZ"),
            h.in_flight,
            models_of(h)
        );
    }
    if s.hosts.iter().any(|h| h.lease.is_some()) {
        outln!("* leased (a bench holds the host)");
    }
}

async fn status(config: &CliConfig, args: StatusArgs) -> anyhow::Result<Exit> {
    let fleet = open_fleet(config, false).await?;
    let snapshot = fleet.settle(args.wait).await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&Status::of(&snapshot))?);
    } else {
        table(&snapshot);
    }
    Ok(Exit::Ok)
}

async fn act(config: &CliConfig, host: &str, kind: ActionKind, confirm: bool) -> anyhow::Result<Exit> {
    let fleet = open_fleet(config, false).await?;
    fleet.client(host).map_err(host_error)?;
    fleet.settle(Duration::from_secs(5)).await?;
    let what = match kind.model() {
        Some(m) => format!("{} {m}", kind.name()),
        None => kind.name().to_owned(),
    };
    let request = ActionRequest { host: host.to_owned(), kind, confirm, actor: "cli".into() };
    let ticket = fleet.act(request).await.map_err(host_error)?;
    if let Some(lease) = &ticket.took_over {
        eprintln!("took host {host:?} over from {} ({})", lease.holder, lease.purpose);
    }
    if ticket.queue.len() > 1 {
        eprintln!("queued behind {} action(s) on {host}", ticket.queue.len() - 1);
    }
    ticket.done().await?;
    outln!("{what} on {host}: done");
    Ok(Exit::Ok)
}

fn describe(change: &Change) -> String {
    match change {
        Change::Reset(view) => format!("connected; {}", models_of(view)),
        Change::Liveness { liveness, since } => format!("{liveness} since {}", since.format("%H:%M:%S")),
        Change::Models { models } => format!(
            "models: {}",
            models.iter().map(|m| format!("{} ({})", m.id, m.state)).collect::<Vec<_>>().join(", ")
        ),
        Change::Attempt { failures } => format!("connection attempt failed ({failures} in a row)"),
        Change::InFlight { count, .. } => format!("in flight: {count}"),
        Change::Activity { rows } => rows
            .iter()
            .map(|r| {
                let tps = if r.gen_tps > 0.0 { format!(", {:.1} tok/s", r.gen_tps) } else { String::new() };
                format!("request {} {} {} ({} tokens{tps})", r.id, r.model, r.status, r.output_tokens)
            })
            .collect::<Vec<_>>()
            .join("; "),
        Change::Bench { model, gen_tps } => format!("bench: {model} {gen_tps:.1} tok/s"),
        Change::Lease { lease: Some(l) } => format!("leased for {} by {}", l.purpose, l.holder),
        Change::Lease { lease: None } => "lease released".into(),
        Change::Queue { queue } => format!(
            "queue: {}",
            if queue.is_empty() {
                "empty".to_owned()
            } else {
                queue
                    .iter()
                    .map(|q| format!("{} {}", q.action, q.model.as_deref().unwrap_or("")))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        Change::Perf { perf } => format!(
            "perf: cpu {} gpu {}",
            perf.cpu_pct.map_or("-".into(), |v| format!("{v:.0}%")),
            perf.gpu_util_pct.map_or("-".into(), |v| format!("{v:.0}%"))
        ),
    }
}

async fn watch(config: &CliConfig, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let fleet = open_fleet(config, true).await?;
    let mut sub = fleet.subscribe().await?;
    table(&sub.snapshot);
    loop {
        tokio::select! {
            () = interrupt.wait() => return Ok(Exit::Ok),
            delta = sub.deltas.recv() => match delta {
                Some(d) => {
                    sub.snapshot.apply(&d);
                    outln!("{} {} #{} {}", chrono::Utc::now().format("%H:%M:%S"), d.host, d.seq, describe(&d.change));
                }
                None => {
                    // Fell behind (or the fleet restarted its state): start over from a snapshot.
                    sub = fleet.subscribe().await?;
                    table(&sub.snapshot);
                }
            },
        }
    }
}

fn q(v: executus_fleet::bench::Quantiles) -> String {
    format!("{:.1}/{:.1}", v.p50, v.p90)
}

async fn bench(config: &CliConfig, args: BenchArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let grid = BenchGrid {
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        concurrency: args.concurrency,
        repetitions: args.repetitions,
    };
    grid.validate().map_err(|e| UsageError(format!("bench grid: {e}")))?;
    let fleet = open_fleet(config, false).await?;
    fleet.client(&args.host).map_err(host_error)?;
    let tty = std::io::stderr().is_terminal();
    let label = format!("{}/{}", args.host, args.model);
    let progress = |p: executus_fleet::bench::Progress| {
        if tty {
            let width = 30usize;
            let filled = usize::try_from(p.done * width as u64 / p.total.max(1)).unwrap_or(width).min(width);
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\rbench {label} [{}{}] {}/{}",
                "#".repeat(filled),
                ".".repeat(width - filled),
                p.done,
                p.total
            );
            let _ = err.flush();
        }
    };
    let run = tokio::select! {
        run = fleet.bench(&args.host, &args.model, &grid, progress) => run.map_err(host_error)?,
        () = interrupt.wait() => return Ok(Exit::Interrupted),
    };
    if tty {
        eprintln!();
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        outln!("bench {label}: {} cells, {}", run.cells.len(), run.aborted.as_deref().unwrap_or("complete"));
        outln!(
            "{:>7} {:>5} {:>5} {:>4} {:>4}  {:>15}  {:>17}  {:>15}  SOURCE",
            "PROMPT",
            "GEN",
            "CONC",
            "N",
            "ERR",
            "TTFT ms p50/p90",
            "PROMPT tok/s p50/90",
            "GEN tok/s p50/90"
        );
        for c in &run.cells {
            outln!(
                "{:>7} {:>5} {:>5} {:>4} {:>4}  {:>15}  {:>17}  {:>15}  {}",
                c.prompt_tokens,
                c.gen_tokens,
                c.concurrency,
                c.samples,
                c.errors,
                q(c.ttft_ms),
                q(c.prompt_tps),
                q(c.gen_tps),
                match c.source {
                    executus_fleet::bench::SpeedSource::Timings => "timings",
                    executus_fleet::bench::SpeedSource::Wall => "wall clock",
                }
            );
            if let Some(e) = &c.first_error {
                outln!("        first error: {e}");
            }
        }
    }
    let failed = run.aborted.is_some() || run.cells.iter().any(|c| c.samples == 0);
    Ok(if failed { Exit::Partial } else { Exit::Ok })
}

async fn leaderboard(config: &CliConfig, args: JsonArg) -> anyhow::Result<Exit> {
    let fleet = open_fleet(config, false).await?;
    let rows = fleet.leaderboard().await?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Ok);
    }
    if rows.is_empty() {
        outln!("no bench runs stored yet: run `executus-run fleet bench --host H --model M`");
        return Ok(Exit::Ok);
    }
    outln!("{:24} {:12} {:>10} {:>10} {:>5}  LAST RUN", "MODEL", "HOST", "GEN tok/s", "TTFT ms", "RUNS");
    for r in rows {
        outln!(
            "{:24} {:12} {:>10.1} {:>10.1} {:>5}  {}",
            r.model,
            r.host,
            r.gen_tps,
            r.ttft_ms,
            r.runs,
            r.last.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(Exit::Ok)
}
