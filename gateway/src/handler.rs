//! The routes and the request path (see the crate docs for the order of the checks).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use executus::Identity;
use executus::ids::RunId;
use executus::lane::{JobSpec, LaneError};
use executus::ports::{AuditEvent, PortError, SpendRequest};
use executus_llm::server::{ApiError, ClientRequest, Dialect, Encoder, ErrorClass};
use executus_llm::{Message, StreamEvent, ToolChoice};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::config::KeyConfig;
use crate::guard::{Plan, SessionState};
use crate::review::Reviewer;
use crate::session::{self, SessionId};
use crate::turn::{Collect, Sink, Turn, TurnObserver, announce, stop_events};
use crate::{Shared, models};

#[cfg(test)]
mod tests;

/// Header a key may use to pick another policy profile (when its `profile_header` is on).
pub const PROFILE_HEADER: &str = "x-executus-profile";

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/responses", post(responses))
        .route("/v1/messages", post(messages))
        .route("/v1/models", get(models::list))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> http::Response<Body> {
    handle(shared, Dialect::Chat, headers, body).await
}

async fn responses(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> http::Response<Body> {
    handle(shared, Dialect::Responses, headers, body).await
}

async fn messages(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> http::Response<Body> {
    handle(shared, Dialect::Messages, headers, body).await
}

async fn healthz() -> http::Response<Body> {
    json_response(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}"))
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> http::Response<Body> {
    // With keys configured, the metrics (which name keys and targets) need one too.
    if let Err(error) = shared.keys.authenticate(&headers) {
        return error_response(Dialect::Chat, &error, None);
    }
    let mut response = http::Response::new(Body::from(shared.metrics.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> http::Response<Body> {
    let mut response = http::Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error in `dialect`'s form, with `Retry-After` and the session when known.
pub(crate) fn error_response(
    dialect: Dialect,
    error: &ApiError,
    session: Option<&str>,
) -> http::Response<Body> {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, Bytes::from(error.body(dialect)));
    let headers = response.headers_mut();
    if let Some(secs) = error.retry_after_secs() {
        headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(value) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        headers.insert("x-executus-session", value);
    }
    response
}

/// Counts a request in flight until dropped (a streamed answer keeps it until its end).
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.metrics.in_flight(1);
        Self(Arc::clone(shared))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.in_flight(-1);
    }
}

/// A failure before the answer started, with the session if it was known by then.
struct Failure {
    error: ApiError,
    session: Option<String>,
}

impl From<ApiError> for Failure {
    fn from(error: ApiError) -> Self {
        Self { error, session: None }
    }
}

async fn handle(
    shared: Arc<Shared>,
    dialect: Dialect,
    headers: HeaderMap,
    body: Body,
) -> http::Response<Body> {
    let started = Instant::now();
    let flight = InFlight::new(&shared);
    let response = match process(&shared, dialect, &headers, body, flight).await {
        Ok(response) => response,
        Err(Failure { error, session }) => {
            shared.metrics.error(error.class.as_str());
            tracing::info!(
                target: "executus_gateway",
                sess = session.as_deref().unwrap_or("-"),
                dialect = dialect.as_str(),
                status = error.status(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                error = %error.message,
                "refused"
            );
            error_response(dialect, &error, session.as_deref())
        }
    };
    shared.metrics.request(dialect.as_str(), response.status().as_u16());
    response
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    executus::ports::audit::now_ms()
}

/// A fresh time-ordered id (UUIDv7) for a request's audit rows and budget reservation, its
/// random bits from a thread-local generator: `RunId::new` reads the operating system's random
/// source, a system call per request. The id names a request; nothing relies on it being
/// unguessable.
fn run_id() -> RunId {
    let mut random = [0u8; 10];
    fastrand::fill(&mut random);
    RunId(uuid::Builder::from_unix_timestamp_millis(now_ms(), &random).into_uuid())
}

async fn read_body(body: Body, headers: &HeaderMap, max: usize, stall: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorClass::RequestTooLarge,
            format!("the request body is larger than the limit of {max} bytes"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Read (and drop) what a client sends past the limit, up to a bound, so that it sees the
    // 413 instead of a connection closed under its upload.
    let drain = max.saturating_mul(2).saturating_add(16 << 20);
    if declared.is_some_and(|len| len > drain as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut buf = BytesMut::with_capacity(declared.map_or(8192, |n| (n as usize).min(max)));
    let mut total = 0usize;
    loop {
        let frame = match executus_llm::clock::within(stall, body.frame()).await {
            Err(_) => {
                return Err(ApiError::new(
                    ErrorClass::InvalidRequest,
                    format!("the request body stalled for {}s", stall.as_secs()),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(error))) => {
                return Err(ApiError::new(
                    ErrorClass::InvalidRequest,
                    format!("could not read the request body: {error}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            total = total.saturating_add(data.len());
            if total <= max {
                buf.extend_from_slice(&data);
            } else if total > drain {
                break;
            }
        }
    }
    if total > max {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

/// The profile of a request: the header (when the key may choose), the key's, the default.
fn profile(shared: &Shared, key: &KeyConfig, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    if let Some(asked) = headers.get(PROFILE_HEADER).and_then(|v| v.to_str().ok()).map(str::trim) {
        if !key.profile_header {
            return Err(ApiError::new(
                ErrorClass::Permission,
                format!("key {} may not choose a policy profile ({PROFILE_HEADER})", key.name),
            ));
        }
        if !shared.policy.has_profile(asked) {
            return Err(ApiError::new(
                ErrorClass::InvalidRequest,
                format!("unknown policy profile {asked:?}"),
            ));
        }
        return Ok(Some(asked.to_owned()));
    }
    Ok(key.profile.clone().or_else(|| shared.config.profile.clone()))
}

/// What clients say about their machine, for the log: the shape, never the values.
fn masked_client_meta(request: &ClientRequest, headers: &HeaderMap) -> String {
    fn mask(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let fields: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", mask(v))).collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::String(s) => format!("<{} chars>", s.chars().count()),
            Value::Array(items) => format!("<{} items>", items.len()),
            other => format!("<{}>", if other.is_null() { "null" } else { "scalar" }),
        }
    }
    let mut parts = Vec::new();
    if let Some(meta) = &request.metadata {
        parts.push(format!("metadata={}", mask(meta)));
    }
    for name in ["x-codex-turn-metadata", "x-stainless-os", "user-agent"] {
        if let Some(value) = headers.get(name) {
            // The user agent names the client and is kept; machine details are masked.
            if name == "user-agent" {
                parts.push(format!(
                    "ua={}",
                    value.to_str().unwrap_or("?").chars().take(60).collect::<String>()
                ));
            } else {
                parts.push(format!("{name}=<{} bytes>", value.len()));
            }
        }
    }
    parts.join(" ")
}

fn store_failed(error: &PortError, session: &SessionId) -> Failure {
    Failure {
        error: ApiError::new(ErrorClass::Internal, format!("the session store failed: {error}")),
        session: Some(session.id.clone()),
    }
}

async fn process(
    shared: &Arc<Shared>,
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
    flight: InFlight,
) -> Result<http::Response<Body>, Failure> {
    let key = shared.keys.authenticate(headers)?;
    let bytes = read_body(body, headers, shared.config.max_body_bytes, shared.config.header_timeout).await?;
    let decoded =
        dialect.decode(&bytes).map_err(|e| ApiError::new(ErrorClass::InvalidRequest, e.to_string()))?;
    drop(bytes);
    if !key.allows(&decoded.model) {
        return Err(ApiError::new(
            ErrorClass::Permission,
            format!("key {} may not use model {:?}", key.name, decoded.model),
        )
        .into());
    }
    let profile = profile(shared, &key, headers)?;
    if let Some(limit) = key.rate {
        shared.rate.admit(&key.name, limit, now_ms()).await.map_err(|refused| {
            ApiError::new(ErrorClass::RateLimited, refused.to_string())
                .with_retry_after(Some(refused.retry_after))
        })?;
    }
    let session = session::resolve(headers, &key.name, &decoded.model, &decoded.request);
    tracing::info!(
        target: "executus_gateway",
        sess = %session.id,
        key = %key.name,
        dialect = dialect.as_str(),
        model = %decoded.model,
        msgs = decoded.request.messages.len(),
        tools = decoded.request.tools.len(),
        stream = decoded.stream,
        client = %masked_client_meta(&decoded, headers),
        "request"
    );
    let identity = Identity::new(format!("key:{}", key.name), "gateway");
    if let Some(agent) = decoded.model.strip_prefix("agent:") {
        // Boxed: an agent run's state is several KB, and every request's future (moved into
        // its box by the router) would otherwise be as large.
        return Box::pin(crate::models::agent(shared, decoded.clone(), agent, identity, &session, flight))
            .await
            .map_err(|error| Failure { error, session: Some(session.id.clone()) });
    }
    let chain = shared.registry.chain(&decoded.model).map_err(|e| Failure {
        error: ApiError::new(ErrorClass::NotFound, format!("unknown model {:?}: {e}", decoded.model)),
        session: Some(session.id.clone()),
    })?;
    let observer = TurnObserver::new(Arc::clone(shared), Arc::clone(chain.observer()));
    let chain = chain.with_observer(observer.clone());

    // The session's guard.
    let settings = shared.config.loops;
    let prepared = shared
        .with_session(session.store_key(), |state: &mut SessionState| {
            let prepared = state.prepare(&decoded.request.messages, &settings);
            let changed = prepared.changed;
            (prepared, changed)
        })
        .await
        .map_err(|e| store_failed(&e, &session))?;
    let run_id = run_id();
    let reviewer =
        Reviewer { shared, profile: profile.as_deref(), identity: &identity, session: &session.id, run_id };
    for trigger in &prepared.triggers {
        announce(shared, &reviewer, trigger).await;
    }
    let mut applied: Vec<String> = profile.iter().map(|p| format!("profile:{p}")).collect();
    let mut decoded = decoded;
    // The transcript moves into the turn; what the answer echoes stays in `decoded`.
    let mut request = std::mem::take(&mut decoded.request);
    let stream = decoded.stream;
    let mut finalize = false;
    match &prepared.plan {
        Plan::Pass => {}
        Plan::Finalize { reason } => {
            finalize = true;
            applied.push("loops:finalize".into());
            request.tools.clear();
            request.tool_choice = ToolChoice::Auto;
            request.messages.push(Message::user(executus::loops::finalize_instruction(reason)));
        }
        Plan::Stop { reason } => {
            applied.push("loops:stop".into());
            tracing::warn!(target: "executus_gateway", sess = %session.id, reason = %reason, "loop protection: answering with a tool-free end of turn");
            let events = stop_events(reason);
            let meta = AnswerMeta { session: &session, served_by: "executus/loop-guard", applied: &applied };
            return Ok(local_answer(&decoded, events, &meta, flight).await);
        }
    }
    if shared.config.speculative_off_on_tool_turns
        && !request.tools.is_empty()
        && chain
            .targets()
            .all(|t| t.split_once('/').is_some_and(|(p, _)| shared.speculative_providers.contains(p)))
    {
        applied.push("speculative-off".into());
        request.extra.insert("speculative.n_max".into(), Value::from(0));
    }

    // The budget: the worst case is reserved before anything is spent (nothing to reserve
    // with a budget that neither limits nor counts).
    let reservation = if shared.budget.limits_spending() {
        let spend = SpendRequest {
            run_id,
            identity: identity.clone(),
            targets: chain.targets().map(str::to_owned).collect(),
            input_tokens: estimate_tokens(&request),
            max_output_tokens: u64::from(request.max_tokens.unwrap_or(4096)),
        };
        match shared.budget.reserve(&spend).await {
            Ok(reservation) => Some(reservation),
            Err(denied) => {
                reviewer.audit(AuditEvent::budget_denied(&denied)).await;
                return Err(Failure {
                    error: ApiError::new(ErrorClass::RateLimited, denied.to_string())
                        .with_retry_after(Some(Duration::from_secs(60))),
                    session: Some(session.id.clone()),
                });
            }
        }
    } else {
        None
    };

    let turn = Turn {
        shared: Arc::clone(shared),
        chain,
        observer,
        request,
        finalize,
        stream,
        identity,
        session: session.clone(),
        profile,
        run_id,
        reservation,
    };
    let applied = applied.join(",");
    if stream {
        streamed(shared, &key, decoded, turn, applied, flight).await
    } else {
        whole(shared, &key, &decoded, turn, applied, flight).await
    }
}

/// Prompt tokens, estimated at four bytes a token (what the budget reserves against).
fn estimate_tokens(request: &executus_llm::Request) -> u64 {
    let mut bytes = request.system.as_ref().map_or(0, String::len);
    for message in &request.messages {
        for part in &message.parts {
            bytes += match part {
                executus_llm::Part::Text { text } => text.len(),
                executus_llm::Part::Image { data, .. } => data.len(),
                executus_llm::Part::ToolCall(call) => call.name.len() + json_len(&call.args),
                executus_llm::Part::ToolResult(result) => result.content.len(),
            };
        }
    }
    for tool in &request.tools {
        bytes += tool.name.len() + tool.description.len() + json_len(&tool.parameters);
    }
    bytes as u64 / 4
}

/// The length of `value` as compact JSON, counted without building the text (an agent sends
/// its whole tool set and every earlier call with each request).
fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// What every answer's headers say.
struct AnswerMeta<'a> {
    session: &'a SessionId,
    served_by: &'a str,
    applied: &'a [String],
}

/// Sets the answer's `x-executus-*` headers; the texts become the header values as they are
/// (a value a header cannot carry is left out).
pub(crate) fn set_answer_headers(
    response: &mut http::Response<Body>,
    session: &SessionId,
    served_by: String,
    applied: String,
) {
    // Names made once, not parsed per answer.
    const SESSION: HeaderName = HeaderName::from_static("x-executus-session");
    const SERVED_BY: HeaderName = HeaderName::from_static("x-executus-served-by");
    const APPLIED: HeaderName = HeaderName::from_static("x-executus-applied-policies");
    let headers = response.headers_mut();
    for (name, value) in [(SESSION, session.id.clone()), (SERVED_BY, served_by), (APPLIED, applied)] {
        if let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(value)) {
            headers.insert(name, value);
        }
    }
}

/// Answers from events made here (loop protection's stop), in the client's form.
async fn local_answer(
    request: &ClientRequest,
    events: Vec<StreamEvent>,
    meta: &AnswerMeta<'_>,
    flight: InFlight,
) -> http::Response<Body> {
    drop(flight);
    let applied = meta.applied.join(",");
    let mut response = if request.stream {
        let mut encoder = request.dialect.encoder(request);
        let mut out = Vec::new();
        encoder.start(&mut out);
        for event in &events {
            encoder.event(event, &mut out);
        }
        sse_response(Body::from(out))
    } else {
        let mut collect = Collect::default();
        for event in events {
            collect.event(event).await;
        }
        match collect.response() {
            Ok(answer) => {
                json_response(StatusCode::OK, Bytes::from(request.dialect.encode(request, &answer)))
            }
            Err(error) => error_response(request.dialect, &error, Some(&meta.session.id)),
        }
    };
    set_answer_headers(&mut response, meta.session, meta.served_by.to_owned(), applied);
    response
}

pub(crate) fn sse_response(body: Body) -> http::Response<Body> {
    let mut response = http::Response::new(body);
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// An admitted job's result.
pub(crate) type Admitted<T> = std::pin::Pin<Box<dyn Future<Output = Result<T, LaneError>> + Send>>;

/// Submits `work` through the key's lane (if it has one) and the shared lane.
pub(crate) async fn admit<T, F>(shared: &Arc<Shared>, key: &str, work: F) -> Result<Admitted<T>, ApiError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let spec = JobSpec::new(key, "request");
    let shared_lane = shared.lane.clone();
    let job: Admitted<T> = match shared.key_lanes.get(key) {
        None => Box::pin(shared_lane.submit(spec, work).await.map_err(lane_error)?),
        Some(key_lane) => {
            let inner_spec = spec.clone();
            let nested = async move {
                match shared_lane.submit(inner_spec, work).await {
                    Ok(handle) => handle.await,
                    Err(error) => Err(error),
                }
            };
            let handle = key_lane.submit(spec, nested).await.map_err(lane_error)?;
            Box::pin(async move { handle.await.and_then(|inner| inner) })
        }
    };
    Ok(job)
}

/// Runs `work` through the key's lane (if it has one) and the shared lane on this task while
/// both have a free slot (no task of its own, no wake-up of another thread), queued like
/// [`admit`] otherwise. The work belongs to this request: a client that goes away drops it,
/// which stops the upstream call.
async fn run_admitted<T, F>(shared: &Arc<Shared>, key: &str, work: F) -> Result<T, ApiError>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let spec = JobSpec::new(key, "request");
    let ran = match shared.key_lanes.get(key) {
        None => shared.lane.run(spec, work).await,
        Some(key_lane) => {
            let shared_lane = shared.lane.clone();
            let inner_spec = spec.clone();
            key_lane
                .run(spec, async move { shared_lane.run(inner_spec, work).await })
                .await
                .and_then(|inner| inner)
        }
    };
    ran.map_err(lane_error)
}

/// What a lane refusal means for the client.
pub(crate) fn lane_error(error: LaneError) -> ApiError {
    match error {
        LaneError::Full { lane, running, queued, .. } => ApiError::new(
            ErrorClass::RateLimited,
            format!(
                "the gateway is at capacity ({lane}: {running} running, {queued} waiting); retry shortly"
            ),
        )
        .with_retry_after(Some(Duration::from_secs(1))),
        LaneError::ShuttingDown { .. } | LaneError::Gone { .. } | LaneError::Cancelled { .. } => {
            ApiError::new(ErrorClass::Unavailable, "the gateway is shutting down")
        }
        other => ApiError::new(ErrorClass::Internal, other.to_string()),
    }
}

/// A whole (non-streamed) answer.
async fn whole(
    shared: &Arc<Shared>,
    key: &KeyConfig,
    decoded: &ClientRequest,
    turn: Turn,
    applied: String,
    flight: InFlight,
) -> Result<http::Response<Body>, Failure> {
    let session = turn.session.clone();
    let observer = Arc::clone(&turn.observer);
    let spends = turn.reservation.is_some();
    // Boxed once here: the turn's future is large, and the lane moves what it is given.
    let work = Box::pin(async move {
        let _flight = flight;
        let first = turn.open(&turn.chain, &turn.request).await;
        let mut collect = Collect::default();
        match first {
            Ok(stream) => {
                turn.run(stream, &mut collect).await;
            }
            Err(error) => {
                release(turn).await;
                collect.error = Some(ApiError::from_llm(&error));
            }
        }
        collect.response()
    });
    let failure = |error: ApiError| Failure { error, session: Some(session.id.clone()) };
    let answer = if spends {
        // A reservation is settled with what the upstream really used: the turn runs to its
        // end on its own task even if the client goes away.
        let job = admit(shared, &key.name, work).await.map_err(failure)?;
        job.await.map_err(|e| failure(lane_error(e)))?
    } else {
        run_admitted(shared, &key.name, work).await.map_err(failure)?
    }
    .map_err(failure)?;
    let served = observer.served().unwrap_or_else(|| format!("{}/{}", answer.provider, answer.model));
    let mut response = json_response(StatusCode::OK, Bytes::from(decoded.dialect.encode(decoded, &answer)));
    set_answer_headers(&mut response, &session, served, applied);
    Ok(response)
}

/// Settles a reservation of a turn that never reached an upstream.
async fn release(mut turn: Turn) {
    if let Some(reservation) = turn.reservation.take() {
        turn.shared.budget.settle(reservation, &executus_llm::Usage::default(), "", "").await;
    }
}

/// The client's SSE stream.
struct StreamSink {
    encoder: Encoder,
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
    idle: Duration,
}

impl StreamSink {
    async fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let bytes = Bytes::from(std::mem::take(&mut self.buf));
        matches!(executus_llm::clock::within(self.idle, self.tx.send(bytes)).await, Ok(Ok(())))
    }
}

impl Sink for StreamSink {
    async fn event(&mut self, event: StreamEvent) -> bool {
        self.encoder.event(&event, &mut self.buf);
        self.flush().await
    }

    async fn fail(&mut self, error: ApiError) {
        self.encoder.fail(&error, &mut self.buf);
        self.flush().await;
    }
}

/// A streamed answer: headers go out once the upstream's first event is in (so failover
/// before it is invisible), then events as they come.
async fn streamed(
    shared: &Arc<Shared>,
    key: &KeyConfig,
    decoded: ClientRequest,
    turn: Turn,
    applied: String,
    flight: InFlight,
) -> Result<http::Response<Body>, Failure> {
    let session = turn.session.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let (first_tx, first_rx) = oneshot::channel::<Result<String, ApiError>>();
    let idle = shared.config.idle_timeout;
    // Boxed once here: the turn's future is large, and the lane moves what it is given.
    let work = Box::pin(async move {
        let _flight = flight;
        let started = Instant::now();
        let first = match turn.open(&turn.chain, &turn.request).await {
            Ok(stream) => stream,
            Err(error) => {
                release(turn).await;
                let _ = first_tx.send(Err(ApiError::from_llm(&error)));
                return;
            }
        };
        let served = turn.observer.served().unwrap_or_default();
        let _ = first_tx.send(Ok(served.clone()));
        let mut encoder = decoded.dialect.encoder(&decoded);
        let mut buf = Vec::new();
        encoder.start(&mut buf);
        let mut sink = StreamSink { encoder, tx, buf, idle };
        let sess = turn.session.id.clone();
        let end = turn.run(first, &mut sink).await;
        tracing::info!(
            target: "executus_gateway",
            sess = %sess,
            served_by = %served,
            input_tokens = end.usage.input_tokens,
            output_tokens = end.usage.output_tokens,
            elapsed_ms = started.elapsed().as_millis() as u64,
            error = end.error.as_ref().map(|e| e.message.as_str()),
            "stream ended"
        );
    });
    let failure = |error: ApiError| Failure { error, session: Some(session.id.clone()) };
    let job = admit(shared, &key.name, work).await.map_err(failure)?;
    let served = match first_rx.await {
        Ok(Ok(served)) => served,
        Ok(Err(error)) => return Err(failure(error)),
        // The job ended without starting (a nested lane refused it, or the lane stopped).
        Err(_) => {
            let error = match job.await {
                Err(lane) => lane_error(lane),
                Ok(()) => ApiError::new(ErrorClass::Internal, "the request ended before its answer started"),
            };
            return Err(failure(error));
        }
    };
    // The job runs on; dropping its handle does not cancel it.
    drop(job);
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    }));
    let mut response = sse_response(body);
    set_answer_headers(&mut response, &session, served, applied);
    Ok(response)
}
