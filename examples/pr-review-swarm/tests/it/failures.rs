//! Failing models fail only their cells, and every renderer says so.

use std::sync::Arc;
use std::time::Duration;

use executus_llm::fake::{FakeProvider, Outcome};
use pr_review_swarm::fixture::SAMPLE_DIFF;
use pr_review_swarm::{
    CellStatus, ReviewConfig, ReviewError, Severity, render_json, render_markdown, render_sarif, run_review,
};
use serde_json::json;

use crate::common::bundled_runtime;

fn config(models: &[&str]) -> ReviewConfig {
    ReviewConfig { models: models.iter().map(|m| (*m).to_owned()).collect(), ..ReviewConfig::default() }
}

#[tokio::test]
async fn a_failing_model_fails_only_its_cells_and_the_report_says_so() {
    let config = config(&["replay/model-a", "broken/model"]);
    let (runtime, _, registry) = bundled_runtime(&config);
    let broken = FakeProvider::new("broken");
    broken.fallback(Outcome::permanent("upstream says no"));
    registry.add_provider(Arc::new(broken)).unwrap();

    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    assert_eq!(review.cells.len(), 40, "2 models x 4 lenses x 5 files");
    for cell in &review.cells {
        if cell.model == "broken/model" {
            assert_eq!(cell.status, CellStatus::Failed, "{cell:?}");
            assert!(cell.error.as_deref().unwrap().contains("upstream says no"), "{cell:?}");
        } else {
            assert_eq!(cell.status, CellStatus::Succeeded, "{cell:?}");
        }
    }
    assert!(!review.all_failed());
    assert_eq!(review.models_answered(), 1);
    assert_eq!(review.findings.len(), 14, "model-a's 17 reports, merged");
    assert!(review.findings.iter().all(|f| f.models == ["replay/model-a"]));

    let markdown = render_markdown(&review);
    assert!(markdown.contains("(20 of 40 cells answered)"), "{markdown}");
    assert!(markdown.contains("> **20 cells failed**"), "{markdown}");
    assert!(markdown.contains("### Failed cells"), "{markdown}");
    assert_eq!(markdown.matches("- `broken/model` × ").count(), 20, "{markdown}");
    assert!(markdown.contains("- `broken/model` × security × `src/pagination.rs`: "), "{markdown}");
    assert!(
        markdown.contains("| `broken/model` | **failed** | **failed** | **failed** | **failed** |"),
        "{markdown}"
    );
    assert!(markdown.contains("1/1 model |"), "agreement counts the models that answered: {markdown}");

    let json = render_json(&review);
    assert_eq!(json["summary"]["cells_failed"], json!(20));
    assert_eq!(json["summary"]["all_failed"], json!(false));
    let sarif = render_sarif(&review);
    let invocation = &sarif["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], json!(true));
    assert_eq!(invocation["toolExecutionNotifications"].as_array().unwrap().len(), 20);
    crate::sarif::validate(&sarif).unwrap();
}

#[tokio::test]
async fn when_every_cell_fails_the_review_still_renders_and_says_so() {
    // A model the transcript never recorded: the replay refuses every request.
    let config = config(&["replay/never-recorded"]);
    let (runtime, _, _) = bundled_runtime(&config);
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    assert!(review.all_failed());
    assert!(review.findings.is_empty());
    assert!(review.cells.iter().all(|c| c.error.as_deref().unwrap().contains("no recorded call for model")));
    let markdown = render_markdown(&review);
    assert!(markdown.contains("Every cell failed"), "{markdown}");
    assert!(markdown.contains("No findings."), "{markdown}");
    let sarif = render_sarif(&review);
    assert_eq!(sarif["runs"][0]["invocations"][0]["executionSuccessful"], json!(false));
    crate::sarif::validate(&sarif).unwrap();
}

#[tokio::test]
async fn answers_that_are_not_reports_fail_their_cell() {
    let config = ReviewConfig {
        lenses: vec![pr_review_swarm::LensKind::Security],
        ..config(&["odd/prose", "odd/wrong-shape", "odd/fenced"])
    };
    let (runtime, _, registry) = bundled_runtime(&config);
    let odd = FakeProvider::new("odd");
    odd.fallback_for("prose", Outcome::text("Looks good to me!"));
    odd.fallback_for("wrong-shape", Outcome::json(&json!({ "issues": [] })));
    let fenced = json!({ "findings": [{
        "file": "b/src/routes.rs", "line": 11, "end_line": null, "severity": "note",
        "category": "Routing Order", "title": "Route order", "detail": "", "suggestion": null
    }]});
    odd.fallback_for("fenced", Outcome::text(format!("```json\n{fenced}\n```")));
    registry.add_provider(Arc::new(odd)).unwrap();

    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    let of = |model: &'static str| review.cells.iter().filter(move |c| c.model == model);
    assert!(of("odd/prose").all(|c| c.status == CellStatus::Failed));
    assert!(of("odd/wrong-shape").all(|c| c.status == CellStatus::Failed));
    assert!(of("odd/fenced").all(|c| c.status == CellStatus::Succeeded));
    let prose = of("odd/prose").next().unwrap();
    assert!(prose.error.as_deref().unwrap().contains("not valid JSON"), "{prose:?}");
    let shape = of("odd/wrong-shape").next().unwrap();
    assert!(shape.error.as_deref().unwrap().contains("not a valid findings report"), "{shape:?}");
    // The fenced answer names src/routes.rs: the routes cell keeps it; the cells shown other
    // files drop it as a finding about code they did not see.
    assert_eq!(review.findings.len(), 1);
    assert_eq!(of("odd/fenced").map(|c| c.elsewhere).sum::<usize>(), 4);
    let finding = &review.findings[0];
    assert_eq!(finding.file, "src/routes.rs", "the `b/` prefix is resolved against the diff");
    assert_eq!(finding.category, "routing-order");
    assert_eq!(finding.severity, Severity::Note);
}

#[tokio::test]
async fn a_flood_of_findings_is_capped_per_cell() {
    let config =
        ReviewConfig { lenses: vec![pr_review_swarm::LensKind::Performance], ..config(&["flood/m"]) };
    let (runtime, _, registry) = bundled_runtime(&config);
    let findings: Vec<_> = (0..150)
        .map(|i| {
            json!({ "file": "src/pagination.rs", "line": i * 10, "end_line": null, "severity": "note",
                    "category": format!("c{i}"), "title": format!("distinct problem {i}"),
                    "detail": "", "suggestion": null })
        })
        .collect();
    let flood = FakeProvider::new("flood");
    flood.fallback(Outcome::json(&json!({ "findings": findings })));
    registry.add_provider(Arc::new(flood)).unwrap();
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    let cell = review.cells.iter().find(|c| c.file == "src/pagination.rs").unwrap();
    assert_eq!((cell.findings, cell.dropped), (100, 50));
    assert_eq!(review.findings.len(), 100);
    assert!(review.findings.iter().all(|f| f.line >= 1), "line 0 becomes 1");
    assert!(render_markdown(&review).contains("findings beyond the per-cell limit were dropped"));
}

#[tokio::test(start_paused = true)]
async fn cells_past_the_deadline_time_out_and_the_rest_are_kept() {
    // 40 cells through a lane of 8: the hanging model holds its share (4) until the
    // deadline, never the other model's.
    let config =
        ReviewConfig { deadline: Some(Duration::from_secs(30)), ..config(&["replay/model-a", "slow/m"]) };
    let (runtime, _, registry) = bundled_runtime(&config);
    let slow = FakeProvider::new("slow");
    slow.fallback(Outcome::hang());
    registry.add_provider(Arc::new(slow)).unwrap();
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    for cell in &review.cells {
        let expected = if cell.model == "slow/m" { CellStatus::TimedOut } else { CellStatus::Succeeded };
        assert_eq!(cell.status, expected, "{cell:?}");
    }
    assert_eq!(review.findings.len(), 14, "model-a's findings are kept");
    assert!(render_markdown(&review).contains("**timed out**"));
}

#[tokio::test]
async fn configuration_problems_are_errors_before_any_cell_runs() {
    let config = config(&["nowhere/model"]);
    let (runtime, _, _) = bundled_runtime(&config);
    let error = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap_err();
    assert!(matches!(error, ReviewError::UnknownModel { .. }), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("PR_REVIEW_MODELS: model \"nowhere/model\""), "{message}");
    assert!(message.contains("replay"), "the error lists the known providers: {message}");
    assert!(error.is_config());

    let ok = ReviewConfig::default();
    let (runtime, _, _) = bundled_runtime(&ok);
    for diff in ["", "just some text\nwithout a file header\n"] {
        let error = run_review(&runtime, &ok, diff).await.unwrap_err();
        assert!(matches!(error, ReviewError::EmptyDiff), "{error}");
    }
    let huge = format!("+++ b/x\n{}", "x".repeat(pr_review_swarm::review::MAX_DIFF_BYTES));
    let error = run_review(&runtime, &ok, &huge).await.unwrap_err();
    assert!(matches!(error, ReviewError::DiffTooLarge { .. }), "{error}");
}

#[tokio::test]
async fn run_mode_cells_work_too() {
    let mut config = config(&["scripted/m"]);
    config.mode = executus::fanout::CellMode::Run;
    config.lenses = vec![pr_review_swarm::LensKind::Correctness];
    let (runtime, _, registry) = bundled_runtime(&config);
    let scripted = FakeProvider::new("scripted");
    scripted.fallback(Outcome::json(&json!({ "findings": [{
        "file": "src/pagination.rs", "line": 10, "end_line": null, "severity": "error",
        "category": "off-by-one", "title": "Skips the first page", "detail": "d", "suggestion": null
    }]})));
    registry.add_provider(Arc::new(scripted)).unwrap();
    let review = run_review(&runtime, &config, SAMPLE_DIFF).await.unwrap();
    assert_eq!(review.cells[0].status, CellStatus::Succeeded, "{:?}", review.cells[0]);
    assert_eq!(review.findings.len(), 1);
    assert_eq!(review.findings[0].snippet.as_deref(), Some("let start = page * per_page;"));
}
