//! Posting a review on the pull request: one summary comment, created on the first run and
//! edited on every later one (found by a hidden marker, [`SUMMARY_MARKER`]), and optionally
//! inline comments on the changed lines, each posted once (found again by its finding's id).
//!
//! | platform | summary comment | inline comments | token |
//! | --- | --- | --- | --- |
//! | GitHub | issue comments: list, `POST .../issues/N/comments`, `PATCH .../issues/comments/ID` | one pull request review (`POST .../pulls/N/reviews`, event `COMMENT`) with the new comments | `GITHUB_TOKEN` (Bearer) |
//! | GitLab | merge request notes: list, `POST .../notes`, `PUT .../notes/ID` | one discussion per finding (`POST .../discussions` with a text position) | `GITLAB_TOKEN` (`PRIVATE-TOKEN`), else `CI_JOB_TOKEN` (`JOB-TOKEN`) |
//!
//! Where: [`PostTarget::from_env`] reads the platform's own CI variables (`GITHUB_API_URL`,
//! `GITHUB_REPOSITORY`, `GITHUB_EVENT_PATH`, `GITHUB_REF`; `CI_API_V4_URL`, `CI_PROJECT_ID`,
//! `CI_MERGE_REQUEST_IID`), so a test points them at a loopback stand-in.
//!
//! Guarantees: the token is a [`Secret`]: it is in no error, log line or `Debug` output, and
//! an API error body that echoes it is scrubbed. Every error names the request (method and
//! path) and the API's status and message. An inline comment the API refuses (a line outside
//! the diff: 422 / 400) is a warning in the [`PostReport`], not a failure: the summary comment
//! is what matters.
//!
//! What it does not do: delete old comments, resolve discussions, or post on forks whose token
//! is read-only (the API answers 403, reported as such).

mod github;
mod gitlab;

use std::time::Duration;

use executus_llm::Secret;
use serde_json::Value;

use crate::diff::DiffIndex;
use crate::merge::MergedFinding;
use crate::review::Review;

/// The hidden marker that identifies the summary comment.
pub const SUMMARY_MARKER: &str = "<!-- pr-review-swarm:summary -->";

/// GitHub's limit on a comment body, in characters.
pub const MAX_COMMENT_CHARS: usize = 65_000;

/// The marker of an inline comment about `finding`.
pub fn finding_marker(finding: &MergedFinding) -> String {
    format!("<!-- pr-review-swarm:finding:{} -->", finding.id)
}

/// Where a review is posted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// GitHub pull requests.
    Github,
    /// GitLab merge requests.
    Gitlab,
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "github" => Ok(Self::Github),
            "gitlab" => Ok(Self::Gitlab),
            _ => Err(format!("{s:?} is not github or gitlab")),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Github => "github",
            Self::Gitlab => "gitlab",
        })
    }
}

/// How a GitLab request authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitlabAuth {
    /// A personal, project or group access token (`PRIVATE-TOKEN`), from `GITLAB_TOKEN`.
    AccessToken,
    /// The job's token (`JOB-TOKEN`), from `CI_JOB_TOKEN`.
    JobToken,
}

/// A pull request (or merge request) to post on.
#[derive(Debug, Clone)]
pub struct PostTarget {
    /// The platform.
    pub platform: Platform,
    /// The REST API's base URL, without a trailing slash.
    pub api_url: String,
    /// GitHub `owner/name`, or GitLab's project id (or URL-encoded path).
    pub project: String,
    /// The pull request number / merge request IID.
    pub number: u64,
    /// The head commit inline comments attach to (GitHub), when known.
    pub head_sha: Option<String>,
    /// The token (never printed).
    pub token: Secret,
    /// GitLab's kind of token.
    pub gitlab_auth: GitlabAuth,
}

