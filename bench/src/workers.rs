//! `workers` (S1-S3, scale-out): workers sharing one PostgreSQL database (`executus-store`'s `postgres` backend and
//! `worker::Worker`, the loop `executus-run worker` runs).
//!
//! Three figures, each on a fresh database of the server given by `EXECUTUS_BENCH_PG_URL` or
//! `EXECUTUS_TEST_PG_URL` (else the bench starts a throwaway cluster with
//! `scripts/peer-postgres.sh` and stops it afterwards; without PostgreSQL the rows say n/a):
//! - S1: runs/s with 1, 2 and 4 worker processes (this binary's `workers-child`, concurrency 16 each)
//!   draining a queue of 3-step agent runs against the zero-latency mock child (`mock`),
//!   with where the two cores' CPU went: workers, PostgreSQL (every `postgres` process), the
//!   mock. On this 2-core machine the workers, the server and the mock share two cores, so
//!   the curve shows contention, not the scaling of separate machines;
//! - S2: checkpoint step-saves/s on PostgreSQL beside SQLite (P4's measurement: 16 concurrent
//!   runs through the core's group-commit handle, each save durable);
//! - S3: SIGKILL to resume: a worker driving a long run is killed with SIGKILL; the time until
//!   another (idle, polling) worker has picked the run up again, against the target "lease
//!   expiry + 1 s" (lease expiry 2 s here, the poll interval the default 1 s).

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use executus::ports::Ports;
use executus::{Identity, RunId};
use executus_store::postgres::{PgRunQueue, QueuedRequest};
use executus_store::worker::{Worker, WorkerEvent, WorkerSettings};
use executus_store::{Store, StoreOptions};
use sqlx::Connection as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::Opts;
use crate::harness;
use crate::mock::child::ChildMock;
use crate::mock::{Behaviour, MockConfig};
use crate::report::{Row, Section, Verdict};

/// Lease expiry of the SIGKILL figure.
const LEASE: Duration = Duration::from_secs(2);

/// A PostgreSQL server to measure on, and whether this run started it.
struct Server {
    admin: String,
    started: bool,
}

impl Server {
    fn find() -> anyhow::Result<Option<Self>> {
        for var in ["EXECUTUS_BENCH_PG_URL", "EXECUTUS_TEST_PG_URL"] {
            if let Ok(url) = std::env::var(var)
                && !url.trim().is_empty()
            {
                return Ok(Some(Self { admin: url.trim().to_owned(), started: false }));
            }
        }
        let script = crate::p1::peers::repo_root().join("scripts/peer-postgres.sh");
        let out = std::process::Command::new(&script).arg("start").stderr(Stdio::inherit()).output();
        match out {
            Ok(out) if out.status.success() => {
                let line = String::from_utf8_lossy(&out.stdout);
                match line.trim().strip_prefix("EXECUTUS_TEST_PG_URL=") {
                    Some(url) => Ok(Some(Self { admin: url.to_owned(), started: true })),
                    None => bail!("scripts/peer-postgres.sh printed {line:?}"),
                }
            }
            _ => Ok(None),
        }
    }

    /// A fresh database; its URL.
    async fn database(&self) -> anyhow::Result<String> {
        let name = format!("executus_bench_{}_{:06x}", std::process::id(), fastrand::u32(..0xff_ffff));
        let mut conn = sqlx::PgConnection::connect(&self.admin).await.context("connecting to PostgreSQL")?;
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await?;
        let _ = conn.close().await;
        let base = self.admin.split('?').next().unwrap_or(&self.admin);
        let cut =
            base.rfind('/').filter(|i| *i > base.find("://").map_or(0, |s| s + 2)).unwrap_or(base.len());
        Ok(format!("{}/{name}", &base[..cut]))
    }

    async fn drop_database(&self, url: &str) {
        let name = url.rsplit('/').next().unwrap_or_default().to_owned();
        if let Ok(mut conn) = sqlx::PgConnection::connect(&self.admin).await {
            let _ =
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut conn).await;
            let _ = conn.close().await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.started {
            let script = crate::p1::peers::repo_root().join("scripts/peer-postgres.sh");
            let _ = std::process::Command::new(script).arg("stop").stderr(Stdio::null()).status();
        }
    }
}

