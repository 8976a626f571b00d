//! HTTP plumbing shared by every wire client: timeouts, status classification,
//! `Retry-After`, error-body extraction, bounded body reads, SSE and NDJSON framing.
//!
//! Timeouts: a connect timeout, a time-to-headers timeout and an idle timeout between body
//! chunks. There is deliberately no total timeout: a long stream that keeps producing is
//! healthy. Every error produced here is classified and has the client's secret scrubbed; a
//! request that cannot even be built (a bad base URL) is permanent, never retried.
//!
//! Line-framed bodies (SSE, NDJSON) are cut into whole lines before any parser sees them: each
//! line is bounded by [`HttpOptions::max_line_bytes`], invalid UTF-8 is a decode error as soon
//! as its line is complete (lines before it, or before an over-long line, are still
//! delivered, wherever the chunk boundaries fall), and a long line costs linear time.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use self::direct::DirectClient;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secret;

/// [`HttpOptions::http2_connection_window`]'s default: 64 MiB, room for 100,000 in-flight
/// answers of a few hundred bytes each to arrive whole.
pub const DEFAULT_HTTP2_CONNECTION_WINDOW: u32 = 64 << 20;

/// Timeouts and limits of a wire client.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// TCP/TLS connect timeout.
    pub connect_timeout: Duration,
    /// Time from sending the request to receiving response headers. For a non-streamed
    /// call this covers the whole generation, so it is generous.
    pub headers_timeout: Duration,
    /// Longest silence allowed between two body chunks.
    pub idle_timeout: Duration,
    /// Largest non-streamed body accepted.
    pub max_body_bytes: usize,
    /// Longest single SSE or NDJSON line accepted.
    pub max_line_bytes: usize,
    /// Speak HTTP/2 from the first byte on plain-text `http://` URLs (h2c with prior
    /// knowledge), multiplexing requests over few connections as HTTPS endpoints do after
    /// ALPN. Only for servers known to accept it; off by default.
    pub http2_prior_knowledge: bool,
    /// How many response bytes a server may send on one HTTP/2 connection before this client
    /// has read them (the connection's flow-control window). Every request in flight on the
    /// connection shares it: with thousands of concurrent streams a small window makes the
    /// server split answers into tiny DATA frames, which the HTTP/2 stack treats as an attack
    /// once they pile up (`GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"`) and every stream
    /// on the connection fails. A limit, not an allocation: memory is used only for bytes
    /// actually received and not yet read. Default 64 MiB (HTTP/1.1 ignores it).
    pub http2_connection_window: u32,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            headers_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(120),
            max_body_bytes: 64 << 20,
            max_line_bytes: 16 << 20,
            http2_prior_knowledge: false,
            http2_connection_window: DEFAULT_HTTP2_CONNECTION_WINDOW,
        }
    }
}

/// A provider's HTTP client: one connection pool, its options, its name and its secret.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) options: HttpOptions,
    pub(crate) provider: String,
    pub(crate) secret: Option<Secret>,
    /// The bare client for plain `http://` endpoints (see [`direct`]); `None` when a proxy
    /// or HTTP/2 with prior knowledge is in play.
    pub(crate) direct: Option<DirectClient>,
}

