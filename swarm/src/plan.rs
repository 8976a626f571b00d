//! Splitting a diff into the pieces a review sends: [`plan_review`] turns a diff into
//! [`Chunk`]s — one per file, or per group of consecutive hunks when a file is larger than the
//! per-cell budget — and lists every file or range it leaves out, and why ([`LeftOut`]).
//!
//! Guarantees:
//! - Every chunk is a valid unified diff of one file whose hunk headers carry the real old and
//!   new line numbers (a hunk larger than a cell is cut between lines, each piece with its own
//!   exact header), so a finding counted from a chunk's header is on the real line of the new
//!   file.
//! - No chunk is over [`SplitOptions::max_cell_tokens`] by the estimate [`estimate_tokens`]
//!   (3 bytes per token, conservative for code); a single line that alone is over it is left
//!   out and named.
//! - With [`SplitOptions::max_total_tokens`], files are taken most-changed first (added plus
//!   removed lines; ties by path) and, within a file, chunks in order, while they fit; what
//!   does not fit is listed with its line range.
//! - Files matched by an exclude glob, binary files, deleted files and renames without a
//!   content change are listed, never sent.
//! - [`Chunk::content_hash`] (SHA-256) depends on the file's paths and the chunk's hunks with
//!   their line numbers taken relative to the chunk's first hunk: an edit elsewhere in the file
//!   that only moves the chunk keeps its hash, and its cached findings are moved with it
//!   ([`Chunk::anchor`]).
//!
//! What it does not do: look inside files the diff does not show, or pack several files into
//! one chunk (each file is a cell of its own, so a change to one file never invalidates the
//! cached review of another).

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::glob::{Glob, first_match};
use crate::patch::{FilePatch, Hunk, parse_patch};

/// Bytes per token assumed by [`estimate_tokens`].
pub const BYTES_PER_TOKEN: usize = 3;

/// The default per-cell budget of diff tokens.
pub const DEFAULT_MAX_CELL_TOKENS: usize = 12_000;

/// The smallest per-cell budget accepted (a file header and a few lines).
pub const MIN_CELL_TOKENS: usize = 200;

/// A conservative token estimate of `text`: one token per [`BYTES_PER_TOKEN`] bytes, rounded
/// up (code averages 3.5 to 4 bytes per token in common tokenizers).
pub fn estimate_tokens(text: &str) -> usize {
    text.len().div_ceil(BYTES_PER_TOKEN)
}

/// How to split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitOptions {
    /// The most diff tokens one cell is sent.
    pub max_cell_tokens: usize,
    /// The most diff tokens the whole review sends (per model and lens); `None`: no limit.
    pub max_total_tokens: Option<usize>,
    /// Files to skip.
    pub exclude: Vec<Glob>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        Self {
            max_cell_tokens: DEFAULT_MAX_CELL_TOKENS,
            max_total_tokens: None,
            exclude: crate::glob::compile_all(crate::glob::DEFAULT_EXCLUDES).unwrap_or_default(),
        }
    }
}

/// One piece of the diff: what one cell reviews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The file (its new path).
    pub file: String,
    /// Its old path, when it was renamed.
    pub renamed_from: Option<String>,
    /// 1-based index of this chunk within its file.
    pub part: usize,
    /// Chunks of this file.
    pub parts: usize,
    /// First new-version line the chunk shows.
    pub first_line: u32,
    /// Last new-version line the chunk shows.
    pub last_line: u32,
    /// The new start of the chunk's first hunk: cached findings are stored relative to it.
    pub anchor: u32,
    /// The chunk as a unified diff.
    pub text: String,
    /// [`estimate_tokens`] of `text`.
    pub tokens: usize,
    /// Lines added plus removed.
    pub changed_lines: usize,
    /// SHA-256 (hex) of the chunk's content (see the module docs).
    pub content_hash: String,
    /// The new-version lines the chunk shows (context and added), as inclusive ranges.
    pub shown: Vec<(u32, u32)>,
}