/// Runs the `workers` benchmark.
///
/// # Errors
/// When a measurement fails (a figure is never made up).
pub async fn run(opts: &Opts) -> anyhow::Result<Section> {
    let mut section = Section::new(
        "S1-S3",
        "workers on one PostgreSQL: runs/s with 1, 2, 4 workers (S1); step-saves/s vs SQLite (S2); SIGKILL to \
         resume (S3)",
    );
    let Some(server) = Server::find()? else {
        section.rows.push(Row::new(
            "workers on PostgreSQL",
            "not measured",
            "no PostgreSQL (set EXECUTUS_BENCH_PG_URL, or let scripts/peer-postgres.sh install one)",
            "-",
            Verdict::Unavailable,
        ));
        return Ok(section);
    };
    let runs = if opts.smoke { 24 } else { 600 };
    let mock = ChildMock::spawn(&MockConfig {
        latency: Duration::ZERO,
        tool_steps: 2,
        behaviour: Behaviour::Answer,
        record_gaps: false,
        capture_key: None,
    })
    .await?;
    let mut one = 0.0;
    for workers in [1usize, 2, 4] {
        let url = server.database().await?;
        let m = throughput(&url, &mock.url(), workers, runs)
            .await
            .with_context(|| format!("{workers} worker(s)"));
        server.drop_database(&url).await;
        let m = m?;
        if workers == 1 {
            one = m.rate;
        }
        let total = m.elapsed.as_secs_f64() * 2.0;
        let pct = |d: Duration| 100.0 * d.as_secs_f64() / total.max(f64::EPSILON);
        section.rows.push(
            Row::info(
                format!("runs/s, {workers} worker process(es) x 16 runs at once, {runs} 3-step runs"),
                format!("{:.0} runs/s ({:.2}x one worker)", m.rate, m.rate / one.max(f64::EPSILON)),
                format!(
                    "CPU of the 2 cores: workers {:.0}%, PostgreSQL {:.0}%, mock {:.0}%",
                    pct(m.workers_cpu),
                    pct(m.postgres_cpu),
                    pct(m.mock_cpu)
                ),
            )
            .labelled("S1"),
        );
    }
    drop(mock);

    let (saves, steps) = if opts.smoke { (16, 8) } else { (16, 64) };
    let dir = tempfile::tempdir()?;
    let sqlite = Store::open_path(dir.path().join("workers.db"), StoreOptions::default()).await?;
    let (sqlite_rate, _) = crate::p4::measure_on(sqlite, saves, steps, true).await?;
    let url = server.database().await?;
    let pg = Store::open(&url).await?;
    let measured = crate::p4::measure_on(pg, saves, steps, true).await;
    server.drop_database(&url).await;
    let (pg_rate, pg_txns) = measured?;
    section.rows.push(
        Row::info(
            format!("checkpoint step-saves/s, PostgreSQL, {saves} concurrent runs, durable (group commit)"),
            format!("{pg_rate:.0} saves/s ({pg_txns} transactions)"),
            format!(
                "SQLite, same run: {sqlite_rate:.0} saves/s ({:.2}x)",
                pg_rate / sqlite_rate.max(f64::EPSILON)
            ),
        )
        .labelled("S2"),
    );

    let repeats = if opts.smoke { 1 } else { 3 };
    let mut times = Vec::new();
    for _ in 0..repeats {
        let url = server.database().await?;
        let mock = ChildMock::spawn(&MockConfig {
            latency: Duration::from_millis(200),
            tool_steps: 40,
            behaviour: Behaviour::Answer,
            record_gaps: false,
            capture_key: None,
        })
        .await?;
        let t = kill_to_resume(&url, &mock.url()).await;
        server.drop_database(&url).await;
        times.push(t?);
    }
    times.sort();
    let worst = times[times.len() - 1];
    let target = LEASE + Duration::from_secs(1);
    section.rows.push(
        Row::new(
            "SIGKILL of a worker to its run resumed by another worker (worst of the repeats)",
            format!("{:.2} s", worst.as_secs_f64()),
            format!(
                "lease expiry {} s, poll 1 s; all: {}",
                LEASE.as_secs(),
                times.iter().map(|t| format!("{:.2} s", t.as_secs_f64())).collect::<Vec<_>>().join(", ")
            ),
            format!("<= lease expiry + 1 s ({} s)", target.as_secs()),
            Verdict::of(worst <= target),
        )
        .labelled("S3"),
    );
    section.notes.push(
        "S1, runs/s: the workers (`executus-bench workers-child`, the same `executus_store::worker::Worker` \
         `executus-run worker` runs) start idle and polling; the clock runs from the first enqueue to \
         the last run recorded done in the queue. Each run is the 3-step agent of P1 (two tool calls, \
         one answer) against the zero-latency mock, checkpointed on PostgreSQL (leases, queue rows, \
         outcomes). CPU is user + system time from /proc over the measurement, as a share of the two \
         cores' wall time; PostgreSQL is every process named `postgres` (the server's backends). On \
         one 2-core machine, more workers mostly share the same cores with the server: the figure \
         shows what the queue costs and where the CPU goes, not how separate machines would scale."
            .to_owned(),
    );
    section.notes.push(
        "S2, step-saves/s: P4's measurement (16 concurrent runs through the core's checkpoint handle, \
         each save durable and group-committed) on a fresh PostgreSQL database beside a fresh SQLite \
         file. The test cluster of `scripts/peer-postgres.sh` runs with `fsync = off` unless \
         `EXECUTUS_BENCH_PG_URL` names another server; SQLite runs with its defaults (WAL, \
         `synchronous = NORMAL`)."
            .to_owned(),
    );
    section.notes.push(format!(
        "S3, SIGKILL to resume: worker A picks a 40-step run (200 ms per model call), worker B idles \
         (polling every second); A is killed with SIGKILL and the clock runs until B has picked the \
         run (its lease taken, the run resumed from its checkpoint). The lease expires {} s after A's \
         last heartbeat; a lease is taken over only once expired, so the figure is at most expiry + \
         the poll interval.",
        LEASE.as_secs()
    ));
    Ok(section)
}

