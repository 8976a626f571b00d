//! The embedded defaults that make the review run offline: a sample diff with real defects,
//! and a replay transcript answering for two models x four lenses over it.
//!
//! **The bundled answers were written by hand for the sample diff, not produced by a live
//! model.** They live in `data/answers.json` (two fictional models, `model-a` and
//! `model-b`, that find overlapping but different sets of problems; one misses some, and
//! one reports the same problem twice in different words, so de-duplication has work to
//! do). [`record_fixture`] turns them into `data/replay.jsonl` by running the real review
//! pipeline against a scripted [`FakeProvider`] wrapped in the transcript recorder, so the
//! recorded requests are exactly the ones the review sends: each file of the diff is a cell
//! of its own, answered with the hand-written findings about that file. Regenerate after changing a
//! prompt, the schema or the sample diff:
//!
//! ```text
//! cargo run -p pr-review-swarm --bin record_fixture
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use executus_llm::Registry;
use executus_llm::fake::{
    FakeProvider, Outcome, ReplayOptions, ReplayProvider, TranscriptEntry, TranscriptWriter,
};

use crate::config::{ReplaySource, ReviewConfig};
use crate::error::ReviewError;
use crate::finding::LensReport;
use crate::lens::LensKind;
use crate::models::{REPLAY_PROVIDER, build_runtime, record_all};
use crate::review::run_review;

/// The bundled sample diff (a Rust change with an SQL injection, off-by-one errors, panics on
/// user input, an N+1 query and credentials in a test, among others).
pub const SAMPLE_DIFF: &str = include_str!("../data/sample.diff");

/// The bundled replay transcript (see the module docs).
pub const BUNDLED_TRANSCRIPT: &str = include_str!("../data/replay.jsonl");

/// The hand-written answers the bundled transcript was recorded from.
pub const FIXTURE_ANSWERS: &str = include_str!("../data/answers.json");

/// The models the bundled transcript answers for.
pub const BUNDLED_MODELS: [&str; 2] = ["replay/model-a", "replay/model-b"];

/// Hand-written answers: model id -> lens name -> report.
pub type FixtureAnswers = BTreeMap<String, BTreeMap<String, LensReport>>;

/// The bundled transcript as a replay provider named `replay`.
///
/// # Errors
/// [`ReviewError::Transcript`] if the bundled transcript is malformed (a build that ships a
/// broken fixture; the test suite catches it).
pub fn bundled_replay() -> Result<ReplayProvider, ReviewError> {
    let entries = parse_transcript(BUNDLED_TRANSCRIPT, Path::new("data/replay.jsonl (bundled)"))
        .map_err(|source| ReviewError::Transcript { var: "bundled transcript".into(), source })?;
    Ok(ReplayProvider::from_entries(entries, ReplayOptions::new().name(REPLAY_PROVIDER)))
}

/// Parses transcript JSON lines (blank lines ignored); `origin` names it in errors.
///
/// # Errors
/// [`TranscriptError::Malformed`](executus_llm::fake::TranscriptError::Malformed) naming the
/// line.
pub fn parse_transcript(
    text: &str,
    origin: &Path,
) -> Result<Vec<TranscriptEntry>, executus_llm::fake::TranscriptError> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry: TranscriptEntry =
            serde_json::from_str(line).map_err(|e| executus_llm::fake::TranscriptError::Malformed {
                path: origin.to_owned(),
                line: i + 1,
                reason: e.to_string(),
            })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// The parsed hand-written answers.
///
/// # Errors
/// [`ReviewError::Fixture`] if `data/answers.json` does not parse.
pub fn fixture_answers() -> Result<FixtureAnswers, ReviewError> {
    serde_json::from_str(FIXTURE_ANSWERS)
        .map_err(|e| ReviewError::Fixture(format!("data/answers.json does not parse: {e}")))
}

