//! Running a review: the N x M fanout through the runtime, each cell's answer checked
//! against the findings schema, then merged ([`crate::merge`]) into a [`Review`].
//!
//! Guarantees: a model that fails (an error, a timeout, an answer that is not a
//! [`LensReport`]) fails only its own cells, and every failed cell is in [`Review::cells`]
//! with its reason. The request each cell sends depends only on the lens and the diff, so a
//! replay transcript answers it by content. What is not here: reading the environment
//! ([`crate::config`]), building the registry ([`crate::models`]), rendering ([`crate::render`]).

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use executus::Runtime;
use executus::fanout::{CellError, FanoutProgress, FanoutSpec};
use executus_llm::{Message, Usage};
use serde::{Deserialize, Serialize};

use crate::config::{DiffSource, ReviewConfig};
use crate::diff::DiffIndex;
use crate::error::ReviewError;
use crate::finding::{LensReport, MAX_FINDINGS_PER_CELL, Severity};
use crate::fixture::SAMPLE_DIFF;
use crate::lens::user_message;
use crate::merge::{MergedFinding, Reported, merge};

/// The largest diff a review sends (bytes).
pub const MAX_DIFF_BYTES: usize = 1 << 20;

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
    /// Tokens spent by all cells.
    pub usage: Usage,
    /// Wall time of the swarm.
    #[serde(rename = "elapsed_ms", with = "millis")]
    pub elapsed: Duration,
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
    /// How it ended.
    pub status: CellStatus,
    /// Findings it reported (after the per-cell cap).
    pub findings: usize,
    /// Findings dropped by the per-cell cap.
    pub dropped: usize,
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

/// A progress report: one cell started, finished or failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// What happened.
    pub event: FanoutProgress,
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

/// Reviews `diff` with every model x lens of `config` on `runtime`.
///
/// # Errors
/// As [`run_review_with_progress`].
pub async fn run_review(runtime: &Runtime, config: &ReviewConfig, diff: &str) -> Result<Review, ReviewError> {
    run_review_with_progress(runtime, config, diff, |_| {}).await
}

/// [`run_review`], calling `on_progress` as cells start and end.
///
/// # Errors
/// [`ReviewError::EmptyDiff`] / [`ReviewError::DiffTooLarge`] for an unusable diff,
/// [`ReviewError::UnknownModel`] for a model spec the registry cannot resolve,
/// [`ReviewError::Env`] for an empty model or lens list, [`ReviewError::Fanout`] if the
/// swarm cannot start. Failing cells are not errors: they are in [`Review::cells`].
pub async fn run_review_with_progress(
    runtime: &Runtime,
    config: &ReviewConfig,
    diff: &str,
    mut on_progress: impl FnMut(&Progress),
) -> Result<Review, ReviewError> {
    if diff.len() > MAX_DIFF_BYTES {
        return Err(ReviewError::DiffTooLarge { bytes: diff.len(), max: MAX_DIFF_BYTES });
    }
    let index = DiffIndex::parse(diff);
    if index.is_empty() {
        return Err(ReviewError::EmptyDiff);
    }
    if config.models.is_empty() {
        return Err(ReviewError::env("PR_REVIEW_MODELS", "no model to review with"));
    }
    if config.lenses.is_empty() {
        return Err(ReviewError::env("PR_REVIEW_LENSES", "no lens to review with"));
    }
    for spec in &config.models {
        runtime.registry().resolve(spec).map_err(|source| ReviewError::UnknownModel {
            spec: spec.clone(),
            hint: model_hint(runtime, spec),
            source,
        })?;
    }
    let mut spec = FanoutSpec::new(
        config.models.clone(),
        config.lenses.iter().map(|l| l.lens()).collect(),
        Message::user(user_message(diff)),
    );
    spec.mode = config.mode;
    spec.deadline = config.deadline;
    spec.lane.clone_from(&config.lane);
    let total = config.models.len() * config.lenses.len();
    let mut handle = runtime.fanout(spec).await?;
    let mut done = 0;
    while let Some(event) = handle.progress.recv().await {
        if !matches!(event, FanoutProgress::Started { .. }) {
            done += 1;
        }
        on_progress(&Progress { event, done, total });
    }
    let result = handle.result().await?;

    let mut reported = Vec::new();
    let mut cells = Vec::with_capacity(result.cells.len());
    let mut usage = Usage::default();
    for cell in result.cells {
        let mut summary = CellSummary {
            model: cell.model.clone(),
            lens: cell.lens.clone(),
            status: CellStatus::Succeeded,
            findings: 0,
            dropped: 0,
            error: None,
            usage: Usage::default(),
            elapsed: Duration::ZERO,
        };
        match cell.result {
            Ok(output) => {
                summary.usage = output.usage;
                summary.elapsed = output.elapsed;
                usage.add(&output.usage);
                match parse_report(output.typed, output.text.as_deref()) {
                    Ok(report) => {
                        summary.dropped = report.findings.len().saturating_sub(MAX_FINDINGS_PER_CELL);
                        for finding in report.findings.into_iter().take(MAX_FINDINGS_PER_CELL) {
                            let mut finding = finding.sanitised();
                            finding.file = index.resolve_path(&finding.file);
                            reported.push(Reported {
                                model: cell.model.clone(),
                                lens: cell.lens.clone(),
                                finding,
                            });
                            summary.findings += 1;
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
        cells.push(summary);
    }
    let lenses = config.lens_names();
    Ok(Review {
        findings: merge(reported, &index, &config.models, &lenses),
        models: config.models.clone(),
        lenses,
        cells,
        usage,
        elapsed: result.elapsed,
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
