//! The findings schema every cell answers with: [`LensReport`] holding [`Finding`]s.
//!
//! The JSON schema sent to the models is [`LensReport::response_schema`] (schemars through
//! `executus_llm::schema_for`, strict mode). Doc comments on the fields below are part of that
//! schema, so they are written for the model; changing one changes every request, and the
//! bundled replay transcript must then be re-recorded (`record_fixture`).
//!
//! [`Finding::sanitised`] bounds what a (possibly hostile or confused) model returns: text
//! lengths, line numbers, the number of findings per cell.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most findings kept from one cell; the rest are dropped and counted.
pub const MAX_FINDINGS_PER_CELL: usize = 100;

const MAX_FILE: usize = 512;
const MAX_CATEGORY: usize = 64;
const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 4000;

/// What one lens of one model found in the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LensReport {
    /// Every problem found in the changed code; an empty list when there is none.
    pub findings: Vec<Finding>,
}

impl LensReport {
    /// The strict structured-output schema for this type.
    pub fn response_schema() -> executus_llm::ResponseSchema {
        executus_llm::schema_for::<LensReport>()
    }
}

/// One problem in the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    /// Path of the file as it appears after the change, e.g. `src/db.rs` (no `a/` or `b/`
    /// prefix).
    pub file: String,
    /// 1-based line number in the new version of the file where the problem is.
    pub line: u32,
    /// Last line of the problem when it spans several lines, else null.
    pub end_line: Option<u32>,
    /// How bad it is: `error` (a bug, vulnerability or crash to fix before merging),
    /// `warning` (likely a problem), `note` (worth a look).
    pub severity: Severity,
    /// Short kebab-case kind of problem, e.g. `sql-injection`, `off-by-one`, `panic`,
    /// `n-plus-one-query`, `hardcoded-secret`, `missing-test`.
    pub category: String,
    /// One-line summary of the problem.
    pub title: String,
    /// Why it is a problem and when it happens.
    pub detail: String,
    /// How to fix it, or null.
    pub suggestion: Option<String>,
}

/// How bad a finding is. Ordered: `Note < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Note,
    /// Likely a problem.
    Warning,
    /// Must be fixed before merging.
    Error,
}

impl Severity {
    /// `error`, `warning` or `note` (also SARIF's `level` values).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warning => "warning",
            Self::Note => "note",
        }
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Finding {
    /// This finding with bounded text (trimmed, truncated on a character boundary), a line of
    /// at least 1, an `end_line` only when it is after `line`, and a kebab-case category.
    #[must_use]
    pub fn sanitised(mut self) -> Self {
        self.file = truncate(self.file.trim().replace('\\', "/"), MAX_FILE);
        self.line = self.line.max(1);
        self.end_line = self.end_line.filter(|end| *end > self.line);
        let category = slug(&self.category);
        self.category =
            truncate(if category.is_empty() { "general".to_owned() } else { category }, MAX_CATEGORY);
        self.title = truncate(one_line(&self.title), MAX_TITLE);
        self.detail = truncate(self.detail.trim().to_owned(), MAX_TEXT);
        self.suggestion =
            self.suggestion.map(|s| truncate(s.trim().to_owned(), MAX_TEXT)).filter(|s| !s.is_empty());
        self
    }

    /// The last line the finding covers (`end_line`, else `line`).
    pub fn last_line(&self) -> u32 {
        self.end_line.unwrap_or(self.line)
    }
}

/// Lower-case kebab-case: ASCII letters and digits kept, every other run of characters
/// becomes one `-`, no leading or trailing `-`.
pub fn slug(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate(mut text: String, max_chars: usize) -> String {
    if let Some((index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(index);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding() -> Finding {
        Finding {
            file: " src\\db.rs ".into(),
            line: 0,
            end_line: Some(0),
            severity: Severity::Warning,
            category: "  SQL Injection!! ".into(),
            title: "multi\n  line\ttitle".into(),
            detail: "x".repeat(MAX_TEXT + 10),
            suggestion: Some("   ".into()),
        }
    }

    #[test]
    fn sanitising_bounds_every_field() {
        let f = finding().sanitised();
        assert_eq!(f.file, "src/db.rs");
        assert_eq!(f.line, 1);
        assert_eq!(f.end_line, None, "an end before or at the start is dropped");
        assert_eq!(f.category, "sql-injection");
        assert_eq!(f.title, "multi line title");
        assert_eq!(f.detail.chars().count(), MAX_TEXT + 1, "truncated, with an ellipsis");
        assert_eq!(f.suggestion, None, "a blank suggestion is no suggestion");
    }

    #[test]
    fn truncation_respects_character_boundaries() {
        assert_eq!(truncate("ééé".into(), 2), "éé…");
        assert_eq!(truncate("ab".into(), 2), "ab");
    }

    #[test]
    fn severities_order_and_serialise_lower_case() {
        assert!(Severity::Error > Severity::Warning && Severity::Warning > Severity::Note);
        assert_eq!(serde_json::to_string(&Severity::Warning).ok().as_deref(), Some("\"warning\""));
        assert_eq!(slug("--N+1 query--"), "n-1-query");
        assert_eq!(slug("!!!"), "");
    }

    #[test]
    fn the_schema_is_strict_and_names_every_field() {
        let schema = LensReport::response_schema();
        assert_eq!(schema.name, "LensReport");
        let text = schema.schema.to_string();
        for field in ["file", "line", "end_line", "severity", "category", "title", "detail", "suggestion"] {
            assert!(text.contains(&format!("\"{field}\"")), "{field} missing from {text}");
        }
        assert!(text.contains("\"warning\""), "severity enum missing: {text}");
    }
}