impl Http {
    /// A client for `provider` with these options.
    pub(crate) fn new(provider: &str, options: HttpOptions, secret: Option<Secret>) -> Self {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true)
            .http2_initial_connection_window_size(options.http2_connection_window);
        if options.http2_prior_knowledge {
            builder = builder.http2_prior_knowledge();
        }
        let client = builder
            .build()
            // Building fails only if the TLS backend cannot initialise, which is a broken
            // installation; fall back to the default client rather than panic.
            .unwrap_or_default();
        let direct = direct::client(&options);
        Self { client, options, provider: provider.to_owned(), secret, direct }
    }

    /// Scrubs this client's secret out of `text`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        match &self.secret {
            Some(s) => s.scrub(text),
            None => text.to_owned(),
        }
    }

    /// An error of `kind` for `model` with a scrubbed message.
    pub(crate) fn error(&self, kind: ErrorKind, model: &str, message: impl AsRef<str>) -> Error {
        Error::new(kind, &self.provider, model, self.scrub(message.as_ref()))
    }

    /// Sends a request, waits for headers (bounded), and turns a non-2xx status into a
    /// classified error that carries the status, `Retry-After` and the provider's message.
    pub(crate) async fn send(
        &self,
        model: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let response = match tokio::time::timeout(self.options.headers_timeout, request.send()).await {
            Err(_) => return Err(self.headers_timeout_error(model)),
            Ok(Err(e)) => return Err(self.transport_error(model, &e)),
            Ok(Ok(r)) => r,
        };
        self.check(model, response).await
    }

    /// The error of an answer whose headers did not come within the timeout.
    pub(crate) fn headers_timeout_error(&self, model: &str) -> Error {
        self.error(
            ErrorKind::Transient,
            model,
            format!("timed out after {:?} waiting for response headers", self.options.headers_timeout),
        )
    }

    /// Passes a 2xx answer on; turns any other status into a classified error that carries
    /// the status, `Retry-After` and the provider's message.
    async fn check(&self, model: &str, response: reqwest::Response) -> Result<reqwest::Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = parse_retry_after(response.headers(), SystemTime::now());
        // Error bodies are small; cap what we read and do not wait forever for it.
        let body = self.read_body(model, response, ERROR_BODY_LIMIT).await.unwrap_or_default();
        Err(self.status_error(model, status.as_u16(), retry_after, &body))
    }

    /// Maps a reqwest transport error to a classified error with the underlying cause. A
    /// refused connection is marked as such ([`Error::connection_refused`]). A request that
    /// could not even be built (a base URL that is not an absolute `http(s)` URL) is
    /// [`ErrorKind::Permanent`]: it never left the process, and trying again cannot help.
    pub(crate) fn transport_error(&self, model: &str, e: &reqwest::Error) -> Error {
        let (cause, refused) = error_chain(e);
        if e.is_builder() {
            return self.error(ErrorKind::Permanent, model, format!("the request cannot be built: {cause}"));
        }
        let what = if e.is_connect() {
            "connect failed"
        } else if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "response body failed"
        } else {
            "request failed"
        };
        let error = self.error(ErrorKind::Transient, model, format!("{what}: {cause}"));
        if refused && e.is_connect() { error.with_connection_refused() } else { error }
    }

    /// Reads a whole body with the idle timeout between chunks, failing past `limit` bytes.
    /// A body that arrives in one chunk (the usual answer) is returned as that chunk, not
    /// copied.
    pub(crate) async fn read_body(
        &self,
        model: &str,
        mut response: reqwest::Response,
        limit: usize,
    ) -> Result<Bytes> {
        let idle = self.options.idle_timeout;
        let mut body = BodyBuf::default();
        loop {
            // A timer per chunk, as for streams: the idle timeout bounds the silence between
            // two chunks, not the whole body. A chunk that is already there makes no timer at all.
            let chunk = match crate::clock::within(idle, response.chunk()).await {
                Err(_) => return Err(self.idle_error(model)),
                Ok(Err(e)) => return Err(self.transport_error(model, &e)),
                Ok(Ok(None)) => return Ok(body.finish()),
                Ok(Ok(Some(chunk))) => chunk,
            };
            if !body.push(chunk, limit) {
                return Err(self.body_limit_error(model, limit));
            }
        }
    }

    /// The error of a body larger than `limit`.
    pub(crate) fn body_limit_error(&self, model: &str, limit: usize) -> Error {
        self.error(ErrorKind::Decode, model, format!("response body exceeds {limit} bytes"))
    }

    /// The error of a body that stayed silent past the idle timeout.
    pub(crate) fn idle_error(&self, model: &str) -> Error {
        let idle = self.options.idle_timeout;
        self.error(ErrorKind::Transient, model, format!("no data for {idle:?} (idle timeout)"))
    }

    /// Reads and decodes a JSON body.
    pub(crate) async fn read_json<T: DeserializeOwned>(
        &self,
        model: &str,
        response: reqwest::Response,
    ) -> Result<T> {
        let body = self.read_body(model, response, self.options.max_body_bytes).await?;
        serde_json::from_slice(&body).map_err(|e| {
            self.error(
                ErrorKind::Decode,
                model,
                format!("invalid JSON response ({e}); body starts: {}", preview(&body)),
            )
        })
    }

    /// The body as a stream of chunks, each awaited with the idle timeout (see
    /// [`BodyStream`]). The stream ends after its first error.
    pub(crate) fn body_stream(&self, model: &str, response: reqwest::Response) -> BodyStream {
        BodyStream {
            inner: Some(Box::pin(response.bytes_stream())),
            http: self.clone(),
            model: model.to_owned(),
            waiting_since: None,
            timer: None,
        }
    }

    /// The body cut into whole lines (see [`lines::LineSplitter`]): each item is one or more
    /// complete lines, valid UTF-8; the last item may be a final line without its end. A line
    /// past `max_line_bytes` or invalid UTF-8 is a decode error, after which the stream ends.
    fn line_chunks(
        &self,
        model: &str,
        response: reqwest::Response,
        ends: &'static [u8],
    ) -> impl Stream<Item = Result<String>> + Send + use<> {
        let body = self.body_stream(model, response);
        let splitter = lines::LineSplitter::new(ends, self.options.max_line_bytes);
        // State: the body, whether it has ended, and the splitter; `None` after an error. The
        // body carries the client's context, for the errors found here too.
        futures::stream::unfold(Some((body, false, splitter)), |state| async move {
            let (mut body, mut ended, mut splitter) = state?;
            loop {
                // An error found after the lines handed out last comes before more I/O.
                let step = match splitter.check() {
                    Err(e) => Err(e),
                    Ok(()) if ended => return None,
                    Ok(()) => match body.next().await {
                        Some(Ok(bytes)) => splitter.push(&bytes),
                        Some(Err(e)) => return Some((Err(e), None)),
                        None => {
                            ended = true;
                            splitter.finish()
                        }
                    },
                };
                let message = match step {
                    Ok(Some(text)) => return Some((Ok(text), Some((body, ended, splitter)))),
                    Ok(None) => continue,
                    Err(lines::LineError::TooLong) => {
                        format!("a line exceeds {} bytes", body.http.options.max_line_bytes)
                    }
                    Err(lines::LineError::Utf8(e)) => format!("invalid UTF-8 in the response stream: {e}"),
                };
                return Some((Err(body.http.error(ErrorKind::Decode, &body.model, message)), None));
            }
        })
    }

    /// Server-sent events from the body. Each item is one event's `(event name, data)`.
    /// Invalid UTF-8 or framing is a decode error; transport failures are transient.
    pub(crate) fn sse(
        &self,
        model: &str,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<(String, String)>> + Send + use<> {
        let this = self.clone();
        let model = model.to_owned();
        // eventsource-stream wants a transport error type; carry ours through it.
        let body = self.line_chunks(&model, response, b"\r\n").map(|r| r.map_err(TransportError));
        let mut stopped = false;
        body.eventsource().filter_map(move |item| {
            let out = if stopped {
                None
            } else {
                match item {
                    Ok(ev) => Some(Ok((ev.event, ev.data))),
                    Err(eventsource_stream::EventStreamError::Transport(TransportError(e))) => {
                        stopped = true;
                        Some(Err(e))
                    }
                    Err(eventsource_stream::EventStreamError::Utf8(e)) => {
                        stopped = true;
                        Some(Err(this.error(
                            ErrorKind::Decode,
                            &model,
                            format!("invalid UTF-8 in event stream: {e}"),
                        )))
                    }
                    Err(eventsource_stream::EventStreamError::Parser(e)) => {
                        stopped = true;
                        Some(Err(this.error(
                            ErrorKind::Decode,
                            &model,
                            format!("malformed event stream: {e}"),
                        )))
                    }
                }
            };
            futures::future::ready(out)
        })
    }

    /// Newline-delimited lines from the body (NDJSON), each at most `max_line_bytes`.
    /// Empty lines are skipped; a final line without a newline is yielded too.
    pub(crate) fn lines(
        &self,
        model: &str,
        response: reqwest::Response,
    ) -> impl Stream<Item = Result<Vec<u8>>> + Send + use<> {
        let chunks = Box::pin(self.line_chunks(model, response, b"\n"));
        futures::stream::unfold(Some((chunks, VecDeque::<Vec<u8>>::new())), |state| async move {
            let (mut chunks, mut queue) = state?;
            loop {
                if let Some(line) = queue.pop_front() {
                    return Some((Ok(line), Some((chunks, queue))));
                }
                match chunks.next().await {
                    Some(Ok(text)) => {
                        for line in text.as_bytes().split(|&b| b == b'\n') {
                            let line = line.strip_suffix(b"\r").unwrap_or(line);
                            if !line.iter().all(u8::is_ascii_whitespace) {
                                queue.push_back(line.to_vec());
                            }
                        }
                    }
                    Some(Err(e)) => return Some((Err(e), None)),
                    None => return None,
                }
            }
        })
    }
}

