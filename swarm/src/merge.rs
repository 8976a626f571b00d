//! Merging and de-duplicating findings across models and lenses.
//!
//! Two reported findings are the same problem when they are on the same file, their line
//! ranges are within [`LINE_WINDOW`] lines of each other, and either
//! - their titles are similar: the Dice coefficient of their normalised title tokens
//!   (lower-cased words, stop words dropped, plurals and `-ing`/`-ed` endings stemmed) is at
//!   least [`TITLE_SIMILARITY`], or
//! - they have the same category and their line ranges actually overlap.
//!
//! "Same problem" is closed transitively (union-find), so the result does not depend on the
//! order cells finished in. A merged finding keeps the highest severity; its title, detail,
//! category and suggestion come from the most severe report (ties: the first model, then the
//! first lens, in configuration order); its range spans every report. `agreement` is the
//! number of distinct models that reported it, a confidence signal: findings sort by severity,
//! then agreement, then the number of lenses, then location.
//!
//! Each merged finding gets a stable `id` (FNV-1a over file, category and the flagged line's
//! text when the diff shows it, else its number), used as the SARIF partial fingerprint.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::diff::DiffIndex;
use crate::finding::{Finding, Severity};

/// Findings whose ranges are this many lines apart or closer may merge.
pub const LINE_WINDOW: u32 = 3;

/// The title similarity (Dice coefficient over normalised tokens) at which findings merge.
pub const TITLE_SIMILARITY: f64 = 0.5;

/// A finding as one cell reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    /// The cell's model spec.
    pub model: String,
    /// The cell's lens.
    pub lens: String,
    /// The finding (sanitised, path resolved against the diff).
    pub finding: Finding,
}

/// Who reported a merged finding, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Model spec.
    pub model: String,
    /// Lens.
    pub lens: String,
    /// The severity this report gave.
    pub severity: Severity,
    /// The line this report gave.
    pub line: u32,
    /// The category this report gave.
    pub category: String,
    /// The title this report gave.
    pub title: String,
}

/// One problem, as reported by one or more cells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergedFinding {
    /// Stable fingerprint (16 hex digits, with `:N` appended to the N-th duplicate).
    pub id: String,
    /// File (as the diff names it).
    pub file: String,
    /// First line (1-based, new version).
    pub line: u32,
    /// Last line, when the finding spans several.
    pub end_line: Option<u32>,
    /// The highest severity reported.
    pub severity: Severity,
    /// Kebab-case category.
    pub category: String,
    /// Title.
    pub title: String,
    /// Explanation.
    pub detail: String,
    /// Suggested fix.
    pub suggestion: Option<String>,
    /// The text of the first flagged line, when the diff shows it.
    pub snippet: Option<String>,
    /// Distinct models that reported it, in configuration order.
    pub models: Vec<String>,
    /// Distinct lenses that reported it, in configuration order.
    pub lenses: Vec<String>,
    /// `models.len()`: how many models agree.
    pub agreement: usize,
    /// Every report merged into this finding.
    pub reports: Vec<Report>,
}

/// Merges `reported` (see the module docs). `models` and `lenses` give the configuration
/// order used for tie-breaks and listing; names not in them sort last.
pub fn merge(
    mut reported: Vec<Reported>,
    diff: &DiffIndex,
    models: &[String],
    lenses: &[String],
) -> Vec<MergedFinding> {
    let rank = |list: &[String], name: &str| list.iter().position(|n| n == name).unwrap_or(list.len());
    // Deterministic input order, whatever order the cells finished in.
    reported.sort_by(|a, b| {
        (rank(models, &a.model), rank(lenses, &a.lens), &a.finding.file, a.finding.line, &a.finding.title)
            .cmp(&(
                rank(models, &b.model),
                rank(lenses, &b.lens),
                &b.finding.file,
                b.finding.line,
                &b.finding.title,
            ))
    });
    let tokens: Vec<BTreeSet<String>> = reported.iter().map(|r| title_tokens(&r.finding.title)).collect();
    let mut sets = DisjointSets::new(reported.len());
    for i in 0..reported.len() {
        for j in i + 1..reported.len() {
            if same_problem(&reported[i].finding, &reported[j].finding, &tokens[i], &tokens[j]) {
                sets.union(i, j);
            }
        }
    }
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut group_of: HashMap<usize, usize> = HashMap::new();
    for i in 0..reported.len() {
        let root = sets.find(i);
        let g = *group_of.entry(root).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(i);
    }
    let mut merged: Vec<MergedFinding> = groups
        .iter()
        .filter_map(|members| combine(members.iter().map(|&i| &reported[i]).collect(), diff, models, lenses))
        .collect();
    merged.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.agreement.cmp(&a.agreement))
            .then(b.lenses.len().cmp(&a.lenses.len()))
            .then_with(|| a.file.cmp(&b.file))
            .then(a.line.cmp(&b.line))
            .then_with(|| a.title.cmp(&b.title))
    });
    assign_ids(&mut merged);
    merged
}

fn same_problem(a: &Finding, b: &Finding, ta: &BTreeSet<String>, tb: &BTreeSet<String>) -> bool {
    if a.file != b.file {
        return false;
    }
    let near = a.line <= b.last_line().saturating_add(LINE_WINDOW)
        && b.line <= a.last_line().saturating_add(LINE_WINDOW);
    if !near {
        return false;
    }
    let overlap = a.line <= b.last_line() && b.line <= a.last_line();
    dice(ta, tb) >= TITLE_SIMILARITY || (overlap && a.category == b.category)
}

