//! llama-swap's wire shapes, decoded into typed values.
//!
//! Matches llama-swap v250 (the `internal/server` API), and the older shapes still met on
//! hosts that have not been upgraded:
//!
//! - `GET /api/events`: SSE frames `event:message` / `data:{"type":T,"data":"<JSON as a
//!   string>"}`. Types: `modelStatus` (array of models with their process state), `logData`
//!   (`{source, data}`), `activity` (`{id}`: a new activity row exists), `inflight`
//!   (`{operation: snapshot|upsert|remove, requests?, request?, id?}`), `uiConfig`,
//!   `profileChanged` (`{active}`). Before v236 hosts sent `metrics` (an array of whole
//!   activity rows) instead of `activity`, and `inflight` as `{"total": N}`; both are accepted.
//! - `GET /api/metrics/activity?min_id=&limit=&page=&sort=&order=`: an [`ActivityPage`].
//! - `GET /api/performance?after=RFC3339`: a [`PerfReport`], or 503 `{"enabled":false}`.
//! - Error bodies: `{"error":"msg"}` (older) or `{"src":"llama-swap","error":{"message",
//!   "type","code"}}` (newer): [`error_message`] reads both.
//!
//! Guarantees: decoding never panics; a malformed payload is a [`WireError`] naming the event
//! type and what is wrong, with a bounded preview of the payload. Request headers that
//! llama-swap reports for in-flight requests are dropped here: nothing downstream sees them.
//!
//! What it does not do: it does not validate values beyond their types (a negative token
//! count is clamped to zero where a count is expected).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A payload that does not have the shape llama-swap sends.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The SSE data is not the `{"type","data"}` envelope.
    #[error("event envelope is malformed: {reason}; data starts: {preview}")]
    Envelope {
        /// What is wrong.
        reason: String,
        /// The start of the data.
        preview: String,
    },
    /// The inner payload of an event of a known type does not decode.
    #[error("`{kind}` event payload is malformed: {reason}; payload starts: {preview}")]
    Payload {
        /// The event type.
        kind: String,
        /// What is wrong.
        reason: String,
        /// The start of the payload.
        preview: String,
    },
    /// A response body of a management route does not decode.
    #[error("`{route}` answered a malformed body: {reason}; body starts: {preview}")]
    Body {
        /// The route.
        route: String,
        /// What is wrong.
        reason: String,
        /// The start of the body.
        preview: String,
    },
}

/// The first 200 characters of `text`, for error messages.
pub fn preview(text: &str) -> String {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() { format!("{}…", &text[..end]) } else { text.to_owned() }
}

/// The state of a model's process on a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelState {
    /// Not running.
    Stopped,
    /// Loading.
    Starting,
    /// Serving.
    Ready,
    /// Being stopped.
    Stopping,
    /// Shut down for good (the host is exiting).
    Shutdown,
    /// A state this crate does not know, verbatim.
    Other(String),
}

impl ModelState {
    /// Parses llama-swap's state name.
    pub fn parse(s: &str) -> Self {
        match s {
            "stopped" => Self::Stopped,
            "starting" => Self::Starting,
            "ready" => Self::Ready,
            "stopping" => Self::Stopping,
            "shutdown" => Self::Shutdown,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The state's name as llama-swap writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Stopping => "stopping",
            Self::Shutdown => "shutdown",
            Self::Other(s) => s,
        }
    }

    /// True when the model's process is up or coming up (a request would not pay a swap).
    pub fn is_loaded(&self) -> bool {
        matches!(self, Self::Ready | Self::Starting)
    }
}

impl std::fmt::Display for ModelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ModelState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ModelState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// One entry of a `modelStatus` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelStatus {
    /// The model id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Process state.
    pub state: ModelState,
    /// Hidden from `/v1/models`.
    #[serde(default)]
    pub unlisted: bool,
    /// The peer serving it, empty for a local model.
    #[serde(default, rename = "peerID")]
    pub peer_id: String,
    /// Other names the model answers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Context length, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_length: Option<u64>,
}

impl ModelStatus {
    /// A local model in `state` (tests and the stand-in build these).
    pub fn new(id: impl Into<String>, state: ModelState) -> Self {
        Self {
            id: id.into(),
            name: String::new(),
            description: String::new(),
            state,
            unlisted: false,
            peer_id: String::new(),
            aliases: Vec::new(),
            context_length: None,
        }
    }
}

/// A request a host is serving right now (from `inflight` events). Headers are not kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InflightRequest {
    /// The host's id for the request.
    pub id: String,
    /// The model it asked for.
    #[serde(default)]
    pub model: String,
    /// The request path.
    #[serde(default)]
    pub req_path: String,
    /// When it started.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Milliseconds since it started, as of the last update.
    #[serde(default)]
    pub elapsed_ms: i64,
}

