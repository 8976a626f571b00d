//! The fleet's web views and API, as an axum [`Router`] that a server (`executus-run serve`)
//! mounts: [`router`]`(fleet, access)`.
//!
//! | route | permission | what |
//! | --- | --- | --- |
//! | `GET /fleet` | view | the page: hosts, liveness, models and states, in-flight, recent activity, tokens/s sparklines (server-rendered, then kept live by a small script) |
//! | `GET /fleet/assets/{fleet.js,fleet.css}` | none | the page's script and style, embedded in the binary |
//! | `POST /fleet/login` | none | a form posting a key; a key allowed to view sets an `HttpOnly`, `SameSite=Strict` cookie |
//! | `GET /api/fleet/status` | view | `{"hosts":[{"name","base_url","liveness","since","models":[{"id","state"}],"in_flight"}]}` |
//! | `GET /api/fleet/snapshot` | view | the full state with sequence numbers |
//! | `GET /api/fleet/events` | view | SSE: `event: snapshot` (the state), then `event: delta` (sequence-stamped changes); a new `snapshot` event if the consumer fell behind |
//! | `POST /api/fleet/actions` | act | `{"host","action":"load"\|"unload"\|"unload-all","model"?,"confirm"?}` (or `?confirm=true`): 202 with the queue; 409 `{"error":"bench in progress","requires_confirmation":true}` on a leased host; 429 listing the queue when it is full; 503 when the host is down |
//! | `GET /api/fleet/activity?host=&limit=` | view | the newest stored activity rows |
//! | `GET /api/fleet/leaderboard` | view | the bench leaderboard |
//! | `GET /api/fleet/audit?host=&limit=` | view | the newest audited actions |
//!
//! # Who may see and act
//! Every request is authorised by the [`Access`] the router was built with:
//! [`Access::Keys`] asks a [`FleetAuthorizer`] (a gateway key allowed `fleet = "act"` acts,
//! `"view"` views; anything else gets 401/403); [`Access::LoopbackNoKeys`] — which the caller
//! must choose explicitly, for a server bound to loopback without keys — lets everything
//! through but still refuses a peer that is not a loopback address when the server reports
//! peer addresses. There is no default: an unauthenticated fleet view cannot be built by
//! accident. Hosts' keys stay on the server; nothing here returns them.
//!
//! # What it does not do
//! No TLS and no rate limiting of its own (the embedding server's job).

mod page;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::json;

use crate::actions::{ActionKind, ActionRequest};
use crate::error::FleetError;
use crate::fleet::{Fleet, Status};

/// The cookie the login form sets.
pub const COOKIE: &str = "executus_fleet_key";

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Permission {
    /// Nothing (no or unknown credentials).
    None,
    /// See the views.
    View,
    /// See and act.
    Act,
}

/// A decision: what the request may do and who it is (for the audit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The permission.
    pub permission: Permission,
    /// Who (a key's name); never the key itself.
    pub who: String,
}

impl Grant {
    /// No permission.
    pub fn none() -> Self {
        Self { permission: Permission::None, who: "anonymous".into() }
    }
}

/// Decides what a request may do. The embedding server implements it over its own keys
/// (`[serve.keys.NAME] fleet = "act" | "view"`); [`StaticKeys`] is a ready one.
pub trait FleetAuthorizer: Send + Sync {
    /// The grant for a request (its headers, including the cookie the login form sets).
    fn authorize(&self, headers: &HeaderMap) -> Grant;
}

/// How the router authorises requests. There is no default on purpose.
#[derive(Clone)]
pub enum Access {
    /// Every request is asked of the authorizer.
    Keys(Arc<dyn FleetAuthorizer>),
    /// No keys: the server is bound to loopback and everyone there may act. A request from a
    /// non-loopback peer is still refused when the server reports peer addresses
    /// (`into_make_service_with_connect_info::<SocketAddr>`).
    LoopbackNoKeys,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keys(_) => f.write_str("Access::Keys"),
            Self::LoopbackNoKeys => f.write_str("Access::LoopbackNoKeys"),
        }
    }
}

/// The credential of a request: `Authorization: Bearer K`, `x-api-key: K`, or the login
/// cookie.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some(k) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))
    {
        return Some(k.trim());
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim());
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else { continue };
        for pair in cookies.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=')
                && name == COOKIE
            {
                return Some(value.trim());
            }
        }
    }
    None
}

/// Keys held in memory, each with a name and a permission.
pub struct StaticKeys {
    keys: Vec<(String, executus_llm::Secret, Permission)>,
}

