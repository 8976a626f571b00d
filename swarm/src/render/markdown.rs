//! The Markdown review: a headline, a summary table of every finding, the findings grouped by
//! file (with the flagged line, agreement and lenses), and the cell matrix with the reason of
//! every failed cell.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{agreement, cost_line, left_out_place, location, thousands};
use crate::review::{CellStatus, Review};

/// Renders `review` as Markdown (GitHub-flavoured: tables).
pub fn render_markdown(review: &Review) -> String {
    let mut out = String::new();
    // `write!` to a String cannot fail; the results are ignored for that reason.
    let counts = review.counts();
    let n = review.findings.len();
    let _ = writeln!(out, "# PR review: {n} finding{}\n", plural(n));
    let _ = writeln!(
        out,
        "**{} · {} · {}** from {} × {} over {} ({} of {} cells answered) in {}{}.\n",
        counted(counts.error, "error"),
        counted(counts.warning, "warning"),
        counted(counts.note, "note"),
        counted(review.models.len(), "model"),
        counted(review.lenses.len(), "lens"),
        counted(review.files, "file"),
        review.succeeded_cells(),
        review.cells.len(),
        duration(review.elapsed),
        match review.usage.total() {
            0 => String::new(),
            tokens => format!(", {} tokens", thousands(tokens)),
        },
    );
    if let Some(line) = cost_line(review) {
        let _ = writeln!(out, "{line}\n");
    }
    let _ = writeln!(out, "Models: {}. Lenses: {}.\n", list_code(&review.models), review.lenses.join(", "));
    if review.cells.is_empty() {
        let _ = writeln!(
            out,
            "> **Nothing was sent to a model:** every file of the diff was left out (see Not reviewed).\n"
        );
    } else if review.all_failed() {
        let _ = writeln!(
            out,
            "> **Every cell failed: this review has no findings to report.** See the cells below.\n"
        );
    } else if review.failed_cells().next().is_some() {
        let failed = review.failed_cells().count();
        let _ = writeln!(
            out,
            "> **{} failed**: findings come from the cells that answered (see the cells below).\n",
            counted(failed, "cell"),
        );
    }

    if review.findings.is_empty() {
        out.push_str("No findings.\n\n");
    } else {
        out.push_str("| # | severity | location | finding | agreement | lenses |\n");
        out.push_str("| ---: | --- | --- | --- | --- | --- |\n");
        for (i, f) in review.findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                f.severity,
                cell(&code(&location(f))),
                cell(&f.title),
                agreement(f, review),
                f.lenses.join(", "),
            );
        }
        out.push('\n');
        findings_by_file(review, &mut out);
    }
    cells(review, &mut out);
    left_out(review, &mut out);
    out
}

fn left_out(review: &Review, out: &mut String) {
    if !review.left_out.is_empty() {
        out.push_str("## Not reviewed\n\n");
        for l in &review.left_out {
            let _ = writeln!(out, "- {}: {}", code(&left_out_place(l)), l.reason);
        }
        out.push('\n');
    }
    if !review.warnings.is_empty() {
        out.push_str("## Warnings\n\n");
        for w in &review.warnings {
            let _ = writeln!(out, "- {}", one_line(w));
        }
        out.push('\n');
    }
}

fn findings_by_file(review: &Review, out: &mut String) {
    let mut by_file: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, f) in review.findings.iter().enumerate() {
        by_file.entry(f.file.as_str()).or_default().push(i);
    }
    out.push_str("## Findings by file\n\n");
    for (file, indices) in by_file {
        let _ = writeln!(out, "### {}\n", code(file));
        for i in indices {
            let f = &review.findings[i];
            let _ = writeln!(out, "#### {}. {}: {}\n", i + 1, f.severity, one_line(&f.title));
            let _ = writeln!(
                out,
                "{} · {} · {} ({}) · lenses: {}\n",
                code(&location(f)),
                code(&f.category),
                agreement(f, review),
                f.models.join(", "),
                f.lenses.join(", "),
            );
            if let Some(snippet) = &f.snippet {
                let _ = writeln!(out, "> {}\n", code(snippet));
            }
            if !f.detail.is_empty() {
                let _ = writeln!(out, "{}\n", f.detail);
            }
            if let Some(suggestion) = &f.suggestion {
                let _ = writeln!(out, "**Suggestion:** {suggestion}\n");
            }
            if f.reports.len() > 1 {
                out.push_str("<details><summary>Reported as</summary>\n\n");
                for r in &f.reports {
                    let _ = writeln!(
                        out,
                        "- {} × {} ({}, line {}): {}",
                        r.model,
                        r.lens,
                        r.severity,
                        r.line,
                        one_line(&r.title)
                    );
                }
                out.push_str("\n</details>\n\n");
            }
        }
    }
}

