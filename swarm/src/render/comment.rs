//! The review as one pull request comment: GitHub-flavoured Markdown that stays short on the
//! page — the headline, a table of the findings, then one collapsible `<details>` per finding
//! (location, flagged line, detail, suggestion, who reported it), what was not reviewed, the
//! failed cells and the cost line. The marker that finds the comment again is added by
//! [`crate::post`].

use std::fmt::Write as _;

use super::markdown::{cell, code, counted, duration, one_line};
use super::{agreement, cost_line, left_out_place, location};
use crate::review::Review;

/// Renders `review` as a pull request comment (see the module docs).
pub fn render_comment(review: &Review) -> String {
    let mut out = String::new();
    let counts = review.counts();
    let n = review.findings.len();
    let _ = writeln!(out, "## PR review: {}\n", counted(n, "finding"));
    let _ = writeln!(
        out,
        "**{} · {} · {}** from {} × {} over {} ({} of {} cells answered) in {}.\n",
        counted(counts.error, "error"),
        counted(counts.warning, "warning"),
        counted(counts.note, "note"),
        counted(review.models.len(), "model"),
        counted(review.lenses.len(), "lens"),
        counted(review.files, "file"),
        review.succeeded_cells(),
        review.cells.len(),
        duration(review.elapsed),
    );
    if review.cells.is_empty() {
        out.push_str("> Nothing was sent to a model: every file of the diff was left out.\n\n");
    } else if review.all_failed() {
        out.push_str("> **Every cell failed: this review has no findings to report.**\n\n");
    } else if review.failed_cells().next().is_some() {
        let _ = writeln!(
            out,
            "> **{} failed**: findings come from the cells that answered.\n",
            counted(review.failed_cells().count(), "cell")
        );
    }
    if !review.findings.is_empty() {
        out.push_str("| # | severity | location | finding | agreement |\n| ---: | --- | --- | --- | --- |\n");
        for (i, f) in review.findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                i + 1,
                f.severity,
                cell(&code(&location(f))),
                cell(&f.title),
                agreement(f, review)
            );
        }
        out.push('\n');
        for (i, f) in review.findings.iter().enumerate() {
            let _ = writeln!(
                out,
                "<details><summary><b>{}. {}</b> {} — {}</summary>\n",
                i + 1,
                f.severity,
                html(&location(f)),
                html(&one_line(&f.title))
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
            let _ = writeln!(
                out,
                "`{}` · {} ({}) · lenses: {}\n\n</details>\n",
                f.category,
                agreement(f, review),
                f.models.join(", "),
                f.lenses.join(", ")
            );
        }
    }
    if !review.left_out.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>Not reviewed: {}</summary>\n",
            counted(review.left_out.len(), "item")
        );
        for l in &review.left_out {
            let _ = writeln!(out, "- {}: {}", code(&left_out_place(l)), l.reason);
        }
        out.push_str("\n</details>\n\n");
    }
    let failed: Vec<_> = review.failed_cells().collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "<details><summary>Failed cells: {}</summary>\n", failed.len());
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
        out.push_str("\n</details>\n\n");
    }
    if let Some(line) = cost_line(review) {
        let _ = writeln!(out, "{line}\n");
    }
    out.push_str(
        "<sub>pr-review-swarm: models × lenses over the diff; findings merged across models.</sub>\n",
    );
    out
}

/// Text safe inside an HTML element (`<summary>`).
fn html(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
