//! `pr-review-swarm`: reviews a unified diff (a file, stdin, or `git diff --merge-base` of
//! the current repository) with N models x M lenses and prints the Markdown review; writes
//! review.md, review.sarif and review.json; optionally keeps a review cache in a folder, posts
//! the review on the pull request and gates on findings. Configured by environment variables
//! only (`--help` lists them). Exit codes: 0 reviewed, 1 every cell failed (or the outputs
//! could not be written or posted), 2 configuration error, 5 findings at or above
//! `PR_REVIEW_FAIL_ON`.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::anyhow;
use executus::fanout::FanoutProgress;
use pr_review_swarm::config::ENV_VARS;
use pr_review_swarm::diff::DiffIndex;
use pr_review_swarm::{
    FINDINGS_EXIT, FileReviewCache, Models, NoCache, PostTarget, Progress, ReviewCache, ReviewConfig,
    ReviewError, build_models, build_runtime, load_diff, post_review, render_comment, render_markdown,
    run_review_cached, write_outputs,
};

/// A failure and the exit code it maps to.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl From<ReviewError> for Failure {
    fn from(error: ReviewError) -> Self {
        Self { code: if error.is_config() { 2 } else { 1 }, error: error.into() }
    }
}

fn main() -> ExitCode {
    match std::env::args_os().nth(1).map(|a| a.to_string_lossy().into_owned()).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", help());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("pr-review-swarm {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "error: unexpected argument {other:?}: pr-review-swarm is configured by environment \
                 variables only (see --help)"
            );
            return ExitCode::from(2);
        }
    }
    let result = prepare().and_then(|prepared| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure { code: 1, error: anyhow!("cannot start the async runtime: {e}") })
            .and_then(|rt| rt.block_on(review(prepared)))
    });
    match result {
        Ok(code) => code,
        Err(Failure { code, error }) => {
            eprintln!("error: {error:#}");
            ExitCode::from(code)
        }
    }
}

/// Everything that can fail before a model is called, done synchronously (reading the diff
/// from stdin blocks, so it happens before the async runtime starts).
struct Prepared {
    config: ReviewConfig,
    models: Models,
    diff: String,
    cache: Box<dyn ReviewCache>,
    post: Option<PostTarget>,
}

fn prepare() -> Result<Prepared, Failure> {
    let config = ReviewConfig::from_env()?;
    let models = build_models(&config)?;
    // Where to post is checked before any model is paid for.
    let post = match config.post {
        Some(platform) => Some(
            PostTarget::from_env(platform, &|name: &str| std::env::var(name).ok())
                .map_err(|e| Failure { code: 2, error: e.into() })?,
        ),
        None => None,
    };
    let diff = load_diff(&config)?;
    let cache: Box<dyn ReviewCache> = match &config.cache_dir {
        Some(dir) => {
            let cache = FileReviewCache::open(dir)
                .map_err(|e| Failure { code: 2, error: anyhow!("PR_REVIEW_CACHE_DIR: {e}") })?;
            for warning in cache.warnings() {
                eprintln!("pr-review-swarm: warning: {warning}");
            }
            Box::new(cache)
        }
        None => Box::new(NoCache),
    };
    Ok(Prepared { config, models, diff, cache, post })
}

