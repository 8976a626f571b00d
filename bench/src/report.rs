//! The results: rows of figures grouped by benchmark, printed as a table and written as
//! `BENCHMARKS.md` (figures, method notes, machine, command, date, and the hand-written
//! analysis kept in `bench/ANALYSIS.md`).

use std::fmt::Write as _;
use std::path::Path;

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Target met.
    Met,
    /// Target missed.
    Missed,
    /// A figure without a target.
    Info,
    /// Not measured (a prerequisite is missing); the row says why.
    Unavailable,
}

impl Verdict {
    fn label(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::Missed => "MISSED",
            Self::Info => "-",
            Self::Unavailable => "n/a",
        }
    }

    /// `Met` when `ok`, else `Missed`.
    pub fn of(ok: bool) -> Self {
        if ok { Self::Met } else { Self::Missed }
    }
}

/// One figure.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is measured.
    pub figure: String,
    /// The measured value.
    pub value: String,
    /// The reference measured in the same run (or the ideal).
    pub reference: String,
    /// The target, as a ratio or bound.
    pub target: String,
    /// Met or not.
    pub verdict: Verdict,
    /// The row's own id when a section reports several (e.g. `S1`..`S3`); else the section's.
    pub id: Option<&'static str>,
}

impl Row {
    /// A row.
    pub fn new(
        figure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        target: impl Into<String>,
        verdict: Verdict,
    ) -> Self {
        Self {
            figure: figure.into(),
            value: value.into(),
            reference: reference.into(),
            target: target.into(),
            verdict,
            id: None,
        }
    }

    /// The row under its own id instead of its section's.
    pub fn labelled(mut self, id: &'static str) -> Self {
        self.id = Some(id);
        self
    }

    /// A figure without a target.
    pub fn info(figure: impl Into<String>, value: impl Into<String>, reference: impl Into<String>) -> Self {
        Self::new(figure, value, reference, "-", Verdict::Info)
    }
}

/// One benchmark's results.
#[derive(Debug, Clone)]
pub struct Section {
    /// `P1`...
    pub id: &'static str,
    /// One line: the workload.
    pub title: String,
    /// Figures.
    pub rows: Vec<Row>,
    /// Method notes and observations (Markdown paragraphs).
    pub notes: Vec<String>,
}

impl Section {
    /// An empty section.
    pub fn new(id: &'static str, title: impl Into<String>) -> Self {
        Self { id, title: title.into(), rows: Vec::new(), notes: Vec::new() }
    }
}

/// The table, for the terminal.
pub fn table(sections: &[Section]) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "id".into(),
        "figure".into(),
        "value".into(),
        "reference".into(),
        "target".into(),
        "status".into(),
    ]];
    for s in sections {
        for r in &s.rows {
            rows.push([
                r.id.unwrap_or(s.id).into(),
                r.figure.clone(),
                r.value.clone(),
                r.reference.clone(),
                r.target.clone(),
                r.verdict.label().into(),
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..6).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0).min(60)).collect();
    let mut out = String::new();
    for (n, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if n == 0 {
            let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
        }
    }
    out
}

/// What goes around the figures in `BENCHMARKS.md`.
pub struct Context<'a> {
    /// The exact command.
    pub command: &'a str,
    /// Date and time (UTC).
    pub date: &'a str,
    /// The commit measured and whether the working tree was dirty.
    pub source: &'a str,
    /// Machine description lines.
    pub machine: &'a [String],
    /// Load average when the run started.
    pub load: &'a str,
    /// Total wall time of the run.
    pub elapsed_s: f64,
}

/// Writes `BENCHMARKS.md`.
///
/// # Errors
/// The write error.
pub fn write_markdown(path: &Path, sections: &[Section], ctx: &Context<'_>) -> std::io::Result<()> {
    let mut md = String::new();
    md.push_str("# Benchmarks\n\n");
    md.push_str(
        "The harness's own cost, measured against a loopback mock OpenAI-compatible server (zero or \
         fixed think time) so that the harness, not a model, is what is measured. Every figure is \
         reported beside a reference measured in the same run. This file is written by the bench \
         (`bench/`); the analysis at the end is kept in `bench/ANALYSIS.md`.\n\n",
    );
    let _ = writeln!(md, "- Command: `{}`", ctx.command);
    let _ = writeln!(md, "- Date: {}", ctx.date);
    let _ = writeln!(md, "- {}", ctx.source);
    for line in ctx.machine {
        let _ = writeln!(md, "- {line}");
    }
    let _ = writeln!(md, "- Load average at start (1/5/15 min, from /proc/loadavg): {}", ctx.load);
    let _ = writeln!(md, "- Wall time of the whole run: {:.0} s\n", ctx.elapsed_s);
    md.push_str("## Figures\n\n| id | figure | value | reference (same run) | target | status |\n");
    md.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for s in sections {
        for r in &s.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                r.id.unwrap_or(s.id),
                cell(&r.figure),
                cell(&r.value),
                cell(&r.reference),
                cell(&r.target),
                r.verdict.label()
            );
        }
    }
    md.push_str("\n## Method\n");
    for s in sections {
        let _ = writeln!(md, "\n### {} — {}\n", s.id, s.title);
        for note in &s.notes {
            let _ = writeln!(md, "{note}\n");
        }
    }
    let analysis = Path::new(env!("CARGO_MANIFEST_DIR")).join("ANALYSIS.md");
    if let Ok(text) = std::fs::read_to_string(analysis) {
        md.push('\n');
        md.push_str(&text);
    }
    std::fs::write(path, md)
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}