impl StaticKeys {
    /// Keys `(name, key, permission)`.
    pub fn new(keys: impl IntoIterator<Item = (String, executus_llm::Secret, Permission)>) -> Self {
        Self { keys: keys.into_iter().collect() }
    }
}

/// Compares in time independent of where the inputs first differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FleetAuthorizer for StaticKeys {
    fn authorize(&self, headers: &HeaderMap) -> Grant {
        let Some(given) = credential(headers) else { return Grant::none() };
        for (name, key, permission) in &self.keys {
            if same(given.as_bytes(), key.expose().as_bytes()) {
                return Grant { permission: *permission, who: name.clone() };
            }
        }
        Grant::none()
    }
}

#[derive(Clone)]
struct AppState {
    fleet: Fleet,
    access: Access,
}

/// The router: see the module docs for its routes and rules.
pub fn router(fleet: Fleet, access: Access) -> Router {
    let state = AppState { fleet, access };
    Router::new()
        .route("/fleet", get(page_handler))
        .route("/fleet/", get(|| async { Redirect::to("/fleet") }))
        .route("/fleet/assets/fleet.js", get(script))
        .route("/fleet/assets/fleet.css", get(style))
        .route("/fleet/login", post(login))
        .route("/api/fleet/status", get(status))
        .route("/api/fleet/snapshot", get(snapshot))
        .route("/api/fleet/events", get(events))
        .route("/api/fleet/actions", post(act))
        .route("/api/fleet/activity", get(activity))
        .route("/api/fleet/leaderboard", get(leaderboard))
        .route("/api/fleet/audit", get(audit))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The grant of a request.
fn grant(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Grant {
    match &state.access {
        Access::Keys(authorizer) => authorizer.authorize(headers),
        Access::LoopbackNoKeys => match peer {
            Some(addr) if !addr.ip().is_loopback() => Grant::none(),
            _ => Grant { permission: Permission::Act, who: "loopback".into() },
        },
    }
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer(p: Peer) -> Option<SocketAddr> {
    p.map(|Extension(ConnectInfo(a))| a)
}

fn deny(g: &Grant, needed: Permission) -> Option<Response> {
    if g.permission >= needed {
        return None;
    }
    let (status, message) = if g.permission == Permission::None {
        (StatusCode::UNAUTHORIZED, "a key allowed to view the fleet is required")
    } else {
        (StatusCode::FORBIDDEN, "this key may view the fleet but not act on it")
    };
    let mut r = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    Some(r)
}

fn internal(e: &FleetError) -> Response {
    (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({ "error": e.to_string() }))).into_response()
}

async fn page_handler(State(state): State<AppState>, p: Peer, headers: HeaderMap) -> Response {
    let g = grant(&state, &headers, peer(p));
    if g.permission == Permission::None {
        return (StatusCode::UNAUTHORIZED, axum::response::Html(page::login(false))).into_response();
    }
    match state.fleet.snapshot().await {
        Ok(snapshot) => {
            axum::response::Html(page::render(&snapshot, g.permission == Permission::Act)).into_response()
        }
        Err(e) => internal(&e),
    }
}

async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], page::SCRIPT).into_response()
}

async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], page::STYLE).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(State(state): State<AppState>, p: Peer, Form(form): Form<LoginForm>) -> Response {
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_str(&format!("Bearer {}", form.key.trim())) else {
        return (StatusCode::UNAUTHORIZED, axum::response::Html(page::login(true))).into_response();
    };
    headers.insert(header::AUTHORIZATION, value);
    if grant(&state, &headers, peer(p)).permission == Permission::None {
        return (StatusCode::UNAUTHORIZED, axum::response::Html(page::login(true))).into_response();
    }
    // Only characters a cookie value may hold; anything else cannot be a key we accept.
    let key = form.key.trim();
    if !key.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'"' | b'\\')) {
        return (StatusCode::UNAUTHORIZED, axum::response::Html(page::login(true))).into_response();
    }
    let cookie = format!("{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict");
    let mut r = Redirect::to("/fleet").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn status(State(state): State<AppState>, p: Peer, headers: HeaderMap) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    match state.fleet.snapshot().await {
        Ok(s) => Json(Status::of(&s)).into_response(),
        Err(e) => internal(&e),
    }
}

async fn snapshot(State(state): State<AppState>, p: Peer, headers: HeaderMap) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    match state.fleet.snapshot().await {
        Ok(s) => Json(s).into_response(),
        Err(e) => internal(&e),
    }
}