fn cells(review: &Review, out: &mut String) {
    out.push_str("## Cells\n\n| model |");
    for lens in &review.lenses {
        let _ = write!(out, " {lens} |");
    }
    out.push_str("\n| --- |");
    for _ in &review.lenses {
        out.push_str(" --- |");
    }
    out.push('\n');
    for model in &review.models {
        let _ = write!(out, "| {} |", cell(&code(model)));
        for lens in &review.lenses {
            let of: Vec<_> = review.cells.iter().filter(|c| &c.model == model && &c.lens == lens).collect();
            let failed = of.iter().filter(|c| c.status == CellStatus::Failed).count();
            let timed_out = of.iter().filter(|c| c.status == CellStatus::TimedOut).count();
            let found: usize = of.iter().map(|c| c.findings).sum();
            let text = if of.is_empty() {
                "not run".to_owned()
            } else if failed == of.len() {
                "**failed**".to_owned()
            } else if timed_out == of.len() {
                "**timed out**".to_owned()
            } else if failed + timed_out > 0 {
                format!("{}, **{} of {} failed**", counted(found, "finding"), failed + timed_out, of.len())
            } else {
                counted(found, "finding")
            };
            let _ = write!(out, " {text} |");
        }
        out.push('\n');
    }
    out.push('\n');
    let failed: Vec<_> = review.failed_cells().collect();
    if !failed.is_empty() {
        out.push_str("### Failed cells\n\n");
        for c in failed {
            let _ = writeln!(
                out,
                "- {} × {} × {}: {}",
                code(&c.model),
                c.lens,
                code(&c.chunk),
                one_line(c.error.as_deref().unwrap_or("no reason given"))
            );
        }
        out.push('\n');
    }
    let dropped: usize = review.cells.iter().map(|c| c.dropped).sum();
    if dropped > 0 {
        let _ = writeln!(out, "{} beyond the per-cell limit were dropped.\n", counted(dropped, "finding"));
    }
}

pub(super) fn duration(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 { format!("{} ms", d.as_millis()) } else { format!("{:.1} s", d.as_secs_f64()) }
}

pub(super) fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn counted(n: usize, noun: &str) -> String {
    match (n, noun) {
        (1, _) => format!("1 {noun}"),
        (_, "lens") => format!("{n} lenses"),
        _ => format!("{n} {noun}s"),
    }
}

pub(super) fn list_code(items: &[String]) -> String {
    items.iter().map(|m| code(m)).collect::<Vec<_>>().join(", ")
}

pub(super) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `text` as an inline code span, fenced with more backticks than it contains (in a table,
/// pass the result through [`cell`]).
pub(super) fn code(text: &str) -> String {
    let text = one_line(text);
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest > 0 { format!("{fence} {text} {fence}") } else { format!("{fence}{text}{fence}") }
}

/// Text for a table cell: one line, pipes escaped.
pub(super) fn cell(text: &str) -> String {
    one_line(text).replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_and_cells_cannot_break_out() {
        assert_eq!(code("a.rs:3"), "`a.rs:3`");
        assert_eq!(code("let s = `x`;"), "`` let s = `x`; ``");
        assert_eq!(cell("a | b\nc"), "a \\| b c");
        assert_eq!(cell(&code("x|y")), "`x\\|y`");
        assert_eq!(counted(1, "lens"), "1 lens");
        assert_eq!(counted(4, "lens"), "4 lenses");
        assert_eq!(counted(0, "error"), "0 errors");
    }
}
