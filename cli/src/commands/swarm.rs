//! `swarm [--input FILE | -] [--format json | ndjson | markdown | sarif] [--out FILE]
//! [--quiet]`: the light host's job as a command — N models x M lenses over an input (a
//! unified diff), each cell answering with structured findings, merged and de-duplicated
//! across models by the `pr-review-swarm` library.
//!
//! Models, lenses, concurrency and deadline come from `[swarm]`; providers and tiers from
//! the rest of the configuration. A progress bar is drawn on stderr only when stderr is a
//! terminal, `NO_COLOR` is unset and `--quiet` is not given. Exit 0 when the review was
//! made (failed cells are listed in it), 1 when every cell failed or the output could not
//! be written, 2 for configuration errors, 130 when interrupted.

use std::io::{IsTerminal as _, Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use executus::fanout::FanoutProgress;
use pr_review_swarm::review::MAX_DIFF_BYTES;
use pr_review_swarm::{
    Progress, ReviewConfig, ReviewError, render_json, render_markdown, render_ndjson, render_sarif,
    run_review_with_progress,
};

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
    #[arg(long, value_name = "FILE | -")]
    pub input: Option<String>,
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

/// Runs the swarm.
///
/// # Errors
/// Configuration errors (exit 2), output that cannot be written (exit 1).
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
    let input = read_input(args.input.as_deref())?;

    let host = Host::build(
        config,
        HostOptions {
            extra_lanes: vec![(SWARM_LANE.to_owned(), settings.concurrency)],
            // One-shot cells: nothing to resume, so no store file is created or touched.
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
        ..ReviewConfig::default()
    };
    let show_bar = !args.quiet && std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    let review = tokio::select! {
        review = run_review_with_progress(&host.runtime, &review_config, &input, |p| {
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
    let review = review.map_err(|e| match e {
        e @ (ReviewError::EmptyDiff | ReviewError::DiffTooLarge { .. }) => {
            UsageError(format!("--input: {e}")).into()
        }
        e if e.is_config() => UsageError(e.to_string()).into(),
        e => anyhow::Error::from(e),
    })?;

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
    if !args.quiet {
        let failed = review.failed_cells().count();
        eprintln!(
            "swarm: {} models x {} lenses, {} cells answered, {failed} failed; {} findings after merging{}",
            review.models.len(),
            review.lenses.len(),
            review.succeeded_cells(),
            review.findings.len(),
            args.out.as_ref().map(|p| format!("; wrote {}", p.display())).unwrap_or_default()
        );
    }
    if review.all_failed() {
        eprintln!("error: every cell failed ({} cells); the review lists the reasons", review.cells.len());
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}

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
        FanoutProgress::Started { model, lens } => format!("{model} x {lens} started"),
        FanoutProgress::Finished { model, lens } => format!("{model} x {lens} done"),
        FanoutProgress::Failed { model, lens, .. } => format!("{model} x {lens} FAILED"),
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