struct Measured {
    rate: f64,
    elapsed: Duration,
    workers_cpu: Duration,
    postgres_cpu: Duration,
    mock_cpu: Duration,
}

/// Worker processes of this binary (`workers-child`), ready.
struct Workers {
    children: Vec<Child>,
}

impl Workers {
    async fn start(url: &str, mock: &str, n: usize, lease: Duration) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut children = Vec::new();
        for _ in 0..n {
            let mut child = Command::new(&exe)
                .args([
                    "workers-child",
                    "--pg",
                    url,
                    "--url",
                    mock,
                    "--lease-ms",
                    &lease.as_millis().to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()?;
            let stdout = child.stdout.take().context("worker stdout")?;
            let mut lines = BufReader::new(stdout).lines();
            let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await??;
            if ready.as_deref().is_none_or(|l| !l.starts_with("READY")) {
                bail!("worker said {ready:?}");
            }
            // Keep reading so the pipe never fills.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            children.push(child);
        }
        Ok(Self { children })
    }

    fn cpu(&self) -> Duration {
        self.children.iter().filter_map(Child::id).map(|pid| crate::sys::cpu_time(Some(pid))).sum()
    }
}

/// CPU time of every process named `postgres`.
fn postgres_cpu() -> Duration {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Duration::ZERO };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
        })
        .map(|pid| crate::sys::cpu_time(Some(pid)))
        .sum()
}

fn request(i: u64) -> QueuedRequest {
    QueuedRequest {
        agent: harness::agent(),
        input: vec![executus::llm::Message::user(harness::input(i))],
        identity: Identity::new("bench", format!("t{}", i % 4)),
        lane: None,
        deliver: false,
        conversation: None,
    }
}

async fn open_queue(url: &str) -> anyhow::Result<(Store, PgRunQueue)> {
    let store = Store::open(url).await?;
    let queue = store.as_postgres().context("not PostgreSQL")?.queue();
    Ok((store, queue))
}

