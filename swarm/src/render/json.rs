//! JSON and NDJSON renderings of a review, for programs.
//!
//! JSON: one object — `format` (`pr-review-swarm/v1`), `summary` (counts, cells answered,
//! failed, cached and fresh, files, chunks, what was left out and why, tokens spent and saved,
//! the spend when priced, warnings), `findings`, `cells`; each
//! finding and cell is its serde form ([`MergedFinding`](crate::MergedFinding),
//! [`CellSummary`](crate::CellSummary)). NDJSON: one object per line, tagged by `type`:
//! every `finding`, then every `cell`, then one `summary`.

use serde_json::{Value, json};

use crate::review::Review;

/// The `format` tag of the JSON document.
pub const JSON_FORMAT: &str = "pr-review-swarm/v1";

fn summary(review: &Review) -> Value {
    json!({
        "findings": review.findings.len(),
        "counts": review.counts(),
        "models": review.models,
        "lenses": review.lenses,
        "models_answered": review.models_answered(),
        "cells": review.cells.len(),
        "cells_succeeded": review.succeeded_cells(),
        "cells_failed": review.failed_cells().count(),
        "all_failed": review.all_failed(),
        "cells_cached": review.cached_cells(),
        "cells_fresh": review.fresh_cells(),
        "files": review.files,
        "chunks": review.chunks,
        "left_out": review.left_out,
        "usage": review.usage,
        "saved_usage": review.saved,
        "spend": review.spend,
        "warnings": review.warnings,
        "elapsed_ms": u64::try_from(review.elapsed.as_millis()).unwrap_or(u64::MAX),
    })
}

/// Renders `review` as one JSON document (see the module docs).
pub fn render_json(review: &Review) -> Value {
    json!({
        "format": JSON_FORMAT,
        "summary": summary(review),
        "findings": review.findings,
        "cells": review.cells,
    })
}

/// Renders `review` as newline-delimited JSON (see the module docs); ends with a newline.
pub fn render_ndjson(review: &Review) -> String {
    let tagged = |kind: &str, value: Value| -> String {
        let mut object = serde_json::Map::new();
        object.insert("type".to_owned(), json!(kind));
        if let Value::Object(fields) = value {
            object.extend(fields);
        }
        Value::Object(object).to_string()
    };
    let mut out = String::new();
    for finding in &review.findings {
        out.push_str(&tagged("finding", serde_json::to_value(finding).unwrap_or(Value::Null)));
        out.push('\n');
    }
    for cell in &review.cells {
        out.push_str(&tagged("cell", serde_json::to_value(cell).unwrap_or(Value::Null)));
        out.push('\n');
    }
    out.push_str(&tagged("summary", summary(review)));
    out.push('\n');
    out
}
