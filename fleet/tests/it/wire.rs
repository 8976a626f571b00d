//! The stand-in is faithful: what it writes has exactly the shapes recorded in
//! `tests/fixtures/llama-swap-wire.json` (read from llama-swap's source), current and legacy,
//! down to the SSE framing; and the fleet's decoders read the fixture (unit tests in
//! `src/wire/tests.rs`).

use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::HANG_GUARD;
use crate::standin::{ModelDef, Options, Standin};

const FIXTURE: &str = include_str!("../fixtures/llama-swap-wire.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture")
}

/// The shape of a JSON value: object keys with their shapes, the first array item's shape,
/// scalar kinds. A string holding JSON (an event's `data`) is opened.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(inner @ (Value::Object(_) | Value::Array(_))) => json!({"json": shape(&inner)}),
            _ => json!("string"),
        },
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// An open `/api/events` stream.
struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    text: String,
}

impl Events {
    async fn open(url: &str) -> Self {
        let response = reqwest::get(format!("{url}/api/events")).await.expect("events");
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self { body: Box::pin(response.bytes_stream()), text: String::new() }
    }

    /// The next `n` frames, checking llama-swap's exact framing.
    async fn next(&mut self, n: usize) -> Vec<Value> {
        let read = async {
            while self.text.matches("\n\n").count() < n {
                let chunk = self.body.next().await.expect("more").expect("chunk");
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(HANG_GUARD, read).await.expect("frames arrive");
        let mut out = Vec::new();
        for _ in 0..n {
            let end = self.text.find("\n\n").expect("a frame");
            let f: String = self.text.drain(..end + 2).collect();
            let data = f
                .strip_prefix("event:message\ndata:")
                .and_then(|d| d.strip_suffix("\n\n"))
                .unwrap_or_else(|| panic!("llama-swap framing: {f:?}"));
            out.push(serde_json::from_str(data).expect("envelope JSON"));
        }
        out
    }
}

async fn frames(url: &str, n: usize) -> Vec<Value> {
    Events::open(url).await.next(n).await
}

fn assert_same_shape(ours: &Value, theirs: &Value, what: &str) {
    assert_eq!(shape(ours), shape(theirs), "{what}:\n stand-in {ours}\n fixture  {theirs}");
}

fn fixture_event(fx: &Value, section: &str, name: &str) -> Value {
    let text = fx[section][name].as_str().expect("framed");
    serde_json::from_str(text.strip_prefix("event:message\ndata:").expect("framed").trim_end()).expect("JSON")
}

#[tokio::test]
async fn the_stand_in_writes_llama_swaps_current_shapes() {
    let fx = fixture();
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("embed", "tiny-qwen2")],
        perf: true,
        ..Options::default()
    })
    .await;
    let url = standin.url();
    let mut events = Events::open(&url).await;
    let replay = events.next(6).await;
    let kinds: Vec<&str> = replay.iter().map(|f| f["type"].as_str().expect("type")).collect();
    assert_eq!(
        kinds,
        ["logData", "logData", "modelStatus", "uiConfig", "profileChanged", "inflight"],
        "replay order"
    );
    assert_same_shape(&replay[0], &fixture_event(&fx, "events", "logData"), "logData");
    let mut models = replay[2].clone();
    let mut fixture_models = fixture_event(&fx, "events", "modelStatus");
    // Compare with the fixture's plain local model (its others carry optional fields).
    let first = |v: &mut Value| {
        let inner: Value = serde_json::from_str(v["data"].as_str().expect("data")).expect("json");
        v["data"] = Value::String(json!([inner[0].clone()]).to_string());
    };
    first(&mut models);
    first(&mut fixture_models);
    assert_same_shape(&models, &fixture_models, "modelStatus");
    assert_same_shape(&replay[4], &fixture_event(&fx, "events", "profileChanged"), "profileChanged");
    assert_same_shape(
        &replay[5],
        &fixture_event(&fx, "events", "inflight_empty_snapshot"),
        "inflight snapshot",
    );

    // A new row is announced by id (the stream is live: its replay has been read), and
    // served on the activity route.
    let id = standin.push_activity("embed", 12, 33.0);
    let ping = events.next(1).await;
    assert_same_shape(&ping[0], &fixture_event(&fx, "events", "activity"), "activity ping");
    assert_eq!(ping[0]["data"], json!({"id": id}).to_string());
    let page: Value = reqwest::get(format!("{url}/api/metrics/activity?min_id=1&limit=10&sort=id&order=asc"))
        .await
        .expect("activity")
        .json()
        .await
        .expect("json");
    assert_same_shape(&page, &fx["activity_page"], "activity page");

    standin.push_perf(chrono::Utc::now(), 25.0);
    let perf: Value =
        reqwest::get(format!("{url}/api/performance")).await.expect("perf").json().await.expect("json");
    assert_same_shape(&perf["sys_stats"], &fx["performance"]["sys_stats"], "sys_stats");
    assert_eq!(perf["enabled"], true);

    let r =
        reqwest::Client::new().post(format!("{url}/api/models/unload/nope")).send().await.expect("unload");
    assert_eq!(r.status(), 404);
    assert_same_shape(&r.json::<Value>().await.expect("json"), &fx["errors"]["current"], "error body");
    let r = reqwest::Client::new().post(format!("{url}/api/models/unload")).send().await.expect("unload all");
    assert_same_shape(&r.json::<Value>().await.expect("json"), &fx["unload_all"], "unload all");
    standin.shutdown().await;
}

#[tokio::test]
async fn the_stand_in_writes_the_legacy_shapes() {
    let fx = fixture();
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("m", "tiny-qwen2")],
        legacy: true,
        ..Options::default()
    })
    .await;
    standin.push_activity("m", 3, 10.0);
    let url = standin.url();
    let replay = frames(&url, 5).await;
    let kinds: Vec<&str> = replay.iter().map(|f| f["type"].as_str().expect("type")).collect();
    assert_eq!(kinds, ["logData", "logData", "modelStatus", "metrics", "inflight"]);
    let mut metrics = replay[3].clone();
    // The fixture's legacy row predates `resp_content_type`; the stand-in writes the field
    // llama-swap v235 had.
    let mut rows: Value = serde_json::from_str(metrics["data"].as_str().expect("data")).expect("rows");
    rows[0].as_object_mut().expect("row").remove("resp_content_type");
    metrics["data"] = Value::String(rows.to_string());
    assert_same_shape(&metrics, &fixture_event(&fx, "legacy_events", "metrics"), "metrics");
    assert_same_shape(&replay[4], &fixture_event(&fx, "legacy_events", "inflight"), "inflight total");
    let r = reqwest::get(format!("{url}/api/metrics/activity")).await.expect("activity");
    assert_eq!(r.status(), 404, "no activity API before v236");
    let r =
        reqwest::Client::new().post(format!("{url}/api/models/unload/nope")).send().await.expect("unload");
    assert_same_shape(&r.json::<Value>().await.expect("json"), &fx["errors"]["legacy"], "legacy error body");
    let perf = reqwest::get(format!("{url}/api/performance")).await.expect("perf");
    assert_eq!(perf.status(), 503);
    assert_eq!(perf.json::<Value>().await.expect("json"), fx["performance_disabled"]);
    standin.shutdown().await;
}