async fn throughput(url: &str, mock: &str, workers: usize, runs: usize) -> anyhow::Result<Measured> {
    let (store, queue) = open_queue(url).await?;
    let procs = Workers::start(url, mock, workers, Duration::from_secs(10)).await?;
    let mock_pid = mock_pid(mock);
    let (w0, p0, m0) = (procs.cpu(), postgres_cpu(), mock_pid.map(|p| crate::sys::cpu_time(Some(p))));
    let started = Instant::now();
    for i in 0..runs {
        queue.enqueue(RunId::new(), &request(i as u64)).await?;
    }
    loop {
        let [queued, active, finished, done] = queue.counts().await?;
        if done == runs as u64 && queued + active + finished == 0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("{done} of {runs} runs done after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let measured = Measured {
        rate: runs as f64 / elapsed.as_secs_f64(),
        elapsed,
        workers_cpu: procs.cpu().saturating_sub(w0),
        postgres_cpu: postgres_cpu().saturating_sub(p0),
        mock_cpu: match (mock_pid, m0) {
            (Some(pid), Some(m0)) => crate::sys::cpu_time(Some(pid)).saturating_sub(m0),
            _ => Duration::ZERO,
        },
    };
    drop(procs);
    store.close().await;
    Ok(measured)
}

/// The pid of the process listening on the mock's port (the mock child), from /proc.
fn mock_pid(url: &str) -> Option<u32> {
    let port: u16 = url.trim_start_matches("http://").split(['/', ':']).nth(1)?.parse().ok()?;
    let hex = format!(":{port:04X}");
    let tcp = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = tcp.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1)?.ends_with(&hex) && f.get(3) == Some(&"0A")).then(|| f.get(9).map(|s| (*s).to_owned()))?
    })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target))
            .then_some(pid)
    })
}

async fn kill_to_resume(url: &str, mock: &str) -> anyhow::Result<Duration> {
    let (store, queue) = open_queue(url).await?;
    let mut a = Workers::start(url, mock, 1, LEASE).await?;
    let run = RunId::new();
    queue.enqueue(run, &request(7)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while queue.entry(run).await?.is_none_or(|e| e.picks == 0) {
        if Instant::now() > deadline {
            bail!("the run was never picked");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let it checkpoint a few steps, and the second worker settle into its polling.
    let b = Workers::start(url, mock, 1, LEASE).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let victim = &mut a.children[0];
    victim.start_kill()?;
    let killed = Instant::now();
    let _ = victim.wait().await;
    loop {
        let entry = queue.entry(run).await?.context("the run left the queue")?;
        if entry.picks >= 2 {
            break;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("the run was not picked up again within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = killed.elapsed();
    drop(b);
    store.close().await;
    Ok(took)
}

/// `workers-child --pg URL --url MOCK [--lease-ms N]`: one worker process of `workers`.
///
/// # Errors
/// Bad arguments, a store that cannot be opened.
pub async fn worker(rest: &[String]) -> anyhow::Result<()> {
    let flag = |name: &str| crate::flag_value(rest, name);
    let url = flag("--pg").context("workers-child needs --pg")?;
    let mock = flag("--url").context("workers-child needs --url")?;
    let lease = Duration::from_millis(flag("--lease-ms").and_then(|v| v.parse().ok()).unwrap_or(10_000));
    let store = Store::open_with(&url, StoreOptions::default().lease_expiry(lease)).await?;
    let pg = store.as_postgres().context("not PostgreSQL")?.clone();
    let mut config = executus::RuntimeConfig { streaming: false, ..executus::RuntimeConfig::default() };
    if let Some(lane) = config.lanes.get_mut("default") {
        lane.capacity = std::num::NonZeroUsize::new(16).unwrap_or(std::num::NonZeroUsize::MIN);
    }
    let runtime = executus::Runtime::builder()
        .registry(harness::registry(&mock)?)
        .tools(harness::tools())
        .ports(Ports { checkpoints: Arc::new(store.checkpoints()), ..Ports::default() })
        .config(config)
        .try_build()?;
    let worker = Worker::new(runtime, pg, WorkerSettings::default().concurrency(16));
    let mut events = worker.subscribe();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let WorkerEvent::Started { run, resumed, .. } = event {
                println!("STARTED {run} {resumed}");
            }
        }
    });
    println!("READY");
    worker.run(tokio_util::sync::CancellationToken::new()).await?;
    Ok(())
}
