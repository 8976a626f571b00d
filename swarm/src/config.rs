//! [`ReviewConfig`]: what to review, with which models and lenses, where to write — read
//! from environment variables ([`ReviewConfig::from_env`], [`ReviewConfig::from_vars`]) or
//! built in code.
//!
//! Two stages, like the rest of executus: the raw `PR_REVIEW_*` strings are validated into
//! typed values here (durations, non-zero counts, known lens names), and a bad value is a
//! [`ReviewError::Env`] naming the variable. An empty (or all-blank) variable counts as unset,
//! so `PR_REVIEW_MODELS= cargo run ...` means "the default". An unknown `PR_REVIEW_*`
//! variable is an error too: a typo should not silently fall back to a default. [`ENV_VARS`]
//! documents every variable (the binary's `--help` prints it).

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use executus::fanout::CellMode;
use executus_llm::ProviderSpec;

use crate::error::ReviewError;
use crate::fixture::BUNDLED_MODELS;
use crate::gate::FailOn;
use crate::git::Base;
use crate::glob::{DEFAULT_EXCLUDES, Glob, compile_all};
use crate::lens::LensKind;
use crate::plan::{DEFAULT_MAX_CELL_TOKENS, MIN_CELL_TOKENS, SplitOptions, estimate_tokens};
use crate::post::Platform;

/// The prefix of this program's variables.
pub const ENV_PREFIX: &str = "PR_REVIEW_";

/// The prefix of tier variables: `PR_REVIEW_TIER_<NAME>=<chain spec>`.
pub const TIER_PREFIX: &str = "PR_REVIEW_TIER_";

/// Lane capacity when `PR_REVIEW_CONCURRENCY` is unset.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// The largest `PR_REVIEW_CONCURRENCY` accepted.
pub const MAX_CONCURRENCY: usize = 256;

/// Swarm deadline when `PR_REVIEW_DEADLINE` is unset.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(600);