impl Chunk {
    /// `src/x.rs` for a whole file, `src/x.rs (part 2/3, lines 120-340)` for a piece.
    pub fn label(&self) -> String {
        if self.parts == 1 {
            self.file.clone()
        } else {
            format!(
                "{} (part {}/{}, lines {}-{})",
                self.file, self.part, self.parts, self.first_line, self.last_line
            )
        }
    }
}

/// Why something was not reviewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LeftOutReason {
    /// An exclude glob matched.
    Excluded {
        /// The pattern.
        pattern: String,
    },
    /// A binary file.
    Binary,
    /// The change deletes the file.
    Deleted,
    /// Renamed (or a mode change) with no content change.
    NoContentChange,
    /// Over the review's total token budget.
    OverTotalBudget {
        /// The estimated tokens of what was left out.
        tokens: usize,
    },
    /// One line alone is over the per-cell budget.
    LineTooLong {
        /// The new-version line (or the old one, for a removed line).
        line: u32,
        /// Its estimated tokens.
        tokens: usize,
    },
}

impl std::fmt::Display for LeftOutReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Excluded { pattern } => write!(f, "excluded by `{pattern}`"),
            Self::Binary => f.write_str("binary file"),
            Self::Deleted => f.write_str("deleted"),
            Self::NoContentChange => f.write_str("renamed or mode change only, no content change"),
            Self::OverTotalBudget { tokens } => {
                write!(f, "over the review's token budget (~{tokens} tokens left out)")
            }
            Self::LineTooLong { line, tokens } => {
                write!(f, "line {line} alone is ~{tokens} tokens, over the per-cell budget")
            }
        }
    }
}

/// A file, or a line range of one, that the review did not send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftOut {
    /// The file.
    pub file: String,
    /// The new-version lines left out, when only part of the file was.
    pub lines: Option<(u32, u32)>,
    /// Why.
    #[serde(flatten)]
    pub reason: LeftOutReason,
}

/// What a review sends and what it leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewPlan {
    /// The chunks, by file path then part.
    pub chunks: Vec<Chunk>,
    /// Everything left out, by file path.
    pub left_out: Vec<LeftOut>,
    /// Files the diff names.
    pub files: usize,
}

impl ReviewPlan {
    /// Estimated diff tokens of every chunk.
    pub fn tokens(&self) -> usize {
        self.chunks.iter().map(|c| c.tokens).sum()
    }
}

/// Splits `diff` (see the module docs).
pub fn plan_review(diff: &str, options: &SplitOptions) -> ReviewPlan {
    let files = parse_patch(diff);
    let mut plan = ReviewPlan { files: files.len(), ..ReviewPlan::default() };
    // (changed lines, path, chunks) per reviewable file.
    let mut candidates: Vec<(usize, String, Vec<Chunk>)> = Vec::new();
    for file in &files {
        let path = file.path().to_owned();
        let excluded = first_match(&options.exclude, &path)
            .or_else(|| file.old_path.as_deref().and_then(|old| first_match(&options.exclude, old)));
        let reason = if let Some(glob) = excluded {
            Some(LeftOutReason::Excluded { pattern: glob.as_str().to_owned() })
        } else if file.binary {
            Some(LeftOutReason::Binary)
        } else if file.is_deleted() {
            Some(LeftOutReason::Deleted)
        } else if file.hunks.is_empty() {
            Some(LeftOutReason::NoContentChange)
        } else {
            None
        };
        if let Some(reason) = reason {
            plan.left_out.push(LeftOut { file: path, lines: None, reason });
            continue;
        }
        let (chunks, too_long) = split_file(file, options.max_cell_tokens);
        plan.left_out.extend(too_long);
        if !chunks.is_empty() {
            candidates.push((file.changed_lines(), path, chunks));
        }
    }
    candidates.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut left = options.max_total_tokens.unwrap_or(usize::MAX);
    for (_, path, chunks) in candidates {
        let mut skipped: Vec<Chunk> = Vec::new();
        let mut taken = 0;
        for chunk in chunks {
            if chunk.tokens <= left {
                left -= chunk.tokens;
                plan.chunks.push(chunk);
                taken += 1;
            } else {
                skipped.push(chunk);
            }
        }
        if taken == 0 && !skipped.is_empty() {
            // The whole file is left out: one entry, no line range.
            let tokens = skipped.iter().map(|c| c.tokens).sum();
            plan.left_out.push(LeftOut {
                file: path,
                lines: None,
                reason: LeftOutReason::OverTotalBudget { tokens },
            });
        } else {
            plan.left_out.extend(skipped.into_iter().map(|chunk| LeftOut {
                file: chunk.file.clone(),
                lines: Some((chunk.first_line, chunk.last_line)),
                reason: LeftOutReason::OverTotalBudget { tokens: chunk.tokens },
            }));
        }
    }
    plan.chunks.sort_by(|a, b| a.file.cmp(&b.file).then(a.part.cmp(&b.part)));
    plan.left_out.sort_by(|a, b| a.file.cmp(&b.file).then(a.lines.cmp(&b.lines)));
    plan
}

