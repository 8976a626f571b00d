//! `swarm`: the pr-review-swarm job as a command — 2 replayed models x 4 lenses over the
//! sample diff in every format, SARIF valid against the 2.1.0 rules, merging across models,
//! a failing model that fails only its cells, and configuration errors that name the key; and
//! the pull request reviewer: `--base` on a real git repository, the review cache in the
//! store (a second run after one hunk changed asks the mock only about that hunk), spend from
//! `[budget.prices]`, `--post github|gitlab` against loopback stand-ins of their APIs,
//! `--fail-on` exit codes, and a token that never shows.

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::common::*;

#[path = "../../../examples/pr-review-swarm/tests/support/sarif_schema.rs"]
mod sarif_schema;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../swarm/data/sample.diff");
const TRANSCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../swarm/data/replay.jsonl");

fn replay_config(models: &str) -> String {
    format!(
        r#"
[providers.replay]
kind = "replay"
path = "{TRANSCRIPT}"

[swarm]
models = {models}
concurrency = 4
deadline = "2m"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn markdown_review_of_the_sample_diff_merged_across_models() {
    let ws = Workspace::new(&replay_config(r#"["replay/model-a", "replay/model-b"]"#));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    // The same review the pr-review-swarm example prints for its bundled run: 18 merged
    // findings from 2 models that report overlapping problems.
    assert!(stdout.starts_with("# PR review: 18 findings\n"), "{stdout}");
    assert!(stdout.contains("40 of 40 cells answered"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('['),
        "no progress bar when stderr is not a terminal: {stderr}"
    );
    assert!(stderr.contains("18 findings after merging"), "{stderr}");
    assert!(ws.path().join("executus.db").exists(), "the review cache lives in the store file");

    // --quiet: nothing on stderr; stdin as input; every cell from the cache.
    let diff = std::fs::read_to_string(SAMPLE).unwrap();
    let out = ws.run(&["swarm", "--input", "-", "--quiet"], Some(&diff)).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stderr), "");
    assert!(text(&out.stdout).starts_with("# PR review: 18 findings\n"));
    assert!(text(&out.stdout).contains("Cells: 0 asked, 40 from the cache."), "{}", text(&out.stdout));

    // --no-cache: asked again, nothing cached said.
    let out = ws.run(&["swarm", "--input", SAMPLE, "--quiet", "--no-cache"], None).await;
    assert_exit(&out, 0);
    assert!(!text(&out.stdout).contains("from the cache"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sarif_output_is_valid_sarif_2_1_0_and_goes_to_out() {
    let ws = Workspace::new(&replay_config(r#""replay/model-a, replay/model-b""#));
    let target = ws.path().join("review.sarif");
    let out = ws
        .run(&["swarm", "--input", SAMPLE, "--format", "sarif", "--out", target.to_str().unwrap()], None)
        .await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "", "with --out nothing goes to stdout");
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&target).unwrap()).unwrap();
    sarif_schema::validate(&sarif).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 18, "one result per merged finding");
    assert_eq!(results[0]["ruleId"], "sql-injection");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "src/handlers/search.rs"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_and_ndjson_formats() {
    let ws = Workspace::new(&replay_config(r#"["replay/model-a", "replay/model-b"]"#));
    let out = ws.run(&["swarm", "--input", SAMPLE, "--format", "json"], None).await;
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["findings"].as_array().unwrap().len(), 18);
    assert_eq!(doc["cells"].as_array().unwrap().len(), 40);
    let agreed = doc["findings"].as_array().unwrap().iter().filter(|f| f["agreement"] == 2).count();
    assert!(agreed > 0, "findings both models reported are merged into one: {doc}");

    let out = ws.run(&["swarm", "--input", SAMPLE, "--format", "ndjson"], None).await;
    assert_exit(&out, 0);
    let lines: Vec<Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    assert!(lines.len() >= 18 + 40, "findings and cells, one per line: {}", lines.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_model_fails_only_its_cells() {
    let server = openai_server(|_| {
        ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"error": {"message": "bad key", "type": "invalid_request_error"}}),
        )
    })
    .await;
    let config = format!(
        "{}\n[providers.broken]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n",
        replay_config(r#"["replay/model-a", "broken/gpt-x"]"#),
        server.uri()
    );
    let ws = Workspace::new(&config);
    let out = ws.run(&["swarm", "--input", SAMPLE, "--format", "json"], None).await;
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cells = doc["cells"].as_array().unwrap();
    let failed: Vec<&Value> = cells.iter().filter(|c| c["status"] != "succeeded").collect();
    assert_eq!(
        failed.len(),
        20,
        "the broken model's 20 cells failed (4 lenses x 5 files), model-a's answered"
    );
    assert!(failed.iter().all(|c| c["model"] == "broken/gpt-x"));
    assert!(!doc["findings"].as_array().unwrap().is_empty());

    // Every cell failing is exit 1.
    let ws = Workspace::new(&format!(
        "{}\n[providers.broken]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n",
        replay_config(r#"["broken/gpt-x"]"#),
        server.uri()
    ));
    let out = ws.run(&["swarm", "--input", SAMPLE, "--quiet"], None).await;
    assert_exit(&out, 1);
    assert!(text(&out.stderr).contains("every cell failed"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_and_input_errors_exit_2_naming_the_key() {
    let ws = Workspace::new(&replay_config(r#"["replay/model-a", "nowhere/model"]"#));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("swarm.models") && stderr.contains("executus.toml"), "{stderr}");

    ws.write_config(&format!("{}lenses = [\"style\"]\n", replay_config(r#"["replay/model-a"]"#)));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("swarm.lenses") && stderr.contains("\"style\""), "{stderr}");

    ws.write_config(&format!("[providers.replay]\nkind = \"replay\"\npath = \"{TRANSCRIPT}\"\n"));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("swarm.models is not set"), "{}", text(&out.stderr));

    let ws = Workspace::new(&replay_config(r#"["replay/model-a"]"#));
    let out = ws.run(&["swarm", "--input", "-"], Some("this is not a diff\n")).await;
    assert_exit(&out, 2);
    let out = ws.run(&["swarm", "--input", "missing.diff"], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("missing.diff"));
}

#[path = "../../../examples/pr-review-swarm/tests/support/gitrepo.rs"]
mod gitrepo;

#[path = "../../../examples/pr-review-swarm/tests/support/forges.rs"]
mod forges;

/// Nine hunks far apart in one file and one in another, on a feature branch.
fn feature_repo(root: &std::path::Path) -> (gitrepo::Repo, Vec<String>) {
    let repo = gitrepo::Repo::at(root);
    repo.write(".gitignore", "executus.toml\n.executus-cache/\n");
    let old: Vec<String> = gitrepo::numbered(900, "m", &[]).lines().map(str::to_owned).collect();
    repo.write("src/many.rs", old.join("\n") + "\n");
    repo.write("src/small.rs", gitrepo::numbered(20, "s", &[]));
    repo.write("Cargo.lock", "version = 3\n");
    repo.commit("base");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    let mut new = old;
    for k in 0..9 {
        edit(&mut new, 50 + k * 100, "first");
    }
    repo.write("src/many.rs", new.join("\n") + "\n");
    repo.write("src/small.rs", gitrepo::numbered(20, "s", &[5]));
    repo.write("Cargo.lock", "version = 4\n");
    repo.commit("feature");
    (repo, new)
}

fn edit(lines: &mut [String], at: usize, text: &str) {
    for j in 0..6 {
        lines[at + j] = format!("    let m_{} = {text}({j}); // edited", at + j + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn base_reviews_the_branch_and_the_store_cache_asks_only_about_the_changed_hunk() {
    let server =
        openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer(r#"{"findings":[]}"#))).await;
    let ws = Workspace { dir: tempfile::tempdir().unwrap() };
    ws.write_config(&format!(
        r#"
[providers.mock]
kind = "openai"
base_url = "{}/v1"

[swarm]
models = ["mock/m1", "mock/m2"]
lenses = ["correctness", "security"]
max_cell_tokens = 300

[store]
url = "sqlite://{{dir}}/.executus-cache/executus.db"

[budget.prices]
"mock/*" = {{ input = 1000.0, output = 2000.0 }}
"#,
        server.uri()
    ));
    let (repo, mut new) = feature_repo(ws.path());

    let out = ws.run(&["swarm", "--base", "main", "--format", "json"], None).await;
    assert_exit(&out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(calls(&server).await.len(), 40, "2 models x 2 lenses x 10 chunks");
    assert_eq!(doc["summary"]["chunks"], 10);
    assert_eq!(doc["summary"]["cells_fresh"], 40);
    assert_eq!(doc["summary"]["left_out"][0]["file"], "Cargo.lock");
    assert_eq!(doc["summary"]["left_out"][0]["reason"], "excluded");
    // 40 cells x (12 input tokens x $1000/M + 5 output x $2000/M) = 40 x $0.022.
    let spent = doc["summary"]["spend"]["fresh_usd"].as_f64().unwrap();
    assert!((spent - 0.88).abs() < 1e-9, "{spent}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("swarm: reviewing ") && stderr.contains("base main from given"), "{stderr}");
    assert!(stderr.contains("swarm: spend $0.8800, saved by the cache $0.0000"), "{stderr}");

    // Again: every cell from the store, nothing asked, the saving priced.
    let out = ws.run(&["swarm", "--base", "main", "--format", "json", "--quiet"], None).await;
    assert_exit(&out, 0);
    assert_eq!(calls(&server).await.len(), 40, "no new request");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["summary"]["cells_cached"], 40);
    assert!((doc["summary"]["spend"]["saved_usd"].as_f64().unwrap() - 0.88).abs() < 1e-9);

    // One hunk fixed: only its chunk is asked, by each model and lens.
    edit(&mut new, 450, "fixed");
    repo.write("src/many.rs", new.join("\n") + "\n");
    repo.commit("fix");
    let out = ws.run(&["swarm", "--base", "main", "--quiet"], None).await;
    assert_exit(&out, 0);
    let all = calls(&server).await;
    assert_eq!(all.len(), 44, "4 new requests: 2 models x 2 lenses x the changed chunk");
    for request in &all[40..] {
        assert!(transcript(request).contains("fixed("), "only the changed hunk is sent");
    }
    assert!(text(&out.stdout).contains("Cells: 4 asked, 36 from the cache."), "{}", text(&out.stdout));

    // `--base` alone on GitHub Actions: origin/<base>, which a shallow checkout lacks.
    let mut command = ws.command(&["swarm", "--base", "--quiet"]);
    command.env("GITHUB_BASE_REF", "main");
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("origin/main") && stderr.contains("fetch-depth: 0"), "{stderr}");
}

const TOKEN: &str = "ghs_CLItoken_0123456789abcdef";

fn github_env(command: &mut std::process::Command, forge: &forges::Forge, event: &std::path::Path) {
    command
        .env("GITHUB_TOKEN", TOKEN)
        .env("GITHUB_REPOSITORY", "octo/widgets")
        .env("GITHUB_EVENT_PATH", event)
        .env("GITHUB_API_URL", forge.server.uri());
}

fn commentable(forge: &forges::Forge) {
    let index = executus_swarm::diff::DiffIndex::parse(&std::fs::read_to_string(SAMPLE).unwrap());
    forge.with(|state| {
        for file in index.files() {
            for line in 1..500 {
                if index.line(file, line).is_some() {
                    state.commentable.insert((file.to_owned(), u64::from(line)));
                }
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn post_github_gates_with_exit_5_edits_its_comment_and_never_prints_the_token() {
    let forge = forges::github(TOKEN).await;
    commentable(&forge);
    let ws = Workspace::new(&replay_config(r#"["replay/model-a", "replay/model-b"]"#));
    let event = ws.path().join("event.json");
    std::fs::write(
        &event,
        serde_json::json!({ "pull_request": { "number": 7, "head": { "sha": forges::HEAD_SHA } } })
            .to_string(),
    )
    .unwrap();

    let mut command = ws.command(&[
        "--log",
        "trace",
        "swarm",
        "--input",
        SAMPLE,
        "--post",
        "github",
        "--inline",
        "--fail-on",
        "error",
        "--out-dir",
        "review",
    ]);
    github_env(&mut command, &forge, &event);
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 5);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stderr.contains("created the review comment"), "{stderr}");
    assert!(stderr.contains("inline comments: 18 posted, 0 already there"), "{stderr}");
    assert!(stderr.contains("7 findings at or above error (--fail-on): exit 5"), "{stderr}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN), "the token never shows, even at trace level");
    for name in ["review.md", "review.sarif", "review.json"] {
        assert!(ws.path().join("review").join(name).exists(), "{name}");
    }
    let writes = forge.writes();
    assert_eq!(writes.len(), 2);
    assert_eq!(writes[0].path, "/repos/octo/widgets/issues/7/comments");
    assert!(writes[0].body["body"].as_str().unwrap().starts_with(executus_swarm::post::SUMMARY_MARKER));
    assert_eq!(writes[1].path, "/repos/octo/widgets/pulls/7/reviews");
    assert!(forge.log().iter().all(|s| s.headers["authorization"] == format!("Bearer {TOKEN}")));

    // A re-run (every cell from the cache) edits the comment; `--fail-on none` passes.
    let mut command =
        ws.command(&["swarm", "--input", SAMPLE, "--post", "github", "--inline", "--fail-on", "none"]);
    github_env(&mut command, &forge, &event);
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 0);
    assert!(text(&out.stderr).contains("updated the review comment"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("0 posted, 18 already there"), "{}", text(&out.stderr));
    let writes = forge.writes();
    assert_eq!((writes.len(), writes[2].method.as_str()), (3, "PATCH"));
    assert_eq!(forge.comments().len(), 1, "one comment, edited");

    // 403 (read-only token): exit 1 naming the request, never the token.
    forge.with(|s| s.read_only = true);
    let mut command = ws.command(&["swarm", "--input", SAMPLE, "--post", "github"]);
    github_env(&mut command, &forge, &event);
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("PATCH /repos/octo/widgets/issues/comments/") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stderr.contains(TOKEN));

    // No token: a configuration error before any model is asked.
    let mut command = ws.command(&["swarm", "--input", SAMPLE, "--post", "github"]);
    github_env(&mut command, &forge, &event);
    command.env_remove("GITHUB_TOKEN");
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("GITHUB_TOKEN: not set"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn post_gitlab_creates_then_edits_one_note() {
    let forge = forges::gitlab("glpat-CLI-secret", "private-token").await;
    commentable(&forge);
    let ws = Workspace::new(&replay_config(r#"["replay/model-a"]"#));
    for expected in ["created", "updated"] {
        let mut command = ws.command(&["swarm", "--input", SAMPLE, "--post", "gitlab", "--inline"]);
        command
            .env("GITLAB_TOKEN", "glpat-CLI-secret")
            .env("CI_API_V4_URL", format!("{}/api/v4", forge.server.uri()))
            .env("CI_PROJECT_ID", "42")
            .env("CI_MERGE_REQUEST_IID", "3");
        let out = ws.run_with(command, None).await;
        assert_exit(&out, 0);
        assert!(
            text(&out.stderr).contains(&format!("{expected} the review comment")),
            "{}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("glpat-CLI-secret"));
    }
    assert_eq!(forge.comments().len(), 1);
    let first_note = forge.writes().into_iter().next().unwrap();
    assert_eq!(first_note.path, "/api/v4/projects/42/merge_requests/3/notes");
}

#[tokio::test(flavor = "multi_thread")]
async fn split_and_budget_settings_are_checked_naming_the_key() {
    let ws = Workspace::new(&format!("{}exclude = [\"a//b\"]\n", replay_config(r#"["replay/model-a"]"#)));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("swarm.exclude"), "{}", text(&out.stderr));

    ws.write_config(&format!("{}max_cell_tokens = 40000\n", replay_config(r#"["replay/model-a"]"#)));
    let out = ws.run(&["swarm", "--input", SAMPLE], None).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("swarm.context_tokens") && stderr.contains("but the context holds 32768"),
        "{stderr}"
    );

    // Excluding every file: nothing is asked, the review says what was left out.
    ws.write_config(&format!("{}exclude = [\"*.rs\"]\n", replay_config(r#"["replay/model-a"]"#)));
    let out = ws.run(&["swarm", "--input", SAMPLE, "--quiet"], None).await;
    assert_exit(&out, 0);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Nothing was sent to a model"), "{stdout}");
    assert!(stdout.contains("- `src/routes.rs`: excluded by `*.rs`"), "{stdout}");

    let out = ws.run(&["swarm", "--input", SAMPLE, "--inline"], None).await;
    assert_exit(&out, 2);
    let out = ws.run(&["swarm", "--input", SAMPLE, "--fail-on", "fatal"], None).await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn at_the_deadline_the_review_is_posted_with_what_the_answered_cells_found() {
    // One model hangs; the swarm deadline (2 s) marks its cells timed out, and the review of
    // the other model is posted all the same, saying which cells did not answer.
    let hanging = openai_server(|_| {
        ResponseTemplate::new(200)
            .set_body_json(text_answer(r#"{"findings":[]}"#))
            .set_delay(std::time::Duration::from_secs(600))
    })
    .await;
    let forge = forges::github(TOKEN).await;
    let ws = Workspace::new(&format!(
        "{}\n[providers.slow]\nkind = \"openai\"\nbase_url = \"{}/v1\"\n",
        replay_config(r#"["replay/model-a", "slow/m"]"#).replace("deadline = \"2m\"", "deadline = \"2s\""),
        hanging.uri()
    ));
    let event = ws.path().join("event.json");
    std::fs::write(&event, serde_json::json!({ "pull_request": { "number": 7 } }).to_string()).unwrap();
    let mut command = ws.command(&["swarm", "--input", SAMPLE, "--post", "github", "--fail-on", "error"]);
    github_env(&mut command, &forge, &event);
    let out = ws.run_with(command, None).await;
    assert_exit(&out, 5);
    let comments = forge.comments();
    assert_eq!(comments.len(), 1);
    let body = &comments[0].1;
    assert!(body.contains("(20 of 40 cells answered)"), "{body}");
    assert!(body.contains("Failed cells: 20"), "{body}");
    assert!(body.contains("swarm deadline of 2s passed"), "{body}");
    assert!(body.contains("## PR review: 14 findings"), "model-a's findings are posted: {body}");
}
