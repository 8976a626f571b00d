//! Loopback stand-ins of GitHub's and GitLab's REST APIs for the review poster, shared by
//! the light host's and the CLI's tests (`#[path]`). Each is a real HTTP server (wiremock) with
//! a stateful responder that checks what the real API requires and answers as it does:
//!
//! - GitHub: `Authorization: Bearer <token>`, `Accept: application/vnd.github+json`,
//!   `X-GitHub-Api-Version: 2022-11-28` and a `User-Agent` on every request (else 401 / 403 /
//!   400 like the real one); issue comments listed in pages of `per_page`, created with
//!   `POST .../issues/N/comments {"body"}` (201), edited with `PATCH .../issues/comments/ID`;
//!   pull request reviews `POST .../pulls/N/reviews` with `commit_id`, `event`, `body` and
//!   `comments[{path, line, side, body}]`, 422 when a line is not in the diff or the commit is
//!   not the head.
//! - GitLab: `PRIVATE-TOKEN` or `JOB-TOKEN`; notes listed, created (`POST .../notes`, 201)
//!   and edited (`PUT .../notes/ID`); the merge request with its `diff_refs`; discussions with
//!   a text `position`, 400 when the line is not in the diff.
//!
//! Every request is logged (method, path with query, headers, body) for the tests to check.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

#[derive(Debug, Default)]
pub struct State {
    pub log: Vec<Seen>,
    pub next_id: u64,
    /// Summary comments / notes: (id, body, author).
    pub comments: Vec<(u64, String, String)>,
    /// Inline comments: (path, line, body).
    pub inline: Vec<(String, u64, String)>,
    /// Reviews (GitHub) posted, whole.
    pub reviews: Vec<Value>,
    /// Lines inline comments may be on: (path, line).
    pub commentable: BTreeSet<(String, u64)>,
    /// Answer every write with 403.
    pub read_only: bool,
    /// Answer 401 with a message that echoes the credentials it got.
    pub echo_token: bool,
}

pub struct Forge {
    pub server: MockServer,
    pub state: Arc<Mutex<State>>,
    pub token: String,
}

pub const HEAD_SHA: &str = "1111111111111111111111111111111111111111";
pub const BASE_SHA: &str = "2222222222222222222222222222222222222222";
pub const START_SHA: &str = "3333333333333333333333333333333333333333";

impl Forge {
    pub fn log(&self) -> Vec<Seen> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn writes(&self) -> Vec<Seen> {
        self.log().into_iter().filter(|s| s.method != "GET").collect()
    }

    pub fn comments(&self) -> Vec<(u64, String, String)> {
        self.state.lock().unwrap().comments.clone()
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    /// Adds someone else's comments (to be skipped by the marker search).
    pub fn add_foreign_comments(&self, n: usize) {
        let mut state = self.state.lock().unwrap();
        for i in 0..n {
            state.next_id += 1;
            let id = state.next_id;
            state.comments.push((id, format!("LGTM {i}"), "someone".into()));
        }
    }
}

fn seen(request: &Request) -> Seen {
    Seen {
        method: request.method.to_string(),
        path: request.url.path().to_owned(),
        query: request.url.query().unwrap_or("").to_owned(),
        headers: request
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: serde_json::from_slice(&request.body).unwrap_or(Value::Null),
    }
}

fn query(seen: &Seen, key: &str) -> Option<usize> {
    seen.query.split('&').find_map(|kv| kv.strip_prefix(&format!("{key}="))?.parse().ok())
}

fn page<T: Clone>(items: &[T], seen: &Seen) -> Vec<T> {
    let per_page = query(seen, "per_page").unwrap_or(30);
    let page = query(seen, "page").unwrap_or(1).max(1);
    items.iter().skip((page - 1) * per_page).take(per_page).cloned().collect()
}

/// The body must be an object with exactly these string keys (`body` etc.).
fn only_body(seen: &Seen) -> Option<String> {
    let object = seen.body.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get("body")?.as_str().map(str::to_owned)
}

fn error(status: u16, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({ "message": message }))
}

struct GithubResponder {
    state: Arc<Mutex<State>>,
    token: String,
    repo: String,
    number: u64,
}