/// A response body as a stream of chunks with an idle timeout between them: the wait for
/// each chunk is bounded by [`HttpOptions::idle_timeout`], counted from the moment the chunk
/// is asked for (a consumer that is slow between chunks never causes a timeout). One timer
/// per body, armed only when a chunk is not already there and moved for each later wait; the
/// client's context is cloned once per body, for the error should one come. After an error
/// the stream ends.
pub(crate) struct BodyStream {
    inner: Option<Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>>,
    http: Http,
    model: String,
    /// When the wait for the next chunk began (`None` between a chunk and the next poll).
    waiting_since: Option<tokio::time::Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stream for BodyStream {
    type Item = Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        let since = *this.waiting_since.get_or_insert_with(tokio::time::Instant::now);
        let item = match inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.waiting_since = None;
                return Poll::Ready(Some(Ok(bytes)));
            }
            Poll::Ready(None) => None,
            Poll::Ready(Some(Err(e))) => Some(Err(this.http.transport_error(&this.model, &e))),
            Poll::Pending => {
                let deadline = since + this.http.options.idle_timeout;
                let timer = match &mut this.timer {
                    Some(timer) => {
                        if timer.deadline() != deadline {
                            timer.as_mut().reset(deadline);
                        }
                        timer
                    }
                    None => this.timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                match timer.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(()) => Some(Err(this.http.idle_error(&this.model))),
                }
            }
        };
        this.inner = None;
        this.timer = None;
        Poll::Ready(item)
    }
}

