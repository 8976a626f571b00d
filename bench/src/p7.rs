//! P7: what OpenTelemetry export costs a run of `executus-run` when the collector is dead —
//! side by side in one run: no export configured, a live collector (an in-process OTLP/HTTP
//! sink that answers 200: the reference), an endpoint where nothing listens (connection
//! refused), and a "black hole" that accepts connections and never answers (the worst case:
//! every export waits for its timeout).
//!
//! Two figures per variant, from the spawn: the answer on stdout (the run itself) and the
//! process's exit (which includes the bounded flush of queued spans). Samples of the three
//! variants are interleaved so load drifts hit them alike.
//!
//! What it does not measure: a healthy collector (the rotel suite in `cli/tests/it/telemetry.rs`
//! proves delivery), or memory (the queue is bounded at `[telemetry] max_queue` spans).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::Opts;
use crate::mock::{Mock, MockConfig};
use crate::p1::peers::tail;
use crate::report::{Row, Section, Verdict};
use crate::stats::{ms, percentile};

const AGENT: &str = "bench";
const SAMPLE_LIMIT: Duration = Duration::from_secs(60);
/// The run with a dead collector may take this much longer than without (median), beyond
/// which export is judged to slow runs.
const TOLERANCE_MS: f64 = 5.0;

/// One way of (not) exporting.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Off,
    Live,
    Refused,
    BlackHole,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Self::Off => "export off",
            Self::Live => "live collector (reference)",
            Self::Refused => "endpoint refuses connections",
            Self::BlackHole => "endpoint accepts and never answers",
        }
    }
}

/// Runs P7.
///
/// # Errors
/// If the binary cannot be built or a sample does not exit 0 with its answer.
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let n = if opts.smoke { 2 } else { 30 };
    let mut section =
        Section::new("P7", "a dead OpenTelemetry collector vs no export: run and exit time".to_owned());
    let bin = crate::p5::binary().await?;
    // Four model calls 30 ms apart with three tool calls between them: spans end all through
    // the run, and with a 10 ms batch delay they are exported while it goes on.
    let mock = Mock::start(MockConfig {
        tool_steps: 3,
        latency: Duration::from_millis(30),
        ..MockConfig::default()
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite://{}", dir.path().join("executus.db").display());
    let mut text = crate::p5::config_text(&mock.url(), &store).replace("max_steps = 2", "max_steps = 6");
    // The mock calls the first tool offered; `clock` refuses its arguments, an error result
    // the run goes on from (3 errors stay under the tool-error limit).
    text.push_str("tools = [\"clock\"]\n");
    let config = dir.path().join("executus.toml");
    std::fs::write(&config, text)?;
    // A port nothing listens on, and a listener that accepts and then says nothing.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hole_port = hole.local_addr()?.port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hole.accept().await {
            held.push(socket);
        }
    });
    let sink = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_port = sink.local_addr()?.port();
    let server = tokio::spawn(async move {
        while let Ok((socket, _)) = sink.accept().await {
            tokio::spawn(otlp_sink(socket));
        }
    });
    let endpoint = |v: Variant| match v {
        Variant::Off => None,
        Variant::Live => Some(format!("http://127.0.0.1:{sink_port}")),
        Variant::Refused => Some(format!("http://127.0.0.1:{refused}")),
        Variant::BlackHole => Some(format!("http://127.0.0.1:{hole_port}")),
    };
    let variants = [Variant::Off, Variant::Live, Variant::Refused, Variant::BlackHole];
    // Warm-up: creates the store, warms the page cache; not in the figures.
    sample(&bin, &config, None).await.context("the warm-up run")?;
    let mut answers: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    let mut exits: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for i in 0..n {
        for (k, v) in variants.iter().enumerate() {
            let (answer, exit) = sample(&bin, &config, endpoint(*v).as_deref())
                .await
                .with_context(|| format!("{} sample {}", v.name(), i + 1))?;
            answers[k].push(ms(answer));
            exits[k].push(ms(exit));
        }
    }
    holder.abort();
    server.abort();
    let med = |s: &[f64]| percentile(s, 50.0);
    let base = med(&answers[1]);
    for (k, v) in variants.iter().enumerate() {
        let (a, e) = (med(&answers[k]), med(&exits[k]));
        if matches!(v, Variant::Off | Variant::Live) {
            section.rows.push(Row::info(
                format!("{}: answer / exit, median", v.name()),
                format!("{a:.1} / {e:.1} ms"),
                format!("{n} runs"),
            ));
        } else {
            section.rows.push(Row::new(
                format!("{}: answer / exit, median", v.name()),
                format!("{a:.1} / {e:.1} ms"),
                format!("answer {:+.1} ms vs a live collector; {n} runs", a - base),
                format!("answer <= reference + {TOLERANCE_MS} ms"),
                Verdict::of(a <= base + TOLERANCE_MS),
            ));
        }
    }
    section.notes.push(format!(
        "**Method.** `executus-run --config <tmp>/executus.toml run --agent {AGENT} --input ...` is \
         spawned {n} times per variant, the three variants interleaved, with a clean environment \
         (PATH only, plus `OTEL_EXPORTER_OTLP_ENDPOINT` and `OTEL_BSP_SCHEDULE_DELAY=10` for the \
         export variants, so spans are exported while the run goes on). The agent makes four \
         model calls (the mock answers each after 30 ms) with three tool calls between them. The reference is a live collector: an in-process OTLP/HTTP sink that \
         reads each request and answers 200; \"export off\" shows what configuring export costs \
         at all (the exporter's HTTP client is built at start). \"Answer\" is from the spawn to the run's answer line on stdout, \"exit\" \
         to the process's exit (which includes the flush of queued spans, bounded at 3 s; the \
         export timeout is 5 s, retries off). A refused connection fails each export at once; \
         the black hole makes the exit wait for the flush bound, never the run. Built with the \
         bench's own profile{}.",
        if cfg!(debug_assertions) { " (a debug build: the figures mean little)" } else { " (release)" },
    ));
    Ok(section)
}

/// One run: the time to the answer on stdout and to the exit.
async fn sample(bin: &Path, config: &Path, endpoint: Option<&str>) -> anyhow::Result<(Duration, Duration)> {
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--config")
        .arg(config)
        .args(["run", "--agent", AGENT, "--input", "Say something."])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(endpoint) = endpoint {
        cmd.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint).env("OTEL_BSP_SCHEDULE_DELAY", "10");
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning {}", bin.display()))?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first =
        tokio::time::timeout(SAMPLE_LIMIT, lines.next_line()).await.context("no answer in time")??;
    let answer = t0.elapsed();
    let out = tokio::time::timeout(SAMPLE_LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("executus-run did not exit within {SAMPLE_LIMIT:?}"))??;
    let exit = t0.elapsed();
    let first = first.unwrap_or_default();
    if !out.status.success() || !first.starts_with("done after") {
        bail!(
            "executus-run exited {} with first line {first:?}; stderr:\n{}",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        );
    }
    Ok((answer, exit))
}

/// A minimal OTLP/HTTP collector: reads each request (headers, then `content-length` bytes)
/// and answers `200` with an empty body, on a kept-alive connection.
async fn otlp_sink(mut socket: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Headers.
        let header_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < header_end + length {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..header_end + length);
        let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
        if socket.write_all(answer).await.is_err() {
            return;
        }
    }
}