/// Every variable this program reads, with its meaning and default (for `--help` and docs).
pub const ENV_VARS: &[(&str, &str)] = &[
    (
        "PR_REVIEW_MODELS",
        "Comma-separated models, one matrix row each: `provider/model` or a tier name. \
         Default: the bundled replay models `replay/model-a,replay/model-b`; required when \
         EXECUTUS_LLM_* providers are configured and no replay is used.",
    ),
    (
        "PR_REVIEW_LENSES",
        "Comma-separated subset of the built-in lenses `correctness`, `security`, \
         `performance`, `maintainability` (alias `tests`). Default: all four.",
    ),
    (
        "PR_REVIEW_DIFF",
        "Path of the unified diff to review; `-` reads stdin. Default: the bundled sample diff.",
    ),
    (
        "PR_REVIEW_OUT_DIR",
        "Directory for review.md, review.sarif and review.json. Default: `target/pr-review`.",
    ),
    ("PR_REVIEW_CONCURRENCY", "How many cells run at once (the lane's capacity), 1 to 256. Default: 8."),
    (
        "PR_REVIEW_DEADLINE",
        "Swarm deadline, e.g. `90s`, `5m`, or `none`; cells still running then are reported \
         as timed out. Default: 10m.",
    ),
    (
        "PR_REVIEW_REPLAY",
        "Answer from this transcript instead of live models (provider `replay`); `bundled` for \
         the bundled one. Default: the bundled transcript when no EXECUTUS_LLM_* provider is \
         configured, else none.",
    ),
    (
        "PR_REVIEW_RECORD",
        "Record every model call to this transcript file (JSON lines, API keys redacted), to \
         replay later with PR_REVIEW_REPLAY. Default: no recording.",
    ),
    (
        "PR_REVIEW_TIER_<NAME>",
        "Defines tier `<name>` (lower-cased) as a failover chain, e.g. \
         PR_REVIEW_TIER_FAST=\"openai/gpt-4.1-mini, ollama/qwen3:8b\"; use it in PR_REVIEW_MODELS.",
    ),
    (
        "PR_REVIEW_BASE",
        "Review `git diff --merge-base BASE HEAD` of the repository in the current folder instead \
         of PR_REVIEW_DIFF; `auto` picks the CI's base: origin/$GITHUB_BASE_REF, \
         $CI_MERGE_REQUEST_DIFF_BASE_SHA, else origin/main. Default: unset.",
    ),
    (
        "PR_REVIEW_EXCLUDE",
        "Comma-separated globs of files not to review (`*.lock`, `docs/**`, `vendor/`); `none` \
         reviews everything. Default: lock files, minified, generated and vendored code.",
    ),
    (
        "PR_REVIEW_MAX_CELL_TOKENS",
        "The most diff tokens one cell is sent (3 bytes per token, estimated); larger files are \
         split by hunk groups. Default: 12000.",
    ),
    (
        "PR_REVIEW_MAX_TOTAL_TOKENS",
        "The most diff tokens the review sends per model and lens, most-changed files first; the \
         review lists what it left out. `none`: no limit. Default: none.",
    ),
    (
        "PR_REVIEW_CONTEXT_TOKENS",
        "The smallest context window of the models, in tokens: a cell (prompt, diff and answer) \
         must fit it. Default: 32768.",
    ),
    (
        "PR_REVIEW_CACHE_DIR",
        "Folder of the review cache (review-cache.json): cells whose model, lens, prompt and \
         chunk are unchanged are not asked again. Default: no cache.",
    ),
    (
        "PR_REVIEW_FAIL_ON",
        "`error`, `warning`, `note` or `none`: exit 5 when the review has a finding at or above \
         it. Default: none.",
    ),
    (
        "PR_REVIEW_POST",
        "`github` or `gitlab`: post the review on the pull request (one comment, edited on \
         re-runs), from the platform's CI variables and GITHUB_TOKEN / GITLAB_TOKEN / \
         CI_JOB_TOKEN. Default: not posted.",
    ),
    (
        "PR_REVIEW_INLINE",
        "`1`/`true`: with PR_REVIEW_POST, also comment on the changed lines. Default: false.",
    ),
    ("PR_REVIEW_QUIET", "`1`/`true` silences the progress lines on stderr. Default: false."),
    (
        "EXECUTUS_LLM_<NAME>",
        "Registers provider `<name>` (lower-cased) from a DSN, e.g. \
         EXECUTUS_LLM_OPENAI=openai://KEY@ or EXECUTUS_LLM_LOCAL=openai+http://127.0.0.1:8080/v1.",
    ),
    ("NO_COLOR", "When set, no progress lines on stderr."),
];

/// Where the diff comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiffSource {
    /// The bundled sample diff.
    Bundled,
    /// Standard input.
    Stdin,
    /// `git diff --merge-base BASE HEAD` in the current folder.
    Git(Base),
    /// A file.
    Path(PathBuf),
}

/// Whether models answer from a recorded transcript (provider `replay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySource {
    /// The bundled transcript (answers for the bundled models over the sample diff).
    Bundled,
    /// A transcript file.
    Path(PathBuf),
    /// No replay: live providers only.
    Off,
}

/// A validated review configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewConfig {
    /// Model specs: the matrix rows.
    pub models: Vec<String>,
    /// Lenses: the matrix columns.
    pub lenses: Vec<LensKind>,
    /// The diff.
    pub diff: DiffSource,
    /// Where [`write_outputs`](crate::write_outputs) writes.
    pub out_dir: PathBuf,
    /// Cells running at once (capacity of the lane the review builds).
    pub concurrency: NonZeroUsize,
    /// Swarm deadline.
    pub deadline: Option<Duration>,
    /// Replay source.
    pub replay: ReplaySource,
    /// Record model calls to this transcript.
    pub record: Option<PathBuf>,
    /// Tiers: name -> chain spec.
    pub tiers: BTreeMap<String, String>,
    /// Providers from `EXECUTUS_LLM_<NAME>` (keys never printed).
    pub providers: Vec<ProviderSpec>,
    /// No progress lines.
    pub quiet: bool,
    /// How cells run (not an environment setting): one-shot calls by default.
    pub mode: CellMode,
    /// The lane cells go to (not an environment setting; default the runtime's `default`).
    pub lane: Option<String>,
    /// Files not to review.
    pub exclude: Vec<Glob>,
    /// The most diff tokens one cell is sent.
    pub max_cell_tokens: usize,
    /// The most diff tokens the review sends per model and lens.
    pub max_total_tokens: Option<usize>,
    /// The smallest context window of the models, in tokens.
    pub context_tokens: usize,
    /// The review cache's folder (the light host's [`FileReviewCache`](crate::cache::FileReviewCache)).
    pub cache_dir: Option<PathBuf>,
    /// The lowest severity that fails the job.
    pub fail_on: FailOn,
    /// Where to post the review.
    pub post: Option<Platform>,
    /// Also post inline comments.
    pub inline: bool,
}

