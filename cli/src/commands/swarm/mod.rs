//! `swarm [--input FILE | - | --base [REF]] [--format ...] [--out FILE] [--out-dir DIR]
//! [--post github|gitlab [--inline]] [--fail-on error|warning|note|none] [--no-cache]
//! [--quiet]`: the light host's job as a command — N models x M lenses over a unified diff,
//! split per file and hunk group, each cell answering with structured findings, merged and
//! de-duplicated across models by the `executus-swarm` library.
//!
//! Models, lenses, concurrency, deadline, exclude globs and token budgets come from `[swarm]`;
//! providers and tiers from the rest of the configuration. `--base` makes the diff with
//! `git diff --merge-base` (the base defaults to the CI's: `origin/$GITHUB_BASE_REF`,
//! `$CI_MERGE_REQUEST_DIFF_BASE_SHA`, else `origin/main`). Answered cells are kept in the
//! store's review cache (unless `[swarm] cache = false` or `--no-cache`), so a re-run asks the
//! models only about chunks that changed; with `[budget] prices` the summary shows the spend.
//! `--post` puts the review on the pull request (one comment, edited on re-runs). A progress
//! bar is drawn on stderr only when stderr is a terminal, `NO_COLOR` is unset and `--quiet` is
//! not given.
//!
//! Exit 0 when the review was made (failed cells are listed in it), 1 when every cell failed
//! or the output could not be written or posted, 2 for configuration errors, 5 when the review
//! has findings at or above `--fail-on`, 130 when interrupted.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

mod cache;

use std::path::Path;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use executus::fanout::FanoutProgress;
use executus_llm::Usage;
use executus_swarm::diff::DiffIndex;
use executus_swarm::git::{Base, ci_base, diff_from_git};
use executus_swarm::review::MAX_DIFF_BYTES;
use executus_swarm::{
    FailOn, NoCache, Platform, PostTarget, Progress, ReviewCache, ReviewConfig, ReviewError, post_review,
    render_comment, render_json, render_markdown, render_ndjson, render_sarif, run_review_cached,
    write_outputs,
};

pub use cache::StoreReviewCache;

use crate::config::CliConfig;
use crate::host::{Host, HostOptions, Persistence};
use crate::signals::Interrupt;
use crate::{Exit, UsageError};

/// The lane swarm cells run in (its capacity is `[swarm] concurrency`).
pub const SWARM_LANE: &str = "swarm";

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Markdown, for people.
    Markdown,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
    /// One JSON document.
    Json,
    /// One JSON object per line (findings, then cells, then a summary).
    Ndjson,
}

/// Arguments of `swarm`.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// The input to review (a unified diff): a file, or `-` for stdin. Default: stdin when it
    /// is not a terminal.
    #[arg(long, value_name = "FILE | -", conflicts_with = "base")]
    pub input: Option<String>,
    /// Review `git diff --merge-base REF HEAD` of the repository in the current folder. Without
    /// REF: the CI's base (origin/$GITHUB_BASE_REF, $CI_MERGE_REQUEST_DIFF_BASE_SHA), else
    /// origin/main.
    #[arg(long, value_name = "REF", num_args = 0..=1, default_missing_value = "")]
    pub base: Option<String>,
    /// Also write review.md, review.sarif and review.json into this folder.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Post the review on the pull request (one comment, edited on re-runs): `github` (needs
    /// GITHUB_TOKEN) or `gitlab` (needs GITLAB_TOKEN or CI_JOB_TOKEN).
    #[arg(long, value_name = "PLATFORM", value_parser = parse_platform)]
    pub post: Option<Platform>,
    /// With --post: also comment on the changed lines each finding is about.
    #[arg(long, requires = "post")]
    pub inline: bool,
    /// Exit 5 when the review has a finding at or above this severity (`none`: never).
    #[arg(long, value_name = "LEVEL", default_value = "none", value_parser = parse_fail_on)]
    pub fail_on: FailOn,
    /// Do not read or write the review cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: Format,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// No progress bar and no summary line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

fn parse_platform(text: &str) -> Result<Platform, String> {
    text.parse()
}

fn parse_fail_on(text: &str) -> Result<FailOn, String> {
    text.parse()
}

