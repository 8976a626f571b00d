//! Whole answers over plain-`http://` HTTP/1.1 connections that the asking task drives itself.
//!
//! hyper-util's pooled client runs every connection as a task of its own and reaches it
//! through channels: a request hands its message to that task and is woken by it with the
//! answer, so every request switches tasks twice and crosses two channels (on a loaded gateway
//! about 1-1.5 us of CPU per request; see BENCHMARKS.md). A whole answer (a non-streamed call:
//! a gateway's plain request, an agent's step) needs none of that: here the task that asks
//! polls the connection itself until the answer's last byte is in, then puts the connection
//! back. Streams keep the pooled client: their body is read long after the call returns.
//!
//! The pool ([`Pool`], one per endpoint): idle connections, the most recently used first (its
//! buffers and socket warm), at most [`MAX_IDLE`], none older than [`IDLE_TIMEOUT`] (as the
//! pooled client's); expired ones are closed whenever the pool is used. A connection goes back
//! only when its answer was read to the end and it is ready for another request. One the
//! server closed while it sat idle is noticed when taken (polled once: the close is read) and
//! dropped. A request on a reused connection that the server closed before the request was
//! written is sent once more on a fresh connection, as the pooled client does; a request the
//! server may have received is never sent again here (the chain's failover decides that).
//!
//! Everything else is the same as on the pooled client: the connect timeout and
//! `TCP_NODELAY`, the time-to-headers timeout, the idle timeout between two chunks of the
//! body, the body limit, the classified errors (a refused connection marked), and a redirect
//! handed back to the caller (reqwest follows it).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::direct::DirectTarget;
use super::{ERROR_BODY_LIMIT, Http};
use crate::error::{Error, ErrorKind, Result};

/// Idle connections kept per endpoint.
pub(crate) const MAX_IDLE: usize = 256;

/// How long a connection may sit idle before it is closed.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type Conn = Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One HTTP/1.1 connection: the handle requests are sent through and the connection state
/// machine that the asking task polls.
struct Link {
    send: SendRequest<Full<Bytes>>,
    conn: Conn,
}

struct Idle {
    /// Boxed: a connection's state is about 900 bytes, and it moves in and out of the pool
    /// on every request.
    link: Box<Link>,
    since: Instant,
}

/// The idle connections of one endpoint.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<VecDeque<Idle>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("idle", &self.idle_count()).finish()
    }
}

impl Pool {
    /// Idle connections held now.
    pub(crate) fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The most recently used idle connection that is still open, closing expired ones.
    fn take(&self, now: Instant) -> Option<Box<Link>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut idle, now);
        while let Some(mut entry) = idle.pop_back() {
            if entry.link.send.is_closed() || entry.link.poll_once().is_ready() {
                // The server closed it (or it failed) while idle.
                continue;
            }
            return Some(entry.link);
        }
        None
    }

    /// Puts `link` back if it can carry another request.
    fn put(&self, mut link: Box<Link>, now: Instant) {
        // Lets the connection take in the end of the answer and become ready again.
        if link.poll_once().is_ready() || !link.send.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        expire(&mut idle, now);
        if idle.len() >= MAX_IDLE {
            // The oldest goes: the most recently used ones are the warm ones.
            idle.pop_front();
        }
        idle.push_back(Idle { link, since: now });
    }
}

/// Drops the connections idle for longer than [`IDLE_TIMEOUT`] (the oldest are at the front).
fn expire(idle: &mut VecDeque<Idle>, now: Instant) {
    while idle.front().is_some_and(|entry| now.saturating_duration_since(entry.since) > IDLE_TIMEOUT) {
        idle.pop_front();
    }
}

impl Link {
    /// Polls the connection once without a waker: `Ready` when it has ended.
    fn poll_once(&mut self) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(&mut self.conn).poll(&mut cx).map(|_| ())
    }

    /// Polls `work` and the connection together until `work` is done; `Err` when the
    /// connection ends first (with its error, if it had one).
    async fn drive<F: Future + Unpin>(&mut self, mut work: F) -> std::result::Result<F::Output, Ended> {
        std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = Pin::new(&mut work).poll(cx) {
                return Poll::Ready(Ok(out));
            }
            match Pin::new(&mut self.conn).poll(cx) {
                Poll::Pending => Poll::Pending,
                // The connection ended: `work` may still have its last word (the answer or
                // the error hyper handed it while closing).
                Poll::Ready(ended) => match Pin::new(&mut work).poll(cx) {
                    Poll::Ready(out) => Poll::Ready(Ok(out)),
                    Poll::Pending => Poll::Ready(Err(Ended(ended.err()))),
                },
            }
        })
        .await
    }
}