/// The default of `context_tokens`.
pub const DEFAULT_CONTEXT_TOKENS: usize = 32_768;

/// Checks that a cell fits the context: the longest lens prompt and the schema, plus
/// `max_cell_tokens` of diff, plus the answer's [`MAX_TOKENS`](crate::lens::MAX_TOKENS), must
/// be at most `context_tokens`; and that the budgets are usable.
///
/// # Errors
/// The variable (named as the light host names it) and what is wrong.
pub fn check_budgets(
    max_cell_tokens: usize,
    max_total_tokens: Option<usize>,
    context_tokens: usize,
) -> Result<(), (&'static str, String)> {
    if max_cell_tokens < MIN_CELL_TOKENS {
        return Err((
            "PR_REVIEW_MAX_CELL_TOKENS",
            format!("{max_cell_tokens} is below the minimum of {MIN_CELL_TOKENS}"),
        ));
    }
    if max_total_tokens == Some(0) {
        return Err(("PR_REVIEW_MAX_TOTAL_TOKENS", "must be above zero (or `none`)".into()));
    }
    let overhead = prompt_overhead_tokens();
    let needed = overhead + max_cell_tokens + crate::lens::MAX_TOKENS as usize;
    if needed > context_tokens {
        return Err((
            "PR_REVIEW_CONTEXT_TOKENS",
            format!(
                "a cell needs up to {needed} tokens ({overhead} of prompt and schema, {max_cell_tokens} of \
                 diff, {} of answer) but the context holds {context_tokens}: lower the per-cell budget \
                 or raise the context",
                crate::lens::MAX_TOKENS
            ),
        ));
    }
    Ok(())
}

/// The estimated tokens of everything a cell sends besides its diff: the longest lens prompt,
/// the findings schema and the message's own words, rounded up generously.
pub fn prompt_overhead_tokens() -> usize {
    let prompt = LensKind::ALL.iter().map(|l| estimate_tokens(&l.system_prompt())).max().unwrap_or(0);
    let schema = estimate_tokens(&crate::finding::LensReport::response_schema().schema.to_string());
    prompt + schema + 200
}

impl Default for ReviewConfig {
    /// The offline defaults: bundled models, diff and transcript, every lens.
    fn default() -> Self {
        Self {
            models: BUNDLED_MODELS.iter().map(|m| (*m).to_owned()).collect(),
            lenses: LensKind::ALL.to_vec(),
            diff: DiffSource::Bundled,
            out_dir: PathBuf::from("target/pr-review"),
            concurrency: NonZeroUsize::new(DEFAULT_CONCURRENCY).unwrap_or(NonZeroUsize::MIN),
            deadline: Some(DEFAULT_DEADLINE),
            replay: ReplaySource::Bundled,
            record: None,
            tiers: BTreeMap::new(),
            providers: Vec::new(),
            quiet: false,
            mode: CellMode::OneShot,
            lane: None,
            exclude: compile_all(DEFAULT_EXCLUDES).unwrap_or_default(),
            max_cell_tokens: DEFAULT_MAX_CELL_TOKENS,
            max_total_tokens: None,
            context_tokens: DEFAULT_CONTEXT_TOKENS,
            cache_dir: None,
            fail_on: FailOn::None,
            post: None,
            inline: false,
        }
    }
}

