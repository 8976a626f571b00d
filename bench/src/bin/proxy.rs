//! `executus-bench-proxy --upstream http://HOST:PORT/PREFIX`: the floor of any HTTP proxy hop
//! on this machine, for the gateway benchmark (`executus-bench gateway`).
//!
//! It is the cheapest proxy that can be built on the stack the gateway uses: a hyper 1
//! HTTP/1.1 server (keep-alive, `TCP_NODELAY`) and a pooled keep-alive hyper-util client, on
//! tokio's multi-threaded runtime, with mimalloc as the global allocator (as `executus-run`
//! has). Every `POST` it receives is forwarded to `PREFIX/chat/completions` at the upstream
//! with the request's body bytes and content type, and the upstream's status, content type and
//! body are streamed back as they arrive. Nothing is parsed, checked, logged or counted:
//! whatever a real gateway does per request costs on top of this.
//!
//! It prints `listening ADDR` on stdout once bound to a loopback port and stops when its stdin
//! closes (the bench holds the other end). Not a product: no limits, no keys, no timeouts.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Body = Either<Incoming, Full<Bytes>>;

/// What every request needs: the client pool and the upstream's URI, built once.
struct Hop {
    client: Client<HttpConnector, Full<Bytes>>,
    upstream: Uri,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut upstream = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--upstream" => upstream = Some(args.next().context("--upstream needs a URL")?),
            other => bail!("unknown argument {other:?}; usage: executus-bench-proxy --upstream URL"),
        }
    }
    let base = upstream.context("usage: executus-bench-proxy --upstream URL")?;
    let upstream: Uri = format!("{}/chat/completions", base.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("upstream URL {base:?}"))?;
    if upstream.scheme_str() != Some("http") {
        bail!("the upstream must be plain http, got {base:?}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve(upstream))
}

impl Hop {
    fn new(upstream: Uri) -> Arc<Self> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client =
            Client::builder(TokioExecutor::new()).pool_max_idle_per_host(usize::MAX).build(connector);
        Arc::new(Self { client, upstream })
    }
}

async fn serve(upstream: Uri) -> anyhow::Result<()> {
    let hop = Hop::new(upstream);
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening {}\n", listener.local_addr()?).as_bytes()).await?;
    out.flush().await?;
    // Stops when the bench closes its end of stdin.
    let stdin = async {
        let mut stdin = tokio::io::stdin();
        let mut sink = [0u8; 64];
        while stdin.read(&mut sink).await.unwrap_or(0) > 0 {}
    };
    tokio::select! {
        () = accept(listener, hop) => {}
        () = stdin => {}
    }
    Ok(())
}

/// Serves every connection `listener` accepts, one task each, until dropped.
async fn accept(listener: TcpListener, hop: Arc<Hop>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let hop = Arc::clone(&hop);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let hop = Arc::clone(&hop);
                async move { Ok::<_, Infallible>(forward(&hop, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// One hop: the body bytes to the upstream, its answer streamed back.
async fn forward(hop: &Hop, request: Request<Incoming>) -> Response<Body> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(http_body_util::Collected::to_bytes) else {
        return failure(StatusCode::BAD_REQUEST, "unreadable request body");
    };
    let mut upstream = Request::new(Full::new(body));
    *upstream.method_mut() = hyper::Method::POST;
    *upstream.uri_mut() = hop.upstream.clone();
    let content_type =
        parts.headers.get(CONTENT_TYPE).cloned().unwrap_or(HeaderValue::from_static("application/json"));
    upstream.headers_mut().insert(CONTENT_TYPE, content_type);
    match hop.client.request(upstream).await {
        Ok(answer) => {
            let (parts, body) = answer.into_parts();
            let mut response = Response::new(Either::Left(body));
            *response.status_mut() = parts.status;
            if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
                response.headers_mut().insert(CONTENT_TYPE, content_type.clone());
            }
            response
        }
        Err(_) => failure(StatusCode::BAD_GATEWAY, "upstream unreachable"),
    }
}

fn failure(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from_static(message.as_bytes()))));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
#[path = "../mock/mod.rs"]
#[allow(dead_code)]
mod mock;

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor forwards a whole and a streamed request to a real upstream (the bench's
    /// mock) and hands the answers back unchanged; an unreachable upstream is a 502.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_requests_and_streams_answers_back() {
        let upstream = mock::Mock::start(mock::MockConfig { tool_steps: 0, ..mock::MockConfig::default() })
            .await
            .expect("mock");
        let uri: Uri = format!("http://{}/v1/chat/completions", upstream.addr()).parse().expect("uri");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/v1/chat/completions", listener.local_addr().expect("addr"));
        tokio::spawn(accept(listener, Hop::new(uri)));
        let client = reqwest::Client::builder().no_proxy().build().expect("client");
        let ask = |stream: bool| {
            let body = serde_json::json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
            client.post(&url).json(&body).send()
        };
        let whole = ask(false).await.expect("whole");
        assert_eq!(whole.status(), 200);
        let answer: serde_json::Value = whole.json().await.expect("JSON answer");
        assert!(answer["choices"][0]["message"]["content"].is_string(), "{answer}");
        let streamed = ask(true).await.expect("stream");
        assert_eq!(streamed.status(), 200);
        let content_type = streamed.headers().get(CONTENT_TYPE).cloned();
        assert_eq!(content_type.as_ref().and_then(|v| v.to_str().ok()), Some("text/event-stream"));
        assert!(streamed.text().await.expect("body").contains("[DONE]"));

        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let dead_uri: Uri =
            format!("http://{}/v1/chat/completions", dead.local_addr().expect("addr")).parse().expect("uri");
        drop(dead);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(accept(listener, Hop::new(dead_uri)));
        let refused = client.post(&url).body("{}").send().await.expect("answer");
        assert_eq!(refused.status(), 502);
    }
}
