//! The binary: offline by default, configuration errors exit 2 naming the variable, every
//! cell failing exits 1, recording writes a transcript with keys redacted.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use pr_review_swarm::config::ENV_VARS;
use pr_review_swarm::fixture::{BUNDLED_TRANSCRIPT, parse_transcript};

/// Runs the binary in `dir` with only `vars` in its environment (and `stdin`).
fn run(dir: &Path, vars: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pr-review-swarm"));
    command.env_clear().envs(vars.iter().copied()).current_dir(dir);
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn with_no_environment_it_reviews_the_sample_offline() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], None);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("# PR review: 18 findings\n"), "{stdout}");
    let written = dir.path().join("target/pr-review");
    let markdown = std::fs::read_to_string(written.join("review.md")).unwrap();
    assert_eq!(markdown, stdout, "stdout is the Markdown review, nothing else");
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(written.join("review.sarif")).unwrap()).unwrap();
    crate::sarif::validate(&sarif).unwrap();
    assert!(written.join("review.json").is_file());
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("[1/8]"), "no progress lines when stderr is not a terminal: {stderr}");
    assert!(stderr.contains("wrote"), "{stderr}");
}

#[test]
fn help_lists_every_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &[], None);
    assert!(out.status.success());
    let mut command = Command::new(env!("CARGO_BIN_EXE_pr-review-swarm"));
    let help = command.arg("--help").env_clear().output().unwrap();
    assert!(help.status.success());
    let help = text(&help.stdout);
    for (name, _) in ENV_VARS {
        assert!(help.contains(name), "--help does not mention {name}");
    }
    assert!(help.contains("EXIT CODES"));
    let bad =
        Command::new(env!("CARGO_BIN_EXE_pr-review-swarm")).arg("--models").env_clear().output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("environment variables only"));
}

#[test]
fn configuration_errors_exit_2_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("PR_REVIEW_CONCURRENCY", "many")], "error: PR_REVIEW_CONCURRENCY:"),
        (&[("PR_REVIEW_MODELS", "nowhere/model")], "error: PR_REVIEW_MODELS: model \"nowhere/model\""),
        (&[("PR_REVIEW_DIFF", "/nonexistent.diff")], "error: PR_REVIEW_DIFF: cannot read /nonexistent.diff"),
        (
            &[("PR_REVIEW_LENSE", "security")],
            "error: PR_REVIEW_LENSE: unknown variable; did you mean PR_REVIEW_LENSES?",
        ),
    ];
    for (vars, expected) in cases {
        let out = run(dir.path(), vars, None);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).starts_with(expected), "{vars:?}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn every_cell_failing_exits_1_with_a_review_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // A diff the bundled transcript never saw, on stdin: the replay answers no cell.
    let diff = "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n";
    let out = run(dir.path(), &[("PR_REVIEW_DIFF", "-"), ("PR_REVIEW_LENSES", "security")], Some(diff));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Every cell failed"), "{stdout}");
    assert!(stdout.contains("no recorded call for model model-a matches this request"), "{stdout}");
    assert!(text(&out.stderr).contains("every cell failed (2 cells)"), "{}", text(&out.stderr));
}

