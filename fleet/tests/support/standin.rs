//! A stand-in for llama-swap (which cannot be installed from the package registries here),
//! for tests: an axum server on 127.0.0.1 speaking llama-swap's wire format exactly as
//! `tests/fixtures/llama-swap-wire.json` records it (llama-swap v250; with `legacy`, the
//! shapes of hosts before v236), and starting and stopping **real** `llama-server`
//! processes (the llama.cpp peer, see `../shared/peers/llama-server.sh`) when models are
//! loaded, swapped and unloaded — so state changes, swaps, `/v1` and `/upstream` traffic,
//! activity rows and `timings` are real.
//!
//! Routes: `GET /health`, `GET /api/events` (SSE, `event:message` / `data:{"type","data"}`,
//! replay on connect), `GET /api/metrics/activity`, `GET /api/performance`, `GET /running`,
//! `GET /v1/models`, `POST /api/models/unload[/{model}]`, `GET /unload`,
//! `POST /v1/chat/completions`, `ANY /upstream/{model}/{path}`.
//!
//! Like llama-swap's default group, one model runs at a time: loading another stops it
//! (a swap). Test hooks: [`Standin::drop_streams`], [`Standin::go_offline`] /
//! [`Standin::come_back`], [`Standin::push_activity`], [`Standin::push_perf`].
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::process::Child;
use tokio::sync::{broadcast, watch};

/// Where the llama.cpp peer lives (as `llama-server.sh` lays it out).
pub fn peers_cache() -> PathBuf {
    match std::env::var_os("EXECUTUS_PEERS") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/executus-peers"),
    }
}

/// The `llama-server` binary, if it has been built.
pub fn llama_server() -> Option<PathBuf> {
    let bin = peers_cache().join("llama.cpp/build/bin/llama-server");
    bin.is_file().then_some(bin)
}

/// A model the stand-in serves: its id and the tiny GGUF (`tiny-llama3`, `tiny-qwen2`).
#[derive(Debug, Clone)]
pub struct ModelDef {
    pub id: String,
    pub gguf: String,
}

impl ModelDef {
    pub fn new(id: &str, gguf: &str) -> Self {
        Self { id: id.to_owned(), gguf: gguf.to_owned() }
    }
}

/// How the stand-in behaves.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub models: Vec<ModelDef>,
    /// Speak the shapes of hosts before v236.
    pub legacy: bool,
    /// Performance monitoring on (else `/api/performance` is 503 `{"enabled":false}`).
    pub perf: bool,
    /// An `apiKeys` key every route but `/health` requires.
    pub key: Option<String>,
}

#[derive(Debug)]
struct Proc {
    state: &'static str,
    port: Option<u16>,
    child: Option<Child>,
}

#[derive(Debug, Default)]
struct Inner {
    procs: BTreeMap<String, Proc>,
    activity: Vec<Value>,
    inflight: BTreeMap<u64, Value>,
    next_inflight: u64,
    perf: Vec<Value>,
    /// `/api/events` connections served so far.
    streams_served: u64,
    requests: Vec<(String, String, Option<String>)>,
    queries: Vec<(String, String)>,
}

