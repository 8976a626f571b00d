//! The web router over HTTP: who may see and act, the status shape, the 409 of a leased
//! host and its confirmed retry, the queue's 429, the login cookie, the events stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use executus_fleet::web::{Access, Permission, StaticKeys, router};
use executus_fleet::{Fleet, FleetConfig};
use executus_llm::Secret;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{self, HANG_GUARD, until};
use crate::standin::{ModelDef, Options, Standin};

const VIEW: &str = "view-key-0001";
const ACT: &str = "act-key-0002";

/// Serves the fleet's router on a loopback port.
pub async fn serve(fleet: Fleet, access: Access) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = router(fleet, access).into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn keys() -> Access {
    Access::Keys(Arc::new(StaticKeys::new([
        ("dashboard".to_owned(), Secret::new(VIEW), Permission::View),
        ("ops".to_owned(), Secret::new(ACT), Permission::Act),
    ])))
}

async fn setup(config_edit: impl FnOnce(&mut FleetConfig)) -> (Standin, Fleet, String) {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let mut config = common::config(&[("desk", standin.url())]);
    config_edit(&mut config);
    let fleet = common::fleet(config, None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let url = serve(fleet.clone(), keys()).await;
    (standin, fleet, url)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

#[tokio::test]
async fn views_need_a_key_and_actions_need_one_allowed_to_act() {
    let (standin, fleet, url) = setup(|_| {}).await;
    let http = client();
    let status = |key: Option<&'static str>, path: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let mut r = http.get(format!("{url}{path}"));
            if let Some(k) = key {
                r = r.bearer_auth(k);
            }
            r.send().await.expect("answer").status().as_u16()
        }
    };
    for path in [
        "/api/fleet/status",
        "/api/fleet/snapshot",
        "/api/fleet/events",
        "/api/fleet/activity",
        "/api/fleet/leaderboard",
        "/api/fleet/audit",
    ] {
        assert_eq!(status(None, path).await, 401, "{path} without a key");
        assert_eq!(status(Some("wrong"), path).await, 401, "{path} with an unknown key");
    }
    assert_eq!(status(None, "/fleet").await, 401, "the page asks for a key");
    assert_eq!(status(Some(VIEW), "/api/fleet/status").await, 200);

    let body: Value = http
        .get(format!("{url}/api/fleet/status"))
        .bearer_auth(VIEW)
        .send()
        .await
        .expect("s")
        .json()
        .await
        .expect("json");
    let host = &body["hosts"][0];
    let mut keys: Vec<&str> = host.as_object().expect("object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["base_url", "in_flight", "liveness", "models", "name", "since"]);
    assert_eq!(host["liveness"], "connected");
    assert_eq!(host["models"], json!([{"id": "m", "state": "stopped"}]));
    assert!(!body.to_string().contains(VIEW));

    let act = |key: &'static str, body: Value| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(format!("{url}/api/fleet/actions"))
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .expect("answer");
            (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (code, body) = act(VIEW, json!({"host": "desk", "action": "unload", "model": "m"})).await;
    assert_eq!(code, 403, "{body}");
    let (code, body) = act(ACT, json!({"host": "desk", "action": "unload", "model": "m"})).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["queue"][0]["action"], "unload");
    let (code, body) = act(ACT, json!({"host": "desk", "action": "explode"})).await;
    assert_eq!((code, body["error"].as_str().is_some_and(|e| e.contains("unknown action"))), (400, true));
    let (code, _) = act(ACT, json!({"host": "desk", "action": "load"})).await;
    assert_eq!(code, 400, "load needs a model");
    let (code, body) = act(ACT, json!({"host": "elsewhere", "action": "unload-all"})).await;
    assert_eq!(code, 404, "{body}");
    let r = http
        .post(format!("{url}/api/fleet/actions"))
        .bearer_auth(ACT)
        .body("host=desk")
        .send()
        .await
        .expect("form");
    assert_eq!(r.status().as_u16(), 415, "actions are JSON only (no cross-site form posts)");

    let audit: Value = http
        .get(format!("{url}/api/fleet/audit"))
        .bearer_auth(VIEW)
        .send()
        .await
        .expect("a")
        .json()
        .await
        .expect("j");
    assert!(
        audit.as_array().expect("rows").iter().any(|r| r["actor"] == "ops" && r["outcome"] == "queued"),
        "{audit}"
    );
    assert!(!audit.to_string().contains(ACT), "the audit names the key, never holds it");
    drop(fleet);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_leased_host_answers_409_until_the_action_is_confirmed() {
    let (standin, fleet, url) = setup(|c| c.lease_ttl = Duration::from_millis(600)).await;
    let lease = fleet.lease("desk", "bench").await.expect("lease");
    let http = client();
    let r = http
        .post(format!("{url}/api/fleet/actions"))
        .bearer_auth(ACT)
        .json(&json!({"host": "desk", "action": "unload-all"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 409);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"], "bench in progress");
    assert_eq!(body["requires_confirmation"], true);
    let r = http
        .post(format!("{url}/api/fleet/actions?confirm=true"))
        .bearer_auth(ACT)
        .json(&json!({"host": "desk", "action": "unload-all"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 202);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["took_over"]["purpose"], "bench");
    tokio::time::timeout(HANG_GUARD, lease.lost()).await.expect("the bench notices");
    standin.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_answers_429_listing_it() {
    let (standin, _fleet, url) = setup(|_| {}).await;
    let held = standin.hold_unloads().await;
    let http = client();
    let mut codes = Vec::new();
    let mut last = Value::Null;
    for _ in 0..5 {
        let r = http
            .post(format!("{url}/api/fleet/actions"))
            .bearer_auth(ACT)
            .json(&json!({"host": "desk", "action": "unload", "model": "m"}))
            .send()
            .await
            .expect("answer");
        codes.push(r.status().as_u16());
        last = r.json().await.expect("json");
    }
    assert_eq!(codes, [202, 202, 202, 202, 429]);
    assert_eq!(last["queued"].as_array().map(Vec::len), Some(4), "{last}");
    drop(held);
    standin.shutdown().await;
}

#[tokio::test]
async fn the_login_form_sets_a_cookie_that_opens_the_page() {
    let (standin, _fleet, url) = setup(|_| {}).await;
    let http = client();
    let r = http
        .post(format!("{url}/fleet/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("key=nope")
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .post(format!("{url}/fleet/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={VIEW}"))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().expect("pair").to_owned();
    let r = http.get(format!("{url}/fleet")).header("cookie", &pair).send().await.expect("page");
    assert_eq!(r.status().as_u16(), 200);
    let csp = r.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = r.text().await.expect("html");
    assert!(
        html.contains(r#"data-host="desk""#) && html.contains(r#"data-state="stopped""#),
        "server-rendered"
    );
    assert!(html.contains(r#"data-act="false""#), "a view key gets no action buttons");
    assert!(!html.contains("<button data-action"), "no buttons for a view key");
    let js = http.get(format!("{url}/fleet/assets/fleet.js")).send().await.expect("js");
    assert_eq!(js.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(js.text().await.expect("js").contains("EventSource(\"/api/fleet/events\")"));
    standin.shutdown().await;
}

#[tokio::test]
async fn the_events_stream_sends_a_snapshot_then_sequenced_deltas() {
    let (standin, _fleet, url) = setup(|_| {}).await;
    let r = client().get(format!("{url}/api/fleet/events")).bearer_auth(VIEW).send().await.expect("events");
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let mut next_event = async || -> (String, Value) {
        loop {
            if let Some(end) = text.find("\n\n") {
                let frame: String = text.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = e.to_owned();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if !event.is_empty() {
                    return (event, serde_json::from_str(&data).expect("json"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(HANG_GUARD, body.next())
                .await
                .expect("hang guard")
                .expect("more")
                .expect("chunk");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    let (kind, snapshot) = next_event().await;
    assert_eq!(kind, "snapshot");
    let seq = snapshot["hosts"][0]["seq"].as_u64().expect("seq");
    standin.push_activity("m", 5, 12.5);
    let (kind, delta) = next_event().await;
    assert_eq!(kind, "delta");
    assert_eq!(delta["host"], "desk");
    assert_eq!(delta["seq"].as_u64(), Some(seq + 1));
    assert_eq!(delta["change"]["kind"], "activity");
    assert_eq!(delta["change"]["rows"][0]["gen_tps"], 12.5);
    standin.shutdown().await;
}

#[tokio::test]
async fn loopback_without_keys_must_be_chosen_and_still_checks_the_peer() {
    let (standin, fleet, _url) = setup(|_| {}).await;
    let url = serve(fleet.clone(), Access::LoopbackNoKeys).await;
    let r = client().get(format!("{url}/api/fleet/status")).send().await.expect("status");
    assert_eq!(r.status().as_u16(), 200, "from 127.0.0.1 without a key");
    // The same router told the peer is not loopback refuses.
    use tower::ServiceExt as _;
    let app = router(fleet, Access::LoopbackNoKeys);
    let mut request =
        axum::http::Request::builder().uri("/api/fleet/status").body(axum::body::Body::empty()).expect("req");
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo::<SocketAddr>("192.0.2.7:5555".parse().expect("addr")));
    let response = app.oneshot(request).await.expect("answer");
    assert_eq!(response.status().as_u16(), 401);
    standin.shutdown().await;
}