/// Records the bundled transcript from [`FIXTURE_ANSWERS`] into `out`: runs the review of
/// [`SAMPLE_DIFF`] with the default configuration against a scripted provider named
/// `replay` whose models answer each lens's request with the hand-written report, through
/// the transcript recorder. Entries are written sorted (model, then lens) so the file is
/// byte-for-byte reproducible. Returns the number of entries.
///
/// # Errors
/// [`ReviewError::Fixture`] when an answer is missing or a cell fails;
/// [`ReviewError::Write`] or [`ReviewError::Transcript`] for file problems.
pub async fn record_fixture(out: &Path) -> Result<usize, ReviewError> {
    let answers = fixture_answers()?;
    let config = ReviewConfig { replay: ReplaySource::Off, ..ReviewConfig::default() };
    let fake = FakeProvider::new(REPLAY_PROVIDER);
    for spec in &config.models {
        let id = spec.strip_prefix("replay/").unwrap_or(spec);
        let mut by_prompt: Vec<(String, LensReport)> = Vec::new();
        for lens in &config.lenses {
            let report = answers
                .get(id)
                .and_then(|lenses| lenses.get(lens.name()))
                .ok_or_else(|| ReviewError::Fixture(format!("data/answers.json has no {id}.{lens}")))?;
            by_prompt.push((lens.system_prompt(), report.clone()));
        }
        fake.fallback_for(
            id,
            Outcome::dynamic(move |request| {
                let answer = by_prompt.iter().find(|(prompt, _)| request.system.as_deref() == Some(prompt));
                // Each cell reviews one file: it answers with the hand-written findings about
                // that file.
                let text: String = request.messages.iter().map(executus_llm::Message::text).collect();
                let index = crate::diff::DiffIndex::parse(&text);
                let file = index.files().next().map(str::to_owned);
                match (answer, file) {
                    (Some((_, report)), Some(file)) => {
                        let findings = report.findings.iter().filter(|f| f.file == file).cloned().collect();
                        match serde_json::to_string(&LensReport { findings }) {
                            Ok(text) => Outcome::text(text),
                            Err(e) => Outcome::permanent(format!("fixture: {e}")),
                        }
                    }
                    _ => Outcome::permanent("fixture: no answer for this system prompt and file"),
                }
            }),
        );
    }
    let partial = out.with_extension("jsonl.partial");
    let writer = TranscriptWriter::create(&partial)
        .map_err(|source| ReviewError::Transcript { var: "record_fixture".into(), source })?;
    let registry = Registry::new();
    registry
        .add_provider(Arc::new(fake))
        .map_err(|source| ReviewError::Models { var: "record_fixture".into(), source })?;
    record_all(&registry, &writer)?;
    let runtime = build_runtime(&config, registry)?;
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await?;
    if let Some(cell) = review.cells.iter().find(|c| c.error.is_some()) {
        return Err(ReviewError::Fixture(format!(
            "cell {} x {} failed while recording: {}",
            cell.model,
            cell.lens,
            cell.error.as_deref().unwrap_or_default()
        )));
    }
    if writer.failed_writes() > 0 {
        return Err(ReviewError::Fixture(format!("{} transcript writes failed", writer.failed_writes())));
    }
    drop(writer);
    let text = std::fs::read_to_string(&partial)
        .map_err(|source| ReviewError::Write { path: partial.clone(), source })?;
    let mut entries = parse_transcript(&text, &partial)
        .map_err(|source| ReviewError::Transcript { var: "record_fixture".into(), source })?;
    let lens_rank = |entry: &TranscriptEntry| {
        LensKind::ALL.iter().position(|l| entry.request.system.as_deref() == Some(l.system_prompt().as_str()))
    };
    let file = |entry: &TranscriptEntry| {
        let text: String = entry.request.messages.iter().map(executus_llm::Message::text).collect();
        crate::diff::DiffIndex::parse(&text).files().next().map(str::to_owned)
    };
    entries.sort_by_key(|e| (e.model.clone(), lens_rank(e), file(e)));
    let mut sorted = String::new();
    for entry in &entries {
        let line = serde_json::to_string(entry).map_err(|e| ReviewError::Fixture(e.to_string()))?;
        sorted.push_str(&line);
        sorted.push('\n');
    }
    std::fs::write(out, sorted).map_err(|source| ReviewError::Write { path: out.to_owned(), source })?;
    std::fs::remove_file(&partial).map_err(|source| ReviewError::Write { path: partial, source })?;
    Ok(entries.len())
}
