//! Environment parsing: defaults, every variable, and bad values naming their variable.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use pr_review_swarm::config::{DEFAULT_DEADLINE, ENV_VARS};
use pr_review_swarm::fixture::BUNDLED_MODELS;
use pr_review_swarm::{DiffSource, LensKind, ReplaySource, ReviewConfig, ReviewError, build_models};

fn parse(vars: &[(&str, &str)]) -> Result<ReviewConfig, ReviewError> {
    ReviewConfig::from_vars(vars.iter().copied())
}

#[test]
fn nothing_set_is_the_offline_default() {
    let config = parse(&[("PATH", "/bin"), ("HOME", "/root")]).unwrap();
    assert_eq!(config, ReviewConfig::default());
    assert_eq!(config.models, BUNDLED_MODELS);
    assert_eq!(config.lenses, LensKind::ALL);
    assert_eq!(config.diff, DiffSource::Bundled);
    assert_eq!(config.replay, ReplaySource::Bundled);
    assert_eq!(config.out_dir, PathBuf::from("target/pr-review"));
    assert_eq!(config.deadline, Some(DEFAULT_DEADLINE));
    assert_eq!(config.concurrency.get(), 8);
    // Blank values count as unset.
    assert_eq!(
        parse(&[("PR_REVIEW_MODELS", "  "), ("PR_REVIEW_DEADLINE", "")]).unwrap(),
        ReviewConfig::default()
    );
}

#[test]
fn every_variable_is_read() {
    let config = parse(&[
        ("PR_REVIEW_MODELS", "local/qwen3-8b, fast"),
        ("PR_REVIEW_LENSES", "Security,tests,security"),
        ("PR_REVIEW_DIFF", "-"),
        ("PR_REVIEW_OUT_DIR", "out/review"),
        ("PR_REVIEW_CONCURRENCY", "3"),
        ("PR_REVIEW_DEADLINE", "1m 30s"),
        ("PR_REVIEW_REPLAY", "calls.jsonl"),
        ("PR_REVIEW_RECORD", "new.jsonl"),
        ("PR_REVIEW_TIER_FAST", "local/qwen3-8b, local/qwen3-4b"),
        ("PR_REVIEW_QUIET", "yes"),
        ("EXECUTUS_LLM_LOCAL", "openai+http://127.0.0.1:8080/v1"),
    ])
    .unwrap();
    assert_eq!(config.models, ["local/qwen3-8b", "fast"]);
    assert_eq!(
        config.lenses,
        [LensKind::Security, LensKind::Maintainability],
        "case-insensitive, deduplicated"
    );
    assert_eq!(config.diff, DiffSource::Stdin);
    assert_eq!(config.out_dir, PathBuf::from("out/review"));
    assert_eq!(config.concurrency, NonZeroUsize::new(3).unwrap());
    assert_eq!(config.deadline, Some(Duration::from_secs(90)));
    assert_eq!(config.replay, ReplaySource::Path(PathBuf::from("calls.jsonl")));
    assert_eq!(config.record, Some(PathBuf::from("new.jsonl")));
    assert_eq!(config.tiers["fast"], "local/qwen3-8b, local/qwen3-4b");
    assert!(config.quiet);
    assert_eq!(config.providers.len(), 1);
    assert_eq!(config.providers[0].name, "local");

    assert_eq!(parse(&[("PR_REVIEW_DIFF", "a.diff")]).unwrap().diff, DiffSource::Path("a.diff".into()));
    assert_eq!(parse(&[("PR_REVIEW_DEADLINE", "none")]).unwrap().deadline, None);
    assert!(!parse(&[("PR_REVIEW_QUIET", "0")]).unwrap().quiet);
}

#[test]
fn providers_switch_the_replay_off_unless_asked_for() {
    let dsn = ("EXECUTUS_LLM_OPENAI", "openai://sk-test-key-1234@");
    let config = parse(&[dsn, ("PR_REVIEW_MODELS", "openai/gpt-4.1-mini")]).unwrap();
    assert_eq!(config.replay, ReplaySource::Off);
    let config = parse(&[dsn, ("PR_REVIEW_REPLAY", "bundled")]).unwrap();
    assert_eq!(config.replay, ReplaySource::Bundled);
    assert_eq!(config.models, BUNDLED_MODELS, "with the replay on, the bundled models stay the default");
    // The configuration never prints a key.
    assert!(!format!("{config:?}").contains("sk-test-key-1234"));
}

