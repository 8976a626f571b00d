//! Posting against loopback stand-ins of GitHub's and GitLab's REST APIs
//! (`tests/support/forges.rs`): exact endpoints, headers and payloads; one summary comment
//! found again by its marker and edited; inline comments posted once; 403 / 404 / 422 / 401;
//! and a token that never shows in an error, in `Debug` output, or in the binary's output.

use std::process::Command;

use pr_review_swarm::diff::DiffIndex;
use pr_review_swarm::fixture::SAMPLE_DIFF;
use pr_review_swarm::post::{SUMMARY_MARKER, finding_marker};
use pr_review_swarm::{Platform, PostTarget, Review, post_review, render_comment};
use serde_json::json;

use crate::common::bundled_review;

#[path = "../support/forges.rs"]
mod forges;

use forges::{Forge, HEAD_SHA};

const TOKEN: &str = "ghs_SECRETtoken1234567890";

fn github_target(forge: &Forge, token: &str) -> PostTarget {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        json!({ "pull_request": { "number": 7, "head": { "sha": HEAD_SHA } } }).to_string(),
    )
    .unwrap();
    let event = event.display().to_string();
    let uri = forge.server.uri();
    let token = token.to_owned();
    let target = PostTarget::from_env(Platform::Github, &|name: &str| match name {
        "GITHUB_TOKEN" => Some(token.clone()),
        "GITHUB_REPOSITORY" => Some("octo/widgets".into()),
        "GITHUB_EVENT_PATH" => Some(event.clone()),
        "GITHUB_API_URL" => Some(uri.clone()),
        _ => None,
    })
    .unwrap();
    drop(dir);
    target
}

fn gitlab_target(forge: &Forge, access_token: Option<&str>, job_token: Option<&str>) -> PostTarget {
    let uri = format!("{}/api/v4", forge.server.uri());
    let (access, job) = (access_token.map(str::to_owned), job_token.map(str::to_owned));
    PostTarget::from_env(Platform::Gitlab, &|name: &str| match name {
        "GITLAB_TOKEN" => access.clone(),
        "CI_JOB_TOKEN" => job.clone(),
        "CI_API_V4_URL" => Some(uri.clone()),
        "CI_PROJECT_ID" => Some("42".into()),
        "CI_MERGE_REQUEST_IID" => Some("3".into()),
        _ => None,
    })
    .unwrap()
}

/// Every line the sample diff shows, as the platform would allow comments on.
fn commentable(forge: &Forge, review: &Review) {
    let index = DiffIndex::parse(SAMPLE_DIFF);
    forge.with(|state| {
        for file in index.files() {
            for line in 1..2000 {
                if index.line(file, line).is_some() {
                    state.commentable.insert((file.to_owned(), u64::from(line)));
                }
            }
        }
    });
    assert!(!review.findings.is_empty());
}

#[tokio::test]
async fn github_one_comment_created_then_edited_and_inline_comments_posted_once() {
    let review = bundled_review().await;
    let forge = forges::github(TOKEN).await;
    commentable(&forge, &review);
    forge.add_foreign_comments(120); // the marker search must page past them
    let target = github_target(&forge, TOKEN);
    assert!(!format!("{target:?}").contains(TOKEN));
    let index = DiffIndex::parse(SAMPLE_DIFF);

    let first = post_review(&target, &review, &render_comment(&review), &index, true).await.unwrap();
    assert!(first.created);
    assert!(first.url.as_deref().unwrap().contains("issuecomment"));
    assert_eq!(
        first.inline_posted,
        review.findings.len(),
        "every sample finding is on a line the diff shows"
    );
    assert_eq!(first.inline_not_in_diff, 0);
    assert!(first.warnings.is_empty(), "{:?}", first.warnings);

    // Exact endpoints, headers and payloads.
    let log = forge.log();
    for seen in &log {
        assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
        assert_eq!(seen.headers["accept"], "application/vnd.github+json");
        assert_eq!(seen.headers["x-github-api-version"], "2022-11-28");
        assert!(seen.headers["user-agent"].starts_with("pr-review-swarm/"));
    }
    let pages: Vec<&str> = log
        .iter()
        .filter(|s| s.method == "GET" && s.path == "/repos/octo/widgets/issues/7/comments")
        .map(|s| s.query.as_str())
        .collect();
    assert_eq!(pages, ["per_page=100&page=1", "per_page=100&page=2"]);
    let writes = forge.writes();
    assert_eq!(writes.len(), 2, "one comment, one review: {writes:?}");
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("POST", "/repos/octo/widgets/issues/7/comments")
    );
    let body = writes[0].body["body"].as_str().unwrap();
    assert!(body.starts_with(SUMMARY_MARKER), "{body}");
    assert!(body.contains("## PR review: 18 findings"), "{body}");
    assert!(body.contains("<details><summary><b>1. error</b> src/handlers/search.rs:30-32"), "{body}");
    assert_eq!(
        (writes[1].method.as_str(), writes[1].path.as_str()),
        ("POST", "/repos/octo/widgets/pulls/7/reviews")
    );
    let posted = &writes[1].body;
    assert_eq!(posted["commit_id"], HEAD_SHA);
    assert_eq!(posted["event"], "COMMENT");
    let comments = posted["comments"].as_array().unwrap();
    assert_eq!(comments.len(), review.findings.len());
    let first_finding = &review.findings[0];
    assert_eq!(comments[0]["path"], first_finding.file.as_str());
    assert_eq!(comments[0]["line"], first_finding.line);
    assert_eq!(comments[0]["side"], "RIGHT");
    assert!(comments[0]["body"].as_str().unwrap().starts_with(&finding_marker(first_finding)));

    // A re-run edits the same comment and posts no inline comment twice.
    let second = post_review(&target, &review, &render_comment(&review), &index, true).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.comment_id, first.comment_id);
    assert_eq!((second.inline_posted, second.inline_existing), (0, review.findings.len()));
    let writes = forge.writes();
    assert_eq!(writes.len(), 3);
    assert_eq!(writes[2].method, "PATCH");
    assert_eq!(writes[2].path, format!("/repos/octo/widgets/issues/comments/{}", first.comment_id));
    let ours: Vec<_> = forge.comments().into_iter().filter(|c| c.1.contains(SUMMARY_MARKER)).collect();
    assert_eq!(ours.len(), 1, "one summary comment, edited in place");
}

