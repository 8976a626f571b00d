//! GitHub: the summary as an issue comment on the pull request, inline findings as one pull
//! request review (event `COMMENT`) holding the comments not posted before.

use serde_json::{Value, json};

use super::{
    Client, PostError, PostReport, PostTarget, SUMMARY_MARKER, find_marked, finding_marker, inline_body,
    inline_candidates,
};
use crate::diff::DiffIndex;
use crate::review::Review;

pub(super) async fn post(
    client: &Client,
    target: &PostTarget,
    review: &Review,
    body: &str,
    diff: &DiffIndex,
    inline: bool,
) -> Result<PostReport, PostError> {
    let repo = &target.project;
    let issue = format!("/repos/{repo}/issues/{}", target.number);
    let comments = client.list(&format!("{issue}/comments")).await?;
    let payload = json!({ "body": body });
    let (answer, created) = match find_marked(&comments, SUMMARY_MARKER) {
        Some(id) => (
            client.send("PATCH", &format!("/repos/{repo}/issues/comments/{id}"), Some(&payload)).await?,
            false,
        ),
        None => (client.send("POST", &format!("{issue}/comments"), Some(&payload)).await?, true),
    };
    let comment_id = answer.get("id").and_then(Value::as_u64).ok_or_else(|| PostError::Decode {
        method: if created { "POST" } else { "PATCH" },
        path: format!("{issue}/comments"),
        message: "the comment has no numeric `id`".into(),
    })?;
    let mut report = PostReport {
        comment_id,
        created,
        url: answer.get("html_url").and_then(Value::as_str).map(str::to_owned),
        ..PostReport::default()
    };
    if !inline {
        return Ok(report);
    }
    let (candidates, not_in_diff) = inline_candidates(review, diff);
    report.inline_not_in_diff = not_in_diff;
    if candidates.is_empty() {
        return Ok(report);
    }
    let Some(head) = target.head_sha.as_deref() else {
        report.warnings.push(
            "inline comments skipped: the head commit is unknown (GITHUB_EVENT_PATH has no \
             pull_request.head.sha)"
                .into(),
        );
        return Ok(report);
    };
    let pulls = format!("/repos/{repo}/pulls/{}", target.number);
    let existing: Vec<String> = match client.list(&format!("{pulls}/comments")).await {
        Ok(list) => {
            list.iter().filter_map(|c| c.get("body").and_then(Value::as_str).map(str::to_owned)).collect()
        }
        Err(e) => {
            report.warnings.push(format!("inline comments skipped: {e}"));
            return Ok(report);
        }
    };
    let mut fresh = Vec::new();
    for finding in candidates {
        if existing.iter().any(|b| b.contains(&finding_marker(finding))) {
            report.inline_existing += 1;
        } else {
            fresh.push(json!({
                "path": finding.file,
                "line": finding.line,
                "side": "RIGHT",
                "body": inline_body(finding),
            }));
        }
    }
    if fresh.is_empty() {
        return Ok(report);
    }
    let n = fresh.len();
    let review_body = json!({
        "commit_id": head,
        "event": "COMMENT",
        "body": format!("pr-review-swarm: {n} finding{} on the changed lines.", if n == 1 { "" } else { "s" }),
        "comments": fresh,
    });
    match client.send("POST", &format!("{pulls}/reviews"), Some(&review_body)).await {
        Ok(_) => report.inline_posted = n,
        Err(e) => report.warnings.push(format!("inline comments not posted: {e}")),
    }
    Ok(report)
}