impl Respond for GithubResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let s = seen(request);
        let mut state = self.state.lock().unwrap();
        state.log.push(s.clone());
        if s.headers.get("user-agent").is_none_or(String::is_empty) {
            return error(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            );
        }
        let auth = s.headers.get("authorization").cloned().unwrap_or_default();
        if auth != format!("Bearer {}", self.token) {
            if state.echo_token {
                return error(401, &format!("Bad credentials: got {auth}"));
            }
            return error(401, "Bad credentials");
        }
        if s.headers.get("accept").map(String::as_str) != Some("application/vnd.github+json")
            || s.headers.get("x-github-api-version").map(String::as_str) != Some("2022-11-28")
        {
            return error(400, "missing Accept or X-GitHub-Api-Version");
        }
        if state.read_only && s.method != "GET" {
            return error(403, "Resource not accessible by integration");
        }
        let issue = format!("/repos/{}/issues/{}/comments", self.repo, self.number);
        let edit = format!("/repos/{}/issues/comments/", self.repo);
        let pull_comments = format!("/repos/{}/pulls/{}/comments", self.repo, self.number);
        let reviews = format!("/repos/{}/pulls/{}/reviews", self.repo, self.number);
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", p) if p == issue => {
                let all: Vec<Value> = state
                    .comments
                    .iter()
                    .map(|(id, body, user)| json!({ "id": id, "body": body, "user": { "login": user } }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(page(&all, &s))
            }
            ("POST", p) if p == issue => {
                let Some(body) = only_body(&s) else { return error(422, "Invalid request: body") };
                state.next_id += 1;
                let id = state.next_id;
                state.comments.push((id, body.clone(), "github-actions[bot]".into()));
                ResponseTemplate::new(201).set_body_json(json!({
                    "id": id, "body": body,
                    "html_url": format!("https://example.invalid/{}/pull/{}#issuecomment-{id}", self.repo, self.number),
                }))
            }
            ("PATCH", p) if p.starts_with(&edit) => {
                let Ok(id) = p[edit.len()..].parse::<u64>() else { return error(404, "Not Found") };
                let Some(body) = only_body(&s) else { return error(422, "Invalid request: body") };
                let Some(comment) = state.comments.iter_mut().find(|c| c.0 == id) else {
                    return error(404, "Not Found");
                };
                comment.1.clone_from(&body);
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": id, "body": body,
                    "html_url": format!("https://example.invalid/{}/pull/{}#issuecomment-{id}", self.repo, self.number),
                }))
            }
            ("GET", p) if p == pull_comments => {
                let all: Vec<Value> = state
                    .inline
                    .iter()
                    .map(|(path, line, body)| json!({ "path": path, "line": line, "body": body }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(page(&all, &s))
            }
            ("POST", p) if p == reviews => {
                let b = &s.body;
                if b["commit_id"] != json!(HEAD_SHA) {
                    return error(422, "Unprocessable Entity: commit_id is not part of the pull request");
                }
                if b["event"] != json!("COMMENT") || !b["body"].is_string() {
                    return error(422, "Unprocessable Entity: event");
                }
                let Some(comments) = b["comments"].as_array() else { return error(422, "comments") };
                let mut accepted = Vec::new();
                for c in comments {
                    let (Some(path), Some(line), Some(body)) =
                        (c["path"].as_str(), c["line"].as_u64(), c["body"].as_str())
                    else {
                        return error(422, "Unprocessable Entity: comment fields");
                    };
                    if c["side"] != json!("RIGHT") || !state.commentable.contains(&(path.to_owned(), line)) {
                        return ResponseTemplate::new(422).set_body_json(json!({
                            "message": "Unprocessable Entity",
                            "errors": ["Line could not be resolved"],
                        }));
                    }
                    accepted.push((path.to_owned(), line, body.to_owned()));
                }
                state.inline.extend(accepted);
                state.reviews.push(b.clone());
                state.next_id += 1;
                ResponseTemplate::new(200).set_body_json(json!({ "id": state.next_id, "state": "COMMENTED" }))
            }
            _ => error(404, "Not Found"),
        }
    }
}

/// A GitHub stand-in for `octo/widgets` pull request 7, accepting `token`.
pub async fn github(token: &str) -> Forge {
    let server = MockServer::start().await;
    let state = Arc::new(Mutex::new(State::default()));
    Mock::given(any())
        .respond_with(GithubResponder {
            state: state.clone(),
            token: token.to_owned(),
            repo: "octo/widgets".into(),
            number: 7,
        })
        .mount(&server)
        .await;
    Forge { server, state, token: token.to_owned() }
}

struct GitlabResponder {
    state: Arc<Mutex<State>>,
    token: String,
    header: &'static str,
    project: String,
    iid: u64,
}

