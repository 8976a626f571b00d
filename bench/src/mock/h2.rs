//! The mock over HTTP/2 with prior knowledge (h2c): hyper's HTTP/2 server on a connection
//! that opened with the client's preface. Chat requests are answered exactly as over HTTP/1.1
//! (the same [`Answer`]); `GET /stats` and `POST /reset` answer too.
//!
//! The connection allows as many concurrent streams as a benchmark puts in flight (P3 holds
//! 100,000 requests on a handful of connections), with windows sized for small JSON bodies.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::{Answer, Shared};

/// The client connection preface's first bytes.
pub(super) const PREFACE: &[u8; 3] = b"PRI";

/// Serves one HTTP/2 connection until the client closes it.
pub(super) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(request, &shared).await) }
    });
    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .max_concurrent_streams(1 << 20)
        .initial_connection_window_size(64 << 20)
        .initial_stream_window_size(1 << 20)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return reply(400, "text/plain", b"unreadable body".to_vec());
    };
    let path = parts.uri.path();
    if parts.method == hyper::Method::POST && path.ends_with("/chat/completions") {
        let answer = Answer::new(shared, &body);
        answer.think(shared).await;
        answer.sent(shared);
        return reply(answer.status, answer.content_type, answer.body);
    }
    if parts.method == hyper::Method::GET && path == "/stats" {
        return reply(200, "application/json", serde_json::to_vec(&shared.snapshot()).unwrap_or_default());
    }
    if parts.method == hyper::Method::POST && path == "/reset" {
        shared.reset();
        return reply(200, "application/json", b"{}".to_vec());
    }
    let body = br#"{"error":{"message":"no such route","type":"invalid_request_error","code":"not_found"}}"#;
    reply(404, "application/json", body.to_vec())
}

fn reply(status: u16, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    response
}
