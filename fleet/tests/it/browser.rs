//! The `/fleet` page in a real headless browser (Debian's chromium, driven through
//! chromedriver's WebDriver API): it renders the hosts, then updates by itself when a model
//! is loaded on the stand-in (a real llama-server starts). A screenshot of the live page is
//! written to `target/fleet-page.png` (`docs/fleet.png` is one of these).
//!
//! Chromium runs with its background networking, component updates and sync off, on a
//! throwaway profile; it only ever loads the loopback page.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine as _;
use executus_fleet::web::Access;
use executus_fleet::{ActionKind, ActionRequest};
use serde_json::{Value, json};

use crate::common::{self, HANG_GUARD, until};
use crate::standin::{ModelDef, Options, Standin};

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| PathBuf::from(d).join(name)).find(|p| p.is_file())
}

struct Driver {
    base: String,
    session: String,
    http: reqwest::Client,
    _process: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Driver {
    async fn start(chromium: &PathBuf, chromedriver: &PathBuf) -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
        let process = tokio::process::Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + HANG_GUARD;
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--disable-default-apps", "--no-first-run", "--disable-domain-reliability",
                    "--disable-features=Translate,OptimizationHints,MediaRouter",
                    "--window-size=1100,640",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("session")
            .json()
            .await
            .expect("json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self { base, session, http, _process: process, _profile: profile }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}/session/{}/{path}", self.base, self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.expect("webdriver").json().await.expect("json");
        if v["value"].get("error").is_some() {
            panic!("webdriver {path}: {v}");
        }
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "url", Some(json!({"url": url}))).await;
    }

    async fn eval(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Evaluates `script` until it returns `true` (the page updates by itself).
    async fn wait_for(&self, what: &str, script: &str) {
        let deadline = Instant::now() + HANG_GUARD;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            assert!(Instant::now() < deadline, "hang guard: the page never showed {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn screenshot(&self) -> Vec<u8> {
        let b64 = self.cmd(reqwest::Method::GET, "screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(b64.as_str().expect("base64")).expect("png")
    }

    async fn quit(&self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_page_renders_the_hosts_and_updates_live_in_a_real_browser() {
    let test = "browser::the_fleet_page_renders_the_hosts_and_updates_live_in_a_real_browser";
    let (Some(chromium), Some(chromedriver)) = (which("chromium"), which("chromedriver")) else {
        common::skip(test, "chromium / chromedriver not installed (scripts/setup-chromium.sh)");
        return;
    };
    if !common::llama(test) {
        return;
    }
    let desk = Standin::start(Options {
        models: vec![ModelDef::new("qwen3-8b", "tiny-llama3"), ModelDef::new("embed", "tiny-qwen2")],
        perf: true,
        ..Options::default()
    })
    .await;
    let spare = Standin::start(Options {
        models: vec![ModelDef::new("qwen3-8b", "tiny-llama3")],
        ..Options::default()
    })
    .await;
    let fleet = common::fleet(common::config(&[("desk", desk.url()), ("spare", spare.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "both connected", |s| s.hosts.iter().all(|h| h.synced)).await;
    for (i, tps) in [31.0, 35.5, 33.2, 38.9, 41.0, 39.4].iter().enumerate() {
        desk.push_activity("qwen3-8b", 48 + i as i64, *tps);
    }
    until(&mut sub, "activity", |s| s.host("desk").is_some_and(|h| h.recent.len() == 6)).await;
    let url = crate::web::serve(fleet.clone(), Access::LoopbackNoKeys).await;

    let driver = Driver::start(&chromium, &chromedriver).await;
    driver.goto(&format!("{url}/fleet")).await;
    // Server-rendered: both hosts, their liveness and models, before any script ran.
    let hosts =
        driver.eval("return [...document.querySelectorAll('section.host')].map(s => s.dataset.host)").await;
    assert_eq!(hosts, json!(["desk", "spare"]));
    driver.wait_for("the live connection", "return document.body.dataset.live === 'true'").await;
    let state = "return document.querySelector('section.host[data-host=\"desk\"] tr[data-model=\"qwen3-8b\"] td.state').dataset.state";
    assert_eq!(driver.eval(state).await, "stopped");
    assert_eq!(
        driver
            .eval(
                "return document.querySelector('section.host[data-host=\"desk\"] .liveness').dataset.liveness"
            )
            .await,
        "connected"
    );
    assert_eq!(
        driver
            .eval(
                "return document.querySelectorAll('section.host[data-host=\"desk\"] .spark polyline').length"
            )
            .await,
        1
    );

    // Load a model on the stand-in: a real llama-server starts, and the page follows.
    let ticket = fleet
        .act(ActionRequest {
            host: "desk".into(),
            kind: ActionKind::Load("qwen3-8b".into()),
            confirm: false,
            actor: "test".into(),
        })
        .await
        .expect("queued");
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("loaded");
    driver
        .wait_for(
            "the model ready",
            "const td = document.querySelector('section.host[data-host=\"desk\"] tr[data-model=\"qwen3-8b\"] td.state'); return !!td && td.dataset.state === 'ready'",
        )
        .await;
    driver
        .wait_for(
            "the warm-up in the activity list",
            "return document.querySelectorAll('section.host[data-host=\"desk\"] ol.activity li').length >= 7",
        )
        .await;
    let png = driver.screenshot().await;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot ({} bytes)", png.len());
    let out = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fleet-page.png");
    std::fs::write(&out, &png).expect("write the screenshot");
    driver.quit().await;
    desk.shutdown().await;
    spare.shutdown().await;
}
