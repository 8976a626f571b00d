//! The shipped CI files pass the platforms' published schemas: `check-jsonschema
//! --builtin-schema vendor.github-workflows` / `vendor.gitlab-ci` (PyPI `check-jsonschema`,
//! pinned, installed into target/ by `scripts/setup-check-jsonschema.sh`, which
//! `scripts/test.sh` runs). Without the validator the test is skipped loudly, and under
//! `CI=true` it fails. A broken copy of each file must fail the check: the validator really
//! validates.

use std::path::{Path, PathBuf};
use std::process::Command;

const GITHUB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ci/github-actions.yml");
const GITLAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ci/gitlab-ci.yml");

/// The validator: `EXECUTUS_CHECK_JSONSCHEMA`, else the setup script's venv.
fn validator() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("EXECUTUS_CHECK_JSONSCHEMA").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/venv-check-jsonschema/bin/check-jsonschema");
    default.exists().then_some(default)
}

/// The validator, or `None` after a notice nobody can miss; under `CI=true`, a failure.
fn require_validator(test: &str) -> Option<PathBuf> {
    if let Some(path) = validator() {
        return Some(path);
    }
    let notice = format!(
        "workflows::{test}: check-jsonschema not found (run scripts/setup-check-jsonschema.sh): the \
         shipped CI files were NOT validated"
    );
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{notice} (CI=true: a missing validator is a failure)"
    );
    eprintln!("{notice}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        use std::io::Write as _;
        let _ = writeln!(tty, "{notice}");
    }
    None
}

fn check(validator: &Path, schema: &str, file: &Path) -> (bool, String) {
    let out = Command::new(validator)
        .args(["--builtin-schema", schema, "--no-cache"])
        .arg(file)
        .output()
        .expect("check-jsonschema runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn the_github_workflow_passes_the_github_workflows_schema() {
    let Some(validator) = require_validator("github") else { return };
    let (ok, text) = check(&validator, "vendor.github-workflows", Path::new(GITHUB));
    assert!(ok, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    let original = std::fs::read_to_string(GITHUB).unwrap();
    std::fs::write(&broken, original.replace("runs-on: ubuntu-latest", "runs-on: [1, 2]\n    strategy: 7"))
        .unwrap();
    let (ok, text) = check(&validator, "vendor.github-workflows", &broken);
    assert!(!ok, "a broken workflow must fail the schema: {text}");
}

#[test]
fn the_gitlab_pipeline_passes_the_gitlab_ci_schema() {
    let Some(validator) = require_validator("gitlab") else { return };
    let (ok, text) = check(&validator, "vendor.gitlab-ci", Path::new(GITLAB));
    assert!(ok, "{text}");
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    let original = std::fs::read_to_string(GITLAB).unwrap();
    std::fs::write(&broken, original.replace("when: always\n  script:", "when: sometimes\n  script:"))
        .unwrap();
    let (ok, text) = check(&validator, "vendor.gitlab-ci", &broken);
    assert!(!ok, "a broken pipeline must fail the schema: {text}");
}

#[test]
fn both_files_run_the_documented_command() {
    for (file, platform) in [(GITHUB, "github"), (GITLAB, "gitlab")] {
        let text = std::fs::read_to_string(file).unwrap();
        for needle in [
            "executus-run swarm --base".to_owned(),
            "--out-dir review".to_owned(),
            format!("--post {platform} --inline"),
            "--fail-on error".to_owned(),
            "EXECUTUS_STORE__URL: sqlite://.executus-cache/executus.db".to_owned(),
        ] {
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&needle), "{file} lacks {needle:?}");
        }
    }
    let github = std::fs::read_to_string(GITHUB).unwrap();
    assert!(github.contains("fetch-depth: 0") && github.contains("upload-sarif"));
    assert!(github.contains("actions/cache/restore") && github.contains("actions/cache/save"));
    let gitlab = std::fs::read_to_string(GITLAB).unwrap();
    assert!(gitlab.contains("GIT_DEPTH: \"0\"") && gitlab.contains(".executus-cache/"));
}