fn event_stream(fleet: Fleet) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold((fleet, None::<crate::state::Subscription>), |(fleet, sub)| async move {
        match sub {
            None => {
                let sub = fleet.subscribe().await.ok()?;
                let event = Event::default().event("snapshot").json_data(&sub.snapshot).ok()?;
                Some((Ok(event), (fleet, Some(sub))))
            }
            Some(mut sub) => match sub.deltas.recv().await {
                Some(delta) => {
                    let event = Event::default().event("delta").json_data(&delta).ok()?;
                    Some((Ok(event), (fleet, Some(sub))))
                }
                // Cut off (fell behind) or the fleet stopped: start over with a snapshot.
                None => {
                    let sub = fleet.subscribe().await.ok()?;
                    let event = Event::default().event("snapshot").json_data(&sub.snapshot).ok()?;
                    Some((Ok(event), (fleet, Some(sub))))
                }
            },
        }
    })
}

async fn events(State(state): State<AppState>, p: Peer, headers: HeaderMap) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    Sse::new(event_stream(state.fleet.clone()))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
struct ActionBody {
    host: String,
    action: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    confirm: bool,
}

#[derive(Deserialize)]
struct ConfirmQuery {
    #[serde(default)]
    confirm: Option<bool>,
}

async fn act(
    State(state): State<AppState>,
    p: Peer,
    headers: HeaderMap,
    Query(query): Query<ConfirmQuery>,
    body: axum::body::Bytes,
) -> Response {
    let g = grant(&state, &headers, peer(p));
    if let Some(r) = deny(&g, Permission::Act) {
        return r;
    }
    let json_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_type {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Json(json!({"error": "send the action as application/json"})),
        )
            .into_response();
    }
    let body: ActionBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (StatusCode::BAD_REQUEST, Json(json!({"error": format!("bad action body: {e}")})))
                .into_response();
        }
    };
    let model = body.model.filter(|m| !m.trim().is_empty());
    let kind = match (body.action.as_str(), model) {
        ("load", Some(m)) => ActionKind::Load(m),
        ("unload", Some(m)) => ActionKind::Unload(m),
        ("unload-all", _) => ActionKind::UnloadAll,
        ("load" | "unload", None) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("`{}` needs a `model`", body.action)})),
            )
                .into_response();
        }
        (other, _) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("unknown action {other:?} (expected load, unload or unload-all)")})),
            )
                .into_response();
        }
    };
    let request = ActionRequest {
        host: body.host,
        kind,
        confirm: body.confirm || query.confirm.unwrap_or(false),
        actor: g.who,
    };
    match state.fleet.act(request).await {
        Ok(ticket) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "id": ticket.id,
                "queue": ticket.queue,
                "took_over": ticket.took_over.as_ref().map(|l| json!({"holder": l.holder, "purpose": l.purpose})),
            })),
        )
            .into_response(),
        Err(e) => action_error(&e),
    }
}

/// The HTTP answer of a refused action.
fn action_error(e: &FleetError) -> Response {
    match e {
        FleetError::Leased { holder, purpose, .. } => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "bench in progress",
                "requires_confirmation": true,
                "holder": holder,
                "purpose": purpose,
            })),
        )
            .into_response(),
        FleetError::QueueFull { queued, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": e.to_string(), "queued": queued})))
                .into_response()
        }
        FleetError::HostOffline { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": e.to_string()}))).into_response()
        }
        FleetError::UnknownHost { .. } => {
            (StatusCode::NOT_FOUND, Json(json!({"error": e.to_string()}))).into_response()
        }
        other => internal(other),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    host: Option<String>,
    limit: Option<u32>,
}

async fn activity(
    State(state): State<AppState>,
    p: Peer,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    match state.fleet.activity(q.host.as_deref(), q.limit.unwrap_or(50).min(1000)).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => internal(&e),
    }
}

async fn leaderboard(State(state): State<AppState>, p: Peer, headers: HeaderMap) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    match state.fleet.leaderboard().await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => internal(&e),
    }
}

async fn audit(
    State(state): State<AppState>,
    p: Peer,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    if let Some(r) = deny(&grant(&state, &headers, peer(p)), Permission::View) {
        return r;
    }
    match state.fleet.actions_log(q.host.as_deref(), q.limit.unwrap_or(50).min(1000)).await {
        Ok(rows) => Json(rows).into_response(),
        Err(e) => internal(&e),
    }
}