/// The chunks of one file under `max_tokens`, and the lines too long for any chunk.
fn split_file(file: &FilePatch, max_tokens: usize) -> (Vec<Chunk>, Vec<LeftOut>) {
    let max_bytes = max_tokens.saturating_mul(BYTES_PER_TOKEN);
    let header_len = file.render(&[]).len();
    let room = max_bytes.saturating_sub(header_len);
    let mut pieces: Vec<Hunk> = Vec::new();
    let mut left_out = Vec::new();
    for hunk in &file.hunks {
        for piece in hunk.split_lines(room) {
            if piece.rendered_len() > room {
                let line = if piece.new_count > 0 { piece.new_start } else { piece.old_start };
                left_out.push(LeftOut {
                    file: file.path().to_owned(),
                    lines: Some((piece.new_start, piece.new_end())),
                    reason: LeftOutReason::LineTooLong {
                        line,
                        tokens: piece.rendered_len().div_ceil(BYTES_PER_TOKEN),
                    },
                });
            } else {
                pieces.push(piece);
            }
        }
    }
    // Greedy groups of consecutive pieces.
    let mut groups: Vec<Vec<Hunk>> = Vec::new();
    let mut size = 0;
    for piece in pieces {
        let len = piece.rendered_len();
        match groups.last_mut() {
            Some(group) if size + len <= room => {
                group.push(piece);
                size += len;
            }
            _ => {
                groups.push(vec![piece]);
                size = len;
            }
        }
    }
    let parts = groups.len();
    let chunks = groups
        .into_iter()
        .enumerate()
        .map(|(i, hunks)| {
            let text = file.render(&hunks);
            let anchor = hunks.first().map_or(1, |h| h.new_start);
            let shown: Vec<(u32, u32)> =
                hunks.iter().filter(|h| h.new_count > 0).map(|h| (h.new_start, h.new_end())).collect();
            Chunk {
                file: file.path().to_owned(),
                renamed_from: file.is_renamed().then(|| file.old_path.clone()).flatten(),
                part: i + 1,
                parts,
                first_line: shown.first().map_or(anchor, |r| r.0),
                last_line: shown.last().map_or(anchor, |r| r.1),
                anchor,
                tokens: estimate_tokens(&text),
                changed_lines: hunks.iter().map(Hunk::changed_lines).sum(),
                content_hash: content_hash(file, &hunks),
                shown,
                text,
            }
        })
        .collect();
    (chunks, left_out)
}

fn content_hash(file: &FilePatch, hunks: &[Hunk]) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"pr-review-swarm chunk v1");
    field(file.old_path.as_deref().unwrap_or("/dev/null").as_bytes());
    field(file.new_path.as_deref().unwrap_or("/dev/null").as_bytes());
    let (old0, new0) = hunks.first().map_or((0, 0), |h| (h.old_start, h.new_start));
    for hunk in hunks {
        let numbers = format!(
            "{} {} {} {}",
            i64::from(hunk.old_start) - i64::from(old0),
            hunk.old_count,
            i64::from(hunk.new_start) - i64::from(new0),
            hunk.new_count
        );
        field(numbers.as_bytes());
        for line in &hunk.lines {
            field(line.as_bytes());
        }
    }
    let digest = hasher.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