fn combine(
    members: Vec<&Reported>,
    diff: &DiffIndex,
    models: &[String],
    lenses: &[String],
) -> Option<MergedFinding> {
    // Members are in (model, lens) configuration order and a later member replaces the lead
    // only when strictly more severe: the documented tie-break.
    let lead = members
        .iter()
        .copied()
        .reduce(|best, r| if r.finding.severity > best.finding.severity { r } else { best })?;
    let line = members.iter().map(|r| r.finding.line).min().unwrap_or(lead.finding.line);
    let last = members.iter().map(|r| r.finding.last_line()).max().unwrap_or(line);
    let ordered = |names: Vec<&str>, order: &[String]| -> Vec<String> {
        let mut out: Vec<String> = order.iter().filter(|n| names.contains(&n.as_str())).cloned().collect();
        for name in names {
            if !out.iter().any(|o| o == name) {
                out.push(name.to_owned());
            }
        }
        out
    };
    let found_by = ordered(members.iter().map(|r| r.model.as_str()).collect(), models);
    let found_in = ordered(members.iter().map(|r| r.lens.as_str()).collect(), lenses);
    let finding = &lead.finding;
    Some(MergedFinding {
        id: String::new(),
        file: finding.file.clone(),
        line,
        end_line: (last > line).then_some(last),
        severity: finding.severity,
        category: finding.category.clone(),
        title: finding.title.clone(),
        detail: finding.detail.clone(),
        suggestion: finding
            .suggestion
            .clone()
            .or_else(|| members.iter().find_map(|r| r.finding.suggestion.clone())),
        snippet: diff.line(&finding.file, line).map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()),
        agreement: found_by.len(),
        models: found_by,
        lenses: found_in,
        reports: members
            .iter()
            .map(|r| Report {
                model: r.model.clone(),
                lens: r.lens.clone(),
                severity: r.finding.severity,
                line: r.finding.line,
                category: r.finding.category.clone(),
                title: r.finding.title.clone(),
            })
            .collect(),
    })
}

fn assign_ids(merged: &mut [MergedFinding]) {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for finding in merged {
        let anchor = match &finding.snippet {
            Some(text) => text.split_whitespace().collect::<Vec<_>>().join(" "),
            None => format!("line:{}", finding.line),
        };
        let base = format!("{:016x}", fnv1a(&[&finding.file, &finding.category, &anchor]));
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        finding.id = if *n == 1 { base } else { format!("{base}:{n}") };
    }
}

/// FNV-1a, 64 bits, over the parts separated by NUL: stable across platforms and Rust
/// versions (unlike `std`'s `DefaultHasher`).
fn fnv1a(parts: &[&str]) -> u64 {
    let separated = parts.iter().enumerate().flat_map(|(i, part)| {
        let separator: &[u8] = if i == 0 { b"" } else { b"\0" };
        separator.iter().chain(part.as_bytes()).copied()
    });
    separated
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "could", "for", "from", "if", "in", "into", "is",
    "it", "its", "may", "of", "on", "or", "the", "this", "that", "to", "via", "when", "which", "with",
];

/// Normalised title tokens: lower-case alphanumeric words, stop words dropped, simple
/// stemming (`queries` -> `query`, `panics` -> `panic`, `formatted` -> `formatt`).
pub fn title_tokens(title: &str) -> BTreeSet<String> {
    title
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOP_WORDS.contains(&w.as_str()))
        .map(|w| stem(&w))
        .collect()
}

fn stem(word: &str) -> String {
    let n = word.chars().count();
    if n > 4 && word.ends_with("ies") {
        return format!("{}y", &word[..word.len() - 3]);
    }
    for suffix in ["ing", "ed"] {
        if n > suffix.len() + 3 && word.ends_with(suffix) {
            return word[..word.len() - suffix.len()].to_owned();
        }
    }
    if n > 3 && word.ends_with('s') && !word.ends_with("ss") {
        return word[..word.len() - 1].to_owned();
    }
    word.to_owned()
}

/// Dice coefficient: `2|A ∩ B| / (|A| + |B|)`, 0 when both are empty.
pub fn dice(a: &BTreeSet<String>, b: &BTreeSet<String>) -> f64 {
    let total = a.len() + b.len();
    if total == 0 {
        return 0.0;
    }
    let common = a.intersection(b).count();
    // Counts are far below 2^52: the conversions are exact.
    #[allow(clippy::cast_precision_loss)]
    let ratio = (2 * common) as f64 / total as f64;
    ratio
}

struct DisjointSets {
    parent: Vec<usize>,
}

impl DisjointSets {
    fn new(n: usize) -> Self {
        Self { parent: (0..n).collect() }
    }

    fn find(&mut self, mut i: usize) -> usize {
        while self.parent[i] != i {
            self.parent[i] = self.parent[self.parent[i]];
            i = self.parent[i];
        }
        i
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The smaller index stays the root: groups keep their first member's position.
            let (keep, join) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[join] = keep;
        }
    }
}

#[cfg(test)]
mod tests;