#[tokio::test]
async fn github_refusals_are_errors_or_warnings_that_name_the_request_and_never_the_token() {
    let review = bundled_review().await;
    let index = DiffIndex::parse(SAMPLE_DIFF);
    let body = render_comment(&review);

    // 422 on the inline review (a line outside the diff): a warning; the summary is posted.
    let forge = forges::github(TOKEN).await;
    commentable(&forge, &review);
    let moved = &review.findings[3];
    forge.with(|s| s.commentable.remove(&(moved.file.clone(), u64::from(moved.line))));
    let report = post_review(&github_target(&forge, TOKEN), &review, &body, &index, true).await.unwrap();
    assert!(report.created);
    assert_eq!(report.inline_posted, 0);
    assert_eq!(report.warnings.len(), 1);
    assert!(
        report.warnings[0].contains("POST /repos/octo/widgets/pulls/7/reviews: 422"),
        "{:?}",
        report.warnings
    );
    assert!(report.warnings[0].contains("Line could not be resolved"), "{:?}", report.warnings);

    // 403: a read-only token (a fork's pull request).
    let forge = forges::github(TOKEN).await;
    forge.with(|s| s.read_only = true);
    let error = post_review(&github_target(&forge, TOKEN), &review, &body, &index, false).await.unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("POST /repos/octo/widgets/issues/7/comments: 403 Resource not accessible"),
        "{message}"
    );
    assert!(message.contains("pull-requests: write"), "{message}");

    // 404: the wrong repository.
    let forge = forges::github(TOKEN).await;
    let mut target = github_target(&forge, TOKEN);
    target.project = "octo/nope".into();
    let message = post_review(&target, &review, &body, &index, false).await.unwrap_err().to_string();
    assert!(message.contains("GET /repos/octo/nope/issues/7/comments"), "{message}");
    assert!(message.contains(": 404 Not Found"), "{message}");

    // 401 whose message echoes the credentials: scrubbed.
    let forge = forges::github("another-token").await;
    forge.with(|s| s.echo_token = true);
    let error = post_review(&github_target(&forge, TOKEN), &review, &body, &index, false).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("401 Bad credentials: got Bearer [redacted]"), "{message}");
    assert!(!message.contains(TOKEN) && !format!("{error:?}").contains(TOKEN), "{message}");
}