impl ReviewConfig {
    /// [`ReviewConfig::from_vars`] over the process environment. Variables whose name is not
    /// Unicode are ignored.
    ///
    /// # Errors
    /// As [`ReviewConfig::from_vars`]; also a `PR_REVIEW_*` or `EXECUTUS_LLM_*` variable whose
    /// value is not Unicode.
    pub fn from_env() -> Result<Self, ReviewError> {
        let mut vars = Vec::new();
        for (key, value) in std::env::vars_os() {
            let Ok(key) = key.into_string() else { continue };
            if !key.starts_with(ENV_PREFIX) && !key.starts_with(executus_llm::dsn::ENV_PREFIX) {
                continue;
            }
            let value =
                value.into_string().map_err(|_| ReviewError::env(&key, "the value is not valid Unicode"))?;
            vars.push((key, value));
        }
        Self::from_vars(vars)
    }

    /// The configuration the `PR_REVIEW_*` and `EXECUTUS_LLM_*` pairs in `vars` describe (see
    /// [`ENV_VARS`]); other variables are ignored. Takes the pairs so that callers and tests
    /// need not touch the process environment.
    ///
    /// # Errors
    /// [`ReviewError::Env`] naming the first bad or unknown `PR_REVIEW_*` variable;
    /// [`ReviewError::Models`] for a bad provider DSN (the message never holds the key).
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, ReviewError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut ours: BTreeMap<String, String> = BTreeMap::new();
        let mut dsns: Vec<(String, String)> = Vec::new();
        for (key, value) in vars {
            let (key, value) = (key.as_ref(), value.as_ref());
            if key.starts_with(executus_llm::dsn::ENV_PREFIX) {
                dsns.push((key.to_owned(), value.to_owned()));
            } else if key.starts_with(ENV_PREFIX) && !value.trim().is_empty() {
                ours.insert(key.to_owned(), value.trim().to_owned());
            }
        }
        let mut config = Self {
            providers: ProviderSpec::from_vars(dsns)
                .map_err(|source| ReviewError::Models { var: "EXECUTUS_LLM_*".into(), source })?,
            ..Self::default()
        };
        let mut tiers = BTreeMap::new();
        for (key, value) in &ours {
            if let Some(name) = key.strip_prefix(TIER_PREFIX) {
                if name.is_empty() {
                    return Err(ReviewError::env(key, "name the tier: PR_REVIEW_TIER_<NAME>=<chain spec>"));
                }
                tiers.insert(name.to_ascii_lowercase(), value.clone());
            } else if !ENV_VARS.iter().any(|(name, _)| name == key) {
                return Err(ReviewError::env(key, unknown_variable(key)));
            }
        }
        config.tiers = tiers;
        let get = |name: &str| ours.get(name).map(String::as_str);

