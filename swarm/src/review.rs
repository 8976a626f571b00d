//! Running a review: the diff split into chunks ([`crate::plan`]), every model x lens x chunk
//! a cell, cells already answered taken from the review cache ([`crate::cache`]), the rest
//! run as fanouts through the runtime's lane, each answer checked against the findings
//! schema, then everything merged ([`crate::merge`]) into a [`Review`].
//!
//! Guarantees: a model that fails (an error, a timeout, an answer that is not a
//! [`LensReport`]) fails only its own cells, and every failed cell is in [`Review::cells`]
//! with its chunk and reason. Each model holds at most its share of the lane (capacity /
//! models) at once, so a model that hangs cannot starve the others. At the deadline (counted
//! from the review's start) cells still running or not yet started are reported as timed out
//! and the review holds what the others found. Findings keep their real file (the chunk's)
//! and line numbers. A cache that fails is a warning, never a failed review; only cells that
//! answered are cached. The request each cell sends depends only on the lens and the chunk,
//! so a replay transcript answers it by content. What is not here: reading the environment
//! ([`crate::config`]), building the registry ([`crate::models`]), rendering
//! ([`crate::render`]).

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use executus::Runtime;
use executus::fanout::{Cell, CellError, FanoutProgress, FanoutResult, FanoutSpec};
use executus_llm::{Message, Usage};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};

use crate::cache::{CacheKey, CachedCell, CachedFinding, NoCache, ReviewCache, prompt_version};
use crate::config::{DiffSource, ReviewConfig};
use crate::diff::DiffIndex;
use crate::error::ReviewError;
use crate::finding::{LensReport, MAX_FINDINGS_PER_CELL, Severity};
use crate::fixture::SAMPLE_DIFF;
use crate::lens::{LensKind, chunk_message};
use crate::merge::{MergedFinding, Reported, merge};
use crate::plan::{LeftOut, plan_review};

/// The largest diff a review reads (bytes); what it sends is bounded by the split budgets.
pub const MAX_DIFF_BYTES: usize = 32 << 20;

/// The result of a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Review {
    /// Model specs, in configuration order.
    pub models: Vec<String>,
    /// Lens names, in configuration order.
    pub lenses: Vec<String>,
    /// Merged findings, most severe and most agreed first.
    pub findings: Vec<MergedFinding>,
    /// Every cell, model-major.
    pub cells: Vec<CellSummary>,
    /// Tokens spent by the cells that asked a model (fresh cells).
    pub usage: Usage,
    /// Tokens the cached cells cost when they were made: what the cache saved.
    #[serde(default)]
    pub saved: Usage,
    /// Wall time of the swarm.
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
    /// Files the diff names.
    #[serde(default)]
    pub files: usize,
    /// Chunks reviewed (files, or hunk groups of large files).
    #[serde(default)]
    pub chunks: usize,
    /// What was not reviewed, and why.
    #[serde(default)]
    pub left_out: Vec<LeftOut>,
    /// The spend in USD, when the host priced the cells ([`Review::apply_prices`]).
    #[serde(default)]
    pub spend: Option<Spend>,
    /// Problems that did not stop the review (a cache that could not be read or written).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What the review cost, and what the cache saved, in USD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spend {
    /// Spent by the fresh cells.
    pub fresh_usd: f64,
    /// What the cached cells would have cost.
    pub saved_usd: f64,
    /// Models with no price (their tokens are not in the sums).
    pub unpriced: Vec<String>,
}

/// How a cell ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellStatus {
    /// It answered with a valid report.
    Succeeded,
    /// The model failed, or its answer was not a valid report.
    Failed,
    /// The swarm deadline passed first.
    TimedOut,
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellSummary {
    /// Model spec.
    pub model: String,
    /// Lens name.
    pub lens: String,
    /// The chunk it reviewed ([`Chunk::label`](crate::plan::Chunk::label)).
    #[serde(default)]
    pub chunk: String,
    /// The chunk's file.
    #[serde(default)]
    pub file: String,
    /// True when the answer came from the review cache.
    #[serde(default)]
    pub cached: bool,
    /// How it ended.
    pub status: CellStatus,
    /// Findings it reported (after the per-cell cap).
    pub findings: usize,
    /// Findings dropped by the per-cell cap.
    pub dropped: usize,
    /// Findings dropped because they named another file of the diff than the one the cell
    /// was shown.
    #[serde(default)]
    pub elsewhere: usize,
    /// Why it failed.
    pub error: Option<String>,
    /// Tokens it spent.
    pub usage: Usage,
    /// Its wall time (zero when it failed before answering).
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
}