/// Runs the swarm.
///
/// # Errors
/// Configuration errors (exit 2), output that cannot be written or posted (exit 1).
pub async fn swarm(config: &CliConfig, args: SwarmArgs, interrupt: &Interrupt) -> anyhow::Result<Exit> {
    let settings = &config.host.swarm;
    if settings.models.is_empty() {
        let providers = config.registry.provider_names();
        return Err(UsageError(format!(
            "swarm.models is not set: add [swarm] models = [\"provider/model\", ...] to the configuration \
             (providers: {})",
            if providers.is_empty() { "none configured".to_owned() } else { providers.join(", ") }
        ))
        .into());
    }
    // Every model spec was resolved when the configuration was loaded (config::check).
    let input = match &args.base {
        Some(base) => {
            let base = if base.trim().is_empty() {
                ci_base(&|name: &str| std::env::var(name).ok())
            } else {
                Base { reference: base.trim().to_owned(), source: "given" }
            };
            let repo = std::env::current_dir().context("the current folder")?;
            let diff = diff_from_git(&repo, &base, MAX_DIFF_BYTES)
                .map_err(|e| UsageError(format!("--base: {e}")))?;
            if !args.quiet {
                eprintln!(
                    "swarm: reviewing {}..{} (the merge base with base {} from {})",
                    short(&diff.merge_base),
                    short(&diff.head),
                    base.reference,
                    base.source
                );
            }
            diff.diff
        }
        None => read_input(args.input.as_deref())?,
    };
    // Where to post is checked before any model is paid for.
    let post = match args.post {
        Some(platform) => Some(
            PostTarget::from_env(platform, &|name: &str| std::env::var(name).ok())
                .map_err(|e| UsageError(e.to_string()))?,
        ),
        None => None,
    };
    let cache: Box<dyn ReviewCache> = if settings.cache && !args.no_cache {
        Box::new(open_cache(&config.store_url).await?)
    } else {
        Box::new(NoCache)
    };

    let host = Host::build(
        config,
        HostOptions {
            extra_lanes: vec![(SWARM_LANE.to_owned(), settings.concurrency)],
            // One-shot cells: nothing to resume; the review cache is the only thing kept.
            persistence: Persistence::Memory,
            ..HostOptions::default()
        },
    )
    .await?;
    let review_config = ReviewConfig {
        models: settings.models.clone(),
        lenses: settings.lenses.clone(),
        concurrency: settings.concurrency,
        deadline: settings.deadline,
        quiet: args.quiet,
        lane: Some(SWARM_LANE.to_owned()),
        exclude: settings.exclude.clone(),
        max_cell_tokens: settings.max_cell_tokens,
        max_total_tokens: settings.max_total_tokens,
        context_tokens: settings.context_tokens,
        fail_on: args.fail_on,
        post: args.post,
        inline: args.inline,
        ..ReviewConfig::default()
    };
    let show_bar = !args.quiet && std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let review = tokio::select! {
        review = run_review_cached(&host.runtime, &review_config, &input, cache.as_ref(), |p| {
            if show_bar {
                draw_bar(p);
            }
        }) => review,
        () = interrupt.wait() => {
            if show_bar {
                eprintln!();
            }
            host.close(std::time::Duration::ZERO).await;
            eprintln!("swarm: interrupted; no review written");
            return Ok(Exit::Interrupted);
        }
    };
    if show_bar {
        eprintln!();
    }
    host.close(config.runtime.shutdown_grace).await;
    let mut review = review.map_err(|e| match e {
        e @ (ReviewError::EmptyDiff | ReviewError::DiffTooLarge { .. }) => {
            UsageError(format!("--input: {e}")).into()
        }
        e if e.is_config() => UsageError(e.to_string()).into(),
        e => anyhow::Error::from(e),
    })?;
    if let Some(budget) = config.host.budget.as_ref().filter(|b| !b.prices.is_empty()) {
        let registry = &config.registry;
        review.apply_prices(|model, usage| price(&budget.prices, registry, model, usage));
    }

    let text = match args.format {
        Format::Markdown => render_markdown(&review),
        Format::Sarif => pretty(&render_sarif(&review)),
        Format::Json => pretty(&render_json(&review)),
        Format::Ndjson => render_ndjson(&review),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(anyhow::anyhow!("writing the review to stdout: {e}"));
                }
            }
        }
    }
    if let Some(dir) = &args.out_dir {
        write_outputs(&review, dir)?;
    }
    for warning in &review.warnings {
        eprintln!("swarm: warning: {warning}");
    }
    if !args.quiet {
        let failed = review.failed_cells().count();
        eprintln!(
            "swarm: {} models x {} lenses over {} chunks of {} files: {} cells answered ({} from the cache), \
             {failed} failed; {} findings after merging{}{}",
            review.models.len(),
            review.lenses.len(),
            review.chunks,
            review.files,
            review.succeeded_cells(),
            review.cached_cells(),
            review.findings.len(),
            if review.left_out.is_empty() {
                String::new()
            } else {
                format!("; {} left out", review.left_out.len())
            },
            args.out.as_ref().map(|p| format!("; wrote {}", p.display())).unwrap_or_default()
        );
        if let Some(spend) = &review.spend {
            eprintln!("swarm: spend ${:.4}, saved by the cache ${:.4}", spend.fresh_usd, spend.saved_usd);
        }
    }
    // Post what there is, also when some cells failed or the deadline passed.
    if let Some(target) = &post {
        let report =
            post_review(target, &review, &render_comment(&review), &DiffIndex::parse(&input), args.inline)
                .await
                .map_err(|e| anyhow::anyhow!("posting the review: {e}"))?;
        if !args.quiet {
            eprintln!(
                "swarm: {} the review comment {}{}{}",
                if report.created { "created" } else { "updated" },
                report.comment_id,
                report.url.as_deref().map(|u| format!(" ({u})")).unwrap_or_default(),
                if args.inline {
                    format!(
                        "; inline comments: {} posted, {} already there, {} findings not on a changed line",
                        report.inline_posted, report.inline_existing, report.inline_not_in_diff
                    )
                } else {
                    String::new()
                }
            );
        }
        for warning in &report.warnings {
            eprintln!("swarm: warning: {warning}");
        }
    }
    if review.all_failed() {
        eprintln!("error: every cell failed ({} cells); the review lists the reasons", review.cells.len());
        return Ok(Exit::Failed);
    }
    if args.fail_on.tripped(&review) {
        eprintln!(
            "swarm: {} findings at or above {} (--fail-on): exit {}",
            args.fail_on.count(&review),
            args.fail_on,
            Exit::Findings as u8
        );
        return Ok(Exit::Findings);
    }
    Ok(Exit::Ok)
}

