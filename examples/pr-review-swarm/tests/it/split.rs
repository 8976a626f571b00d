//! Large diffs: a 3,000-line change split into many cells keeps every finding on its real
//! line; a second run after changing one hunk asks the models only about that hunk's cells
//! (counted at the scripted provider); a chunk that only moved reuses its cached findings at
//! the new position; the total budget leaves the least-changed files out and says so.

use std::collections::BTreeSet;
use std::sync::Arc;

use executus_llm::Request;
use executus_llm::fake::{FakeProvider, Outcome};
use pr_review_swarm::git::{Base, diff_from_git};
use pr_review_swarm::{
    CellStatus, FileReviewCache, LeftOutReason, LensKind, ReviewConfig, build_runtime, plan_review,
    render_markdown, run_review_cached,
};
use serde_json::json;

use crate::gitrepo::{Repo, numbered};

/// Finds the `PLANTED-*` markers on added lines of the diff in a request and reports each at
/// the new-file line it counts from the hunk headers — a reviewer that is exact about lines.
/// Written independently of the crate's own diff parser.
fn planted_findings(request: &Request) -> Outcome {
    let text: String = request.messages.iter().map(executus_llm::Message::text).collect();
    let mut file = String::new();
    let mut line = 0u32;
    let mut findings = Vec::new();
    for raw in text.lines() {
        if let Some(path) = raw.strip_prefix("+++ b/") {
            file = path.to_owned();
        } else if raw.starts_with("@@ ") {
            let plus = raw.split_whitespace().nth(2).unwrap();
            line = plus.trim_start_matches('+').split(',').next().unwrap().parse().unwrap();
        } else if let Some(added) = raw.strip_prefix('+') {
            if let Some(start) = added.find("PLANTED-") {
                let tag: String = added[start..].chars().take_while(|c| *c != '"').collect();
                findings.push(json!({
                    "file": file, "line": line, "end_line": null, "severity": "error",
                    "category": "planted", "title": format!("{tag} is here"), "detail": "planted",
                    "suggestion": null
                }));
            }
            line += 1;
        } else if raw.starts_with(' ') {
            line += 1;
        }
    }
    Outcome::json(&json!({ "findings": findings }))
}

fn config(max_cell_tokens: usize) -> ReviewConfig {
    ReviewConfig {
        models: vec!["exact/a".into(), "exact/b".into()],
        lenses: vec![LensKind::Correctness, LensKind::Security],
        max_cell_tokens,
        ..ReviewConfig::default()
    }
}

fn exact_runtime(config: &ReviewConfig) -> (executus::Runtime, FakeProvider) {
    let fake = FakeProvider::new("exact");
    fake.fallback(Outcome::dynamic(planted_findings));
    let registry = executus_llm::Registry::new();
    registry.add_provider(Arc::new(fake.clone())).unwrap();
    (build_runtime(config, registry).unwrap(), fake)
}

fn head_diff(repo: &Repo) -> String {
    let base = Base { reference: "main".into(), source: "given" };
    diff_from_git(repo.path(), &base, 64 << 20).unwrap().diff
}

