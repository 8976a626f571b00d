//! `swarm`: the pr-review-swarm job as a command — 2 replayed models x 4 lenses over the
//! sample diff in every format, SARIF valid against the 2.1.0 rules, merging across models,
//! a failing model that fails only its cells, and configuration errors that name the key.

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::common::*;

#[path = "../../../examples/pr-review-swarm/tests/support/sarif_schema.rs"]
mod sarif_schema;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pr-review-swarm/data/sample.diff");
const TRANSCRIPT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/pr-review-swarm/data/replay.jsonl");

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
    assert!(stdout.contains("8 of 8 cells answered"), "{stdout}");
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains('\r') && !stderr.contains('['),
        "no progress bar when stderr is not a terminal: {stderr}"
    );
    assert!(stderr.contains("18 findings after merging"), "{stderr}");
    assert!(!ws.path().join("executus.db").exists(), "the swarm keeps nothing: no store file is created");

    // --quiet: nothing on stderr; stdin as input.
    let diff = std::fs::read_to_string(SAMPLE).unwrap();
    let out = ws.run(&["swarm", "--input", "-", "--quiet"], Some(&diff)).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stderr), "");
    assert!(text(&out.stdout).starts_with("# PR review: 18 findings\n"));
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
    assert_eq!(doc["cells"].as_array().unwrap().len(), 8);
    let agreed = doc["findings"].as_array().unwrap().iter().filter(|f| f["agreement"] == 2).count();
    assert!(agreed > 0, "findings both models reported are merged into one: {doc}");

    let out = ws.run(&["swarm", "--input", SAMPLE, "--format", "ndjson"], None).await;
    assert_exit(&out, 0);
    let lines: Vec<Value> =
        text(&out.stdout).lines().map(|l| serde_json::from_str(l).expect("every line is JSON")).collect();
    assert!(lines.len() >= 18 + 8, "findings and cells, one per line: {}", lines.len());
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
    assert_eq!(failed.len(), 4, "the broken model's 4 cells failed, model-a's answered");
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