/// Wrapper so our error can travel through eventsource-stream's transport slot.
#[derive(Debug)]
struct TransportError(Error);

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportError {}

/// Classifies an HTTP status (with the provider's message, for servers that report an
/// unknown model as a 400).
pub fn classify_status(status: u16, message: &str) -> ErrorKind {
    match status {
        408 | 425 | 429 | 500..=599 => ErrorKind::Transient,
        404 => ErrorKind::NotFound,
        400..=499 if mentions_unknown_model(message) => ErrorKind::NotFound,
        _ => ErrorKind::Permanent,
    }
}

fn mentions_unknown_model(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("model")
        && (m.contains("not found")
            || m.contains("does not exist")
            || m.contains("could not find")
            || m.contains("unknown model")
            || m.contains("no such model"))
}

/// Parses `retry-after-ms` (milliseconds), then `Retry-After` as seconds or an HTTP date
/// (relative to `now`). A date in the past means "now".
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = headers.get("retry-after-ms").and_then(|v| v.to_str().ok())
        && let Ok(ms) = ms.trim().parse::<f64>()
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Extracts the most useful message from an error body in any provider's shape:
/// `{"error":{"message":..}}`, `{"error":"..."}` (with a `message` beside it, both),
/// `{"message":..}`, `[{"error":{..}}]`, or
/// the raw body's start.
pub fn error_message(body: &[u8]) -> String {
    fn from_value(v: &serde_json::Value) -> Option<String> {
        match v {
            serde_json::Value::Array(items) => items.iter().find_map(from_value),
            serde_json::Value::Object(map) => {
                if let Some(err) = map.get("error") {
                    match err {
                        // stable-diffusion.cpp's `{"error": "server_error", "message": "..."}`.
                        serde_json::Value::String(s) => {
                            return Some(match map.get("message").and_then(|m| m.as_str()) {
                                Some(m) if !m.is_empty() => format!("{s}: {m}"),
                                _ => s.clone(),
                            });
                        }
                        serde_json::Value::Object(inner) => {
                            let msg = inner.get("message").and_then(|m| m.as_str());
                            let typ =
                                inner.get("type").or_else(|| inner.get("status")).and_then(|t| t.as_str());
                            return match (typ, msg) {
                                (Some(t), Some(m)) => Some(format!("{t}: {m}")),
                                (None, Some(m)) => Some(m.to_owned()),
                                _ => Some(err.to_string()),
                            };
                        }
                        _ => {}
                    }
                }
                map.get("message").and_then(|m| m.as_str()).map(str::to_owned)
            }
            _ => None,
        }
    }
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(m) = from_value(&v)
    {
        return m;
    }
    preview(body)
}

