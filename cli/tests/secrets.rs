//! Secrets in-process, where the binary's output cannot show them: every `tracing` span
//! (its attributes and later records) and event at TRACE level from every crate, every audit
//! row (the audit battery's store, as the CLI wires it), every run outcome and run event,
//! the `Debug` of the registry and of errors, every checkpoint payload the runtime wrote
//! (recorded on its way to the SQLite store, which deflates it, and decoded), and the SQLite
//! store's bytes with every deflated checkpoint row in them inflated — searched for
//! distinctive fake keys after runs against servers that echo the key back (401, 429, 500,
//! a malformed stream line, a reset mid-stream, each streamed and whole, alone and with a
//! failover to a DSN-configured provider), a budget denial, and a tool step checkpointed to
//! SQLite. Zero hits.
//!
//! Its own test binary (not a module of `tests/it`): the capture is a process-wide
//! subscriber, installed before any callsite registers, which `tracing`'s callsite interest
//! cache makes unreliable beside other tests (the core's span test lives apart for the same
//! reason). The binary's own output is searched by `tests/it/secrets.rs`.

#![allow(clippy::unwrap_used)]

#[path = "../../core/tests/support/fault_cases.rs"]
mod fault_cases;
#[allow(dead_code)]
#[path = "it/stored.rs"]
mod stored;
#[allow(dead_code)]
#[path = "../../llm/tests/it/tcp_stub.rs"]
mod tcp_stub;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use executus::RunId;
use executus::ports::{
    CheckpointStore, PortError, Ports, RunAppend, RunClaim, RunMeta, StoredRun, StoredStatus,
};
use executus::tool::ToolRegistry;
use executus::{RunEvent, RunRequest, RunnableAgent, Runtime, RuntimeConfig};
use executus_audit::{AuditWriter, MemoryAuditStore};
use executus_budget::{BudgetSettings, Caps, MemoryBudgetStore, Money, SpendBudget};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{HttpOptions, ProviderSpec, Registry, Secret};
use executus_tools::Calc;
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use fault_cases::{healthy, is_stream};
use tcp_stub::{Received, Step, Stub, head, send};

/// The SQLite checkpoint store, keeping a copy of every payload appended to it (the store
/// deflates them and deletes a finished run's log, so its file alone cannot show them all).
struct RecordingCheckpoints {
    inner: executus_store::AnyCheckpointStore,
    payloads: Mutex<Vec<Vec<u8>>>,
}

#[async_trait::async_trait]
impl CheckpointStore for RecordingCheckpoints {
    async fn append(&self, batch: &[RunAppend]) -> Result<(), PortError> {
        let appended = batch.iter().flat_map(|run| run.entries.iter().map(|e| e.payload.clone()));
        self.payloads.lock().unwrap().extend(appended);
        self.inner.append(batch).await
    }

    async fn load(&self, run: RunId) -> Result<Option<StoredRun>, PortError> {
        self.inner.load(run).await
    }

    async fn finish(&self, run: RunId, status: StoredStatus) -> Result<(), PortError> {
        self.inner.finish(run, status).await
    }

    async fn list_interrupted(&self) -> Result<Vec<(RunMeta, StoredStatus)>, PortError> {
        self.inner.list_interrupted().await
    }

    async fn claim(&self, run: RunId) -> Result<Option<RunClaim>, PortError> {
        self.inner.claim(run).await
    }
}

/// Everything `tracing` produced in this process: span attributes, records, events.
fn captured() -> &'static Mutex<String> {
    static LOG: OnceLock<Mutex<String>> = OnceLock::new();
    LOG.get_or_init(|| Mutex::new(String::new()))
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

/// A layer that writes every span and event, at every level, into [`captured`].
struct Capture;

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, _: &tracing::span::Id, _: Context<'_, S>) {
        let mut line = format!("span {} {}:", attrs.metadata().target(), attrs.metadata().name());
        attrs.record(&mut Fields(&mut line));
        line.push('\n');
        captured().lock().unwrap().push_str(&line);
    }

    fn on_record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>, _: Context<'_, S>) {
        let mut line = String::from("record:");
        values.record(&mut Fields(&mut line));
        line.push('\n');
        captured().lock().unwrap().push_str(&line);
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = format!("event {} {}:", event.metadata().level(), event.metadata().target());
        event.record(&mut Fields(&mut line));
        line.push('\n');
        captured().lock().unwrap().push_str(&line);
    }
}

