//! Rendering a [`Review`]: Markdown for people, SARIF 2.1.0 for code-scanning tools, JSON and
//! NDJSON for programs, and [`write_outputs`] for the three files the binary writes.
//!
//! Renderers are pure functions of the review: the same review renders to the same bytes.
//! Model-written text is passed through as the models wrote it (Markdown stays Markdown);
//! only table cells are escaped so that a `|` or a newline cannot break the table.

mod json;
mod markdown;
mod sarif;

use std::path::{Path, PathBuf};

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