#[tokio::test(flavor = "multi_thread")]
async fn a_3000_line_diff_split_in_many_cells_keeps_every_finding_on_its_line() {
    let repo = Repo::new();
    let old_lib = numbered(1200, "lib", &[]);
    repo.write("src/lib.rs", &old_lib);
    repo.write("README.md", "readme\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    // A new 3,000-line file with findings planted at known lines...
    // At least 4 lines apart: closer findings with similar titles merge, by design.
    let big_plants = [1, 7, 512, 1499, 1504, 2222, 2996, 3000];
    repo.write("src/generated_by_hand.rs", numbered(3000, "big", &big_plants));
    // ...and edits spread through an existing file: every 100th line changes, some planted.
    let lib_plants: Vec<usize> = (1..=12).map(|k| k * 100).filter(|n| n % 300 == 0).collect();
    let mut lib: Vec<String> = old_lib.lines().map(str::to_owned).collect();
    for k in 1..=12 {
        let n = k * 100;
        lib[n - 1] = if lib_plants.contains(&n) {
            format!("    let planted = unsafe_call(\"PLANTED-lib-{n}\");")
        } else {
            format!("    let lib_{n} = compute({n} + 1); // changed")
        };
    }
    repo.write("src/lib.rs", lib.join("\n") + "\n");
    repo.commit("feature");
    let diff = head_diff(&repo);
    assert!(diff.lines().count() > 3000, "{}", diff.lines().count());

    let config = config(1500);
    let (runtime, fake) = exact_runtime(&config);
    let review =
        run_review_cached(&runtime, &config, &diff, &pr_review_swarm::NoCache, |_| {}).await.unwrap();
    assert!(review.cells.iter().all(|c| c.status == CellStatus::Succeeded), "{:?}", review.cells);
    assert!(review.chunks > 20, "the big file is split: {} chunks", review.chunks);
    assert_eq!(fake.calls(), review.chunks * 4, "one request per model x lens x chunk");

    let found: BTreeSet<(String, u32)> = review.findings.iter().map(|f| (f.file.clone(), f.line)).collect();
    let mut expected: BTreeSet<(String, u32)> = big_plants
        .iter()
        .map(|n| ("src/generated_by_hand.rs".to_owned(), u32::try_from(*n).unwrap()))
        .collect();
    expected.extend(lib_plants.iter().map(|n| ("src/lib.rs".to_owned(), u32::try_from(*n).unwrap())));
    assert_eq!(found, expected, "every planted finding is on its real line, and nothing else is found");
    assert!(review.findings.iter().all(|f| f.agreement == 2), "both models agree on each");
    // The flagged line is the planted one: the snippet comes from the whole diff by line.
    for f in &review.findings {
        assert!(f.snippet.as_deref().unwrap().contains(&format!("-{}\"", f.line)), "{f:?}");
    }
    // No request carried more diff than a cell may hold.
    let overhead = pr_review_swarm::config::prompt_overhead_tokens();
    for recorded in fake.requests() {
        let text: String = recorded.request.messages.iter().map(executus_llm::Message::text).collect();
        let tokens = pr_review_swarm::plan::estimate_tokens(&text);
        assert!(tokens <= 1500 + overhead, "{tokens} tokens sent");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_run_after_one_hunk_changed_asks_only_about_that_hunk() {
    let repo = Repo::new();
    let old: Vec<String> = numbered(900, "m", &[]).lines().map(str::to_owned).collect();
    repo.write("src/many.rs", old.join("\n") + "\n");
    repo.write("src/small.rs", numbered(20, "s", &[]));
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    // Nine hunks far apart, each a few changed lines; a planted finding in the last one.
    let edit = |lines: &mut Vec<String>, at: usize, text: &str| {
        for j in 0..6 {
            lines[at + j] = format!("    let m_{} = {text}({j}); // edited", at + j + 1);
        }
    };
    let mut new = old.clone();
    for k in 0..9 {
        edit(&mut new, 50 + k * 100, "first");
    }
    new[851] = "    let planted = unsafe_call(\"PLANTED-m-852\");".into();
    repo.write("src/many.rs", new.join("\n") + "\n");
    repo.write("src/small.rs", numbered(20, "s", &[5]));
    repo.commit("feature");

    // A cell budget that holds one hunk, not two: every hunk is a chunk of its own.
    let config = config(300);
    let cache_dir = tempfile::tempdir().unwrap();
    let diff = head_diff(&repo);
    let plan = plan_review(&diff, &config.split_options());
    assert_eq!(plan.chunks.len(), 10, "nine hunks of many.rs and small.rs");

    let (runtime, fake) = exact_runtime(&config);
    let cache = FileReviewCache::open(cache_dir.path()).unwrap();
    let first = run_review_cached(&runtime, &config, &diff, &cache, |_| {}).await.unwrap();
    assert_eq!(fake.calls(), 40, "2 models x 2 lenses x 10 chunks");
    assert_eq!(first.cached_cells(), 0);
    drop(cache);

    // The same diff again, with the cache restored from its folder: nothing is asked.
    let cache = FileReviewCache::open(cache_dir.path()).unwrap();
    fake.clear_requests();
    let again = run_review_cached(&runtime, &config, &diff, &cache, |_| {}).await.unwrap();
    assert_eq!(fake.calls(), 0, "every cell came from the cache");
    assert_eq!(again.cached_cells(), 40);
    assert_eq!(again.findings, first.findings);
    assert_eq!(again.saved.total(), first.usage.total(), "the cache saved what the first run spent");
    assert!(
        render_markdown(&again).contains("Cells: 0 asked, 40 from the cache."),
        "{}",
        render_markdown(&again)
    );
    drop(cache);

    // One hunk changed (the fifth, same size): only its chunk is asked again, 4 requests.
    edit(&mut new, 450, "fixed");
    repo.write("src/many.rs", new.join("\n") + "\n");
    repo.commit("fix");
    let diff = head_diff(&repo);
    let cache = FileReviewCache::open(cache_dir.path()).unwrap();
    fake.clear_requests();
    let third = run_review_cached(&runtime, &config, &diff, &cache, |_| {}).await.unwrap();
    assert_eq!(fake.calls(), 4, "2 models x 2 lenses x the one changed chunk");
    for recorded in fake.requests() {
        let text: String = recorded.request.messages.iter().map(executus_llm::Message::text).collect();
        assert!(text.contains("fixed("), "only the changed hunk is sent: {text}");
    }
    assert_eq!(third.cached_cells(), 36);
    assert_eq!(third.findings.len(), 2, "the planted findings, from the cache");
    drop(cache);

    // A line added at the top of the file moves every later hunk down by one: their chunks
    // are unchanged, so they come from the cache, their findings moved to the new lines.
    new.insert(10, "    // a new comment line".into());
    repo.write("src/many.rs", new.join("\n") + "\n");
    repo.commit("shift");
    let diff = head_diff(&repo);
    let cache = FileReviewCache::open(cache_dir.path()).unwrap();
    fake.clear_requests();
    let shifted = run_review_cached(&runtime, &config, &diff, &cache, |_| {}).await.unwrap();
    assert_eq!(fake.calls(), 4, "only the new hunk at the top is asked");
    let planted = shifted.findings.iter().find(|f| f.file == "src/many.rs").unwrap();
    assert_eq!(planted.line, 853, "the cached finding moved with its chunk");
    assert_eq!(shifted.cached_cells(), 40);
}

#[tokio::test(flavor = "multi_thread")]
async fn over_the_total_budget_the_most_changed_files_are_reviewed_and_the_rest_listed() {
    let repo = Repo::new();
    repo.write("a.rs", numbered(10, "a", &[]));
    repo.write("b.rs", numbered(200, "b", &[]));
    repo.write("c.rs", numbered(10, "c", &[]));
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("a.rs", numbered(10, "a", &[2]));
    repo.write("b.rs", numbered(200, "b", &(1..=200).step_by(2).collect::<Vec<_>>()));
    repo.write("c.rs", numbered(10, "c", &[3, 4]));
    repo.commit("feature");
    let diff = head_diff(&repo);
    let all = plan_review(&diff, &config(12_000).split_options());
    let tokens = |f: &str| all.chunks.iter().find(|c| c.file == f).unwrap().tokens;
    let config = ReviewConfig { max_total_tokens: Some(tokens("b.rs") + tokens("c.rs")), ..config(12_000) };
    let (runtime, fake) = exact_runtime(&config);
    let review =
        run_review_cached(&runtime, &config, &diff, &pr_review_swarm::NoCache, |_| {}).await.unwrap();
    let reviewed: BTreeSet<&str> = review.cells.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(reviewed, BTreeSet::from(["b.rs", "c.rs"]));
    assert_eq!(fake.calls(), 8);
    assert_eq!(review.left_out.len(), 1);
    assert_eq!(review.left_out[0].file, "a.rs");
    assert!(matches!(review.left_out[0].reason, LeftOutReason::OverTotalBudget { .. }));
    let markdown = render_markdown(&review);
    assert!(markdown.contains("## Not reviewed"), "{markdown}");
    assert!(markdown.contains("`a.rs`: over the review's token budget"), "{markdown}");
    // SARIF says it too, as a note-level notification, and stays valid SARIF 2.1.0.
    let sarif = pr_review_swarm::render_sarif(&review);
    crate::sarif::validate(&sarif).unwrap();
    let notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["level"], "note");
    assert!(
        notes[0]["message"]["text"]
            .as_str()
            .unwrap()
            .starts_with("not reviewed: a.rs: over the review's token budget")
    );
}
