//! [`HostClient`]: the management calls the fleet makes to one llama-swap host.
//!
//! Every call sends the host's key (if any) as `Authorization: Bearer`, asks for JSON, reads
//! bodies up to a bound, and maps failures to [`FleetError`] variants naming the host and the
//! route, with the message from either of llama-swap's error shapes. The key never appears in
//! an error: reqwest's errors are reduced to their kind and the URL's path.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::json;

use crate::config::HostSpec;
use crate::error::FleetError;
use crate::wire::{ActivityPage, PerfReport, decode_body, error_message};

/// The largest management response body read (activity pages, perf windows).
pub const MAX_BODY: usize = 32 << 20;

/// Activity rows asked for per page (llama-swap accepts 1–999).
pub const ACTIVITY_PAGE: u32 = 500;

/// A client for one host.
#[derive(Debug, Clone)]
pub struct HostClient {
    spec: HostSpec,
    http: reqwest::Client,
    timeout: Duration,
}

/// What `/api/performance` answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Perf {
    /// Samples (possibly none).
    Report(PerfReport),
    /// The host has performance monitoring off (503 `{"enabled":false}`).
    Disabled,
}

/// Describes a reqwest error without its URL's query or credentials.
pub(crate) fn transport(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the body broke off"
    } else if e.is_request() {
        "the request failed"
    } else {
        "transport error"
    };
    // The source chain holds e.g. "Connection refused"; it never holds the headers.
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { what.to_owned() } else { format!("{what}: {detail}") }
}

impl HostClient {
    /// A client for `spec` on a shared reqwest client; `timeout` bounds each management call.
    pub fn new(spec: HostSpec, http: reqwest::Client, timeout: Duration) -> Self {
        Self { spec, http, timeout }
    }

    /// The host's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The host's spec.
    pub fn spec(&self) -> &HostSpec {
        &self.spec
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// `{base}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.spec.base_url, path.trim_start_matches('/'))
    }