/// A connection that ended before the work driven on it was done.
struct Ended(Option<hyper::Error>);

impl Ended {
    fn describe(&self) -> String {
        match &self.0 {
            Some(e) => super::error_chain(e).0,
            None => "the server closed the connection".to_owned(),
        }
    }
}

/// How the request went out.
enum Sent {
    Answer(hyper::Response<Incoming>),
    /// Never written: the reused connection had closed (the request is handed back).
    NotSent(hyper::Request<Full<Bytes>>),
}

impl Http {
    /// POSTs `body` to `target` on a connection this task drives, and reads the whole answer
    /// (at most [`super::HttpOptions::max_body_bytes`]). `Ok(None)`: the server answered with a
    /// redirect, which the caller re-sends through reqwest. A non-2xx status is the classified
    /// error [`Http::check`] makes.
    pub(crate) async fn answer_inline(
        &self,
        model: &str,
        target: &DirectTarget,
        body: Bytes,
    ) -> Result<Option<Bytes>> {
        let pool = target.pool();
        let mut request = target.post_origin(body, "*/*");
        // A pooled connection first; a fresh one when there is none, or when the pooled one
        // turned out closed before the request could be written.
        let mut reused = pool.take(Instant::now());
        let (mut link, head) = loop {
            let fresh = reused.is_none();
            let mut link = match reused.take() {
                Some(link) => link,
                None => self.connect(model, target).await?,
            };
            match self.send_on(model, &mut link, request).await? {
                Sent::Answer(head) => break (link, head),
                Sent::NotSent(back) if !fresh => request = back,
                Sent::NotSent(_) => {
                    return Err(self.error(
                        ErrorKind::Transient,
                        model,
                        "request failed: the server closed a new connection before the request was sent",
                    ));
                }
            }
        };
        let status = head.status();
        if status.is_redirection() {
            return Ok(None);
        }
        let (parts, mut incoming) = head.into_parts();
        let limit = if status.is_success() { self.options.max_body_bytes } else { ERROR_BODY_LIMIT };
        let read = self.read_inline(model, &mut link, &mut incoming, limit).await;
        let answer = match read {
            Ok(answer) => answer,
            Err(error) if status.is_success() => return Err(error),
            // An error body that cannot be read whole still makes the status's error.
            Err(_) => Bytes::new(),
        };
        drop(incoming);
        if !status.is_success() {
            let retry_after = super::parse_retry_after(&parts.headers, std::time::SystemTime::now());
            return Err(self.status_error(model, status.as_u16(), retry_after, &answer));
        }
        pool.put(link, Instant::now());
        Ok(Some(answer))
    }