struct Shared {
    /// Unloads wait while a test holds this for writing ([`Standin::hold_unloads`]).
    unload_gate: Arc<tokio::sync::RwLock<()>>,
    options: Options,
    inner: Mutex<Inner>,
    events: broadcast::Sender<String>,
    /// Bumped to end every open events stream.
    epoch: watch::Sender<u64>,
    swap: tokio::sync::Mutex<()>,
    http: reqwest::Client,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running stand-in.
pub struct Standin {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// One SSE frame exactly as llama-swap writes it.
pub fn frame(kind: &str, data: &Value) -> String {
    let envelope = json!({"type": kind, "data": data.to_string()});
    format!("event:message\ndata:{envelope}\n\n")
}

impl Standin {
    /// Starts on a free loopback port.
    pub async fn start(options: Options) -> Self {
        let procs = options
            .models
            .iter()
            .map(|m| (m.id.clone(), Proc { state: "stopped", port: None, child: None }))
            .collect();
        let (events, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            unload_gate: Arc::new(tokio::sync::RwLock::new(())),
            options,
            inner: Mutex::new(Inner { procs, ..Inner::default() }),
            events,
            epoch: watch::channel(0).0,
            swap: tokio::sync::Mutex::new(()),
            // No idle connections kept: llama-server closes idle keep-alive connections on its
            // own schedule, and a reused one that it closed fails the request.
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("http client"),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        let standin = Self { addr, shared, server: Mutex::new(None) };
        standin.serve(listener);
        standin
    }

    /// Accepts connections and serves each on a task of its own set: aborting the accept
    /// task drops the set, which aborts every connection — the host is gone, not just its
    /// listener (a client's pooled connection dies with it, as with a real crash).
    fn serve(&self, listener: TcpListener) {
        let app = router(Arc::clone(&self.shared));
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                while connections.try_join_next().is_some() {}
                let app = app.clone();
                connections.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                            tower::Service::call(&mut app.clone(), request)
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ends every open `/api/events` stream (clients see the stream end).
    pub fn drop_streams(&self) {
        self.shared.epoch.send_modify(|e| *e += 1);
    }

    /// Stops listening and ends every stream: connections are refused until
    /// [`Standin::come_back`]. Model processes keep running.
    pub fn go_offline(&self) {
        if let Some(task) = self.server.lock().unwrap_or_else(PoisonError::into_inner).take() {
            task.abort();
        }
        self.drop_streams();
    }

    /// Listens again on the same port.
    pub async fn come_back(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("rebind {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// `/api/events` connections served so far.
    pub fn streams_served(&self) -> u64 {
        self.shared.lock().streams_served
    }

    /// Every request seen: (method, path, the key it carried).
    pub fn requests(&self) -> Vec<(String, String, Option<String>)> {
        self.shared.lock().requests.clone()
    }

    /// Every request's path and query string.
    pub fn queries(&self) -> Vec<(String, String)> {
        self.shared.lock().queries.clone()
    }

    /// The state of `model`.
    pub fn state_of(&self, model: &str) -> Option<&'static str> {
        self.shared.lock().procs.get(model).map(|p| p.state)
    }

    /// Adds an activity row as if a request had been served (for tests that need activity
    /// without a model process), and announces it like llama-swap does.
    pub fn push_activity(&self, model: &str, output_tokens: i64, tps: f64) -> u64 {
        record_activity(&self.shared, model, "/v1/chat/completions", 200, 5, output_tokens, 100.0, tps, 20)
    }

    /// Adds a perf sample at `ts` (the stand-in also samples the real machine on request).
    pub fn push_perf(&self, ts: DateTime<Utc>, cpu: f64) {
        self.shared.lock().perf.push(sys_sample(ts, cpu));
    }

    /// Makes every unload wait until the guard is dropped (to keep actions queued).
    pub async fn hold_unloads(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        Arc::clone(&self.shared.unload_gate).write_owned().await
    }

    /// Stops every model process.
    pub async fn shutdown(&self) {
        stop_all(&self.shared).await;
        self.go_offline();
    }
}

fn sys_sample(ts: DateTime<Utc>, cpu: f64) -> Value {
    json!({
        "timestamp": ts.to_rfc3339_opts(SecondsFormat::Nanos, true),
        "cpu_util_per_core": [cpu, cpu],
        "mem_total_mb": 24000, "mem_used_mb": 9000, "mem_free_mb": 15000,
        "swap_total_mb": 0, "swap_used_mb": 0,
        "load_avg_1": 0.5, "load_avg_5": 0.4, "load_avg_15": 0.3,
        "net_io": [{"name": "lo", "bytes_recv": 0, "bytes_sent": 0}],
    })
}

fn model_status(shared: &Shared) -> Value {
    let inner = shared.lock();
    Value::Array(
        inner
            .procs
            .iter()
            .map(|(id, p)| json!({"id": id, "name": "", "description": "", "state": p.state, "unlisted": false, "peerID": ""}))
            .collect(),
    )
}

fn emit(shared: &Shared, kind: &str, data: &Value) {
    let _ = shared.events.send(frame(kind, data));
}

fn emit_models(shared: &Shared) {
    emit(shared, "modelStatus", &model_status(shared));
}

fn emit_inflight_total(shared: &Shared) {
    let total = shared.lock().inflight.len();
    emit(shared, "inflight", &json!({"total": total}));
}

fn set_state(shared: &Shared, model: &str, state: &'static str) {
    if let Some(p) = shared.lock().procs.get_mut(model) {
        p.state = state;
    }
    emit_models(shared);
}

#[allow(clippy::too_many_arguments)]
fn record_activity(
    shared: &Shared,
    model: &str,
    path: &str,
    status: u16,
    input: i64,
    output: i64,
    prompt_tps: f64,
    tps: f64,
    duration_ms: i64,
) -> u64 {
    let (row, id) = {
        let mut inner = shared.lock();
        let id = inner.activity.len() as u64 + 1;
        let row = json!({
            "id": id, "timestamp": now(), "model": model, "req_path": path,
            "resp_content_type": "text/event-stream", "resp_status_code": status,
            "tokens": {"cache_tokens": 0, "draft_tokens": 0, "draft_acc_tokens": 0, "input_tokens": input,
                       "output_tokens": output, "prompt_per_second": prompt_tps, "tokens_per_second": tps},
            "duration_ms": duration_ms, "has_capture": false,
        });
        inner.activity.push(row.clone());
        (row, id)
    };
    if shared.options.legacy {
        emit(shared, "metrics", &json!([row]));
    } else {
        emit(shared, "activity", &json!({"id": id}));
    }
    id
}

fn error(shared: &Shared, status: StatusCode, message: &str) -> Response {
    let body = if shared.options.legacy {
        json!({"error": message})
    } else {
        let (kind, code) = match status.as_u16() {
            400 => ("invalid_request_error", "bad_request"),
            401 => ("authentication_error", "unauthorized"),
            404 => ("invalid_request_error", "not_found"),
            _ => ("server_error", "internal_error"),
        };
        json!({"src": "llama-swap", "error": {"message": message, "type": kind, "param": null, "code": code}})
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/api/events", get(events))
        .route("/api/metrics/activity", get(activity))
        .route("/api/performance", get(performance))
        .route("/running", get(running))
        .route("/v1/models", get(models))
        .route("/api/models/unload", post(unload_all_api))
        .route("/api/models/unload/{*model}", post(unload_one))
        .route("/unload", get(unload_all_get))
        .route("/v1/chat/completions", post(chat))
        .route("/upstream/{model}/{*path}", any(upstream))
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&shared), auth))
        .with_state(shared)
}

async fn auth(State(shared): State<Arc<Shared>>, request: Request, next: axum::middleware::Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    {
        let mut inner = shared.lock();
        inner.requests.push((request.method().to_string(), request.uri().path().to_owned(), given.clone()));
        inner
            .queries
            .push((request.uri().path().to_owned(), request.uri().query().unwrap_or_default().to_owned()));
    }
    if let Some(key) = &shared.options.key
        && request.uri().path() != "/health"
        && given.as_deref() != Some(key.as_str())
    {
        return error(&shared, StatusCode::UNAUTHORIZED, "unauthorized: invalid or missing API key");
    }
    next.run(request).await
}

async fn events(State(shared): State<Arc<Shared>>) -> Response {
    // Subscribe first, then build the replay: nothing emitted in between is lost.
    let live = shared.events.subscribe();
    let mut epoch = shared.epoch.subscribe();
    epoch.borrow_and_update();
    shared.lock().streams_served += 1;
    let mut replay = vec![
        frame("logData", &json!({"source": "proxy", "data": "stand-in proxy log\n"})),
        frame("logData", &json!({"source": "upstream", "data": ""})),
        frame("modelStatus", &model_status(&shared)),
    ];
    if shared.options.legacy {
        let rows = Value::Array(shared.lock().activity.clone());
        replay.push(frame("metrics", &rows));
        replay.push(frame("inflight", &json!({"total": shared.lock().inflight.len()})));
    } else {
        replay.push(frame("uiConfig", &json!({})));
        replay.push(frame("profileChanged", &json!({"active": null})));
        let requests: Vec<Value> = shared.lock().inflight.values().cloned().collect();
        replay.push(frame("inflight", &json!({"operation": "snapshot", "requests": requests})));
    }
    let head = futures::stream::iter(replay.into_iter().map(|f| Ok::<Bytes, Infallible>(Bytes::from(f))));
    let tail = futures::stream::unfold((live, epoch), |(mut live, mut epoch)| async move {
        loop {
            tokio::select! {
                _ = epoch.changed() => return None,
                msg = live.recv() => match msg {
                    Ok(f) => return Some((Ok::<Bytes, Infallible>(Bytes::from(f)), (live, epoch))),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("X-Accel-Buffering", "no")
        .body(Body::from_stream(head.chain(tail)))
        .expect("response")
}

async fn activity(State(shared): State<Arc<Shared>>, Query(q): Query<BTreeMap<String, String>>) -> Response {
    if shared.options.legacy {
        return (StatusCode::NOT_FOUND, "404 page not found").into_response();
    }
    let num = |k: &str| q.get(k).map(|v| v.parse::<i64>());
    let limit = match num("limit") {
        None => 25,
        Some(Ok(l)) if (1..1000).contains(&l) => l,
        Some(_) => return error(&shared, StatusCode::BAD_REQUEST, "limit must be between 1 and 999"),
    };
    let page = match num("page") {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return error(&shared, StatusCode::BAD_REQUEST, "page must be >= 1"),
    };
    let min_id = match num("min_id") {
        None => 0,
        Some(Ok(m)) if m >= 1 => m,
        Some(_) => return error(&shared, StatusCode::BAD_REQUEST, "min_id must be >= 1"),
    };
    let desc = q.get("order").is_none_or(|o| o == "desc");
    let mut rows: Vec<Value> =
        shared.lock().activity.iter().filter(|r| r["id"].as_i64().unwrap_or(0) >= min_id).cloned().collect();
    if desc {
        rows.reverse();
    }
    let total = rows.len() as i64;
    let data: Vec<Value> =
        rows.into_iter().skip(((page - 1) * limit) as usize).take(limit as usize).collect();
    let total_pages = (total + limit - 1) / limit;
    axum::Json(
        json!({"data": data, "page": page, "limit": limit, "total": total, "total_pages": total_pages}),
    )
    .into_response()
}

async fn performance(
    State(shared): State<Arc<Shared>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if !shared.options.perf {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"enabled": false}))).into_response();
    }
    let after = match q.get("after") {
        None => None,
        Some(a) => match DateTime::parse_from_rfc3339(a) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                return error(
                    &shared,
                    StatusCode::BAD_REQUEST,
                    "invalid 'after' timestamp, use RFC3339 format",
                );
            }
        },
    };
    let sys: Vec<Value> = shared
        .lock()
        .perf
        .iter()
        .filter(|s| {
            let ts = s["timestamp"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            after.is_none_or(|a| ts.is_some_and(|t| t.with_timezone(&Utc) > a))
        })
        .cloned()
        .collect();
    axum::Json(json!({"enabled": true, "sys_stats": sys, "gpu_stats": []})).into_response()
}

async fn running(State(shared): State<Arc<Shared>>) -> Response {
    let list: Vec<Value> = shared
        .lock()
        .procs
        .iter()
        .filter(|(_, p)| p.state != "stopped")
        .map(|(id, p)| {
            json!({"model": id, "state": p.state, "cmd": "llama-server", "proxy": format!("http://127.0.0.1:{}", p.port.unwrap_or(0)), "ttl": 0, "name": "", "description": ""})
        })
        .collect();
    axum::Json(json!({"running": list})).into_response()
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    let data: Vec<Value> = shared
        .options
        .models
        .iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": 1_784_538_902, "owned_by": "llama-swap"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn stop_one(shared: &Shared, model: &str) {
    let child = {
        let mut inner = shared.lock();
        let Some(p) = inner.procs.get_mut(model) else { return };
        if p.state == "stopped" {
            return;
        }
        p.state = "stopping";
        p.child.take()
    };
    emit_models(shared);
    if let Some(mut child) = child {
        let _ = child.kill().await;
    }
    if let Some(p) = shared.lock().procs.get_mut(model) {
        p.port = None;
    }
    set_state(shared, model, "stopped");
}

async fn stop_all(shared: &Shared) {
    let ids: Vec<String> = shared.lock().procs.keys().cloned().collect();
    for id in ids {
        stop_one(shared, &id).await;
    }
}

async fn unload_all_api(State(shared): State<Arc<Shared>>) -> Response {
    let _held = shared.unload_gate.read().await;
    let _g = shared.swap.lock().await;
    stop_all(&shared).await;
    axum::Json(json!({"msg": "ok"})).into_response()
}

async fn unload_all_get(State(shared): State<Arc<Shared>>) -> Response {
    let _held = shared.unload_gate.read().await;
    let _g = shared.swap.lock().await;
    stop_all(&shared).await;
    "OK".into_response()
}

async fn unload_one(State(shared): State<Arc<Shared>>, Path(model): Path<String>) -> Response {
    let model = model.trim_start_matches('/').to_owned();
    if !shared.lock().procs.contains_key(&model) {
        return error(&shared, StatusCode::NOT_FOUND, "model not found");
    }
    let _held = shared.unload_gate.read().await;
    let _g = shared.swap.lock().await;
    stop_one(&shared, &model).await;
    "OK".into_response()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Loads `model` (stopping whatever else runs: one model at a time), returning its port.
async fn ensure(shared: &Arc<Shared>, model: &str) -> Result<u16, String> {
    let Some(def) = shared.options.models.iter().find(|m| m.id == model).cloned() else {
        return Err("model not found".into());
    };
    let _g = shared.swap.lock().await;
    if let Some(p) = shared.lock().procs.get(model)
        && p.state == "ready"
    {
        return p.port.ok_or_else(|| "ready without a port".to_owned());
    }
    let others: Vec<String> = shared
        .lock()
        .procs
        .iter()
        .filter(|(id, p)| *id != model && p.state != "stopped")
        .map(|(id, _)| id.clone())
        .collect();
    for other in others {
        stop_one(shared, &other).await;
    }
    let bin =
        llama_server().ok_or("llama-server is not built (run ../shared/peers/llama-server.sh setup)")?;
    let gguf = peers_cache().join("models").join(format!("{}.gguf", def.gguf));
    let port = free_port();
    set_state(shared, model, "starting");
    let log = std::fs::File::create(
        std::env::temp_dir().join(format!("standin-{model}-{port}.log").replace('/', "_")),
    )
    .map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(bin)
        .args(["-m"])
        .arg(&gguf)
        .args(["-a", model, "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--jinja", "-c", "4096", "-n", "256", "-t", "2", "--no-webui", "-np", "2"])
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn llama-server: {e}"))?;
    if let Some(p) = shared.lock().procs.get_mut(model) {
        p.child = Some(child);
        p.port = Some(port);
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ok = shared
            .http
            .get(format!("http://127.0.0.1:{port}/health"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ok {
            break;
        }
        let exited = shared.lock().procs.get_mut(model).and_then(|p| p.child.as_mut()).map(|c| c.try_wait());
        if matches!(exited, Some(Ok(Some(_)))) || Instant::now() > deadline {
            drop(_g);
            stop_one(shared, model).await;
            return Err("upstream failed to start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_state(shared, model, "ready");
    Ok(port)
}

/// Proxies `request` to the model's server, tracking it in flight and recording activity.
async fn proxy(
    shared: Arc<Shared>,
    model: String,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let id = {
        let mut inner = shared.lock();
        inner.next_inflight += 1;
        let id = inner.next_inflight;
        let entry = json!({"id": id.to_string(), "timestamp": now(), "model": model, "req_path": path, "method": method.as_str(),
                           "req_headers": {"Content-Type": "application/json"}, "remote_ip": "127.0.0.1",
                           "resp_headers": {}, "resp_bytes": 0, "elapsed_ms": 0});
        inner.inflight.insert(id, entry.clone());
        drop(inner);
        if shared.options.legacy {
            emit_inflight_total(&shared);
        } else {
            emit(&shared, "inflight", &json!({"operation": "upsert", "request": entry}));
        }
        id
    };
    let done = {
        let shared = Arc::clone(&shared);
        move || {
            shared.lock().inflight.remove(&id);
            if shared.options.legacy {
                emit_inflight_total(&shared);
            } else {
                emit(&shared, "inflight", &json!({"operation": "remove", "id": id.to_string()}));
            }
        }
    };
    let port = match ensure(&shared, &model).await {
        Ok(p) => p,
        Err(e) => {
            done();
            let status = if e == "model not found" { StatusCode::NOT_FOUND } else { StatusCode::BAD_GATEWAY };
            return error(&shared, status, &e);
        }
    };
    let mut b = shared.http.request(method, format!("http://127.0.0.1:{port}{path}")).body(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    // One more try when the request could not be sent at all (the upstream closed a connection
    // as it was reused, or was still opening its port): the body is in memory, nothing reached
    // the model.
    let retry = b.try_clone();
    let sent = match (b.send().await, retry) {
        (Err(e), Some(again)) if e.is_connect() || e.is_request() => again.send().await,
        (first, _) => first,
    };
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            done();
            record_activity(
                &shared,
                &model,
                &path,
                502,
                0,
                0,
                0.0,
                0.0,
                started.elapsed().as_millis() as i64,
            );
            return error(&shared, StatusCode::BAD_GATEWAY, &format!("upstream: {e}"));
        }
    };
    let status = upstream.status();
    let ct = upstream.headers().get(header::CONTENT_TYPE).cloned();
    // Forward the body as it comes, watching it for usage and timings.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shared2 = Arc::clone(&shared);
    tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut stream = upstream.bytes_stream();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => {
                    seen.extend_from_slice(&c);
                    if tx.send(Ok(c)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                    break;
                }
            }
        }
        let (input, output, ptps, tps) = usage_of(&seen);
        done();
        record_activity(
            &shared2,
            &model,
            &path,
            status.as_u16(),
            input,
            output,
            ptps,
            tps,
            started.elapsed().as_millis() as i64,
        );
    });
    let mut response = Response::builder().status(status.as_u16());
    if let Some(ct) = ct {
        response = response.header(header::CONTENT_TYPE, ct);
    }
    response.body(Body::from_stream(tokio_stream(rx))).expect("response")
}

fn tokio_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Token counts and speeds from a JSON body or an SSE stream's last `usage` / `timings`.
fn usage_of(body: &[u8]) -> (i64, i64, f64, f64) {
    let text = String::from_utf8_lossy(body);
    let mut values: Vec<Value> = Vec::new();
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        values.push(v);
    } else {
        for line in text.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(v) = serde_json::from_str::<Value>(data.trim())
            {
                values.push(v);
            }
        }
    }
    let (mut input, mut output, mut ptps, mut tps) = (0, 0, 0.0, 0.0);
    for v in values {
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            input = u["prompt_tokens"].as_i64().unwrap_or(input);
            output = u["completion_tokens"].as_i64().unwrap_or(output);
        }
        if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
            ptps = t["prompt_per_second"].as_f64().unwrap_or(ptps);
            tps = t["predicted_per_second"].as_f64().unwrap_or(tps);
        }
    }
    (input, output, ptps, tps)
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let model =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["model"].as_str().map(str::to_owned));
    let Some(model) = model else {
        return error(&shared, StatusCode::BAD_REQUEST, "could not find model in request body");
    };
    if !shared.lock().procs.contains_key(&model) {
        return error(
            &shared,
            StatusCode::NOT_FOUND,
            &format!("could not find suitable handler for {model}"),
        );
    }
    proxy(shared, model, Method::POST, "/v1/chat/completions".into(), headers, body).await
}

async fn upstream(
    State(shared): State<Arc<Shared>>,
    Path((model, path)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !shared.lock().procs.contains_key(&model) {
        return error(&shared, StatusCode::NOT_FOUND, "model not found");
    }
    proxy(shared, model, method, format!("/{}", path.trim_start_matches('/')), headers, body).await
}