/// Counts of merged findings per severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityCounts {
    /// Errors.
    pub error: usize,
    /// Warnings.
    pub warning: usize,
    /// Notes.
    pub note: usize,
}

impl Review {
    /// Cells that answered.
    pub fn succeeded_cells(&self) -> usize {
        self.cells.iter().filter(|c| c.status == CellStatus::Succeeded).count()
    }

    /// Cells that did not.
    pub fn failed_cells(&self) -> impl Iterator<Item = &CellSummary> {
        self.cells.iter().filter(|c| c.status != CellStatus::Succeeded)
    }

    /// True when there were cells and none answered.
    pub fn all_failed(&self) -> bool {
        !self.cells.is_empty() && self.succeeded_cells() == 0
    }

    /// Models with at least one cell that answered: the denominator of "agreement".
    pub fn models_answered(&self) -> usize {
        self.models
            .iter()
            .filter(|m| self.cells.iter().any(|c| &c.model == *m && c.status == CellStatus::Succeeded))
            .count()
    }

    /// Cells answered from the cache.
    pub fn cached_cells(&self) -> usize {
        self.cells.iter().filter(|c| c.cached).count()
    }

    /// Cells that asked a model.
    pub fn fresh_cells(&self) -> usize {
        self.cells.len() - self.cached_cells()
    }

    /// Prices every cell: `price(model, usage)` is the USD cost of `usage` on `model`, or
    /// `None` when the model has no price. Fresh cells add to [`Spend::fresh_usd`], cached
    /// ones to [`Spend::saved_usd`].
    pub fn apply_prices(&mut self, price: impl Fn(&str, &Usage) -> Option<f64>) {
        let mut spend = Spend { fresh_usd: 0.0, saved_usd: 0.0, unpriced: Vec::new() };
        for cell in &self.cells {
            if cell.usage.total() == 0 {
                continue;
            }
            match price(&cell.model, &cell.usage) {
                Some(usd) if cell.cached => spend.saved_usd += usd,
                Some(usd) => spend.fresh_usd += usd,
                None => {
                    if !spend.unpriced.contains(&cell.model) {
                        spend.unpriced.push(cell.model.clone());
                    }
                }
            }
        }
        self.spend = Some(spend);
    }

    /// Merged findings per severity.
    pub fn counts(&self) -> SeverityCounts {
        let mut counts = SeverityCounts::default();
        for finding in &self.findings {
            match finding.severity {
                Severity::Error => counts.error += 1,
                Severity::Warning => counts.warning += 1,
                Severity::Note => counts.note += 1,
            }
        }
        counts
    }
}

/// A progress report: one cell started, finished, failed, or was answered from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What happened (a cached cell is reported as finished).
    pub event: FanoutProgress,
    /// The chunk's label.
    pub chunk: String,
    /// True for a cell answered from the cache.
    pub cached: bool,
    /// Cells ended so far.
    pub done: usize,
    /// Cells in the matrix.
    pub total: usize,
}

/// Reads the diff `config` names.
///
/// # Errors
/// [`ReviewError::ReadDiff`] naming the path (or `-`), also for text that is not UTF-8;
/// [`ReviewError::DiffTooLarge`] past [`MAX_DIFF_BYTES`].
pub fn load_diff(config: &ReviewConfig) -> Result<String, ReviewError> {
    let (path, reader): (PathBuf, Box<dyn std::io::Read>) = match &config.diff {
        DiffSource::Bundled => return Ok(SAMPLE_DIFF.to_owned()),
        DiffSource::Git(base) => {
            let dir = std::env::current_dir()
                .map_err(|source| ReviewError::ReadDiff { path: PathBuf::from("."), source })?;
            return crate::git::diff_from_git(&dir, base, MAX_DIFF_BYTES)
                .map(|d| d.diff)
                .map_err(|source| ReviewError::Git { source });
        }
        DiffSource::Stdin => (PathBuf::from("-"), Box::new(std::io::stdin())),
        DiffSource::Path(path) => {
            let file = std::fs::File::open(path)
                .map_err(|source| ReviewError::ReadDiff { path: path.clone(), source })?;
            (path.clone(), Box::new(file))
        }
    };
    let mut text = String::new();
    // One byte past the limit is enough to know it is too large.
    let limit = u64::try_from(MAX_DIFF_BYTES + 1).unwrap_or(u64::MAX);
    reader.take(limit).read_to_string(&mut text).map_err(|source| ReviewError::ReadDiff { path, source })?;
    if text.len() > MAX_DIFF_BYTES {
        return Err(ReviewError::DiffTooLarge { bytes: text.len(), max: MAX_DIFF_BYTES });
    }
    Ok(text)
}