async fn review(prepared: Prepared) -> Result<ExitCode, Failure> {
    let Prepared { config, models, diff, cache, post } = prepared;
    let show_progress =
        !config.quiet && std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal();
    // Actors start lazily inside the runtime's first use, which is in this async context.
    let runtime = build_runtime(&config, models.registry.clone())?;
    let review = run_review_cached(&runtime, &config, &diff, cache.as_ref(), |p| {
        if show_progress {
            print_progress(p);
        }
    })
    .await?;
    let written = write_outputs(&review, &config.out_dir)?;

    let markdown = render_markdown(&review);
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(markdown.as_bytes()).and_then(|()| stdout.flush()) {
        // A closed pipe (`| head`) is the reader's choice, not a failure of the review.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(Failure { code: 1, error: anyhow!("cannot write the review to stdout: {e}") });
        }
    }
    if let Some(recorder) = models.recorder.as_ref().filter(|r| r.failed_writes() > 0) {
        return Err(Failure {
            code: 1,
            error: anyhow!(
                "{} model calls could not be recorded to {}",
                recorder.failed_writes(),
                recorder.path().display()
            ),
        });
    }
    if !config.quiet {
        let paths: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        eprintln!("pr-review-swarm: wrote {}", paths.join(", "));
        if let Some(recorder) = &models.recorder {
            eprintln!("pr-review-swarm: recorded the model calls to {}", recorder.path().display());
        }
    }
    for warning in &review.warnings {
        eprintln!("pr-review-swarm: warning: {warning}");
    }
    // Post what there is, also when some cells failed or timed out.
    if let Some(target) = &post {
        let report =
            post_review(target, &review, &render_comment(&review), &DiffIndex::parse(&diff), config.inline)
                .await
                .map_err(|e| Failure { code: 1, error: anyhow!("posting the review: {e}") })?;
        if !config.quiet {
            eprintln!(
                "pr-review-swarm: {} the review comment {}{}",
                if report.created { "created" } else { "updated" },
                report.comment_id,
                if config.inline {
                    format!(
                        "; {} inline comments posted, {} already there, {} findings not on a changed line",
                        report.inline_posted, report.inline_existing, report.inline_not_in_diff
                    )
                } else {
                    String::new()
                }
            );
        }
        for warning in &report.warnings {
            eprintln!("pr-review-swarm: warning: {warning}");
        }
    }
    if review.all_failed() {
        eprintln!("error: every cell failed ({} cells); see the review for the reasons", review.cells.len());
        return Ok(ExitCode::from(1));
    }
    if config.fail_on.tripped(&review) {
        eprintln!(
            "pr-review-swarm: {} at or above {} (PR_REVIEW_FAIL_ON): exit {FINDINGS_EXIT}",
            config.fail_on.count(&review),
            config.fail_on
        );
        return Ok(ExitCode::from(FINDINGS_EXIT));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_progress(p: &Progress) {
    let chunk = &p.chunk;
    let line = match &p.event {
        FanoutProgress::Started { .. } => return,
        FanoutProgress::Finished { model, lens } if p.cached => format!("{model} x {lens} x {chunk}: cached"),
        FanoutProgress::Finished { model, lens } => format!("{model} x {lens} x {chunk}: done"),
        FanoutProgress::Failed { model, lens, error } => {
            format!("{model} x {lens} x {chunk}: FAILED: {error}")
        }
    };
    eprintln!("[{}/{}] {line}", p.done, p.total);
}

fn help() -> String {
    let mut out = format!(
        "pr-review-swarm {version}\n\
         Reviews a unified diff with N models x M review lenses, merges the findings across\n\
         models, prints the Markdown review on stdout and writes review.md, review.sarif\n\
         (SARIF 2.1.0) and review.json into PR_REVIEW_OUT_DIR.\n\n\
         With nothing set it runs offline: the bundled sample diff, answered by the bundled\n\
         replay transcript (hand-written answers for that diff, not a live model).\n\n\
         USAGE:\n    pr-review-swarm            (configured by environment variables)\n    \
         pr-review-swarm --help | --version\n\nENVIRONMENT:\n",
        version = env!("CARGO_PKG_VERSION")
    );
    for (name, meaning) in ENV_VARS {
        out.push_str("    ");
        out.push_str(name);
        out.push('\n');
        out.push_str(&wrap(meaning, 8, 88));
    }
    out.push_str(
        "\nEXIT CODES:\n    0  reviewed (some cells may have failed; the review lists them)\n    \
         1  every cell failed, or the outputs could not be written or posted\n    \
         2  configuration error (the message names the variable)\n    \
         5  findings at or above PR_REVIEW_FAIL_ON\n\n\
         EXAMPLES:\n    \
         PR_REVIEW_DIFF=- pr-review-swarm < <(git diff main...HEAD)\n    \
         PR_REVIEW_BASE=auto PR_REVIEW_CACHE_DIR=.review-cache PR_REVIEW_FAIL_ON=error pr-review-swarm\n    \
         EXECUTUS_LLM_OPENAI=openai://$OPENAI_API_KEY@ PR_REVIEW_MODELS=openai/gpt-4.1-mini pr-review-swarm\n    \
         EXECUTUS_LLM_LOCAL=openai+http://127.0.0.1:8080/v1 PR_REVIEW_MODELS=local/qwen3-8b \\\n        \
         PR_REVIEW_LENSES=security,correctness PR_REVIEW_RECORD=calls.jsonl pr-review-swarm\n",
    );
    out
}

/// `text` wrapped at `width` columns, each line indented by `indent` spaces.
fn wrap(text: &str, indent: usize, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && indent + line.len() + 1 + word.len() > width {
            out.push_str(&" ".repeat(indent));
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&" ".repeat(indent));
        out.push_str(&line);
        out.push('\n');
    }
    out
}
