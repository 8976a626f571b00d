//! The mock OpenAI-compatible server the benchmarks run against: a minimal HTTP/1.1 server on
//! tokio, chosen over hyper because it costs least per request (one read, one `httparse`
//! pass, one borrowed `serde_json` pass over the body, one write), so the harness — not the
//! mock — is what the figures measure.
//!
//! What it does:
//! - `POST .../chat/completions`: answers deterministically by content (see [`answer`]),
//!   whole JSON or Server-Sent Events with usage in the final chunk, after a fixed think time;
//! - `GET /stats`: a JSON [`Snapshot`] (connections accepted, requests served, peak
//!   concurrency, per-step gaps, captured bodies); `POST /reset` zeroes it;
//! - counts connections and requests, tracks requests in flight and their peak;
//! - optionally records, per run (`#run=<n>` marker), the gap between the last byte of a
//!   tool-call answer written and the next request of the same run fully read — the
//!   client's own time between two steps, measured on one clock;
//! - [`Behaviour::AcceptAndClose`] accepts and at once closes every connection (a head that
//!   fails and can count attempts; a closed port cannot count anything).
//!
//! - speaks HTTP/2 with prior knowledge (h2c) on the same port, for clients that open with the
//!   HTTP/2 preface (see `h2`): requests multiplexed on few connections, as with a real
//!   provider over TLS.
//!
//! What it does not do: TLS, chunked HTTP/1.1 request bodies (answered `411`), pipelining
//! beyond one request at a time per HTTP/1.1 connection.

pub mod answer;
pub mod child;
mod h2;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// What the server does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Serve requests.
    Answer,
    /// Accept, count, close at once.
    AcceptAndClose,
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Think time before each answer.
    pub latency: Duration,
    /// Tool calls a run gets before the text answer (see [`answer`]).
    pub tool_steps: usize,
    /// Serve or accept-and-close.
    pub behaviour: Behaviour,
    /// Record per-run step gaps.
    pub record_gaps: bool,
    /// Keep the bodies of the run with this key (to replay them byte for byte).
    pub capture_key: Option<u64>,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            tool_steps: 2,
            behaviour: Behaviour::Answer,
            record_gaps: false,
            capture_key: None,
        }
    }
}

/// Counters, as served by `GET /stats`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Connections accepted.
    pub connections: u64,
    /// Chat requests answered.
    pub requests: u64,
    /// Requests being answered now.
    pub in_flight: u64,
    /// Most requests in flight at once.
    pub max_in_flight: u64,
    /// Per-step client gaps in microseconds (when recording).
    pub gaps_us: Vec<u64>,
    /// Captured request bodies, in arrival order.
    pub captured: Vec<String>,
}

#[derive(Default)]
struct Gaps {
    /// Run key -> (tool results in the request answered, when its answer was written).
    last_sent: HashMap<u64, (usize, Instant)>,
    gaps_us: Vec<u64>,
}

struct Shared {
    config: MockConfig,
    connections: AtomicU64,
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    gaps: Mutex<Gaps>,
    captured: Mutex<Vec<Vec<u8>>>,
    first_byte: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
            gaps_us: lock(&self.gaps).gaps_us.clone(),
            captured: lock(&self.captured).iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect(),
        }
    }

    fn reset(&self) {
        self.connections.store(0, Ordering::Relaxed);
        self.requests.store(0, Ordering::Relaxed);
        self.max_in_flight.store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
        *lock(&self.gaps) = Gaps::default();
        lock(&self.captured).clear();
        *lock(&self.first_byte) = None;
    }
}

/// A running in-process mock server; stops when dropped.
pub struct Mock {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Mock {
    /// Binds `127.0.0.1:0` (or `port`) with a deep accept backlog and starts serving.
    ///
    /// # Errors
    /// The bind error.
    pub async fn start(config: MockConfig) -> io::Result<Self> {
        Self::start_on(config, 0).await
    }