#[tokio::test]
async fn gitlab_notes_and_discussions_with_either_token() {
    let review = bundled_review().await;
    let index = DiffIndex::parse(SAMPLE_DIFF);
    let forge = forges::gitlab("glpat-SECRET", "private-token").await;
    commentable(&forge, &review);
    forge.add_foreign_comments(3);
    let target = gitlab_target(&forge, Some("glpat-SECRET"), Some("job-token-unused"));
    let first = post_review(&target, &review, &render_comment(&review), &index, true).await.unwrap();
    assert!(first.created);
    assert_eq!(first.inline_posted, review.findings.len());
    let writes = forge.writes();
    assert_eq!(writes[0].method, "POST");
    assert_eq!(writes[0].path, "/api/v4/projects/42/merge_requests/3/notes");
    assert!(writes[0].body["body"].as_str().unwrap().starts_with(SUMMARY_MARKER));
    let discussion = &writes[1];
    assert_eq!(discussion.path, "/api/v4/projects/42/merge_requests/3/discussions");
    let position = &discussion.body["position"];
    assert_eq!(position["position_type"], "text");
    assert_eq!(position["head_sha"], HEAD_SHA);
    assert_eq!(position["new_path"], review.findings[0].file.as_str());
    assert_eq!(position["new_line"], review.findings[0].line);
    assert!(forge.log().iter().all(|s| s.headers["private-token"] == "glpat-SECRET"));
    assert!(forge.log().iter().all(|s| !s.headers.contains_key("job-token")));

    let second = post_review(&target, &review, &render_comment(&review), &index, true).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.comment_id, first.comment_id);
    assert_eq!((second.inline_posted, second.inline_existing), (0, review.findings.len()));
    let last = forge.writes().pop().unwrap();
    assert_eq!(
        (last.method.as_str(), last.path.clone()),
        ("PUT", format!("/api/v4/projects/42/merge_requests/3/notes/{}", first.comment_id))
    );

    // The job token goes in JOB-TOKEN; refused, the error says what to do.
    let forge = forges::gitlab("a-project-token", "private-token").await;
    let target = gitlab_target(&forge, None, Some("job-SECRET"));
    let error = post_review(&target, &review, &render_comment(&review), &index, false).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains(": 401 401 Unauthorized"), "{message}");
    assert!(message.contains("set GITLAB_TOKEN"), "{message}");
    assert!(!message.contains("job-SECRET"));
    assert_eq!(forge.log()[0].headers["job-token"], "job-SECRET");

    // A line outside the diff: 400 for that discussion only, a warning.
    let forge = forges::gitlab("glpat-SECRET", "private-token").await;
    commentable(&forge, &review);
    let moved = &review.findings[0];
    forge.with(|s| s.commentable.remove(&(moved.file.clone(), u64::from(moved.line))));
    let target = gitlab_target(&forge, Some("glpat-SECRET"), None);
    let report = post_review(&target, &review, &render_comment(&review), &index, true).await.unwrap();
    assert_eq!(report.inline_posted, review.findings.len() - 1);
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("must be a valid line code"), "{:?}", report.warnings);
}

/// Runs the light host in `dir` with a clean environment plus `vars`.
fn run_bin(dir: std::path::PathBuf, vars: Vec<(String, String)>) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pr-review-swarm"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir)
        .envs(vars)
        .output()
        .unwrap()
}

/// The light host binary posting on the GitHub stand-in: the token never shows in its
/// output; a refused post is exit 1 after the review files were written.
#[tokio::test(flavor = "multi_thread")]
async fn the_binary_posts_and_never_prints_the_token() {
    let forge = forges::github(TOKEN).await;
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("event.json");
    std::fs::write(
        &event,
        json!({ "pull_request": { "number": 7, "head": { "sha": HEAD_SHA } } }).to_string(),
    )
    .unwrap();
    let vars = |fail_on: &str| -> Vec<(String, String)> {
        [
            ("PR_REVIEW_POST", "github"),
            ("PR_REVIEW_FAIL_ON", fail_on),
            ("GITHUB_TOKEN", TOKEN),
            ("GITHUB_REPOSITORY", "octo/widgets"),
            ("GITHUB_EVENT_PATH", event.to_str().unwrap()),
            ("GITHUB_API_URL", &forge.server.uri()),
            ("RUST_LOG", "trace"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let path = dir.path().to_owned();
    let (v, p) = (vars("error"), path.clone());
    let out = tokio::task::spawn_blocking(move || run_bin(p, v)).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(5), "errors found, PR_REVIEW_FAIL_ON=error: {stderr}");
    assert!(stderr.contains("created the review comment"), "{stderr}");
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    assert_eq!(forge.comments().len(), 1);

    // Read-only now: the edit is refused, exit 1, the outputs are there all the same.
    forge.with(|s| s.read_only = true);
    std::fs::remove_dir_all(path.join("target")).unwrap();
    let (v, p) = (vars("none"), path.clone());
    let out = tokio::task::spawn_blocking(move || run_bin(p, v)).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("posting the review: PATCH /repos/octo/widgets/issues/comments/"), "{stderr}");
    assert!(stderr.contains(": 403 Resource not accessible by integration"), "{stderr}");
    assert!(!stderr.contains(TOKEN) && !String::from_utf8_lossy(&out.stdout).contains(TOKEN));
    assert!(path.join("target/pr-review/review.sarif").exists(), "outputs are written before posting");

    // Missing GITHUB_TOKEN: a configuration error before any model is asked.
    let mut v = vars("none");
    v.retain(|(k, _)| k != "GITHUB_TOKEN");
    let out = tokio::task::spawn_blocking(move || run_bin(path, v)).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GITHUB_TOKEN: not set"));
}