#[test]
fn recording_writes_a_replayable_transcript_with_keys_redacted() {
    let dir = tempfile::tempdir().unwrap();
    // Recording the bundled replay reproduces the bundled transcript's entries.
    let out = run(dir.path(), &[("PR_REVIEW_RECORD", "calls.jsonl")], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let recorded = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
    let mut recorded = parse_transcript(&recorded, Path::new("calls.jsonl")).unwrap();
    let mut bundled = parse_transcript(BUNDLED_TRANSCRIPT, Path::new("bundled")).unwrap();
    let key = |e: &executus_llm::fake::TranscriptEntry| {
        (e.model.clone(), e.request.system.clone(), serde_json::to_string(&e.request.messages).unwrap())
    };
    recorded.sort_by_key(key);
    bundled.sort_by_key(key);
    assert_eq!(recorded, bundled);

    // ...and replaying that recording gives the same review.
    let again = run(dir.path(), &[("PR_REVIEW_REPLAY", "calls.jsonl"), ("PR_REVIEW_OUT_DIR", "again")], None);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    let findings = |dir: &Path| -> serde_json::Value {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("review.json")).unwrap()).unwrap();
        json["findings"].clone()
    };
    assert_eq!(findings(&dir.path().join("again")), findings(&dir.path().join("target/pr-review")));

    // A configured provider's key that shows up in a request (here: leaked in the diff) is
    // redacted from the transcript.
    let key = "sk-live-abcdef123456";
    let diff = format!("--- a/k.txt\n+++ b/k.txt\n@@ -0,0 +1 @@\n+OPENAI_API_KEY={key}\n");
    std::fs::write(dir.path().join("leak.diff"), diff).unwrap();
    let dsn = format!("openai+http://{key}@127.0.0.1:9/v1");
    let out = run(
        dir.path(),
        &[
            ("EXECUTUS_LLM_UNUSED", dsn.as_str()),
            ("PR_REVIEW_REPLAY", "bundled"),
            ("PR_REVIEW_DIFF", "leak.diff"),
            ("PR_REVIEW_LENSES", "security"),
            ("PR_REVIEW_RECORD", "leak.jsonl"),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "the replay has no answer for this diff: {}", text(&out.stderr));
    let transcript = std::fs::read_to_string(dir.path().join("leak.jsonl")).unwrap();
    assert_eq!(transcript.lines().count(), 2, "both failed calls are recorded");
    assert!(transcript.contains("OPENAI_API_KEY=[redacted]"), "{transcript}");
    assert!(!transcript.contains(key));
    assert!(!text(&out.stdout).contains(key) && !text(&out.stderr).contains(key));
}

#[test]
fn fail_on_gates_with_exit_5_and_none_never_fails() {
    let dir = tempfile::tempdir().unwrap();
    for (level, code) in [("error", 5), ("warning", 5), ("note", 5), ("none", 0)] {
        let out = run(dir.path(), &[("PR_REVIEW_FAIL_ON", level), ("PR_REVIEW_QUIET", "1")], None);
        assert_eq!(out.status.code(), Some(code), "{level}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).starts_with("# PR review: 18 findings"),
            "the review is printed either way"
        );
        if code == 5 {
            assert!(text(&out.stderr).contains("(PR_REVIEW_FAIL_ON): exit 5"), "{}", text(&out.stderr));
        }
    }
    let out = run(dir.path(), &[("PR_REVIEW_FAIL_ON", "fatal")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("PR_REVIEW_FAIL_ON: \"fatal\" is not one of error, warning, note, none")
    );
}

#[test]
fn the_file_cache_makes_a_second_run_free_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("PR_REVIEW_CACHE_DIR", ".review-cache"), ("PR_REVIEW_QUIET", "1")];
    let first = run(dir.path(), &vars, None);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    assert!(dir.path().join(".review-cache/review-cache.json").exists());
    // The second run answers every cell from the cache: a replay that answers nothing proves
    // no model was asked.
    std::fs::write(dir.path().join("empty.jsonl"), "").unwrap();
    let second = run(dir.path(), &[vars[0], vars[1], ("PR_REVIEW_REPLAY", "empty.jsonl")], None);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stderr));
    let stdout = text(&second.stdout);
    assert!(stdout.starts_with("# PR review: 18 findings"), "{stdout}");
    assert!(stdout.contains("Cells: 0 asked, 40 from the cache."), "{stdout}");
}

#[test]
fn pr_review_base_reviews_the_current_repository_branch() {
    let repo = crate::gitrepo::Repo::new();
    repo.write("src/a.rs", crate::gitrepo::numbered(30, "a", &[]));
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("src/a.rs", crate::gitrepo::numbered(30, "a", &[10]));
    repo.write("Cargo.lock", "version = 4\n");
    repo.commit("feature");
    // The bundled replay has no answer for this diff: every cell fails (exit 1), and the
    // review shows what git gave: one file reviewed, the lock file left out.
    let out = run(repo.path(), &[("PR_REVIEW_BASE", "main"), ("PR_REVIEW_LENSES", "security")], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("over 2 files (0 of 2 cells answered)"), "{stdout}");
    assert!(stdout.contains("- `Cargo.lock`: excluded by `Cargo.lock`"), "{stdout}");

    let out = run(repo.path(), &[("PR_REVIEW_BASE", "origin/main")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("fetch-depth: 0"), "{}", text(&out.stderr));
    let out = run(repo.path(), &[("PR_REVIEW_BASE", "main"), ("PR_REVIEW_DIFF", "x.diff")], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not both"), "{}", text(&out.stderr));
}