/// The first 300 characters of a body, lossily decoded, for error messages.
pub(crate) fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(1200)]);
    let mut out: String = text.chars().take(300).collect();
    if text.chars().count() > 300 || body.len() > 1200 {
        out.push('…');
    }
    out
}

/// Joins a base URL and a path with exactly one slash between them.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

/// How much of a non-2xx answer's body is read for its error message.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 << 10;

/// A body read chunk by chunk under a limit. The usual body is one chunk: it is kept as it
/// came, not copied.
#[derive(Default)]
pub(crate) struct BodyBuf {
    first: Option<Bytes>,
    rest: Vec<u8>,
}

impl BodyBuf {
    /// Adds `chunk`; `false` (and nothing added) when the body would exceed `limit` bytes.
    pub(crate) fn push(&mut self, chunk: Bytes, limit: usize) -> bool {
        let held = self.first.as_ref().map_or(0, Bytes::len) + self.rest.len();
        if held + chunk.len() > limit {
            return false;
        }
        match self.first.take() {
            None if self.rest.is_empty() => self.first = Some(chunk),
            None => self.rest.extend_from_slice(&chunk),
            Some(earlier) => {
                self.rest.extend_from_slice(&earlier);
                self.rest.extend_from_slice(&chunk);
            }
        }
        true
    }

    /// The whole body.
    pub(crate) fn finish(self) -> Bytes {
        self.first.unwrap_or_else(|| Bytes::from(self.rest))
    }
}

pub(crate) mod direct;
mod inline;
mod lines;

/// An error's cause chain as one line (each distinct message once, joined by `": "`), and
/// whether an I/O error in it is a refused connection.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> (String, bool) {
    let mut cause = String::new();
    let mut refused = false;
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            refused |= io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        let text = s.to_string();
        if !cause.contains(&text) {
            if !cause.is_empty() {
                cause.push_str(": ");
            }
            cause.push_str(&text);
        }
        source = s.source();
    }
    (cause, refused)
}

#[cfg(test)]
mod tests;