/// Why a review could not be posted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostError {
    /// A variable the platform needs is missing or unusable.
    #[error("--post {platform}: {var}: {reason}")]
    Env {
        /// The platform.
        platform: Platform,
        /// The variable.
        var: String,
        /// What is wrong.
        reason: String,
    },
    /// The request could not be made (connection, timeout).
    #[error("{method} {path}: {message}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Path (no host, no token).
        path: String,
        /// What happened (token scrubbed).
        message: String,
    },
    /// The API answered with an error status.
    #[error("{method} {path}: {status} {message}{hint}")]
    Api {
        /// HTTP method.
        method: &'static str,
        /// Path.
        path: String,
        /// Status code.
        status: u16,
        /// The API's message (token scrubbed, bounded).
        message: String,
        /// What to do about it, or empty.
        hint: String,
    },
    /// The API answered 2xx with a body we cannot use.
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Path.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// What posting did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostReport {
    /// The summary comment's id.
    pub comment_id: u64,
    /// True when it was created, false when an existing one was edited.
    pub created: bool,
    /// Its web URL, when the API gave one.
    pub url: Option<String>,
    /// Inline comments posted now.
    pub inline_posted: usize,
    /// Inline comments already there from an earlier run.
    pub inline_existing: usize,
    /// Findings on lines the diff does not show (no inline comment possible).
    pub inline_not_in_diff: usize,
    /// What went wrong with inline comments.
    pub warnings: Vec<String>,
}

