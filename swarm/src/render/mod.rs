//! Rendering a [`Review`]: Markdown for people, a compact Markdown comment for the pull request
//! ([`render_comment`]), SARIF 2.1.0 for code-scanning tools, JSON and NDJSON for programs, and
//! [`write_outputs`] for the three files the binary writes.
//!
//! Renderers are pure functions of the review: the same review renders to the same bytes.
//! Model-written text is passed through as the models wrote it (Markdown stays Markdown);
//! only table cells are escaped so that a `|` or a newline cannot break the table.

mod comment;
mod json;
mod markdown;
mod sarif;

use std::path::{Path, PathBuf};

pub use comment::render_comment;
pub use json::{render_json, render_ndjson};
pub use markdown::render_markdown;
pub use sarif::{SARIF_SCHEMA, render_sarif};

use crate::error::ReviewError;
use crate::merge::MergedFinding;
use crate::review::Review;

/// The files [`write_outputs`] writes, in its output directory.
pub const OUTPUT_FILES: [&str; 3] = ["review.md", "review.sarif", "review.json"];

/// Writes `review.md`, `review.sarif` and `review.json` into `dir` (created if missing) and
/// returns their paths.
///
/// # Errors
/// [`ReviewError::Write`] naming the directory or file.
pub fn write_outputs(review: &Review, dir: &Path) -> Result<Vec<PathBuf>, ReviewError> {
    std::fs::create_dir_all(dir).map_err(|source| ReviewError::Write { path: dir.to_owned(), source })?;
    let pretty = |value: &serde_json::Value| {
        let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        text.push('\n');
        text
    };
    let contents = [render_markdown(review), pretty(&render_sarif(review)), pretty(&render_json(review))];
    let mut written = Vec::new();
    for (name, text) in OUTPUT_FILES.iter().zip(contents) {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| ReviewError::Write { path: path.clone(), source })?;
        written.push(path);
    }
    Ok(written)
}

/// `file:line` or `file:line-end`.
pub(crate) fn location(finding: &MergedFinding) -> String {
    match finding.end_line {
        Some(end) => format!("{}:{}-{end}", finding.file, finding.line),
        None => format!("{}:{}", finding.file, finding.line),
    }
}

/// `2/2 models`: how many models reported it, of those that answered at all.
pub(crate) fn agreement(finding: &MergedFinding, review: &Review) -> String {
    let of = review.models_answered().max(finding.agreement);
    format!("{}/{of} model{}", finding.agreement, if of == 1 { "" } else { "s" })
}

/// `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The cells line: how many asked a model, how many came from the cache, tokens spent and
/// saved, and the spend when priced; `None` when there is nothing beyond the headline.
pub(crate) fn cost_line(review: &Review) -> Option<String> {
    let cached = review.cached_cells();
    if cached == 0 && review.spend.is_none() {
        return None;
    }
    let mut line = format!(
        "Cells: {} asked, {} from the cache. Tokens: {} spent",
        review.fresh_cells(),
        cached,
        thousands(review.usage.total())
    );
    if cached > 0 {
        line.push_str(&format!(", {} saved by the cache", thousands(review.saved.total())));
    }
    line.push('.');
    if let Some(spend) = &review.spend {
        line.push_str(&format!(" Spend: ${:.4}", spend.fresh_usd));
        if cached > 0 {
            line.push_str(&format!(" (the cache saved ${:.4})", spend.saved_usd));
        }
        if !spend.unpriced.is_empty() {
            line.push_str(&format!(", not counting {} (no price)", spend.unpriced.join(", ")));
        }
        line.push('.');
    }
    Some(line)
}

/// `src/x.rs` or `src/x.rs (lines 10-20)`.
pub(crate) fn left_out_place(left: &crate::plan::LeftOut) -> String {
    match left.lines {
        Some((a, b)) => format!("{} (lines {a}-{b})", left.file),
        None => left.file.clone(),
    }
}