impl Respond for GitlabResponder {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let s = seen(request);
        let mut state = self.state.lock().unwrap();
        state.log.push(s.clone());
        if s.headers.get(self.header).map(String::as_str) != Some(self.token.as_str()) {
            return ResponseTemplate::new(401).set_body_json(json!({ "message": "401 Unauthorized" }));
        }
        if state.read_only && s.method != "GET" {
            return ResponseTemplate::new(403).set_body_json(json!({ "message": "403 Forbidden" }));
        }
        let mr = format!("/api/v4/projects/{}/merge_requests/{}", self.project, self.iid);
        let notes = format!("{mr}/notes");
        let discussions = format!("{mr}/discussions");
        match (s.method.as_str(), s.path.as_str()) {
            ("GET", p) if p == mr => ResponseTemplate::new(200).set_body_json(json!({
                "iid": self.iid,
                "diff_refs": { "base_sha": BASE_SHA, "start_sha": START_SHA, "head_sha": HEAD_SHA },
            })),
            ("GET", p) if p == notes => {
                let all: Vec<Value> = state
                    .comments
                    .iter()
                    .map(|(id, body, user)| json!({ "id": id, "body": body, "author": { "username": user } }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(page(&all, &s))
            }
            ("POST", p) if p == notes => {
                let Some(body) = only_body(&s) else {
                    return ResponseTemplate::new(400).set_body_json(json!({ "error": "body is missing" }));
                };
                state.next_id += 1;
                let id = state.next_id;
                state.comments.push((id, body.clone(), "project_bot".into()));
                ResponseTemplate::new(201).set_body_json(json!({ "id": id, "body": body }))
            }
            ("PUT", p) if p.starts_with(&format!("{notes}/")) => {
                let Ok(id) = p[notes.len() + 1..].parse::<u64>() else {
                    return ResponseTemplate::new(404).set_body_json(json!({ "message": "404 Not found" }));
                };
                let Some(body) = only_body(&s) else {
                    return ResponseTemplate::new(400).set_body_json(json!({ "error": "body is missing" }));
                };
                let Some(note) = state.comments.iter_mut().find(|c| c.0 == id) else {
                    return ResponseTemplate::new(404)
                        .set_body_json(json!({ "message": "404 Note Not Found" }));
                };
                note.1.clone_from(&body);
                ResponseTemplate::new(200).set_body_json(json!({ "id": id, "body": body }))
            }
            ("GET", p) if p == discussions => {
                let all: Vec<Value> = state
                    .inline
                    .iter()
                    .map(|(path, line, body)| json!({ "id": format!("{path}:{line}"), "notes": [{ "body": body }] }))
                    .collect();
                ResponseTemplate::new(200).set_body_json(page(&all, &s))
            }
            ("POST", p) if p == discussions => {
                let b = &s.body;
                let pos = &b["position"];
                let ok_refs = pos["position_type"] == json!("text")
                    && pos["base_sha"] == json!(BASE_SHA)
                    && pos["start_sha"] == json!(START_SHA)
                    && pos["head_sha"] == json!(HEAD_SHA);
                let (Some(path), Some(line), Some(body)) =
                    (pos["new_path"].as_str(), pos["new_line"].as_u64(), b["body"].as_str())
                else {
                    return ResponseTemplate::new(400)
                        .set_body_json(json!({ "message": "400 Bad request - position" }));
                };
                if !ok_refs || !state.commentable.contains(&(path.to_owned(), line)) {
                    return ResponseTemplate::new(400).set_body_json(json!({
                        "message": "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}"
                    }));
                }
                state.inline.push((path.to_owned(), line, body.to_owned()));
                ResponseTemplate::new(201).set_body_json(json!({ "id": "d1", "notes": [{ "body": body }] }))
            }
            _ => ResponseTemplate::new(404).set_body_json(json!({ "message": "404 Not found" })),
        }
    }
}

/// A GitLab stand-in for project 42, merge request 3, accepting `token` in `header`
/// (`private-token` or `job-token`).
pub async fn gitlab(token: &str, header: &'static str) -> Forge {
    let server = MockServer::start().await;
    let state = Arc::new(Mutex::new(State::default()));
    Mock::given(any())
        .respond_with(GitlabResponder {
            state: state.clone(),
            token: token.to_owned(),
            header,
            project: "42".into(),
            iid: 3,
        })
        .mount(&server)
        .await;
    Forge { server, state, token: token.to_owned() }
}
