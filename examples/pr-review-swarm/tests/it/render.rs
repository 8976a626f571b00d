//! Markdown, JSON and NDJSON renderings of the bundled review, and the output files.

use pr_review_swarm::render::OUTPUT_FILES;
use pr_review_swarm::{Review, render_json, render_markdown, render_ndjson, write_outputs};
use serde_json::{Value, json};

use crate::common::bundled_review;

#[tokio::test]
async fn the_markdown_has_the_summary_table_and_every_finding() {
    let review = bundled_review().await;
    let markdown = render_markdown(&review);
    assert!(markdown.starts_with("# PR review: 18 findings\n"), "{markdown}");
    assert!(markdown.contains(
        "**7 errors · 7 warnings · 4 notes** from 2 models × 4 lenses over 5 files (40 of 40 cells answered)"
    ));
    assert!(markdown.contains("| # | severity | location | finding | agreement | lenses |"));
    assert!(markdown.contains(
        "| 1 | error | `src/handlers/search.rs:30-32` | SQL injection: the search term is formatted into the \
         query string | 2/2 models | correctness, security |"
    ));
    for (i, f) in review.findings.iter().enumerate() {
        let n = i + 1;
        assert!(markdown.contains(&format!("\n| {n} | {} |", f.severity)), "table row {n}");
        assert!(markdown.contains(&format!("#### {n}. {}: {}", f.severity, f.title)), "section {n}");
        assert!(markdown.contains(&f.detail), "detail of {n}");
    }
    for file in ["src/handlers/search.rs", "src/pagination.rs", "src/routes.rs", "tests/search_test.rs"] {
        assert!(markdown.contains(&format!("### `{file}`")), "{file}");
    }
    assert!(markdown.contains("> `let sql = format!(`"), "the flagged line is quoted");
    assert!(
        markdown.contains("| `replay/model-a` | 6 findings | 4 findings | 3 findings | 4 findings |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `replay/model-b` | 4 findings | 5 findings | 2 findings | 1 finding |"),
        "{markdown}"
    );
    assert!(!markdown.contains("Failed cells"));
    assert_eq!(markdown, render_markdown(&review), "rendering is deterministic");
}

#[tokio::test]
async fn json_round_trips_and_ndjson_tags_every_line() {
    let review = bundled_review().await;
    let doc = render_json(&review);
    assert_eq!(doc["format"], json!("pr-review-swarm/v1"));
    assert_eq!(doc["summary"]["findings"], json!(18));
    assert_eq!(doc["summary"]["counts"], json!({ "error": 7, "warning": 7, "note": 4 }));
    assert_eq!(doc["summary"]["cells_failed"], json!(0));
    assert_eq!(doc["findings"][0]["agreement"], json!(2));
    assert_eq!(doc["findings"][0]["severity"], json!("error"));
    let findings: Vec<pr_review_swarm::MergedFinding> =
        serde_json::from_value(doc["findings"].clone()).unwrap();
    assert_eq!(findings, review.findings);
    let back: Review = serde_json::from_value(json!({
        "models": doc["summary"]["models"], "lenses": doc["summary"]["lenses"], "findings": doc["findings"],
        "cells": doc["cells"], "usage": doc["summary"]["usage"], "elapsed_ms": doc["summary"]["elapsed_ms"],
    }))
    .unwrap();
    assert_eq!(back.findings, review.findings);
    assert_eq!(back.cells.len(), 40);
    assert_eq!(doc["summary"]["cells_cached"], json!(0));
    assert_eq!(doc["summary"]["cells_fresh"], json!(40));
    assert_eq!(doc["summary"]["files"], json!(5));
    assert_eq!(doc["cells"][0]["chunk"], json!("src/handlers/mod.rs"));

    let ndjson = render_ndjson(&review);
    let lines: Vec<Value> = ndjson.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 18 + 40 + 1);
    assert!(lines[..18].iter().all(|l| l["type"] == json!("finding")));
    assert!(lines[18..58].iter().all(|l| l["type"] == json!("cell")));
    assert_eq!(lines[58]["type"], json!("summary"));
    assert_eq!(lines[0]["title"], doc["findings"][0]["title"]);
    assert!(ndjson.ends_with('\n'));
}

#[tokio::test]
async fn write_outputs_writes_the_three_files() {
    let review = bundled_review().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested").join("out");
    let written = write_outputs(&review, &out).unwrap();
    assert_eq!(written.len(), 3);
    for (path, name) in written.iter().zip(OUTPUT_FILES) {
        assert_eq!(path, &out.join(name));
    }
    assert_eq!(std::fs::read_to_string(out.join("review.md")).unwrap(), render_markdown(&review));
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("review.sarif")).unwrap()).unwrap();
    crate::sarif::validate(&sarif).unwrap();
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("review.json")).unwrap()).unwrap();
    assert_eq!(json, render_json(&review));

    // A file where the directory should be is a write error naming the path.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let error = write_outputs(&review, &blocked).unwrap_err();
    assert!(error.to_string().contains("blocked"), "{error}");
}
