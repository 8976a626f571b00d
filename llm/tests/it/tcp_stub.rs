//! A raw TCP "HTTP server" on 127.0.0.1 for the faults wiremock cannot make: silence, stalls,
//! resets and arbitrary (broken) bytes. Every connection reads the whole request (so a later
//! close is a clean FIN, not a reset caused by unread data) and then plays a script: the same
//! one for every connection ([`Stub::start`]), or one chosen from the request it read
//! ([`Stub::route`]: e.g. a healthy answer to the first step, a fault once the request
//! carries a tool result). Dropping the stub closes the listener and every connection it
//! holds open.
//!
//! Shared by the provider crate's, the core's and the CLI's fault suites (`#[path]` includes).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// One step of a connection's script. After the last step the connection is closed cleanly.
#[derive(Debug, Clone)]
pub enum Step {
    /// Write these bytes and flush.
    Send(Vec<u8>),
    /// Say nothing more and keep the connection open (until the stub is dropped).
    Stall,
    /// Abort the connection with a TCP reset (`SO_LINGER` 0, then close).
    Reset,
}

/// `Step::Send` of a string.
pub fn send(text: impl AsRef<str>) -> Step {
    Step::Send(text.as_ref().as_bytes().to_vec())
}

/// Response headers of a 200 whose body ends when the connection closes.
pub fn head(content_type: &str) -> Step {
    send(format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n"))
}

/// Response headers of a 200 announcing a body of `length` bytes.
pub fn head_with_length(content_type: &str, length: usize) -> Step {
    send(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {length}\r\nconnection: close\r\n\r\n"
    ))
}

/// A request as the stub read it (read by the routed suites of the core and the CLI).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Received {
    /// Request line and headers, as sent.
    pub head: String,
    /// The body (`content-length` bytes).
    pub body: Vec<u8>,
}

/// Chooses the script of a connection from the request it carried.
pub type Router = Arc<dyn Fn(&Received) -> Vec<Step> + Send + Sync>;

/// A running stub.
pub struct Stub {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Stub {
    /// Listens on an ephemeral loopback port; every accepted connection plays `script`.
    pub async fn start(script: Vec<Step>) -> Self {
        Self::route(move |_| script.clone()).await
    }

    /// Listens on an ephemeral loopback port; every accepted connection reads its request
    /// and plays the script `router` returns for it.
    pub async fn route(router: impl Fn(&Received) -> Vec<Step> + Send + Sync + 'static) -> Self {
        let router: Router = Arc::new(router);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let accepts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepts);
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the accept task drops (closes) them all.
            let mut connections = JoinSet::new();
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                connections.spawn(serve(socket, Arc::clone(&router)));
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, accepts, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, router: Router) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    for step in router(&request) {
        match step {
            Step::Send(bytes) => {
                if socket.write_all(&bytes).await.is_err() || socket.flush().await.is_err() {
                    return;
                }
            }
            Step::Stall => std::future::pending::<()>().await,
            Step::Reset => {
                // SO_LINGER 0 turns the close into an RST. (tokio's own `set_linger` is deprecated.)
                let _ = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO));
                drop(socket);
                return;
            }
        }
    }
    let _ = socket.shutdown().await;
}

/// Reads one request: headers, then `content-length` bytes of body. `None` if the client left.
async fn read_request(socket: &mut TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let headers = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = socket.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..header_end]).into_owned();
    buf.truncate(header_end + length);
    let body = buf.split_off(header_end);
    Some(Received { head, body })
}