    /// As [`Mock::start`] on a given port.
    ///
    /// # Errors
    /// The bind error.
    pub async fn start_on(config: MockConfig, port: u16) -> io::Result<Self> {
        let listener = listen(port)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            gaps: Mutex::default(),
            captured: Mutex::default(),
            first_byte: Mutex::new(None),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept_loop(listener, shared.clone(), stop.clone()));
        Ok(Self { addr, shared, stop })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL (`http://127.0.0.1:PORT/v1`).
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The counters now.
    #[cfg(test)]
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Zeroes the counters and forgets the first byte.
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// When the first request byte arrived since the last reset.
    pub fn first_byte_at(&self) -> Option<Instant> {
        *lock(&self.shared.first_byte)
    }
}

/// A loopback listener with the deepest backlog the kernel allows (10,000 clients may
/// connect at once; the default backlog would drop SYNs and add 1 s retransmits).
fn listen(port: u16) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(65_535)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::Relaxed);
                if shared.config.behaviour == Behaviour::AcceptAndClose {
                    drop(stream);
                    continue;
                }
                let shared = shared.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = stop.cancelled() => {}
                        () = serve_any(stream, shared) => {}
                    }
                });
            }
            // Out of descriptors or a connection reset before accept: breathe and go on.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// Serves a connection in the protocol its first bytes speak: HTTP/2 with prior knowledge
/// (the client's preface, `PRI * HTTP/2.0`) or HTTP/1.1.
async fn serve_any(stream: TcpStream, shared: Arc<Shared>) {
    let mut first = [0u8; 3];
    let h2 = loop {
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return,
            Ok(n) if n < first.len() && first[..n] == h2::PREFACE[..n] => tokio::task::yield_now().await,
            Ok(n) => break first[..n] == h2::PREFACE[..n],
        }
    };
    if h2 {
        h2::serve(stream, shared).await;
    } else {
        serve(stream, &shared).await;
    }
}

const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 64 << 20;

/// Serves one connection until the client closes it or asks to.
async fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Read a whole request head.
        let (head_len, method, path, content_length, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let mut length = 0usize;
                    let mut close = req.version == Some(0);
                    let mut chunked = false;
                    for h in req.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            length = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            close = h.value.eq_ignore_ascii_case(b"close");
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                            chunked = true;
                        }
                    }
                    if chunked || length > MAX_BODY {
                        let _ = stream
                            .write_all(&response(411, "text/plain", b"send a Content-Length body", true))
                            .await;
                        return;
                    }
                    let method = req.method.unwrap_or("").to_owned();
                    let path = req.path.unwrap_or("").to_owned();
                    break (n, method, path, length, close);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                _ => {
                    let _ = stream.write_all(&response(400, "text/plain", b"bad request", true)).await;
                    return;
                }
            }
            if !read_more(&mut stream, &mut buf, shared).await {
                return;
            }
        };
        while buf.len() < head_len + content_length {
            if !read_more(&mut stream, &mut buf, shared).await {
                return;
            }
        }
        let body = &buf[head_len..head_len + content_length];
        let written = if method == "POST" && path.ends_with("/chat/completions") {
            chat(&mut stream, shared, body, close).await
        } else if method == "GET" && path == "/stats" {
            let json = serde_json::to_vec(&shared.snapshot()).unwrap_or_default();
            stream.write_all(&response(200, "application/json", &json, close)).await.is_ok()
        } else if method == "POST" && path == "/reset" {
            shared.reset();
            stream.write_all(&response(200, "application/json", b"{}", close)).await.is_ok()
        } else {
            let body =
                br#"{"error":{"message":"no such route","type":"invalid_request_error","code":"not_found"}}"#;
            stream.write_all(&response(404, "application/json", body, close)).await.is_ok()
        };
        buf.drain(..head_len + content_length);
        if close || !written {
            return;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>, shared: &Shared) -> bool {
    if buf.capacity() - buf.len() < 2048 {
        buf.reserve(8192);
    }
    match stream.read_buf(buf).await {
        Ok(0) | Err(_) => false,
        Ok(_) => {
            let mut first = lock(&shared.first_byte);
            if first.is_none() {
                *first = Some(Instant::now());
            }
            true
        }
    }
}

