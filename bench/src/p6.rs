//! P6: a failover chain whose head refuses connections and whose tail is healthy. After the
//! head is benched, 100 more requests within the cooldown: the latency they add over a chain
//! of the tail alone, and the connection attempts that still reach the benched head.
//!
//! Two heads are measured. (1) A closed loopback port — a real `ECONNREFUSED`; a closed port
//! cannot count anything, so the head's provider is wrapped in a counting [`Provider`] that
//! counts every call that reaches it (each call to a refused endpoint is one connection
//! attempt: there is no pooled connection to reuse). (2) A listener that accepts and at once
//! closes every connection, counting accepts in the kernel's own terms — an independent count
//! that does not trust the wrapper.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use executus::llm::providers::ProviderConfig;
use executus::llm::providers::openai::OpenAi;
use executus::llm::{Capabilities, EventStream, Message, Model, Provider, Registry, Request, Response};

use crate::Opts;
use crate::mock::{Behaviour, Mock, MockConfig};
use crate::report::{Row, Section, Verdict};
use crate::stats::{percentile, us};

/// Counts the calls that reach the wrapped provider's models.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn Provider>,
    calls: Arc<AtomicU64>,
}

#[derive(Debug)]
struct CountingModel {
    inner: Arc<dyn Model>,
    calls: Arc<AtomicU64>,
}

impl Provider for Counting {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(CountingModel { inner: self.inner.model(id), calls: self.calls.clone() })
    }
}

#[async_trait]
impl Model for CountingModel {
    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn generate(&self, request: Request) -> executus::llm::Result<Response> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.generate(request).await
    }

    async fn stream(&self, request: Request) -> executus::llm::Result<EventStream> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.stream(request).await
    }
}

struct Outcome {
    to_bench: usize,
    bench_time: Duration,
    chain_us: Vec<f64>,
    alone_us: Vec<f64>,
    further_calls: u64,
    further_accepts: Option<u64>,
    still_benched: bool,
}

/// Runs P6.
///
/// # Errors
/// If the mocks cannot start or a request through the tail fails.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let n = if opts.smoke { 10 } else { 100 };
    let mut section = Section::new(
        "P6",
        format!(
            "a chain whose head refuses connections, tail healthy; then {n} more requests within the cooldown"
        ),
    );
    let tail = Mock::start(MockConfig::default()).await?;
    // (1) a closed port: bind, note the port, close.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let refused = measure(&tail, &format!("http://127.0.0.1:{closed}/v1"), None, n).await?;
    // (2) accept-and-close.
    let closer =
        Mock::start(MockConfig { behaviour: Behaviour::AcceptAndClose, ..MockConfig::default() }).await?;
    let closing = measure(&tail, &closer.url(), Some(&closer), n).await?;

    for (label, o) in [("closed port (ECONNREFUSED)", &refused), ("accept-and-close head", &closing)] {
        let (c50, c99, a50, a99) = (
            percentile(&o.chain_us, 50.0),
            percentile(&o.chain_us, 99.0),
            percentile(&o.alone_us, 50.0),
            percentile(&o.alone_us, 99.0),
        );
        let (added50, added99) = ((c50 - a50) / 1000.0, (c99 - a99) / 1000.0);
        section.rows.push(Row::new(
            format!("added latency p50 / p99, head = {label}"),
            format!("{added50:.3} / {added99:.3} ms"),
            format!("tail alone {:.0} / {:.0} us; chain {:.0} / {:.0} us", a50, a99, c50, c99),
            "<= 5 ms",
            Verdict::of(added50 <= 5.0 && added99 <= 5.0),
        ));
        let attempts = o.further_accepts.unwrap_or(o.further_calls);
        section.rows.push(Row::new(
            format!("  connection attempts to the benched head during the {n}"),
            match o.further_accepts {
                Some(acc) => {
                    format!("{acc} accepted by the head ({} calls reached its provider)", o.further_calls)
                }
                None => format!("{} calls reached the head's provider", o.further_calls),
            },
            if o.still_benched { "head still benched at the end" } else { "HEAD NO LONGER BENCHED" },
            "0",
            Verdict::of(attempts == 0 && o.still_benched),
        ));
        section.rows.push(Row::info(
            "  requests until the head was benched (chain retries included)",
            format!("{} requests, {:.0} ms", o.to_bench, o.bench_time.as_secs_f64() * 1e3),
            "health: 3 consecutive failures bench for 10 s; 2 retries per request, backoff 250 ms",
        ));
    }
    section.notes.push(format!(
        "**Method.** One `Registry` (default health tracker and chain options) holds the tail (an \
         in-process mock, zero latency) and the head; the chain is `head/bench-model, tail/bench-model`, \
         the reference `tail/bench-model` alone, both called with `Model::generate` on the same small \
         request. First, requests go through the chain until the health tracker reports the head \
         benched (the time this takes, with the chain's retries and backoff, is shown). Then {n} \
         requests alternate between the reference and the chain (paired, so drift hits both alike), \
         all within the cooldown (checked at the end). Added latency = chain minus tail alone, at p50 \
         and p99. Attempts on the benched head are counted two ways: calls that reach the head's \
         provider (a counting wrapper — the only way to count against a closed port), and, for the \
         accept-and-close head, connections the head's listener accepted."
    ));
    Ok(section)
}

async fn measure(tail: &Mock, head_url: &str, closer: Option<&Mock>, n: usize) -> anyhow::Result<Outcome> {
    let registry = Registry::new();
    registry.add_provider(Arc::new(OpenAi::new(ProviderConfig::new("tail", tail.url()))))?;
    let calls = Arc::new(AtomicU64::new(0));
    let head = Arc::new(OpenAi::new(ProviderConfig::new("head", head_url)));
    registry.add_provider(Arc::new(Counting { inner: head, calls: calls.clone() }))?;
    let chain = registry.parse("head/bench-model, tail/bench-model")?;
    let alone = registry.parse("tail/bench-model")?;
    let request = || Request { messages: vec![Message::user("ping #run=1")], ..Request::default() };
    for _ in 0..5 {
        alone.generate(request()).await.context("warming the tail")?;
    }
    let t0 = Instant::now();
    let mut to_bench = 0;
    while registry.health().is_benched("head/bench-model").is_none() {
        anyhow::ensure!(to_bench < 20, "the head was not benched after 20 requests");
        chain.generate(request()).await.context("a request through the chain while benching the head")?;
        to_bench += 1;
    }
    let bench_time = t0.elapsed();
    let calls0 = calls.load(Ordering::Relaxed);
    let accepts0 = closer.map(Mock::connections);
    let (mut chain_us, mut alone_us) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        alone.generate(request()).await.context("tail alone")?;
        alone_us.push(us(t.elapsed()));
        let t = Instant::now();
        chain.generate(request()).await.context("chain within the cooldown")?;
        chain_us.push(us(t.elapsed()));
    }
    Ok(Outcome {
        to_bench,
        bench_time,
        chain_us,
        alone_us,
        further_calls: calls.load(Ordering::Relaxed) - calls0,
        further_accepts: closer.zip(accepts0).map(|(c, a0)| c.connections() - a0),
        still_benched: registry.health().is_benched("head/bench-model").is_some(),
    })
}
