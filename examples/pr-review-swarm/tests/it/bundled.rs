//! The bundled offline run: the replay answers every cell and the findings merge as the
//! hand-written answers were designed to (see data/answers.json).

use pr_review_swarm::fixture::{BUNDLED_MODELS, fixture_answers, record_fixture};
use pr_review_swarm::{CellStatus, LensKind, Severity};

use crate::common::bundled_review;

#[tokio::test]
async fn every_cell_answers_and_the_findings_merge_as_expected() {
    let review = bundled_review().await;
    // 2 models x 4 lenses x 5 files: each file of the sample diff is a cell of its own.
    assert_eq!(review.cells.len(), 40);
    assert_eq!((review.files, review.chunks), (5, 5));
    assert!(review.left_out.is_empty());
    assert!(review.cells.iter().all(|c| c.status == CellStatus::Succeeded), "{:#?}", review.cells);
    let raw: usize = review.cells.iter().map(|c| c.findings).sum();
    assert_eq!(raw, 29, "17 findings from model-a and 12 from model-b");
    assert_eq!(review.findings.len(), 18, "29 reports merge into 18 problems");
    let counts = review.counts();
    assert_eq!((counts.error, counts.warning, counts.note), (7, 7, 4));

    // Sorted by severity, then agreement, then lens count.
    for pair in review.findings.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            (a.severity, a.agreement, a.lenses.len()) >= (b.severity, b.agreement, b.lenses.len()),
            "{} before {}",
            a.title,
            b.title
        );
    }

    // The SQL injection: three reports (model-a's correctness warning and security error,
    // model-b's differently worded security error) become one error agreed by both models.
    let sql = &review.findings[0];
    assert_eq!(sql.category, "sql-injection");
    assert_eq!(sql.severity, Severity::Error);
    assert_eq!((sql.file.as_str(), sql.line, sql.end_line), ("src/handlers/search.rs", 30, Some(32)));
    assert_eq!(sql.agreement, 2);
    assert_eq!(sql.models, BUNDLED_MODELS);
    assert_eq!(sql.lenses, ["correctness", "security"]);
    assert_eq!(sql.reports.len(), 3);
    assert_eq!(sql.title, "SQL injection: the search term is formatted into the query string");
    assert_eq!(sql.snippet.as_deref(), Some("let sql = format!("));

    // The leaked AWS keys: model-b reported them twice in one cell, in different words; with
    // model-a's security and maintainability reports that is one finding.
    let secret = review.findings.iter().find(|f| f.category == "hardcoded-secret").unwrap();
    assert_eq!(secret.reports.len(), 4);
    assert_eq!(secret.severity, Severity::Error, "the highest of error and warning");
    assert_eq!((secret.line, secret.end_line), (4, Some(5)));
    assert_eq!(secret.lenses, ["security", "maintainability"]);
    assert_eq!(review.findings.iter().filter(|f| f.file == "tests/search_test.rs").count(), 3);

    // Found by one model only.
    let route = review.findings.iter().find(|f| f.file == "src/routes.rs").unwrap();
    assert_eq!((route.agreement, route.models.as_slice()), (1, ["replay/model-b".to_owned()].as_slice()));
    let in_memory = review.findings.iter().find(|f| f.category == "unbounded-query").unwrap();
    assert_eq!(in_memory.models, ["replay/model-a"]);

    // Same line, different problems: the off-by-one and the underflow at pagination.rs:13
    // stay apart.
    let at_13: Vec<&str> = review
        .findings
        .iter()
        .filter(|f| f.file == "src/pagination.rs" && f.line == 13)
        .map(|f| f.category.as_str())
        .collect();
    assert_eq!(at_13, ["off-by-one", "integer-underflow"]);

    let agreed = review.findings.iter().filter(|f| f.agreement == 2).count();
    assert_eq!(agreed, 7);
    assert_eq!(review.models_answered(), 2);
}

#[tokio::test]
async fn the_bundled_transcript_is_what_the_recorder_writes_today() {
    // Re-recording from data/answers.json through the real pipeline gives the bundled file
    // byte for byte: prompts, schema and diff have not drifted from the transcript, and the
    // requests are deterministic.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("replay.jsonl");
    let entries = record_fixture(&out).await.unwrap();
    assert_eq!(entries, BUNDLED_MODELS.len() * LensKind::ALL.len() * 5);
    let recorded = std::fs::read_to_string(&out).unwrap();
    assert!(
        recorded == pr_review_swarm::fixture::BUNDLED_TRANSCRIPT,
        "data/replay.jsonl is stale: run `cargo run -p pr-review-swarm --bin record_fixture`"
    );
    assert!(!out.with_extension("jsonl.partial").exists(), "the partial file is removed");
}

#[test]
fn the_hand_written_answers_cover_every_cell() {
    let answers = fixture_answers().unwrap();
    assert_eq!(answers.len(), 2);
    for model in BUNDLED_MODELS {
        let id = model.strip_prefix("replay/").unwrap();
        for lens in LensKind::ALL {
            assert!(answers[id].contains_key(lens.name()), "{id} x {lens}");
        }
    }
}