    /// A new connection to `target` (bounded by the connect timeout).
    async fn connect(&self, model: &str, target: &DirectTarget) -> Result<Box<Link>> {
        let (host, port) = target.authority();
        let connect = TcpStream::connect((host, port));
        let stream = match tokio::time::timeout(self.options.connect_timeout, connect).await {
            Err(_) => {
                return Err(self.error(
                    ErrorKind::Transient,
                    model,
                    format!("connect failed: timed out after {:?}", self.options.connect_timeout),
                ));
            }
            Ok(Err(e)) => {
                let (cause, refused) = super::error_chain(&e);
                let error = self.error(ErrorKind::Transient, model, format!("connect failed: {cause}"));
                return Err(if refused { error.with_connection_refused() } else { error });
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let (send, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
                self.error(
                    ErrorKind::Transient,
                    model,
                    format!("connect failed: {}", super::error_chain(&e).0),
                )
            })?;
        Ok(Box::new(Link { send, conn }))
    }

    /// Writes `request` on `link` and waits (bounded) for the answer's head.
    async fn send_on(
        &self,
        model: &str,
        link: &mut Link,
        request: hyper::Request<Full<Bytes>>,
    ) -> Result<Sent> {
        let sent = link.send.try_send_request(request);
        let driven = tokio::time::timeout(self.options.headers_timeout, link.drive(Box::pin(sent))).await;
        match driven {
            Err(_) => Err(self.headers_timeout_error(model)),
            Ok(Ok(Ok(head))) => Ok(Sent::Answer(head)),
            Ok(Ok(Err(mut failed))) => match failed.take_message() {
                Some(request) => Ok(Sent::NotSent(request)),
                None => {
                    let cause = super::error_chain(failed.error()).0;
                    Err(self.error(ErrorKind::Transient, model, format!("request failed: {cause}")))
                }
            },
            Ok(Err(ended)) => {
                Err(self.error(ErrorKind::Transient, model, format!("request failed: {}", ended.describe())))
            }
        }
    }

    /// Reads `incoming` to its end, at most `limit` bytes, the idle timeout between chunks.
    async fn read_inline(
        &self,
        model: &str,
        link: &mut Link,
        incoming: &mut Incoming,
        limit: usize,
    ) -> Result<Bytes> {
        let idle = self.options.idle_timeout;
        let mut body = super::BodyBuf::default();
        loop {
            let failed = |cause: String| {
                self.error(ErrorKind::Transient, model, format!("response body failed: {cause}"))
            };
            let frame = match crate::clock::within(idle, link.drive(incoming.frame())).await {
                Err(_) => return Err(self.idle_error(model)),
                Ok(Err(ended)) => return Err(failed(ended.describe())),
                Ok(Ok(Some(Err(e)))) => return Err(failed(super::error_chain(&e).0)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(Ok(frame)))) => frame,
            };
            let Ok(chunk) = frame.into_data() else { continue };
            if !body.push(chunk, limit) {
                return Err(self.body_limit_error(model, limit));
            }
        }
        Ok(body.finish())
    }