impl PostTarget {
    /// The target from the platform's CI variables (see the module docs); `env` reads one.
    ///
    /// # Errors
    /// [`PostError::Env`] naming the missing or bad variable.
    pub fn from_env(platform: Platform, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, PostError> {
        let get = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let missing = |var: &str, reason: &str| PostError::Env {
            platform,
            var: var.to_owned(),
            reason: reason.to_owned(),
        };
        match platform {
            Platform::Github => {
                let token = get("GITHUB_TOKEN").ok_or_else(|| {
                    missing(
                        "GITHUB_TOKEN",
                        "not set; pass `GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}` in the step's env",
                    )
                })?;
                let project = get("GITHUB_REPOSITORY")
                    .ok_or_else(|| missing("GITHUB_REPOSITORY", "not set (owner/name of the repository)"))?;
                if project.split('/').count() != 2 || project.split('/').any(str::is_empty) {
                    return Err(missing("GITHUB_REPOSITORY", "is not owner/name"));
                }
                let event: Option<Value> = get("GITHUB_EVENT_PATH")
                    .and_then(|path| std::fs::read(path).ok())
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                let from_event = event.as_ref().and_then(|e| {
                    e.pointer("/pull_request/number").or_else(|| e.pointer("/number")).and_then(Value::as_u64)
                });
                let from_ref = get("GITHUB_REF").and_then(|r| {
                    r.strip_prefix("refs/pull/").and_then(|rest| rest.split('/').next()?.parse::<u64>().ok())
                });
                let number = from_event.or(from_ref).ok_or_else(|| {
                    missing(
                        "GITHUB_EVENT_PATH",
                        "no pull request number in the event or in GITHUB_REF (run on `pull_request` events)",
                    )
                })?;
                let head_sha = event
                    .as_ref()
                    .and_then(|e| e.pointer("/pull_request/head/sha"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(Self {
                    platform,
                    api_url: get("GITHUB_API_URL")
                        .unwrap_or_else(|| "https://api.github.com".to_owned())
                        .trim_end_matches('/')
                        .to_owned(),
                    project,
                    number,
                    head_sha,
                    token: Secret::new(token),
                    gitlab_auth: GitlabAuth::AccessToken,
                })
            }
            Platform::Gitlab => {
                let (token, gitlab_auth) = match (get("GITLAB_TOKEN"), get("CI_JOB_TOKEN")) {
                    (Some(token), _) => (token, GitlabAuth::AccessToken),
                    (None, Some(token)) => (token, GitlabAuth::JobToken),
                    (None, None) => {
                        return Err(missing(
                            "GITLAB_TOKEN",
                            "neither GITLAB_TOKEN (an access token with the `api` scope) nor CI_JOB_TOKEN is set",
                        ));
                    }
                };
                let api_url = get("CI_API_V4_URL").ok_or_else(|| {
                    missing(
                        "CI_API_V4_URL",
                        "not set (GitLab sets it in every job, e.g. https://gitlab.example.com/api/v4)",
                    )
                })?;
                let project = get("CI_PROJECT_ID").ok_or_else(|| missing("CI_PROJECT_ID", "not set"))?;
                let number = get("CI_MERGE_REQUEST_IID")
                    .ok_or_else(|| {
                        missing("CI_MERGE_REQUEST_IID", "not set (run in a merge request pipeline)")
                    })?
                    .parse::<u64>()
                    .map_err(|_| missing("CI_MERGE_REQUEST_IID", "is not a number"))?;
                Ok(Self {
                    platform,
                    api_url: api_url.trim_end_matches('/').to_owned(),
                    project: encode_path_segment(&project),
                    number,
                    head_sha: get("CI_COMMIT_SHA"),
                    token: Secret::new(token),
                    gitlab_auth,
                })
            }
        }
    }
}

/// Posts `review` on `target`: the summary comment `body` (the marker is added), and, with
/// `inline`, inline comments for findings on lines `diff` shows.
///
/// # Errors
/// [`PostError`] when the summary comment cannot be found, created or edited.
pub async fn post_review(
    target: &PostTarget,
    review: &Review,
    body: &str,
    diff: &DiffIndex,
    inline: bool,
) -> Result<PostReport, PostError> {
    let client = Client::new(target)?;
    let body = summary_body(body);
    match target.platform {
        Platform::Github => github::post(&client, target, review, &body, diff, inline).await,
        Platform::Gitlab => gitlab::post(&client, target, review, &body, diff, inline).await,
    }
}

/// `body` with the marker first, cut to [`MAX_COMMENT_CHARS`] with a note when longer.
pub fn summary_body(body: &str) -> String {
    let mut out = format!("{SUMMARY_MARKER}\n{body}");
    if out.chars().count() > MAX_COMMENT_CHARS {
        let note =
            "\n\n_…cut to fit the comment limit: the full review is in the job's review.md artifact._\n";
        let keep = MAX_COMMENT_CHARS - note.chars().count();
        let cut = out.char_indices().nth(keep).map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        out.push_str(note);
    }
    out
}

/// The inline comment about `finding`.
pub fn inline_body(finding: &MergedFinding) -> String {
    let mut out = format!(
        "{}\n**{}** ({}): {}\n\n{}",
        finding_marker(finding),
        finding.severity,
        finding.category,
        finding.title,
        finding.detail
    );
    if let Some(suggestion) = &finding.suggestion {
        out.push_str("\n\n**Suggestion:** ");
        out.push_str(suggestion);
    }
    out.push_str(&format!(
        "\n\n<sub>pr-review-swarm · {} · lenses: {}</sub>",
        finding.models.join(", "),
        finding.lenses.join(", ")
    ));
    out
}

/// Percent-encodes a path segment (GitLab's `namespace%2Fproject`).
fn encode_path_segment(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A JSON-over-HTTP client for one platform, with its auth headers.
pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
    platform: Platform,
    gitlab_auth: GitlabAuth,
}

impl Client {
    fn new(target: &PostTarget) -> Result<Self, PostError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("pr-review-swarm/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PostError::Transport {
                method: "GET",
                path: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self {
            http,
            base: target.api_url.clone(),
            token: target.token.clone(),
            platform: target.platform,
            gitlab_auth: target.gitlab_auth,
        })
    }

    fn scrub(&self, text: &str) -> String {
        let token = self.token.expose();
        if token.is_empty() { text.to_owned() } else { text.replace(token, "[redacted]") }
    }

    /// Sends `method path` with `body`; returns the JSON answer (Null for an empty body).
    pub(crate) async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, PostError> {
        let url = format!("{}{path}", self.base);
        let verb = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(verb, &url);
        request = match self.platform {
            Platform::Github => request
                .header("Authorization", format!("Bearer {}", self.token.expose()))
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28"),
            Platform::Gitlab => match self.gitlab_auth {
                GitlabAuth::AccessToken => request.header("PRIVATE-TOKEN", self.token.expose()),
                GitlabAuth::JobToken => request.header("JOB-TOKEN", self.token.expose()),
            },
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| PostError::Transport {
            method,
            path: path.to_owned(),
            // reqwest's message names the URL, which holds no token (tokens go in headers).
            message: self.scrub(&e.to_string()),
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| PostError::Transport {
            method,
            path: path.to_owned(),
            message: self.scrub(&e.to_string()),
        })?;
        if !status.is_success() {
            return Err(PostError::Api {
                method,
                path: path.to_owned(),
                status: status.as_u16(),
                message: self.scrub(&api_message(&bytes)),
                hint: self.hint(status.as_u16()),
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| PostError::Decode {
            method,
            path: path.to_owned(),
            message: format!("not JSON: {e}"),
        })
    }

    fn hint(&self, status: u16) -> String {
        match (self.platform, status) {
            (Platform::Github, 401) => " (is GITHUB_TOKEN passed to the step?)".into(),
            (Platform::Github, 403) => " (the token needs `pull-requests: write` (and `issues: write`) \
                permissions; a pull request from a fork gets a read-only token)"
                .into(),
            (Platform::Github, 404) => " (check GITHUB_REPOSITORY and the pull request number; a token \
                without access to the repository also gets 404)"
                .into(),
            (Platform::Gitlab, 401 | 403) if self.gitlab_auth == GitlabAuth::JobToken => {
                " (CI_JOB_TOKEN cannot write merge request notes on most GitLab versions: set \
                 GITLAB_TOKEN to a project access token with the `api` scope)"
                    .into()
            }
            (Platform::Gitlab, 401 | 403) => {
                " (GITLAB_TOKEN needs the `api` scope and at least the Reporter role)".into()
            }
            (Platform::Gitlab, 404) => " (check CI_PROJECT_ID and CI_MERGE_REQUEST_IID)".into(),
            _ => String::new(),
        }
    }

    /// Every item of a paged list (`per_page=100`, pages until one is short; at most 50).
    pub(crate) async fn list(&self, path: &str) -> Result<Vec<Value>, PostError> {
        let mut items = Vec::new();
        let separator = if path.contains('?') { '&' } else { '?' };
        for page in 1..=50 {
            let answer =
                self.send("GET", &format!("{path}{separator}per_page=100&page={page}"), None).await?;
            let Value::Array(batch) = answer else {
                return Err(PostError::Decode {
                    method: "GET",
                    path: path.to_owned(),
                    message: "expected a JSON array".into(),
                });
            };
            let n = batch.len();
            items.extend(batch);
            if n < 100 {
                break;
            }
        }
        Ok(items)
    }
}

/// The `message` (GitHub, GitLab) or `error` field of an error body, else its start.
fn api_message(bytes: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => {
            let field = value.get("message").or_else(|| value.get("error"));
            let mut text = match field {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => value.to_string(),
            };
            if let Some(errors) = value.get("errors") {
                text.push_str(&format!(" {errors}"));
            }
            text
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// The id of the first comment in `comments` whose body holds `marker`.
pub(crate) fn find_marked(comments: &[Value], marker: &str) -> Option<u64> {
    comments
        .iter()
        .find(|c| c.get("body").and_then(Value::as_str).is_some_and(|b| b.contains(marker)))
        .and_then(|c| c.get("id").and_then(Value::as_u64))
}

/// Findings that can have an inline comment: their first line is one the diff shows.
pub(crate) fn inline_candidates<'a>(review: &'a Review, diff: &DiffIndex) -> (Vec<&'a MergedFinding>, usize) {
    let mut candidates = Vec::new();
    let mut not_in_diff = 0;
    for finding in &review.findings {
        if diff.line(&finding.file, finding.line).is_some() {
            candidates.push(finding);
        } else {
            not_in_diff += 1;
        }
    }
    (candidates, not_in_diff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_bodies_carry_the_marker_and_fit_the_limit() {
        let body = summary_body("# PR review");
        assert!(body.starts_with(SUMMARY_MARKER));
        let long = summary_body(&"é".repeat(100_000));
        assert!(long.chars().count() <= MAX_COMMENT_CHARS, "{}", long.chars().count());
        assert!(long.contains("cut to fit"));
    }

    #[test]
    fn api_messages_are_bounded_one_line_text() {
        assert_eq!(
            api_message(br#"{"message":"Bad credentials","documentation_url":"x"}"#),
            "Bad credentials"
        );
        assert_eq!(api_message(br#"{"error":"insufficient_scope"}"#), "insufficient_scope");
        assert_eq!(api_message(b"<html>\n oops </html>"), "<html> oops </html>");
        assert!(api_message("x".repeat(1000).as_bytes()).chars().count() <= 301);
        assert_eq!(encode_path_segment("group/sub project"), "group%2Fsub%20project");
    }

    #[test]
    fn targets_come_from_the_ci_variables() {
        let dir = tempfile::tempdir().unwrap();
        let event = dir.path().join("event.json");
        std::fs::write(&event, r#"{"pull_request":{"number":42,"head":{"sha":"abc"}}}"#).unwrap();
        let event = event.display().to_string();
        let vars = move |name: &str| match name {
            "GITHUB_TOKEN" => Some("ghs_secret".to_owned()),
            "GITHUB_REPOSITORY" => Some("octo/repo".to_owned()),
            "GITHUB_EVENT_PATH" => Some(event.clone()),
            "GITHUB_API_URL" => Some("http://127.0.0.1:9/".to_owned()),
            _ => None,
        };
        let target = PostTarget::from_env(Platform::Github, &vars).unwrap();
        assert_eq!((target.number, target.head_sha.as_deref()), (42, Some("abc")));
        assert_eq!(target.api_url, "http://127.0.0.1:9");
        assert!(!format!("{target:?}").contains("ghs_secret"), "the token never prints");

        let from_ref = |name: &str| match name {
            "GITHUB_TOKEN" => Some("t".to_owned()),
            "GITHUB_REPOSITORY" => Some("octo/repo".to_owned()),
            "GITHUB_REF" => Some("refs/pull/7/merge".to_owned()),
            _ => None,
        };
        assert_eq!(PostTarget::from_env(Platform::Github, &from_ref).unwrap().number, 7);
        let no_token = |_: &str| None;
        let e = PostTarget::from_env(Platform::Github, &no_token).unwrap_err();
        assert!(e.to_string().contains("GITHUB_TOKEN"), "{e}");

        let gitlab = |name: &str| match name {
            "CI_JOB_TOKEN" => Some("job".to_owned()),
            "CI_API_V4_URL" => Some("http://127.0.0.1:9/api/v4".to_owned()),
            "CI_PROJECT_ID" => Some("group/proj".to_owned()),
            "CI_MERGE_REQUEST_IID" => Some("3".to_owned()),
            _ => None,
        };
        let target = PostTarget::from_env(Platform::Gitlab, &gitlab).unwrap();
        assert_eq!((target.project.as_str(), target.number), ("group%2Fproj", 3));
        assert_eq!(target.gitlab_auth, GitlabAuth::JobToken);
        let bad_iid =
            |name: &str| if name == "CI_MERGE_REQUEST_IID" { Some("x".to_owned()) } else { gitlab(name) };
        assert!(
            PostTarget::from_env(Platform::Gitlab, &bad_iid)
                .unwrap_err()
                .to_string()
                .contains("CI_MERGE_REQUEST_IID")
        );
    }
}