async fn chat(stream: &mut TcpStream, shared: &Shared, body: &[u8], close: bool) -> bool {
    let answer = Answer::new(shared, body);
    let bytes = response(answer.status, answer.content_type, &answer.body, close);
    answer.think(shared).await;
    let ok = stream.write_all(&bytes).await.is_ok();
    answer.sent(shared);
    ok
}

/// One request counted in flight; dropping it takes it out of the count.
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One chat answer, decided by content: counted in flight from its arrival until it is sent.
struct Answer {
    key: Option<u64>,
    tool_results: Option<usize>,
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    /// Decides the answer to `body` (and records the step gap and the captured body).
    fn new(shared: &Shared, body: &[u8]) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let key = answer::run_key(body);
        let decision = answer::answer(body, shared.config.tool_steps);
        if let (Some(key), Some(want)) = (key, shared.config.capture_key)
            && key == want
        {
            lock(&shared.captured).push(body.to_vec());
        }
        let received = Instant::now();
        match decision {
            Ok(d) => {
                if shared.config.record_gaps
                    && d.tool_results > 0
                    && let Some(key) = key
                {
                    let mut gaps = lock(&shared.gaps);
                    // Only the answer to the previous step of the same run counts (a stale
                    // entry from a preempted writer is dropped, never paired with the wrong
                    // step).
                    if let Some((step, sent)) = gaps.last_sent.remove(&key)
                        && step + 1 == d.tool_results
                    {
                        let gap = received.saturating_duration_since(sent).as_micros() as u64;
                        gaps.gaps_us.push(gap);
                    }
                }
                Self {
                    key,
                    tool_results: Some(d.tool_results),
                    status: 200,
                    content_type: d.content_type,
                    body: d.body,
                }
            }
            Err(message) => {
                let body =
                    serde_json::json!({"error": {"message": message, "type": "invalid_request_error"}});
                Self {
                    key,
                    tool_results: None,
                    status: 400,
                    content_type: "application/json",
                    body: body.to_string().into_bytes(),
                }
            }
        }
    }

    /// The think time; then the answer counts as served (before the write: once a client
    /// holds the answer, the counters include it).
    async fn think(&self, shared: &Shared) {
        // Leaves the in-flight count also when the client gives up and the handler is dropped
        // during the think time (a reset stream, a closed connection): the count is of requests
        // really waiting, never of abandoned ones.
        let counted = InFlight(&shared.in_flight);
        if !shared.config.latency.is_zero() {
            tokio::time::sleep(shared.config.latency).await;
        }
        shared.requests.fetch_add(1, Ordering::Relaxed);
        drop(counted);
    }

    /// The answer is written: a tool-call answer starts the run's next step gap.
    fn sent(&self, shared: &Shared) {
        if shared.config.record_gaps
            && let (Some(key), Some(step)) = (self.key, self.tool_results)
            && step < shared.config.tool_steps
        {
            lock(&shared.gaps).last_sent.insert(key, (step, Instant::now()));
        }
    }
}

fn response(status: u16, content_type: &str, body: &[u8], close: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        411 => "Length Required",
        _ => "Status",
    };
    let connection = if close { "close" } else { "keep-alive" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Main of the `mock` sub-command: serve on a fresh port, print `listening <addr>` on
/// stdout, stop when stdin closes (the parent exited or dropped us).
///
/// # Errors
/// Bind or I/O errors.
pub async fn serve_child(config: MockConfig) -> anyhow::Result<()> {
    let mock = Mock::start(config).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", mock.addr()).as_bytes()).await?;
    out.flush().await?;
    let mut stdin = tokio::io::stdin();
    let mut sink = [0u8; 64];
    while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    drop(mock);
    Ok(())
}