fn canary(which: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("sk-EXECUTUS-CANARY-{which}-{nanos:x}")
}

fn presented_key(req: &Received) -> String {
    req.head
        .lines()
        .find_map(|l| l.split_once("Bearer ").map(|(_, k)| k.trim().to_owned()))
        .unwrap_or_default()
}

/// A server that fails echoing the presented key (`code` 0: a malformed stream line; 1: a
/// reset after the first event).
async fn echoing(code: u16) -> Stub {
    Stub::route(move |req| {
        let key = presented_key(req);
        match code {
            0 => vec![
                head("text/event-stream"),
                send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n"),
                send(format!("data: {{\"choices\": [ {key} broken\n\n")),
                Step::Stall,
            ],
            1 => vec![
                head(if is_stream(req) { "text/event-stream" } else { "application/json" }),
                send("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"partial\"}}]}\n\n"),
                Step::Reset,
            ],
            code => {
                let body = json!({"error": {"message": format!("Incorrect API key provided: {key}"), "type": "auth"}})
                    .to_string();
                vec![send(format!(
                    "HTTP/1.1 {code} Failed\r\ncontent-type: application/json\r\ncontent-length: {}\r\nx-echo: {key}\r\nretry-after: 0\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                ))]
            }
        }
    })
    .await
}

fn registry(head_url: &str, file_key: &str, dsn: &str) -> Registry {
    let http = HttpOptions {
        connect_timeout: Duration::from_millis(300),
        headers_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(300),
        ..HttpOptions::default()
    };
    let registry = Registry::new();
    let config = ProviderConfig {
        media: None,
        api_key: Some(Secret::new(file_key)),
        ..ProviderConfig::new("head", format!("{head_url}/v1"))
    }
    .with_http(http.clone());
    registry.add_provider(Arc::new(OpenAi::new(config))).unwrap();
    registry.add_spec(&ProviderSpec::parse("dsn", dsn).unwrap(), http).unwrap();
    registry
}

/// Collects a run's events until it ends, as `Debug` text.
async fn events_text(mut rx: tokio::sync::broadcast::Receiver<RunEvent>) -> String {
    let mut out = String::new();
    while let Ok(event) = rx.recv().await {
        let end = matches!(event, RunEvent::Ended { .. });
        let _ = writeln!(out, "{event:?}");
        if end {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn no_key_in_spans_events_audit_rows_outcomes_or_checkpoints() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture)).unwrap();
    let file_key = canary("FILE");
    let dsn_key = canary("DSN");
    let tail = Stub::route(|req| healthy(req, "dsn")).await;
    let dsn = format!("openai+http://{dsn_key}@{}/v1", tail.url().trim_start_matches("http://"));
    let dir = tempfile::tempdir().unwrap();
    let store =
        executus_store::Store::open(&format!("sqlite://{}/executus.db", dir.path().display())).await.unwrap();
    let checkpoints =
        Arc::new(RecordingCheckpoints { inner: store.checkpoints(), payloads: Mutex::new(Vec::new()) });
    let audit_rows = Arc::new(MemoryAuditStore::new());
    let mut texts: Vec<(String, String)> = Vec::new();
    let mut runs = 0;

    for code in [401, 429, 500, 0, 1] {
        let server = echoing(code).await;
        let registry = registry(&server.url(), &file_key, &dsn);
        texts.push(("registry Debug".into(), format!("{registry:?}")));
        for streaming in [true, false] {
            for (spec, budget) in [("head/m", false), ("head/m, dsn/m", false), ("dsn/m", true)] {
                let writer = Arc::new(AuditWriter::new(audit_rows.clone()));
                let mut ports =
                    Ports { audit: writer.clone(), checkpoints: checkpoints.clone(), ..Ports::default() };
                if budget {
                    let settings =
                        BudgetSettings::default().with_caps(Caps::none().default_user(Money::usd(0.000_001)));
                    ports.budget = Arc::new(SpendBudget::new(settings, Arc::new(MemoryBudgetStore::new())));
                }
                let runtime = Runtime::builder()
                    .registry(registry.clone())
                    .tools(ToolRegistry::new().with(Arc::new(Calc::new())))
                    .ports(ports)
                    .config(RuntimeConfig { streaming, ..RuntimeConfig::default() })
                    .build();
                let agent = RunnableAgent::new("keyed", "You compute.", spec).with_tools(["calc"]);
                let handle = runtime.spawn_with(RunRequest::new(agent, "What is 6 x 7?")).await.unwrap();
                let events = tokio::spawn(events_text(handle.events()));
                let outcome = tokio::time::timeout(Duration::from_secs(120), handle.outcome()).await.unwrap();
                if budget {
                    assert_eq!(outcome.status(), "budget_denied", "{:?}", outcome.end);
                }
                texts.push((format!("outcome {code} {spec} Debug"), format!("{outcome:?}")));
                texts
                    .push((format!("outcome {code} {spec} JSON"), serde_json::to_string(&*outcome).unwrap()));
                texts.push((format!("events {code} {spec}"), events.await.unwrap()));
                runtime.shutdown(Duration::from_millis(100)).await;
                writer.shutdown().await;
                runs += 1;
            }
        }
    }
    store.close().await;

    let rows = audit_rows.all();
    assert!(rows.iter().any(|r| r.record.event.kind() == "model_call"), "audit rows were written");
    assert!(rows.iter().any(|r| r.record.event.kind() == "budget_denied"), "a budget denial was audited");
    let failover = rows.iter().any(|r| r.record.event.kind() == "failover");
    assert!(failover, "the failover to the DSN provider was audited");
    for row in &rows {
        texts.push((format!("audit row {}", row.id), serde_json::to_string(row).unwrap()));
        texts.push((format!("audit row {} Debug", row.id), format!("{row:?}")));
    }
    let payloads = checkpoints.payloads.lock().unwrap().clone();
    assert!(
        payloads.iter().any(|p| String::from_utf8_lossy(p).contains("6*7")),
        "the tool steps were checkpointed ({} payloads)",
        payloads.len()
    );
    for (i, payload) in payloads.iter().enumerate() {
        let fact = executus::checkpoint::decode(payload).unwrap();
        texts.push((format!("checkpoint payload {i}"), String::from_utf8_lossy(payload).into_owned()));
        texts.push((format!("checkpoint payload {i} decoded"), format!("{fact:?}")));
    }
    let mut inflated = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            continue; // the claims folder: lock files named by run id, empty
        }
        let bytes = std::fs::read(&path).unwrap();
        for (i, entry) in stored::deflated_entries(&bytes).into_iter().enumerate() {
            inflated += 1;
            texts.push((
                format!("deflated checkpoint row {i} in {}", path.display()),
                String::from_utf8_lossy(&entry).into_owned(),
            ));
        }
        texts.push((format!("file {}", path.display()), String::from_utf8_lossy(&bytes).into_owned()));
    }
    assert!(inflated > 0, "deflated checkpoint rows were found in the files");
    let log = captured().lock().unwrap().clone();
    assert!(
        log.contains("llm attempt failed") && log.contains("gen_ai.call"),
        "spans and events were captured"
    );
    assert!(log.contains("Incorrect API key provided"), "the echoed messages reached the logs (scrubbed)");
    texts.push(("tracing capture".into(), log));

    let mut searched = 0;
    for (place, text) in &texts {
        searched += text.len();
        for key in [&file_key, &dsn_key] {
            for needle in [key.as_str(), &key[key.len() - 10..]] {
                if let Some(at) = text.find(needle) {
                    let from = at.saturating_sub(300);
                    panic!("{place} holds a key:\n...{}...", &text[from..(at + 80).min(text.len())]);
                }
            }
        }
    }
    println!(
        "secrets in-process: {runs} runs, {} audit rows, {} checkpoint payloads, {inflated} deflated rows \
         in the files, {} places, {searched} bytes searched, 0 hits",
        rows.len(),
        payloads.len(),
        texts.len()
    );
}