/// An `inflight` event.
#[derive(Debug, Clone, PartialEq)]
pub enum InflightUpdate {
    /// Every request in flight (sent on connect).
    Snapshot(Vec<InflightRequest>),
    /// One request started or progressed.
    Upsert(InflightRequest),
    /// One request ended.
    Remove(String),
    /// Older hosts: only the number of requests in flight.
    Total(u64),
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    /// llama-swap itself.
    Proxy,
    /// A model server's output.
    Upstream,
}

/// Token statistics of an activity row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenStats {
    /// Prompt tokens served from the cache.
    #[serde(default)]
    pub cache_tokens: i64,
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// Prompt processing speed.
    #[serde(default)]
    pub prompt_per_second: f64,
    /// Generation speed.
    #[serde(default)]
    pub tokens_per_second: f64,
    /// Draft tokens (speculative decoding).
    #[serde(default)]
    pub draft_tokens: i64,
    /// Accepted draft tokens.
    #[serde(default)]
    pub draft_acc_tokens: i64,
}

/// One row of a host's activity log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityRow {
    /// The host's row id (increasing).
    pub id: u64,
    /// When the request was made.
    pub timestamp: DateTime<Utc>,
    /// The model.
    #[serde(default)]
    pub model: String,
    /// The request path.
    #[serde(default)]
    pub req_path: String,
    /// The response status.
    #[serde(default)]
    pub resp_status_code: u16,
    /// Token statistics.
    #[serde(default)]
    pub tokens: TokenStats,
    /// Duration of the request.
    #[serde(default)]
    pub duration_ms: i64,
    /// The host kept the request and response bodies.
    #[serde(default)]
    pub has_capture: bool,
    /// The error, for a failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_msg: Option<String>,
}

/// A page of `GET /api/metrics/activity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActivityPage {
    /// The rows.
    pub data: Vec<ActivityRow>,
    /// This page (1-based).
    #[serde(default)]
    pub page: u32,
    /// Rows per page.
    #[serde(default)]
    pub limit: u32,
    /// Rows matching the query.
    #[serde(default)]
    pub total: u64,
    /// Pages.
    #[serde(default)]
    pub total_pages: u32,
}

/// A system sample of `GET /api/performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SysStat {
    /// When sampled.
    pub timestamp: DateTime<Utc>,
    /// Utilisation of each core, percent.
    #[serde(default)]
    pub cpu_util_per_core: Vec<f64>,
    /// Memory, total.
    #[serde(default)]
    pub mem_total_mb: i64,
    /// Memory, used.
    #[serde(default)]
    pub mem_used_mb: i64,
    /// One-minute load average.
    #[serde(default)]
    pub load_avg_1: f64,
}

/// A GPU sample of `GET /api/performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GpuStat {
    /// When sampled.
    pub timestamp: DateTime<Utc>,
    /// GPU index.
    #[serde(default)]
    pub id: i64,
    /// GPU name.
    #[serde(default)]
    pub name: String,
    /// Temperature.
    #[serde(default)]
    pub temp_c: f64,
    /// Utilisation, percent.
    #[serde(default)]
    pub gpu_util_pct: f64,
    /// VRAM used.
    #[serde(default)]
    pub mem_used_mb: f64,
    /// VRAM total.
    #[serde(default)]
    pub mem_total_mb: f64,
    /// Power draw.
    #[serde(default)]
    pub power_draw_w: f64,
}

/// The body of `GET /api/performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PerfReport {
    /// Performance monitoring is on.
    pub enabled: bool,
    /// System samples.
    #[serde(default)]
    pub sys_stats: Vec<SysStat>,
    /// GPU samples.
    #[serde(default)]
    pub gpu_stats: Vec<GpuStat>,
}

/// One decoded `/api/events` message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum HostEvent {
    /// Every configured model with its state (always the full list).
    ModelStatus(Vec<ModelStatus>),
    /// Log output.
    Log {
        /// Where it came from.
        source: LogSource,
        /// The text.
        data: String,
    },
    /// A new activity row exists (fetch it by id).
    Activity {
        /// Its id.
        id: u64,
    },
    /// Older hosts: whole activity rows (on connect, the host's whole in-memory ring).
    Metrics(Vec<ActivityRow>),
    /// In-flight requests changed.
    Inflight(InflightUpdate),
    /// The UI configuration (not used by the fleet).
    UiConfig(Value),
    /// The active profile changed.
    ProfileChanged {
        /// The profile now active, if any.
        active: Option<String>,
    },
    /// A message type this crate does not know (newer hosts): ignored, not an error.
    Other {
        /// Its type.
        kind: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: Value,
}

fn payload_error(kind: &str, reason: impl std::fmt::Display, payload: &str) -> WireError {
    WireError::Payload { kind: kind.to_owned(), reason: reason.to_string(), preview: preview(payload) }
}

