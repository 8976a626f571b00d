//! P1 reference (b): the bench's 3-step agent (system prompt, one `lookup` tool, two tool
//! calls then an answer) built with rig's classic agent runtime on its OpenAI Chat
//! Completions wire, driven at a fixed concurrency against the bench's mock server.
//!
//! Usage: `executus-bench-rig --url http://127.0.0.1:PORT/v1 --runs N --concurrency C
//! [--warmup W] [--key-base K]`. Prints one JSON line:
//! `{"runs":N,"ok":M,"secs":S,"cpu_s":C,"error":null|"first error"}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rig::AgentBuilder;
use rig::providers::openai::OpenAIConfig;
use rig::tool::PortableTool;
use serde::Deserialize;
use tokio::sync::Mutex;

/// The same text as the executus agent's (bench/src/harness.rs).
const SYSTEM: &str = "You look keys up with the lookup tool, then answer.";

#[derive(Deserialize)]
struct LookupArgs {
    key: String,
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("never")
    }
}

impl std::error::Error for Never {}

/// `lookup(key) -> "value of <key>"`, as in executus.
struct Lookup;

impl PortableTool for Lookup {
    const NAME: &'static str = "lookup";
    type Args = LookupArgs;
    type Output = String;
    type Error = Never;

    fn description(&self) -> String {
        "Looks a key up and returns its value.".into()
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({
            "type": "object",
            "properties": { "key": { "type": "string", "description": "The key to look up." } },
            "required": ["key"]
        })
    }

    async fn call(&self, args: LookupArgs) -> Result<String, Never> {
        Ok(format!("value of {}", args.key))
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = arg(&args, "--url").unwrap_or_else(|| "http://127.0.0.1:8080/v1".into());
    let runs: usize = arg(&args, "--runs").and_then(|v| v.parse().ok()).unwrap_or(1);
    let concurrency: usize = arg(&args, "--concurrency").and_then(|v| v.parse().ok()).unwrap_or(1);
    let warmup: usize = arg(&args, "--warmup").and_then(|v| v.parse().ok()).unwrap_or(0);
    let key_base: u64 = arg(&args, "--key-base").and_then(|v| v.parse().ok()).unwrap_or(0);

    let provider = OpenAIConfig::new("bench-key").with_base_url(url).client();
    let model = provider.chat("bench-model");
    let agent = Arc::new(AgentBuilder::new(model).preamble(SYSTEM).tool(Lookup).build());

    let error: Arc<Mutex<Option<String>>> = Arc::default();
    let batch = |count: usize, base: u64| {
        let agent = agent.clone();
        let error = error.clone();
        async move {
            let next = Arc::new(AtomicUsize::new(0));
            let ok = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..concurrency.max(1) {
                let (agent, next, ok, error) = (agent.clone(), next.clone(), ok.clone(), error.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            break;
                        }
                        let prompt = format!("Look up two keys, then answer. #run={}", base + i as u64);
                        match agent.prompt(prompt).max_turns(5).await {
                            Ok(r) if r.output().starts_with("done after 2") => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                error
                                    .lock()
                                    .await
                                    .get_or_insert_with(|| format!("unexpected answer {:?}", r.output()));
                            }
                            Err(e) => {
                                error.lock().await.get_or_insert_with(|| e.to_string());
                            }
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
            ok.load(Ordering::Relaxed)
        }
    };
    if warmup > 0 {
        batch(warmup, key_base + 5_000_000).await;
    }
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let ok = batch(runs, key_base).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let error = error.lock().await.clone();
    println!("{}", serde_json::json!({ "runs": runs, "ok": ok, "secs": secs, "cpu_s": cpu, "error": error }));
}
