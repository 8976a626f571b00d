use super::*;
use crate::glob::compile_all;

fn file_diff(path: &str, new_start: u32, added: &[&str]) -> String {
    let mut out = format!(
        "diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -{},1 +{new_start},{} @@\n ctx\n",
        new_start,
        added.len() + 1
    );
    for line in added {
        out.push('+');
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn options(cell: usize) -> SplitOptions {
    SplitOptions { max_cell_tokens: cell, max_total_tokens: None, exclude: compile_all(&["*.lock"]).unwrap() }
}

#[test]
fn skipped_files_are_listed_with_their_reason() {
    let diff = format!(
        "{}{}diff --git a/img.png b/img.png\nBinary files a/img.png and b/img.png differ\n\
         diff --git a/gone.rs b/gone.rs\ndeleted file mode 100644\n--- a/gone.rs\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n\
         diff --git a/a.rs b/b.rs\nsimilarity index 100%\nrename from a.rs\nrename to b.rs\n",
        file_diff("src/x.rs", 1, &["let a = 1;"]),
        file_diff("deps.lock", 1, &["v = 2"]),
    );
    let plan = plan_review(&diff, &options(1000));
    assert_eq!(plan.files, 5);
    assert_eq!(plan.chunks.len(), 1);
    assert_eq!(plan.chunks[0].file, "src/x.rs");
    let reasons: Vec<(&str, &LeftOutReason)> =
        plan.left_out.iter().map(|l| (l.file.as_str(), &l.reason)).collect();
    assert_eq!(
        reasons,
        [
            ("b.rs", &LeftOutReason::NoContentChange),
            ("deps.lock", &LeftOutReason::Excluded { pattern: "*.lock".into() }),
            ("gone.rs", &LeftOutReason::Deleted),
            ("img.png", &LeftOutReason::Binary),
        ]
    );
}

#[test]
fn large_files_split_under_the_cell_budget_with_real_line_numbers() {
    let lines: Vec<String> = (0..400).map(|i| format!("let value_{i} = compute({i});")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let diff = file_diff("src/big.rs", 50, &refs);
    let plan = plan_review(&diff, &options(1000));
    assert!(plan.chunks.len() > 3, "{}", plan.chunks.len());
    assert!(plan.left_out.is_empty());
    let mut expected = 50;
    for (i, chunk) in plan.chunks.iter().enumerate() {
        assert!(chunk.tokens <= 1000, "{}", chunk.tokens);
        assert_eq!((chunk.part, chunk.parts), (i + 1, plan.chunks.len()));
        assert_eq!(chunk.first_line, expected, "{}", chunk.text);
        // The chunk parses back, and its numbers put every added line where it really is.
        let parsed = parse_patch(&chunk.text);
        for hunk in &parsed[0].hunks {
            // Only context and added lines here: each is one new line.
            for (line, l) in (hunk.new_start..).zip(&hunk.lines) {
                if let Some(text) = l.strip_prefix('+') {
                    let n: u32 =
                        text.trim_start_matches("let value_").split(' ').next().unwrap().parse().unwrap();
                    assert_eq!(line, 50 + 1 + n, "{l}");
                }
            }
        }
        expected = chunk.last_line + 1;
    }
    assert_eq!(expected, 50 + 401);
}

#[test]
fn the_total_budget_takes_the_most_changed_files_first() {
    let big: Vec<String> = (0..30).map(|i| format!("big line {i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let diff = format!(
        "{}{}{}",
        file_diff("a_small.rs", 1, &["one"]),
        file_diff("b_big.rs", 1, &big),
        file_diff("c_mid.rs", 1, &["one", "two", "three"])
    );
    let all = plan_review(&diff, &options(10_000));
    let tokens = |file: &str| all.chunks.iter().find(|c| c.file == file).unwrap().tokens;
    let budget = tokens("b_big.rs") + tokens("c_mid.rs");
    let plan = plan_review(&diff, &SplitOptions { max_total_tokens: Some(budget), ..options(10_000) });
    let files: Vec<&str> = plan.chunks.iter().map(|c| c.file.as_str()).collect();
    assert_eq!(files, ["b_big.rs", "c_mid.rs"]);
    assert_eq!(plan.left_out.len(), 1);
    assert_eq!(plan.left_out[0].file, "a_small.rs");
    assert!(matches!(plan.left_out[0].reason, LeftOutReason::OverTotalBudget { .. }));
}

#[test]
fn a_line_longer_than_a_cell_is_left_out_and_named() {
    let long = "x".repeat(5000);
    let diff = file_diff("min.txt", 10, &["short", &long, "after"]);
    let plan = plan_review(&diff, &options(MIN_CELL_TOKENS));
    assert!(
        plan.left_out.iter().any(|l| matches!(l.reason, LeftOutReason::LineTooLong { line: 12, .. })),
        "{:?}",
        plan.left_out
    );
    assert!(plan.chunks.iter().all(|c| c.tokens <= MIN_CELL_TOKENS));
    assert!(plan.chunks.iter().any(|c| c.text.contains("+after")));
}

#[test]
fn the_content_hash_ignores_a_shift_but_not_an_edit() {
    let a = plan_review(&file_diff("x.rs", 10, &["one", "two"]), &options(1000));
    let shifted = plan_review(&file_diff("x.rs", 90, &["one", "two"]), &options(1000));
    let edited = plan_review(&file_diff("x.rs", 10, &["one", "TWO"]), &options(1000));
    let renamed = plan_review(&file_diff("y.rs", 10, &["one", "two"]), &options(1000));
    assert_eq!(a.chunks[0].content_hash, shifted.chunks[0].content_hash);
    assert_eq!((a.chunks[0].anchor, shifted.chunks[0].anchor), (10, 90));
    assert_ne!(a.chunks[0].content_hash, edited.chunks[0].content_hash);
    assert_ne!(a.chunks[0].content_hash, renamed.chunks[0].content_hash);
    assert_eq!(a.chunks[0].content_hash.len(), 64);
}
