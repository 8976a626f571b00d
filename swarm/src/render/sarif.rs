//! SARIF 2.1.0, the format CI code-scanning tools ingest: one run, one rule per finding
//! category, one result per merged finding.
//!
//! - `results[].level` is the severity (`error`, `warning`, `note`); `message.text` the title,
//!   the detail, the suggestion and who reported it; `properties` carry agreement, models
//!   and lenses for tools that read them.
//! - Locations are relative URIs (percent-encoded) with `uriBaseId` `%SRCROOT%` (the
//!   repository root, which code-scanning uploaders resolve), 1-based `startLine`/`endLine`,
//!   and, for a one-line region the diff shows, that line as `snippet`.
//! - `partialFingerprints["prReviewSwarm/v1"]` is the merged finding's `id` (file, category
//!   and the flagged line's text): stable across runs and line shifts, so code-scanning
//!   de-duplicates alerts between pushes.
//! - `invocations[0].executionSuccessful` is false when every cell failed; each failed cell
//!   is a `toolExecutionNotifications` entry (level `error`), and so is each file or range the
//!   review left out (level `note`, descriptor `not-reviewed`).

use serde_json::{Value, json};

use super::agreement;
use crate::review::{CellStatus, Review};

/// The SARIF 2.1.0 JSON schema URI written as `$schema`.
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The partial-fingerprint key.
pub const FINGERPRINT_KEY: &str = "prReviewSwarm/v1";

/// Renders `review` as a SARIF 2.1.0 log.
pub fn render_sarif(review: &Review) -> Value {
    let mut rules: Vec<String> = Vec::new();
    for f in &review.findings {
        if !rules.contains(&f.category) {
            rules.push(f.category.clone());
        }
    }
    let results: Vec<Value> = review
        .findings
        .iter()
        .map(|f| {
            let rule_index = rules.iter().position(|r| r == &f.category).unwrap_or(0);
            let mut region = json!({ "startLine": f.line });
            if let Some(end) = f.end_line {
                region["endLine"] = json!(end);
            }
            // A snippet is the region's whole text; the diff index gives one line, so only a
            // one-line region carries it.
            if let (Some(snippet), None) = (&f.snippet, f.end_line) {
                region["snippet"] = json!({ "text": snippet });
            }
            let mut text = f.title.clone();
            if !f.detail.is_empty() {
                text.push_str("\n\n");
                text.push_str(&f.detail);
            }
            if let Some(suggestion) = &f.suggestion {
                text.push_str("\n\nSuggestion: ");
                text.push_str(suggestion);
            }
            text.push_str(&format!(
                "\n\nReported by {} ({}); lenses: {}.",
                agreement(f, review),
                f.models.join(", "),
                f.lenses.join(", ")
            ));
            json!({
                "ruleId": f.category,
                "ruleIndex": rule_index,
                "level": f.severity.as_str(),
                "message": { "text": text },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.file), "uriBaseId": "%SRCROOT%" },
                        "region": region,
                    }
                }],
                "partialFingerprints": { FINGERPRINT_KEY: f.id },
                "properties": {
                    "title": f.title,
                    "agreement": f.agreement,
                    "models": f.models,
                    "lenses": f.lenses,
                },
            })
        })
        .collect();
    let rules: Vec<Value> = rules
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "name": rule_name(id),
                "shortDescription": { "text": format!("Review finding: {}", id.replace('-', " ")) },
            })
        })
        .collect();
    let notifications: Vec<Value> = review
        .failed_cells()
        .map(|c| {
            json!({
                "level": "error",
                "descriptor": { "id": if c.status == CellStatus::TimedOut { "cell-timed-out" } else { "cell-failed" } },
                "message": {
                    "text": format!(
                        "{} x {} x {}: {}",
                        c.model,
                        c.lens,
                        c.chunk,
                        c.error.as_deref().unwrap_or("failed")
                    ),
                },
            })
        })
        .chain(review.left_out.iter().map(|l| {
            let place = match l.lines {
                Some((a, b)) => format!("{} (lines {a}-{b})", l.file),
                None => l.file.clone(),
            };
            json!({
                "level": "note",
                "descriptor": { "id": "not-reviewed" },
                "message": { "text": format!("not reviewed: {place}: {}", l.reason) },
            })
        }))
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "pr-review-swarm",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": env!("CARGO_PKG_REPOSITORY"),
                    "rules": rules,
                }
            },
            "invocations": [{
                "executionSuccessful": !review.all_failed(),
                "toolExecutionNotifications": notifications,
            }],
            "columnKind": "unicodeCodePoints",
            "results": results,
            "properties": {
                "models": review.models,
                "lenses": review.lenses,
                "cells": review.cells.len(),
                "failedCells": review.failed_cells().count(),
                "cachedCells": review.cached_cells(),
            },
        }],
    })
}

/// `sql-injection` -> `SqlInjection` (a rule's `name` is conventionally PascalCase).
fn rule_name(id: &str) -> String {
    id.split('-')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// A relative path as a URI reference: unreserved characters and `/` kept, everything else
/// percent-encoded (so spaces, `#`, `?` and `%` cannot change its meaning).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.trim_start_matches('/').bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_and_encoded() {
        assert_eq!(uri("src/a b#c?.rs"), "src/a%20b%23c%3F.rs");
        assert_eq!(uri("/abs/x.rs"), "abs/x.rs");
        assert_eq!(uri("dir/é.rs"), "dir/%C3%A9.rs");
        assert_eq!(rule_name("sql-injection"), "SqlInjection");
        assert_eq!(rule_name("n-1-query"), "N1Query");
    }
}