        config.replay = match get("PR_REVIEW_REPLAY") {
            None if config.providers.is_empty() => ReplaySource::Bundled,
            None => ReplaySource::Off,
            Some(v) if v.eq_ignore_ascii_case("bundled") => ReplaySource::Bundled,
            Some(path) => ReplaySource::Path(PathBuf::from(path)),
        };
        if config.replay != ReplaySource::Off && config.providers.iter().any(|p| p.name == "replay") {
            return Err(ReviewError::env(
                "EXECUTUS_LLM_REPLAY",
                "the provider name `replay` is taken by the replay transcript; rename the provider \
                 or set PR_REVIEW_REPLAY to a transcript only when you mean to use it",
            ));
        }
        match get("PR_REVIEW_MODELS") {
            Some(list) => config.models = parse_models(list)?,
            None if config.replay == ReplaySource::Off => {
                let names: Vec<&str> = config.providers.iter().map(|p| p.name.as_str()).collect();
                let example = names.first().map_or("openai", |n| n);
                return Err(ReviewError::env(
                    "PR_REVIEW_MODELS",
                    format!(
                        "not set; with EXECUTUS_LLM_* providers configured ({}) and no replay, name \
                         the models to use, e.g. PR_REVIEW_MODELS={example}/MODEL-ID",
                        names.join(", ")
                    ),
                ));
            }
            None => {}
        }
        if let Some(list) = get("PR_REVIEW_LENSES") {
            config.lenses = parse_lenses(list)?;
        }
        config.diff = match (get("PR_REVIEW_DIFF"), get("PR_REVIEW_BASE")) {
            (Some(_), Some(_)) => {
                return Err(ReviewError::env(
                    "PR_REVIEW_BASE",
                    "set PR_REVIEW_DIFF or PR_REVIEW_BASE, not both (one names the diff, the other \
                     makes it with git)",
                ));
            }
            (None, Some(base)) if base.eq_ignore_ascii_case("auto") => {
                DiffSource::Git(crate::git::ci_base(&|name: &str| std::env::var(name).ok()))
            }
            (None, Some(base)) => DiffSource::Git(Base { reference: base.to_owned(), source: "given" }),
            (None, None) => DiffSource::Bundled,
            (Some("-"), None) => DiffSource::Stdin,
            (Some(path), None) => DiffSource::Path(PathBuf::from(path)),
        };
        if let Some(list) = get("PR_REVIEW_EXCLUDE") {
            config.exclude = parse_excludes(list)?;
        }
        if let Some(n) = get("PR_REVIEW_MAX_CELL_TOKENS") {
            config.max_cell_tokens = parse_count("PR_REVIEW_MAX_CELL_TOKENS", n)?;
        }
        if let Some(n) = get("PR_REVIEW_MAX_TOTAL_TOKENS") {
            config.max_total_tokens = if n.eq_ignore_ascii_case("none") {
                None
            } else {
                Some(parse_count("PR_REVIEW_MAX_TOTAL_TOKENS", n)?)
            };
        }
        if let Some(n) = get("PR_REVIEW_CONTEXT_TOKENS") {
            config.context_tokens = parse_count("PR_REVIEW_CONTEXT_TOKENS", n)?;
        }
        check_budgets(config.max_cell_tokens, config.max_total_tokens, config.context_tokens)
            .map_err(|(var, reason)| ReviewError::env(var, reason))?;
        config.cache_dir = get("PR_REVIEW_CACHE_DIR").map(PathBuf::from);
        if let Some(level) = get("PR_REVIEW_FAIL_ON") {
            config.fail_on = level.parse().map_err(|e: String| ReviewError::env("PR_REVIEW_FAIL_ON", e))?;
        }
        if let Some(platform) = get("PR_REVIEW_POST") {
            config.post = Some(platform.parse().map_err(|e: String| ReviewError::env("PR_REVIEW_POST", e))?);
        }
        if let Some(inline) = get("PR_REVIEW_INLINE") {
            config.inline = parse_bool("PR_REVIEW_INLINE", inline)?;
            if config.inline && config.post.is_none() {
                return Err(ReviewError::env("PR_REVIEW_INLINE", "needs PR_REVIEW_POST (github or gitlab)"));
            }
        }
        if let Some(dir) = get("PR_REVIEW_OUT_DIR") {
            config.out_dir = PathBuf::from(dir);
        }
        if let Some(n) = get("PR_REVIEW_CONCURRENCY") {
            config.concurrency = parse_concurrency(n)?;
        }
        if let Some(d) = get("PR_REVIEW_DEADLINE") {
            config.deadline = parse_deadline(d)?;
        }
        config.record = get("PR_REVIEW_RECORD").map(PathBuf::from);
        if let Some(q) = get("PR_REVIEW_QUIET") {
            config.quiet = parse_bool("PR_REVIEW_QUIET", q)?;
        }
        Ok(config)
    }

    /// How the diff is split.
    pub fn split_options(&self) -> SplitOptions {
        SplitOptions {
            max_cell_tokens: self.max_cell_tokens,
            max_total_tokens: self.max_total_tokens,
            exclude: self.exclude.clone(),
        }
    }

    /// The lens names, in order.
    pub fn lens_names(&self) -> Vec<String> {
        self.lenses.iter().map(|l| l.name().to_owned()).collect()
    }
}

