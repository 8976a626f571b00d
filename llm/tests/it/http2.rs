//! HTTP/2 with many streams in flight on one connection (h2c with prior knowledge against a
//! real hyper HTTP/2 server on 127.0.0.1).
//!
//! Streamed answers arrive as many small DATA frames. While the caller has not read them they
//! wait in the client's HTTP/2 stack, which closes the whole connection
//! (`GOAWAY ENHANCE_YOUR_CALM "too_many_data_frames"`) once their framing overhead outgrows a
//! budget of half the connection's flow-control window — every stream on it fails. With the
//! HTTP stack's default 5 MiB window, 24,000 pending deltas were enough (the bench's P3
//! lost half its 100,000 runs this way); [`HttpOptions::http2_connection_window`]'s default
//! holds them.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::openai::OpenAi;
use executus_llm::stream::collect;
use executus_llm::types::Request;
use executus_llm::{HttpOptions, Provider};
use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// Streams opened at once, and text deltas per stream before the server's barrier.
const STREAMS: usize = 400;
const DELTAS: usize = 60;

/// Every stream's deltas are queued before any stream gets its end, so the client holds
/// `STREAMS * DELTAS` small frames unread while the test's tasks wait.
struct Barrier {
    queued: AtomicUsize,
    all: watch::Sender<bool>,
}

fn chunk(text: &str, finish: Option<&str>) -> Bytes {
    let finish = finish.map_or("null".to_owned(), |f| format!("\"{f}\""));
    Bytes::from(format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"m\",\"choices\":[{{\"index\":0,\
         \"delta\":{{\"content\":\"{text}\"}},\"finish_reason\":{finish}}}]}}\n\n"
    ))
}

async fn answer(
    barrier: Arc<Barrier>,
) -> hyper::Response<StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>> {
    let (tx, rx) = mpsc::channel::<Bytes>(DELTAS + 4);
    tokio::spawn(async move {
        for _ in 0..DELTAS {
            if tx.send(chunk("x", None)).await.is_err() {
                return;
            }
        }
        let mut all = barrier.all.subscribe();
        if barrier.queued.fetch_add(1, Ordering::SeqCst) + 1 == STREAMS {
            barrier.all.send_replace(true);
        }
        if all.wait_for(|done| *done).await.is_err() {
            return;
        }
        let _ = tx.send(chunk("", Some("stop"))).await;
        let _ = tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let frames = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), rx))
    })
    .boxed();
    let mut response = hyper::Response::new(StreamBody::new(frames));
    response
        .headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    response
}

/// An h2c server (prior knowledge) answering every request with a streamed chat completion.
async fn serve(barrier: Arc<Barrier>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_request| {
                    let barrier = Arc::clone(&barrier);
                    async move { Ok::<_, Infallible>(answer(barrier).await) }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(10_000)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/v1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pending_deltas_on_one_connection_do_not_close_it() {
    let (all, _) = watch::channel(false);
    let barrier = Arc::new(Barrier { queued: AtomicUsize::new(0), all });
    let url = serve(Arc::clone(&barrier)).await;
    let http = HttpOptions { http2_prior_knowledge: true, ..HttpOptions::default() };
    let model = OpenAi::new(ProviderConfig::new("h2", url).with_http(http)).model("m");

    // Hang guard only: the exchange takes well under a second.
    let texts = tokio::time::timeout(Duration::from_secs(120), async {
        // Headers of every stream first; no body is read until all deltas are queued.
        let streams =
            futures::future::join_all((0..STREAMS).map(|_| model.stream(Request::user("hi")))).await;
        let streams: Vec<_> = streams.into_iter().map(|s| s.expect("stream opened")).collect();
        let mut all = barrier.all.subscribe();
        all.wait_for(|done| *done).await.unwrap();
        let mut texts = Vec::with_capacity(STREAMS);
        for stream in streams {
            texts.push(collect(stream).await.expect("every stream completes").text());
        }
        texts
    })
    .await
    .expect("hang guard: 400 streams did not finish within 120 s");
    assert_eq!(texts.len(), STREAMS);
    assert!(texts.iter().all(|t| t == &"x".repeat(DELTAS)), "every stream carried its {DELTAS} deltas");
}