/// Decodes the `data` of one `/api/events` SSE frame.
///
/// # Errors
/// [`WireError::Envelope`] when the frame is not `{"type","data"}`; [`WireError::Payload`]
/// when a known type's payload does not decode.
pub fn decode_event(data: &str) -> Result<HostEvent, WireError> {
    let envelope: Envelope = serde_json::from_str(data)
        .map_err(|e| WireError::Envelope { reason: e.to_string(), preview: preview(data) })?;
    // The payload is JSON encoded as a string; tolerate a host that nests it directly.
    let inner_text;
    let inner: Value = match &envelope.data {
        Value::String(s) => {
            inner_text = s.as_str();
            if is_known(&envelope.kind) {
                serde_json::from_str(s).map_err(|e| payload_error(&envelope.kind, e, s))?
            } else {
                Value::Null
            }
        }
        other => {
            inner_text = "";
            other.clone()
        }
    };
    let kind = envelope.kind.as_str();
    let decode = |value: Value| -> Result<HostEvent, WireError> {
        let fail = |e: serde_json::Error| payload_error(kind, e, inner_text);
        Ok(match kind {
            "modelStatus" => HostEvent::ModelStatus(serde_json::from_value(value).map_err(fail)?),
            "logData" => {
                #[derive(Deserialize)]
                struct Log {
                    source: LogSource,
                    #[serde(default)]
                    data: String,
                }
                let log: Log = serde_json::from_value(value).map_err(fail)?;
                HostEvent::Log { source: log.source, data: log.data }
            }
            "activity" => {
                #[derive(Deserialize)]
                struct Ping {
                    id: u64,
                }
                let ping: Ping = serde_json::from_value(value).map_err(fail)?;
                HostEvent::Activity { id: ping.id }
            }
            "metrics" => HostEvent::Metrics(serde_json::from_value(value).map_err(fail)?),
            "inflight" => {
                HostEvent::Inflight(decode_inflight(value).map_err(|r| payload_error(kind, r, inner_text))?)
            }
            "uiConfig" => HostEvent::UiConfig(value),
            "profileChanged" => {
                #[derive(Deserialize)]
                struct Profile {
                    #[serde(default)]
                    active: Option<String>,
                }
                let p: Profile = serde_json::from_value(value).map_err(fail)?;
                HostEvent::ProfileChanged { active: p.active }
            }
            other => HostEvent::Other { kind: other.to_owned() },
        })
    };
    decode(inner)
}

fn is_known(kind: &str) -> bool {
    matches!(
        kind,
        "modelStatus" | "logData" | "activity" | "metrics" | "inflight" | "uiConfig" | "profileChanged"
    )
}

fn decode_inflight(value: Value) -> Result<InflightUpdate, String> {
    if let Some(total) = value.get("total") {
        // Hosts before v236: `{"total": N}`.
        return total.as_u64().map(InflightUpdate::Total).ok_or_else(|| "`total` is not a count".to_owned());
    }
    let op = value.get("operation").and_then(Value::as_str).ok_or("no `operation` (nor a legacy `total`)")?;
    let entry = |v: &Value| -> Result<InflightRequest, String> {
        serde_json::from_value(v.clone()).map_err(|e| format!("request entry: {e}"))
    };
    match op {
        "snapshot" => {
            let requests = match value.get("requests") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.iter().map(entry).collect::<Result<_, _>>()?,
                Some(_) => return Err("`requests` is not an array".into()),
            };
            Ok(InflightUpdate::Snapshot(requests))
        }
        "upsert" => {
            let request = value.get("request").ok_or("an upsert without `request`")?;
            Ok(InflightUpdate::Upsert(entry(request)?))
        }
        "remove" => {
            let id = value.get("id").and_then(Value::as_str).ok_or("a remove without `id`")?;
            Ok(InflightUpdate::Remove(id.to_owned()))
        }
        other => Err(format!("unknown operation {other:?}")),
    }
}

/// Decodes a JSON body of a management route.
///
/// # Errors
/// [`WireError::Body`] naming the route.
pub fn decode_body<T: serde::de::DeserializeOwned>(route: &str, body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body).map_err(|e| WireError::Body {
        route: route.to_owned(),
        reason: e.to_string(),
        preview: preview(&String::from_utf8_lossy(body)),
    })
}

/// The message of an error body in either of llama-swap's shapes (`{"error":"msg"}` or
/// `{"error":{"message",...}}`), or the body's start when it is neither.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        match v.get("error") {
            Some(Value::String(s)) => return s.clone(),
            Some(Value::Object(o)) => {
                if let Some(m) = o.get("message").and_then(Value::as_str) {
                    return m.to_owned();
                }
            }
            _ => {}
        }
    }
    preview(String::from_utf8_lossy(body).trim())
}

#[cfg(test)]
mod tests;