    /// The classified error of a non-2xx answer whose body (at most 64 KiB) has been read.
    pub(crate) fn status_error(
        &self,
        model: &str,
        status: u16,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Error {
        let message = super::error_message(body);
        let kind = super::classify_status(status, &message);
        self.error(kind, model, message).with_status(status).with_retry_after(retry_after)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::{IDLE_TIMEOUT, MAX_IDLE};
    use crate::error::ErrorKind;
    use crate::http::direct::DirectTarget;
    use crate::http::{Http, HttpOptions};

    const ANSWER: &str = r#"{"ok":true}"#;

    /// A keep-alive HTTP/1.1 server on loopback that answers every request with `reply(n)`
    /// (n counts requests from 0) and, when `close_after` is set, closes the connection 50 ms
    /// after each answer without having said so. Counts connections; records request lines.
    struct Server {
        url: reqwest::Url,
        accepts: Arc<AtomicUsize>,
        lines: Arc<std::sync::Mutex<Vec<String>>>,
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    async fn server(close_after: bool, reply: impl Fn(usize) -> String + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            reqwest::Url::parse(&format!("http://{}/v1/chat/completions", listener.local_addr().unwrap()))
                .unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let reply = Arc::new(reply);
        let requests = Arc::new(AtomicUsize::new(0));
        let (a, l) = (Arc::clone(&accepts), Arc::clone(&lines));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let (l, reply, requests) = (Arc::clone(&l), Arc::clone(&reply), Arc::clone(&requests));
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let length: usize = head
                            .lines()
                            .find_map(|line| {
                                line.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..end + 4 + length);
                        l.lock().unwrap().push(head.lines().next().unwrap_or_default().to_owned());
                        let n = requests.fetch_add(1, Ordering::SeqCst);
                        if socket.write_all(reply(n).as_bytes()).await.is_err() {
                            return;
                        }
                        if close_after {
                            // Later, while the client holds the connection idle.
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            return;
                        }
                    }
                });
            }
        });
        Server { url, accepts, lines }
    }

    fn http() -> Http {
        Http::new("local", HttpOptions::default(), None)
    }

    async fn ask(http: &Http, target: &DirectTarget) -> crate::error::Result<Option<Bytes>> {
        http.answer_inline("m", target, Bytes::from_static(b"{}")).await
    }

    /// Sequential whole answers share one connection, and the request line carries the path
    /// only (origin form), as servers that are not proxies expect.
    #[tokio::test]
    async fn sequential_answers_reuse_one_connection_in_origin_form() {
        let server = server(false, |_| ok(ANSWER)).await;
        let (http, target) = (http(), DirectTarget::new(&server.url, None).unwrap());
        for _ in 0..5 {
            assert_eq!(ask(&http, &target).await.unwrap().unwrap(), ANSWER.as_bytes());
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), 1);
        assert_eq!(target.pool().idle_count(), 1);
        let lines = server.lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 5);
        assert!(lines.iter().all(|l| l == "POST /v1/chat/completions HTTP/1.1"), "{lines:?}");
    }

    /// A connection the server closed while it sat in the pool is dropped when taken; the
    /// request goes out on a fresh one and succeeds.
    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced() {
        let server = server(true, |_| ok(ANSWER)).await;
        let (http, target) = (http(), DirectTarget::new(&server.url, None).unwrap());
        for round in 1..=3 {
            assert_eq!(ask(&http, &target).await.unwrap().unwrap(), ANSWER.as_bytes(), "round {round}");
            // The server closes the pooled connection meanwhile.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), 3);
    }

    /// Many answers at once: every one arrives, and the pool keeps at most `MAX_IDLE`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_answers_all_arrive_and_the_pool_is_bounded() {
        let server = server(false, |_| ok(ANSWER)).await;
        let (http, target) = (Arc::new(http()), Arc::new(DirectTarget::new(&server.url, None).unwrap()));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..MAX_IDLE + 44 {
            let (http, target) = (Arc::clone(&http), Arc::clone(&target));
            tasks.spawn(async move { ask(&http, &target).await.unwrap().unwrap() });
        }
        while let Some(answer) = tasks.join_next().await {
            assert_eq!(answer.unwrap(), ANSWER.as_bytes());
        }
        let idle = target.pool().idle_count();
        assert!((1..=MAX_IDLE).contains(&idle), "{idle} idle");
        // And they are used again: another round opens no more connections than it needs.
        let before = server.accepts.load(Ordering::SeqCst);
        for _ in 0..10 {
            ask(&http, &target).await.unwrap().unwrap();
        }
        assert_eq!(server.accepts.load(Ordering::SeqCst), before);
    }

    /// A connection idle for longer than `IDLE_TIMEOUT` is closed, not used.
    #[tokio::test]
    async fn an_expired_connection_is_not_used() {
        let server = server(false, |_| ok(ANSWER)).await;
        let (http, target) = (http(), DirectTarget::new(&server.url, None).unwrap());
        ask(&http, &target).await.unwrap().unwrap();
        let later = std::time::Instant::now() + IDLE_TIMEOUT + std::time::Duration::from_secs(1);
        assert!(target.pool().take(later).is_none(), "expired");
        assert_eq!(target.pool().idle_count(), 0);
        ask(&http, &target).await.unwrap().unwrap();
        assert_eq!(server.accepts.load(Ordering::SeqCst), 2);
    }

    /// A non-2xx answer is the classified error with its status, message and Retry-After; a
    /// redirect is handed back; a body past the limit is a decode error.
    #[tokio::test]
    async fn statuses_redirects_and_limits() {
        let body = r#"{"error":{"message":"slow down"}}"#;
        let server = server(false, move |n| match n {
            0 => format!(
                "HTTP/1.1 429 Too Many Requests\r\nretry-after: 7\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            1 => "HTTP/1.1 307 Temporary Redirect\r\nlocation: /v2\r\ncontent-length: 0\r\n\r\n".to_owned(),
            _ => ok(&"x".repeat(4096)),
        })
        .await;
        let target = DirectTarget::new(&server.url, None).unwrap();
        let http = http();
        let error = ask(&http, &target).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert_eq!(error.status, Some(429));
        assert_eq!(error.retry_after, Some(std::time::Duration::from_secs(7)));
        assert!(error.message.contains("slow down"), "{error}");
        assert!(ask(&http, &target).await.unwrap().is_none(), "a redirect is handed back");
        let small = Http::new("local", HttpOptions { max_body_bytes: 1024, ..HttpOptions::default() }, None);
        let error = ask(&small, &target).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Decode, "{error}");
        assert!(error.message.contains("exceeds 1024 bytes"), "{error}");
    }

    /// A refused connection is a transient error marked as refused.
    #[tokio::test]
    async fn a_refused_connection_is_marked() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = reqwest::Url::parse(&format!("http://127.0.0.1:{port}/v1/chat/completions")).unwrap();
        let target = DirectTarget::new(&url, None).unwrap();
        let error = ask(&http(), &target).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Transient, "{error}");
        assert!(error.connection_refused, "{error}");
        assert!(error.message.starts_with("connect failed"), "{error}");
    }
}