fn unknown_variable(key: &str) -> String {
    let known: Vec<&str> =
        ENV_VARS.iter().map(|(name, _)| *name).filter(|name| name.starts_with(ENV_PREFIX)).collect();
    let guess = known.iter().find(|name| {
        let name = name.trim_end_matches('S');
        key.trim_end_matches('S') == name || key.starts_with(name) || name.starts_with(key)
    });
    match guess {
        Some(name) => format!("unknown variable; did you mean {name}? (known: {})", known.join(", ")),
        None => format!("unknown variable (known: {})", known.join(", ")),
    }
}

fn parse_models(list: &str) -> Result<Vec<String>, ReviewError> {
    const VAR: &str = "PR_REVIEW_MODELS";
    let mut models: Vec<String> = Vec::new();
    for element in list.split(',').map(str::trim) {
        if element.is_empty() {
            return Err(ReviewError::env(
                VAR,
                format!("empty element in {list:?}; separate models with single commas"),
            ));
        }
        if element.chars().any(char::is_whitespace) {
            return Err(ReviewError::env(VAR, format!("model {element:?} contains whitespace")));
        }
        if models.iter().any(|m| m == element) {
            return Err(ReviewError::env(VAR, format!("model {element:?} is listed twice")));
        }
        models.push(element.to_owned());
    }
    Ok(models)
}

fn parse_lenses(list: &str) -> Result<Vec<LensKind>, ReviewError> {
    const VAR: &str = "PR_REVIEW_LENSES";
    let known = LensKind::ALL.map(LensKind::name).join(", ");
    let mut lenses = Vec::new();
    for element in list.split(',').map(str::trim) {
        if element.is_empty() {
            return Err(ReviewError::env(VAR, format!("empty element in {list:?} (known lenses: {known})")));
        }
        let lens = LensKind::from_name(element).ok_or_else(|| {
            ReviewError::env(VAR, format!("unknown lens {element:?} (known lenses: {known})"))
        })?;
        if !lenses.contains(&lens) {
            lenses.push(lens);
        }
    }
    Ok(lenses)
}

/// Exclude globs from a comma-separated list (`none`: no excludes).
///
/// # Errors
/// [`ReviewError::Env`] naming `PR_REVIEW_EXCLUDE` and the bad pattern.
pub fn parse_excludes(list: &str) -> Result<Vec<Glob>, ReviewError> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let patterns: Vec<&str> = list.split(',').map(str::trim).filter(|p| !p.is_empty()).collect();
    compile_all(&patterns).map_err(|e| ReviewError::env("PR_REVIEW_EXCLUDE", e.to_string()))
}

fn parse_count(var: &str, value: &str) -> Result<usize, ReviewError> {
    value
        .replace('_', "")
        .parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ReviewError::env(var, format!("{value:?} is not a whole number above zero")))
}

fn parse_concurrency(value: &str) -> Result<NonZeroUsize, ReviewError> {
    let bad = || {
        ReviewError::env(
            "PR_REVIEW_CONCURRENCY",
            format!("{value:?} is not a whole number from 1 to {MAX_CONCURRENCY}"),
        )
    };
    let n: usize = value.parse().map_err(|_| bad())?;
    if n > MAX_CONCURRENCY {
        return Err(bad());
    }
    NonZeroUsize::new(n).ok_or_else(bad)
}

fn parse_deadline(value: &str) -> Result<Option<Duration>, ReviewError> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let d = humantime::parse_duration(value).map_err(|e| {
        ReviewError::env("PR_REVIEW_DEADLINE", format!("{value:?} is not a duration like 90s or 5m ({e})"))
    })?;
    if d.is_zero() {
        return Err(ReviewError::env("PR_REVIEW_DEADLINE", "must be longer than zero (or `none`)"));
    }
    Ok(Some(d))
}

fn parse_bool(var: &str, value: &str) -> Result<bool, ReviewError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ReviewError::env(var, format!("{value:?} is not a boolean (use 1/0, true/false)"))),
    }
}
