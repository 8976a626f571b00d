//! GitLab: the summary as a merge request note, inline findings as one discussion each on
//! the changed line (positions from the merge request's `diff_refs`).

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
    let mr = format!("/projects/{}/merge_requests/{}", target.project, target.number);
    let notes = client.list(&format!("{mr}/notes?sort=asc&order_by=created_at")).await?;
    let payload = json!({ "body": body });
    let (answer, created) = match find_marked(&notes, SUMMARY_MARKER) {
        Some(id) => (client.send("PUT", &format!("{mr}/notes/{id}"), Some(&payload)).await?, false),
        None => (client.send("POST", &format!("{mr}/notes"), Some(&payload)).await?, true),
    };
    let comment_id = answer.get("id").and_then(Value::as_u64).ok_or_else(|| PostError::Decode {
        method: if created { "POST" } else { "PUT" },
        path: format!("{mr}/notes"),
        message: "the note has no numeric `id`".into(),
    })?;
    let mut report = PostReport { comment_id, created, ..PostReport::default() };
    if !inline {
        return Ok(report);
    }
    let (candidates, not_in_diff) = inline_candidates(review, diff);
    report.inline_not_in_diff = not_in_diff;
    if candidates.is_empty() {
        return Ok(report);
    }
    let refs = match client.send("GET", &mr, None).await {
        Ok(answer) => answer.get("diff_refs").cloned().unwrap_or(Value::Null),
        Err(e) => {
            report.warnings.push(format!("inline comments skipped: {e}"));
            return Ok(report);
        }
    };
    let sha = |name: &str| refs.get(name).and_then(Value::as_str).map(str::to_owned);
    let (Some(base_sha), Some(start_sha), Some(head_sha)) =
        (sha("base_sha"), sha("start_sha"), sha("head_sha"))
    else {
        report.warnings.push("inline comments skipped: the merge request has no diff_refs".into());
        return Ok(report);
    };
    let existing: Vec<String> = match client.list(&format!("{mr}/discussions")).await {
        Ok(list) => list
            .iter()
            .filter_map(|d| d.get("notes").and_then(Value::as_array))
            .flatten()
            .filter_map(|n| n.get("body").and_then(Value::as_str).map(str::to_owned))
            .collect(),
        Err(e) => {
            report.warnings.push(format!("inline comments skipped: {e}"));
            return Ok(report);
        }
    };
    for finding in candidates {
        if existing.iter().any(|b| b.contains(&finding_marker(finding))) {
            report.inline_existing += 1;
            continue;
        }
        let discussion = json!({
            "body": inline_body(finding),
            "position": {
                "position_type": "text",
                "base_sha": base_sha,
                "start_sha": start_sha,
                "head_sha": head_sha,
                "old_path": diff.old_path(&finding.file).unwrap_or(&finding.file),
                "new_path": finding.file,
                "new_line": finding.line,
            },
        });
        match client.send("POST", &format!("{mr}/discussions"), Some(&discussion)).await {
            Ok(_) => report.inline_posted += 1,
            Err(e) => report
                .warnings
                .push(format!("inline comment on {}:{} not posted: {e}", finding.file, finding.line)),
        }
    }
    Ok(report)
}