/// Reviews `diff` with every model x lens of `config` on `runtime`, without a cache.
///
/// # Errors
/// As [`run_review_cached`].
pub async fn run_review(runtime: &Runtime, config: &ReviewConfig, diff: &str) -> Result<Review, ReviewError> {
    run_review_cached(runtime, config, diff, &NoCache, |_| {}).await
}

/// [`run_review`], calling `on_progress` as cells start and end.
///
/// # Errors
/// As [`run_review_cached`].
pub async fn run_review_with_progress(
    runtime: &Runtime,
    config: &ReviewConfig,
    diff: &str,
    on_progress: impl FnMut(&Progress),
) -> Result<Review, ReviewError> {
    run_review_cached(runtime, config, diff, &NoCache, on_progress).await
}

/// One cell to run: which chunk, model and lens, and its cache key.
struct Pending {
    chunk: usize,
    model: String,
    lens: LensKind,
    key: CacheKey,
}

/// What the fanouts report back to the review loop.
enum Report {
    Progress(usize, FanoutProgress),
    Done(usize, Result<FanoutResult, String>),
}

/// Reviews `diff`: splits it, answers what `cache` holds from it, runs the rest, stores what
/// answered in `cache` (and flushes it), and calls `on_progress` for every cell.
///
/// # Errors
/// [`ReviewError::EmptyDiff`] / [`ReviewError::DiffTooLarge`] for an unusable diff,
/// [`ReviewError::UnknownModel`] for a model spec the registry cannot resolve,
/// [`ReviewError::Env`] for an empty model or lens list or budgets that do not fit the
/// context, [`ReviewError::Runtime`] if a swarm cannot start. Failing cells are not errors:
/// they are in [`Review::cells`]; neither is a failing cache (see [`Review::warnings`]).
pub async fn run_review_cached(
    runtime: &Runtime,
    config: &ReviewConfig,
    diff: &str,
    cache: &dyn ReviewCache,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Review, ReviewError> {
    if diff.len() > MAX_DIFF_BYTES {
        return Err(ReviewError::DiffTooLarge { bytes: diff.len(), max: MAX_DIFF_BYTES });
    }
    let index = DiffIndex::parse(diff);
    if index.is_empty() && crate::patch::parse_patch(diff).is_empty() {
        return Err(ReviewError::EmptyDiff);
    }
    if config.models.is_empty() {
        return Err(ReviewError::env("PR_REVIEW_MODELS", "no model to review with"));
    }
    if config.lenses.is_empty() {
        return Err(ReviewError::env("PR_REVIEW_LENSES", "no lens to review with"));
    }
    crate::config::check_budgets(config.max_cell_tokens, config.max_total_tokens, config.context_tokens)
        .map_err(|(var, reason)| ReviewError::env(var, reason))?;
    for spec in &config.models {
        runtime.registry().resolve(spec).map_err(|source| ReviewError::UnknownModel {
            spec: spec.clone(),
            hint: model_hint(runtime, spec),
            source,
        })?;
    }
    let started = Instant::now();
    let plan = plan_review(diff, &config.split_options());
    let chunks = &plan.chunks;
    let versions: BTreeMap<LensKind, String> =
        config.lenses.iter().map(|l| (*l, prompt_version(*l))).collect();
    let total = config.models.len() * config.lenses.len() * chunks.len();
    let mut warnings = Vec::new();

    // Every cell, model-major, then lens, then chunk; answered from the cache or pending.
    let mut cells: Vec<Option<CellSummary>> = Vec::with_capacity(total);
    let mut reported: Vec<Reported> = Vec::new();
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    let mut done = 0;
    let mut saved = Usage::default();
    for model in &config.models {
        for lens in &config.lenses {
            for (c, chunk) in chunks.iter().enumerate() {
                let key = CacheKey {
                    model: model.clone(),
                    lens: lens.name().to_owned(),
                    prompt_version: versions.get(lens).cloned().unwrap_or_default(),
                    content_hash: chunk.content_hash.clone(),
                };
                let hit = match cache.get(&key).await {
                    Ok(hit) => hit,
                    Err(e) => {
                        if warnings.len() < 5 {
                            warnings.push(format!("{e}; the cell was asked again"));
                        }
                        None
                    }
                };
                let slot = cells.len();
                match hit {
                    Some(hit) => {
                        for cached in &hit.findings {
                            let mut finding = cached.at(chunk.anchor);
                            finding.file.clone_from(&chunk.file);
                            reported.push(Reported {
                                model: model.clone(),
                                lens: lens.name().to_owned(),
                                finding,
                            });
                        }
                        saved.add(&hit.usage);
                        cells.push(Some(CellSummary {
                            model: model.clone(),
                            lens: lens.name().to_owned(),
                            chunk: chunk.label(),
                            file: chunk.file.clone(),
                            cached: true,
                            status: CellStatus::Succeeded,
                            findings: hit.findings.len(),
                            dropped: hit.dropped,
                            elsewhere: 0,
                            error: None,
                            usage: hit.usage,
                            elapsed: Duration::ZERO,
                        }));
                        done += 1;
                        on_progress(&Progress {
                            event: FanoutProgress::Finished {
                                model: model.clone(),
                                lens: lens.name().to_owned(),
                            },
                            chunk: chunk.label(),
                            cached: true,
                            done,
                            total,
                        });
                    }
                    None => {
                        cells.push(None);
                        pending.push((slot, Pending { chunk: c, model: model.clone(), lens: *lens, key }));
                    }
                }
            }
        }
    }

    // One single-cell fanout per pending cell, through the lane. Each model may hold at most
    // its share of the lane (capacity / models): a model that hangs keeps its own share
    // busy until the deadline, never the others'. The deadline is the review's, counted from
    // its start: a cell that could only start after it is timed out without being sent.
    let groups: Vec<Vec<(usize, Pending)>> = pending.into_iter().map(|cell| vec![cell]).collect();
    let share = (config.concurrency.get() / config.models.len()).max(1);
    let permits: BTreeMap<String, Arc<Semaphore>> =
        config.models.iter().map(|m| (m.clone(), Arc::new(Semaphore::new(share)))).collect();
    let deadline_at = config.deadline.map(|d| tokio::time::Instant::now() + d);
    let messages: Vec<Arc<String>> = chunks.iter().map(|c| Arc::new(chunk_message(c))).collect();
    let (tx, mut rx) = mpsc::unbounded_channel::<Report>();
    for (g, group) in groups.iter().enumerate() {
        let (_, cell) = &group[0];
        let permit = permits.get(&cell.model).cloned().unwrap_or_else(|| Arc::new(Semaphore::new(share)));
        let runtime = runtime.clone();
        let (model, lens) = (cell.model.clone(), cell.lens);
        let message = messages[cell.chunk].clone();
        let (mode, lane, deadline) = (config.mode, config.lane.clone(), config.deadline);
        let tx = tx.clone();
        tokio::spawn(async move {
            let Ok(_permit) = permit.acquire_owned().await else { return };
            let remaining = deadline_at.map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
            if remaining.is_some_and(|r| r.is_zero()) {
                let error = CellError::TimedOut { after: deadline.unwrap_or_default() };
                let event = FanoutProgress::Failed {
                    model: model.clone(),
                    lens: lens.name().to_owned(),
                    error: error.to_string(),
                };
                let _ = tx.send(Report::Progress(g, event));
                let cell = Cell { model, lens: lens.name().to_owned(), result: Err(error) };
                let _ =
                    tx.send(Report::Done(g, Ok(FanoutResult { cells: vec![cell], elapsed: Duration::ZERO })));
                return;
            }
            let mut spec = FanoutSpec::new(vec![model], vec![lens.lens()], Message::user(message.as_str()));
            spec.mode = mode;
            spec.deadline = remaining;
            spec.lane = lane;
            let mut handle = match runtime.fanout(spec).await {
                Ok(handle) => handle,
                Err(e) => {
                    let _ = tx.send(Report::Done(g, Err(e.to_string())));
                    return;
                }
            };
            while let Some(event) = handle.progress.recv().await {
                let _ = tx.send(Report::Progress(g, event));
            }
            let _ = tx.send(Report::Done(g, handle.result().await.map_err(|e| e.to_string())));
        });
    }
    drop(tx);
    let mut results: Vec<Option<Result<FanoutResult, String>>> = (0..groups.len()).map(|_| None).collect();
    while let Some(report) = rx.recv().await {
        match report {
            Report::Progress(g, event) => {
                if !matches!(event, FanoutProgress::Started { .. }) {
                    done += 1;
                }
                let chunk = &chunks[groups[g][0].1.chunk];
                on_progress(&Progress { event, chunk: chunk.label(), cached: false, done, total });
            }
            Report::Done(g, result) => results[g] = Some(result),
        }
    }

    let mut usage = Usage::default();
    for (group, result) in groups.iter().zip(results) {
        let result = result.unwrap_or_else(|| Err("the swarm ended without a result".to_owned()));
        for (slot, cell) in group {
            let chunk = &chunks[cell.chunk];
            let mut summary = CellSummary {
                model: cell.model.clone(),
                lens: cell.lens.name().to_owned(),
                chunk: chunk.label(),
                file: chunk.file.clone(),
                cached: false,
                status: CellStatus::Succeeded,
                findings: 0,
                dropped: 0,
                elsewhere: 0,
                error: None,
                usage: Usage::default(),
                elapsed: Duration::ZERO,
            };
            let outcome = match &result {
                Ok(matrix) => matrix
                    .cells
                    .iter()
                    .find(|c| c.lens == cell.lens.name())
                    .map(|c| c.result.clone())
                    .unwrap_or_else(|| Err(CellError::Admission { message: "cell never ran".into() })),
                Err(message) => Err(CellError::Admission { message: message.clone() }),
            };
            match outcome {
                Ok(output) => {
                    summary.usage = output.usage;
                    summary.elapsed = output.elapsed;
                    usage.add(&output.usage);
                    match parse_report(output.typed, output.text.as_deref()) {
                        Ok(report) => {
                            summary.dropped = report.findings.len().saturating_sub(MAX_FINDINGS_PER_CELL);
                            let mut kept = Vec::new();
                            for finding in report.findings.into_iter().take(MAX_FINDINGS_PER_CELL) {
                                let mut finding = finding.sanitised();
                                // A cell is shown one file: a finding naming another file of
                                // the diff is about code it did not see; any other spelling
                                // of the path means the cell's file.
                                let resolved = index.resolve_path(&finding.file);
                                if resolved != chunk.file && index.files().any(|f| f == resolved) {
                                    summary.elsewhere += 1;
                                    continue;
                                }
                                finding.file.clone_from(&chunk.file);
                                kept.push(CachedFinding::relative(finding.clone(), chunk.anchor));
                                reported.push(Reported {
                                    model: cell.model.clone(),
                                    lens: cell.lens.name().to_owned(),
                                    finding,
                                });
                            }
                            summary.findings = kept.len();
                            let entry =
                                CachedCell { findings: kept, dropped: summary.dropped, usage: output.usage };
                            if let Err(e) = cache.put(&cell.key, &entry).await
                                && warnings.len() < 5
                            {
                                warnings.push(format!("{e}; the answer was not cached"));
                            }
                        }
                        Err(reason) => {
                            summary.status = CellStatus::Failed;
                            summary.error = Some(reason);
                        }
                    }
                }
                Err(error) => {
                    summary.status = if matches!(error, CellError::TimedOut { .. }) {
                        CellStatus::TimedOut
                    } else {
                        CellStatus::Failed
                    };
                    summary.error = Some(error.to_string());
                }
            }
            cells[*slot] = Some(summary);
        }
    }
    if let Err(e) = cache.flush().await {
        warnings.push(format!("{e}; this run's answers were not saved"));
    }
    let lenses = config.lens_names();
    Ok(Review {
        findings: merge(reported, &index, &config.models, &lenses),
        models: config.models.clone(),
        lenses,
        cells: cells.into_iter().flatten().collect(),
        usage,
        saved,
        elapsed: started.elapsed(),
        files: plan.files,
        chunks: chunks.len(),
        left_out: plan.left_out,
        spend: None,
        warnings,
    })
}

/// The cell's report: its typed output, else its text parsed as JSON (code fences allowed).
fn parse_report(typed: Option<serde_json::Value>, text: Option<&str>) -> Result<LensReport, String> {
    let invalid = |e: serde_json::Error| format!("the answer is not a valid findings report: {e}");
    match (typed, text) {
        (Some(value), _) => serde_json::from_value(value).map_err(invalid),
        (None, Some(text)) => {
            serde_json::from_str(executus_llm::structured::strip_code_fences(text).trim()).map_err(invalid)
        }
        (None, None) => Err("the model returned no answer".to_owned()),
    }
}

fn model_hint(runtime: &Runtime, spec: &str) -> String {
    let providers = runtime.registry().provider_names();
    if providers.is_empty() {
        " (no provider is configured: set EXECUTUS_LLM_<NAME>=<dsn>, or leave PR_REVIEW_MODELS unset \
         for the bundled replay)"
            .to_owned()
    } else if !spec.contains('/') {
        format!(
            " (a model is `provider/model` or a tier defined with PR_REVIEW_TIER_<NAME>; providers: {})",
            providers.join(", ")
        )
    } else {
        String::new()
    }
}

/// Serde for a `Duration` as whole milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}
