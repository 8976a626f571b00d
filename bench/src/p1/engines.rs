//! The two in-process contenders of P1: executus through `Runtime`, and the bare `reqwest`
//! loop that replays executus's own request bodies byte for byte (the physical limit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use executus::{RunRequest, Runtime};

use crate::harness;
use crate::sys;

/// One measured batch.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Runs attempted.
    pub runs: usize,
    /// Runs that ended as expected (3 steps, the final answer).
    pub ok: usize,
    /// Wall time.
    pub wall: Duration,
    /// CPU time of this process over the batch.
    pub cpu: Duration,
}

impl Batch {
    /// Runs per second (expected completions only).
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `keys` through executus: every run is spawned at once into the lane, whose capacity
/// is the concurrency; the batch ends when every outcome is in.
///
/// # Errors
/// If a run cannot be admitted.
pub async fn executus_batch(rt: &Runtime, keys: std::ops::Range<u64>) -> anyhow::Result<Batch> {
    let agent = harness::agent();
    let cpu0 = sys::cpu_time(None);
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(keys.clone().count());
    for key in keys {
        let request = RunRequest::new(agent.clone(), harness::input(key));
        handles.push(rt.spawn_with(request).await.context("admitting a run")?);
    }
    let runs = handles.len();
    let mut ok = 0;
    for handle in handles {
        if harness::is_expected(handle.outcome().await.as_ref(), 3) {
            ok += 1;
        }
    }
    Ok(Batch { runs, ok, wall: t0.elapsed(), cpu: sys::cpu_time(None) - cpu0 })
}

/// The three request bodies of one run, split around the run key so any key can be put in.
#[derive(Debug, Clone)]
pub struct Template {
    steps: Vec<(String, String)>,
}

impl Template {
    /// From the bodies the mock captured for run `key` (in step order).
    ///
    /// # Errors
    /// If there are not exactly three bodies, or one lacks the key marker.
    pub fn from_captured(bodies: &[String], key: u64) -> anyhow::Result<Self> {
        if bodies.len() != 3 {
            bail!("expected the 3 captured request bodies of run {key}, got {}", bodies.len());
        }
        let marker = format!("#run={key}");
        let steps = bodies
            .iter()
            .map(|b| {
                let at = b.find(&marker).with_context(|| format!("captured body without {marker}"))?;
                Ok((b[..at + 5].to_owned(), b[at + marker.len()..].to_owned()))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { steps })
    }

    /// The body of `step` (0-based) for run `key`.
    pub fn body(&self, step: usize, key: u64) -> String {
        let (head, tail) = &self.steps[step];
        let mut s = String::with_capacity(head.len() + tail.len() + 20);
        s.push_str(head);
        s.push_str(&key.to_string());
        s.push_str(tail);
        s
    }
}

/// The bare loop: `concurrency` tasks, each taking the next run key and POSTing its three
/// bodies in sequence on one shared `reqwest::Client`, reading and JSON-parsing each answer.
///
/// # Errors
/// Never (failed requests count as failed runs).
pub async fn reqwest_batch(
    client: &reqwest::Client,
    url: &str,
    template: &Arc<Template>,
    keys: std::ops::Range<u64>,
    concurrency: usize,
) -> anyhow::Result<Batch> {
    let url: Arc<str> = Arc::from(format!("{url}/chat/completions"));
    let next = Arc::new(AtomicUsize::new(0));
    let keys: Arc<Vec<u64>> = Arc::new(keys.collect());
    let cpu0 = sys::cpu_time(None);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, url, next, keys, template) =
            (client.clone(), url.clone(), next.clone(), keys.clone(), template.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&key) = keys.get(i) else { break };
                if one_run(&client, &url, &template, key).await {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    Ok(Batch { runs: keys.len(), ok, wall: t0.elapsed(), cpu: sys::cpu_time(None) - cpu0 })
}

async fn one_run(client: &reqwest::Client, url: &str, template: &Template, key: u64) -> bool {
    let mut answer = String::new();
    for step in 0..3 {
        let response = client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(template.body(step, key))
            .send()
            .await;
        let Ok(response) = response else { return false };
        if !response.status().is_success() {
            return false;
        }
        let sse = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let Ok(bytes) = response.bytes().await else { return false };
        answer.clear();
        if sse {
            // Every event parsed, as a streaming client must.
            for line in bytes.split(|b| *b == b'\n') {
                let Some(data) = line.strip_prefix(b"data: ") else { continue };
                if data == b"[DONE]" {
                    continue;
                }
                let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return false };
                if let Some(text) = value.pointer("/choices/0/delta/content").and_then(|v| v.as_str()) {
                    answer.push_str(text);
                }
            }
        } else {
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return false };
            if let Some(text) = value.pointer("/choices/0/message/content").and_then(|v| v.as_str()) {
                answer.push_str(text);
            }
        }
    }
    answer.starts_with("done after 2")
}

/// The provider layer alone: the same agent loop written by hand on `executus-llm` (a chain
/// from the registry, the OpenAI client, the tool called inline), no runtime. Splits the
/// harness's cost into the provider crate's part and the runtime's part.
///
/// # Errors
/// If the model spec does not resolve.
pub async fn llm_batch(
    registry: &executus::llm::Registry,
    keys: std::ops::Range<u64>,
    concurrency: usize,
) -> anyhow::Result<Batch> {
    use executus::llm::{Message, Part, Request, Role, ToolResult};
    let model = registry.parse(harness::MODEL)?;
    let tools = harness::tools().specs(&[harness::TOOL.to_owned()]);
    let next = Arc::new(AtomicUsize::new(0));
    let keys: Arc<Vec<u64>> = Arc::new(keys.collect());
    let cpu0 = sys::cpu_time(None);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (model, tools, next, keys) = (model.clone(), tools.clone(), next.clone(), keys.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&key) = keys.get(i) else { break };
                let mut messages = vec![Message::user(harness::input(key))];
                for _ in 0..5 {
                    let request = Request {
                        system: Some(harness::SYSTEM.to_owned()),
                        messages: messages.clone(),
                        tools: tools.clone(),
                        ..Request::default()
                    };
                    let Ok(response) = model.generate(request).await else { break };
                    let calls = response.tool_calls();
                    let text = response.text();
                    messages.push(response.message);
                    if calls.is_empty() {
                        ok += usize::from(text.starts_with("done after 2"));
                        break;
                    }
                    let results = calls.into_iter().map(|c| {
                        let key = c.args.get("key").and_then(|k| k.as_str()).unwrap_or_default().to_owned();
                        ToolResult {
                            id: c.id,
                            name: c.name,
                            content: format!("value of {key}"),
                            is_error: false,
                        }
                    });
                    messages
                        .push(Message { role: Role::Tool, parts: results.map(Part::ToolResult).collect() });
                }
            }
            ok
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    Ok(Batch { runs: keys.len(), ok, wall: t0.elapsed(), cpu: sys::cpu_time(None) - cpu0 })
}