/// The store's review cache, the store file (and its folder) created if missing.
async fn open_cache(url: &str) -> anyhow::Result<StoreReviewCache> {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"));
    if let Some(dir) = path.filter(|p| *p != ":memory:").map(Path::new).and_then(Path::parent)
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the store's folder {}", dir.display()))?;
    }
    let store = executus_store::Store::open(url).await.with_context(|| {
        format!(
            "opening the store {} ([store] url) for the review cache",
            executus_store::postgres::redact(url)
        )
    })?;
    Ok(StoreReviewCache::new(store.review_cache()))
}

/// The USD cost of `usage` on `model` (a `provider/model`, or a tier priced at its first
/// target), or `None` when the price table has no price for it.
fn price(
    prices: &executus_budget::PriceTable,
    registry: &executus_llm::Registry,
    model: &str,
    usage: &Usage,
) -> Option<f64> {
    let found = prices.lookup(model).or_else(|| {
        let targets = registry.resolve(model).ok()?;
        prices.lookup_target(targets.first()?)
    })?;
    Some(found.cost(usage).as_usd())
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

// The light host and the CLI document the same code for "findings at or above the threshold".
const _: () = assert!(Exit::Findings as u8 == executus_swarm::FINDINGS_EXIT);

fn pretty(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    text.push('\n');
    text
}

/// Reads the input: a file, `-` for stdin, or stdin when it is not a terminal.
fn read_input(input: Option<&str>) -> anyhow::Result<String> {
    let (name, reader): (String, Box<dyn std::io::Read>) = match input {
        Some("-") => ("stdin".into(), Box::new(std::io::stdin())),
        Some(path) => {
            let file = std::fs::File::open(path).map_err(|e| UsageError(format!("--input {path}: {e}")))?;
            (path.to_owned(), Box::new(file))
        }
        None if !std::io::stdin().is_terminal() => ("stdin".into(), Box::new(std::io::stdin())),
        None => {
            return Err(UsageError(
                "no input: pass --input FILE, or --input - (or a pipe) to read stdin".into(),
            )
            .into());
        }
    };
    let mut text = String::new();
    let limit = u64::try_from(MAX_DIFF_BYTES + 1).unwrap_or(u64::MAX);
    reader.take(limit).read_to_string(&mut text).map_err(|e| UsageError(format!("--input {name}: {e}")))?;
    if text.len() > MAX_DIFF_BYTES {
        return Err(UsageError(format!("--input {name}: larger than {MAX_DIFF_BYTES} bytes")).into());
    }
    Ok(text)
}

/// One redraw of the progress bar (carriage return, no newline).
fn draw_bar(p: &Progress) {
    const WIDTH: usize = 24;
    let filled = (p.done * WIDTH).checked_div(p.total).unwrap_or(WIDTH).min(WIDTH);
    let last = match &p.event {
        FanoutProgress::Started { model, lens } => format!("{model} x {lens} x {} started", p.chunk),
        FanoutProgress::Finished { model, lens } if p.cached => {
            format!("{model} x {lens} x {} cached", p.chunk)
        }
        FanoutProgress::Finished { model, lens } => format!("{model} x {lens} x {} done", p.chunk),
        FanoutProgress::Failed { model, lens, .. } => format!("{model} x {lens} x {} FAILED", p.chunk),
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K[{}{}] {}/{} {last}",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        p.done,
        p.total
    );
    let _ = err.flush();
}