#[test]
fn bad_values_are_errors_naming_the_variable() {
    type Case = (&'static [(&'static str, &'static str)], &'static str, &'static str);
    let cases: &[Case] = &[
        (&[("PR_REVIEW_CONCURRENCY", "zero")], "PR_REVIEW_CONCURRENCY", "whole number"),
        (&[("PR_REVIEW_CONCURRENCY", "0")], "PR_REVIEW_CONCURRENCY", "from 1 to 256"),
        (&[("PR_REVIEW_CONCURRENCY", "100000")], "PR_REVIEW_CONCURRENCY", "from 1 to 256"),
        (&[("PR_REVIEW_CONCURRENCY", "-1")], "PR_REVIEW_CONCURRENCY", "whole number"),
        (&[("PR_REVIEW_DEADLINE", "soon")], "PR_REVIEW_DEADLINE", "not a duration"),
        (&[("PR_REVIEW_DEADLINE", "0s")], "PR_REVIEW_DEADLINE", "longer than zero"),
        (&[("PR_REVIEW_LENSES", "security,style")], "PR_REVIEW_LENSES", "unknown lens \"style\""),
        (&[("PR_REVIEW_LENSES", "security,,performance")], "PR_REVIEW_LENSES", "empty element"),
        (&[("PR_REVIEW_MODELS", "replay/model-a,,replay/model-b")], "PR_REVIEW_MODELS", "empty element"),
        (&[("PR_REVIEW_MODELS", "replay/model-a,replay/model-a")], "PR_REVIEW_MODELS", "listed twice"),
        (&[("PR_REVIEW_MODELS", "replay/model a")], "PR_REVIEW_MODELS", "whitespace"),
        (&[("PR_REVIEW_QUIET", "maybe")], "PR_REVIEW_QUIET", "not a boolean"),
        (&[("PR_REVIEW_MODEL", "x/y")], "PR_REVIEW_MODEL", "did you mean PR_REVIEW_MODELS"),
        (&[("PR_REVIEW_COLOUR", "1")], "PR_REVIEW_COLOUR", "unknown variable"),
        (&[("PR_REVIEW_TIER_", "x/y")], "PR_REVIEW_TIER_", "name the tier"),
        (&[("EXECUTUS_LLM_OPENAI", "openai://k@")], "PR_REVIEW_MODELS", "not set"),
        (&[("EXECUTUS_LLM_BROKEN", "nonsense")], "EXECUTUS_LLM_", "EXECUTUS_LLM_BROKEN"),
        (
            &[("EXECUTUS_LLM_REPLAY", "ollama://"), ("PR_REVIEW_REPLAY", "bundled")],
            "EXECUTUS_LLM_REPLAY",
            "taken",
        ),
    ];
    for (vars, var, reason) in cases {
        let error = parse(vars).expect_err(var);
        let message = error.to_string();
        assert!(message.starts_with(var), "{vars:?}: {message:?} should start with {var}");
        assert!(message.contains(reason), "{vars:?}: {message:?} should say {reason:?}");
        assert!(error.is_config(), "{vars:?}");
    }
}

#[test]
fn a_bad_dsn_never_echoes_the_key() {
    let error = parse(&[("EXECUTUS_LLM_OPENAI", "openai://sk-secret-9876@host:notaport")]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("EXECUTUS_LLM_OPENAI"), "{message}");
    assert!(!message.contains("sk-secret-9876"), "{message}");
}

#[test]
fn tiers_and_replay_files_are_checked_when_the_models_are_built() {
    let config = parse(&[("PR_REVIEW_TIER_FAST", "replay/model-a, fast")]).unwrap();
    let models = build_models(&config).unwrap();
    let error = models.registry.resolve("fast").unwrap_err();
    assert!(error.to_string().contains("fast"), "{error}");

    let config = parse(&[("PR_REVIEW_REPLAY", "/nonexistent/calls.jsonl")]).unwrap();
    let error = build_models(&config).unwrap_err();
    assert!(
        error.to_string().starts_with("PR_REVIEW_REPLAY: transcript /nonexistent/calls.jsonl"),
        "{error}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"not\": \"an entry\"}\n").unwrap();
    let config = ReviewConfig { replay: ReplaySource::Path(bad), ..ReviewConfig::default() };
    let error = build_models(&config).unwrap_err();
    assert!(error.to_string().contains("line 1"), "{error}");

    let config = parse(&[("PR_REVIEW_TIER_BAD!", "replay/model-a")]).unwrap();
    let error = build_models(&config).unwrap_err();
    assert!(error.to_string().starts_with("PR_REVIEW_TIER_BAD!"), "{error}");
}

#[test]
fn every_documented_variable_is_in_the_readme() {
    let readme = include_str!("../../README.md");
    for (name, _) in ENV_VARS {
        assert!(readme.contains(&format!("`{name}`")), "README.md does not document {name}");
    }
}