    /// A request with the key and `Accept: application/json`.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut b =
            self.http.request(method, self.url(path)).header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &self.spec.key {
            b = b.bearer_auth(key.expose());
        }
        b
    }

    fn transport(&self, route: &str, e: &reqwest::Error) -> FleetError {
        FleetError::Transport { host: self.spec.name.clone(), route: route.to_owned(), message: transport(e) }
    }

    /// Sends `builder` (with the call timeout) and reads the body, bounded.
    async fn call(
        &self,
        route: &str,
        builder: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), FleetError> {
        let response = builder.timeout(self.timeout).send().await.map_err(|e| self.transport(route, &e))?;
        let status = response.status().as_u16();
        let body = read_bounded(response, MAX_BODY).await.map_err(|e| match e {
            ReadError::Transport(e) => self.transport(route, &e),
            ReadError::TooLarge => FleetError::Transport {
                host: self.spec.name.clone(),
                route: route.to_owned(),
                message: format!("the body is larger than {MAX_BODY} bytes"),
            },
        })?;
        Ok((status, body))
    }

    fn status_error(&self, route: &str, status: u16, body: &[u8]) -> FleetError {
        FleetError::Host {
            host: self.spec.name.clone(),
            route: route.to_owned(),
            status,
            message: error_message(body),
        }
    }

    /// Opens `GET /api/events` (no call timeout: the stream lives as long as the host).
    ///
    /// # Errors
    /// [`FleetError::Transport`] or [`FleetError::Host`] (a status other than 200).
    pub async fn events(&self) -> Result<reqwest::Response, FleetError> {
        const ROUTE: &str = "/api/events";
        let b = self
            .request(reqwest::Method::GET, "api/events")
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response = b.send().await.map_err(|e| self.transport(ROUTE, &e))?;
        let status = response.status().as_u16();
        if status != 200 {
            let body = read_bounded(response, 64 << 10).await.unwrap_or_default();
            return Err(self.status_error(ROUTE, status, &body));
        }
        Ok(response)
    }

    /// One page of activity rows with `id >= min_id`, oldest first (hosts that ignore
    /// `sort`/`order` answer newest first: the caller sorts).
    ///
    /// # Errors
    /// [`FleetError::Host`] (a 404 means the host predates the activity API),
    /// [`FleetError::Transport`], [`FleetError::Wire`].
    pub async fn activity(&self, min_id: u64, page: u32) -> Result<ActivityPage, FleetError> {
        const ROUTE: &str = "/api/metrics/activity";
        let mut path =
            format!("api/metrics/activity?limit={ACTIVITY_PAGE}&page={}&sort=id&order=asc", page.max(1));
        if min_id > 0 {
            path.push_str(&format!("&min_id={min_id}"));
        }
        let (status, body) = self.call(ROUTE, self.request(reqwest::Method::GET, &path)).await?;
        if status != 200 {
            return Err(self.status_error(ROUTE, status, &body));
        }
        decode_body(ROUTE, &body).map_err(|source| FleetError::Wire { host: self.spec.name.clone(), source })
    }

    /// The newest activity row id the host has (`None` when it has none).
    ///
    /// # Errors
    /// As [`HostClient::activity`].
    pub async fn newest_activity_id(&self) -> Result<Option<u64>, FleetError> {
        const ROUTE: &str = "/api/metrics/activity";
        let path = "api/metrics/activity?limit=1&page=1&sort=id&order=desc";
        let (status, body) = self.call(ROUTE, self.request(reqwest::Method::GET, path)).await?;
        if status != 200 {
            return Err(self.status_error(ROUTE, status, &body));
        }
        let page: ActivityPage = decode_body(ROUTE, &body)
            .map_err(|source| FleetError::Wire { host: self.spec.name.clone(), source })?;
        Ok(page.data.iter().map(|r| r.id).max())
    }

    /// `GET /api/performance?after=...`.
    ///
    /// # Errors
    /// [`FleetError::Host`], [`FleetError::Transport`], [`FleetError::Wire`].
    pub async fn performance(&self, after: Option<DateTime<Utc>>) -> Result<Perf, FleetError> {
        const ROUTE: &str = "/api/performance";
        // RFC 3339 in UTC with `Z` and whole seconds: nothing in it needs escaping in a query.
        // llama-swap keeps samples strictly after `after`, and its timestamps carry fractions,
        // so whole seconds re-read at most the samples of that second (stored once).
        let path = match after {
            Some(after) => {
                format!("api/performance?after={}", after.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            None => "api/performance".to_owned(),
        };
        let (status, body) = self.call(ROUTE, self.request(reqwest::Method::GET, &path)).await?;
        if status == 503 {
            return Ok(Perf::Disabled);
        }
        if status != 200 {
            return Err(self.status_error(ROUTE, status, &body));
        }
        let report: PerfReport = decode_body(ROUTE, &body)
            .map_err(|source| FleetError::Wire { host: self.spec.name.clone(), source })?;
        Ok(if report.enabled { Perf::Report(report) } else { Perf::Disabled })
    }

    /// Stops one model (`POST /api/models/unload/{model}`).
    ///
    /// # Errors
    /// [`FleetError::Host`] (404 for a model the host does not know), [`FleetError::Transport`].
    pub async fn unload(&self, model: &str) -> Result<(), FleetError> {
        const ROUTE: &str = "/api/models/unload/{model}";
        let path = model_path(model).map_err(|reason| FleetError::Host {
            host: self.spec.name.clone(),
            route: ROUTE.into(),
            status: 400,
            message: reason,
        })?;
        let (status, body) = self
            .call(ROUTE, self.request(reqwest::Method::POST, &format!("api/models/unload/{path}")))
            .await?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(ROUTE, status, &body));
        }
        Ok(())
    }

    /// Stops every model (`POST /api/models/unload`).
    ///
    /// # Errors
    /// [`FleetError::Host`], [`FleetError::Transport`].
    pub async fn unload_all(&self) -> Result<(), FleetError> {
        const ROUTE: &str = "/api/models/unload";
        let (status, body) =
            self.call(ROUTE, self.request(reqwest::Method::POST, "api/models/unload")).await?;
        if !(200..300).contains(&status) {
            return Err(self.status_error(ROUTE, status, &body));
        }
        Ok(())
    }

    /// Loads a model by asking it for one token (`POST /v1/chat/completions`): llama-swap
    /// starts the model's server on demand. `timeout` bounds the whole load.
    ///
    /// # Errors
    /// [`FleetError::Host`], [`FleetError::Transport`].
    pub async fn warm(&self, model: &str, timeout: Duration) -> Result<(), FleetError> {
        const ROUTE: &str = "/v1/chat/completions";
        let body = json!({
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 1,
            "stream": false,
        });
        let b = self.request(reqwest::Method::POST, "v1/chat/completions").json(&body).timeout(timeout);
        let response = b.send().await.map_err(|e| self.transport(ROUTE, &e))?;
        let status = response.status().as_u16();
        let body = read_bounded(response, 1 << 20).await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(self.status_error(ROUTE, status, &body));
        }
        Ok(())
    }
}

/// A model id as a URL path: `/` and `:` stay, the rest outside the unreserved set is
/// percent-encoded; `.`/`..` segments are refused (they would resolve into another route).
pub(crate) fn model_path(model: &str) -> Result<String, String> {
    if model.is_empty() {
        return Err("empty model id".into());
    }
    if model.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("model id {model:?} has a `.` or `..` path segment"));
    }
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

pub(crate) enum ReadError {
    Transport(reqwest::Error),
    TooLarge,
}

/// Reads a body up to `max` bytes.
pub(crate) async fn read_bounded(response: reqwest::Response, max: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
