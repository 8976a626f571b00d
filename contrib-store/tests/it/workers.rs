//! Workers sharing one PostgreSQL database, as real processes (`executus-pg-worker`: the
//! `worker::Worker` loop `executus-run worker` runs) against the loopback mock of
//! `mock_llm.rs`:
//!
//! - chaos: 3 workers drive queued runs of a 5-step tool agent while one worker at a time is
//!   SIGKILLed at random moments and restarted: every run completes; every completed tool
//!   call's side effect (counted at the mock) happened exactly once, and no call's effect
//!   happened twice; the mock never saw one run driven by two workers at once (its per-run
//!   in-flight counter). 60 runs and 6 kills in every test run (CI's smoke);
//!   `EXECUTUS_PG_CHAOS_FULL=1` (what `scripts/reliability.sh` sets): 300 runs, 20 kills.
//! - cron: 3 workers run one shared every-second job: no slot runs twice across them and
//!   none is lost (a slot missed on a stalled machine is handled by one catch-up run, or
//!   skipped by the overlap rule, in one worker): 10 runs; with `EXECUTUS_PG_CHAOS_FULL=1`
//!   50 (a minute of wall time).
//! - budget: 100 runs across 3 workers against one tenant cap: the spend never overshoots
//!   the cap by more than one reservation, and the cap is really reached.
//! - copy: a SQLite store holding interrupted runs (held half-way at the mock, then stopped)
//!   is copied into PostgreSQL (`copy`) and a worker finishes them there, no completed call
//!   run again.
//!
//! Every wait has a generous hang guard; nothing asserts a duration.

use std::collections::{BTreeSet, HashMap};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use executus::llm::Message;
use executus::{Identity, Limits, RunId, RunnableAgent};
use executus_store::postgres::{PgRunQueue, QueueState, QueuedRequest};
use executus_store::{Store, StoreOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::mock_llm::MockLlm;
use crate::pg::PgDb;

/// Hang guard for a whole phase (many times what it takes on a loaded debug build).
const HANG: Duration = Duration::from_secs(900);

fn full() -> bool {
    std::env::var("EXECUTUS_PG_CHAOS_FULL").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The agent the worker binary defines (`effector`), as the enqueuer sends it.
fn agent(steps: u32) -> RunnableAgent {
    let mut agent = RunnableAgent::new(
        "effector",
        format!("Apply {steps} effects, one tool call per step, then say done."),
        "mock/m",
    )
    .with_tools(["effect"]);
    agent.max_tokens = Some(64);
    agent.limits = Limits { max_steps: steps + 3, tool_error_limit: steps + 1, ..Limits::default() };
    agent
}

fn request(run: RunId, tenant: &str) -> QueuedRequest {
    QueuedRequest {
        agent: agent(5),
        input: vec![Message::user(format!("Apply your effects. #run={run}"))],
        identity: Identity::new("ada", tenant),
        lane: None,
        deliver: false,
        conversation: None,
    }
}

/// One worker process and the lines it printed.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    async fn start(db: &str, mock: &str, extra: &[String]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_executus-pg-worker"));
        cmd.arg(db).arg(mock).args(extra);
        cmd.env_clear().env("RUST_LOG", "warn");
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit()).kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn executus-pg-worker");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        {
            let lines = lines.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let proc = Self { child, lines };
        proc.wait_for("READY").await;
        proc
    }

    async fn wait_for(&self, prefix: &str) {
        let deadline = tokio::time::Instant::now() + HANG;
        while !self.lines.lock().unwrap().iter().any(|l| l.starts_with(prefix)) {
            assert!(tokio::time::Instant::now() < deadline, "worker never printed {prefix}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    async fn sigkill(&mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then the exit status (0 expected: a graceful stop).
    async fn sigterm(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().unwrap();
        let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
        let status = tokio::time::timeout(HANG, self.child.wait()).await.unwrap().unwrap();
        (status, self.lines())
    }
}

fn worker_args(lease_ms: u64, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["concurrency=8".to_owned(), format!("lease_ms={lease_ms}"), "poll_ms=200".to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

async fn queue_of(db: &PgDb) -> (Store, PgRunQueue) {
    let store = Store::open_with(&db.url, StoreOptions::default()).await.unwrap();
    let queue = store.as_postgres().unwrap().queue();
    (store, queue)
}

/// Waits until every run in `runs` is finished or done in the queue.
async fn all_ended(queue: &PgRunQueue, runs: &[RunId]) {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let mut open = 0;
        for run in runs {
            let entry = queue.entry(*run).await.unwrap().unwrap();
            if !matches!(entry.state, QueueState::Finished | QueueState::Done) {
                open += 1;
            }
        }
        if open == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{open} run(s) never ended");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_workers_runs_complete_with_every_effect_once_and_one_driver() {
    let Some(db) = PgDb::create("killed_workers_runs_complete_with_every_effect_once_and_one_driver").await
    else {
        return;
    };
    // The smoke's fewer runs answer slower, so its kills still land while runs are in flight.
    let (runs_n, kills, latency) = if full() { (300, 20, 5) } else { (60, 6, 100) };
    let mock = MockLlm::start(5, Duration::from_millis(latency), 16).await;
    let (_store, queue) = queue_of(&db).await;
    // Migrations first (the workers would race for them otherwise; they are safe, just slower).
    // A lease of 20 s: a worker stalled by a busy machine for up to half of it (heartbeats
    // missed) still holds its runs — a shorter one let another worker take over a starved but
    // living worker's run while a benchmark hogged both cores, which is the stall the lease
    // scheme documents as its limit, not what this test is about; a killed worker's runs
    // resume after it.
    let args = worker_args(20_000, &[]);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Proc::start(&db.url, &mock.url, &args).await);
    }
    let runs: Vec<RunId> = (0..runs_n).map(|_| RunId::new()).collect();
    for (i, run) in runs.iter().enumerate() {
        queue.enqueue(*run, &request(*run, &format!("t{}", i % 4))).await.unwrap();
    }
    let mut rng = fastrand::Rng::with_seed(17);
    let mut restarted = Vec::new();
    for _ in 0..kills {
        // A random moment: whatever the victim is doing then (a model call, a tool call, a
        // checkpoint write, a pick) is where it dies.
        tokio::time::sleep(Duration::from_millis(rng.u64(100..700))).await;
        let victim = rng.usize(0..workers.len());
        workers[victim].sigkill().await;
        restarted.push(std::mem::replace(&mut workers[victim], Proc::start(&db.url, &mock.url, &args).await));
    }
    all_ended(&queue, &runs).await;

    let mut interrupted_calls = 0;
    {
        let state = mock.state();
        assert!(state.violations.is_empty(), "runs driven by two workers at once: {:?}", state.violations);
        for run in &runs {
            let key = run.to_string();
            let entry_done = state.done.get(&key).copied().unwrap_or(0);
            assert!(entry_done >= 1, "run {run} never got its final answer");
            let transcript = state.transcripts.get(&key).expect("the run's last transcript");
            assert_eq!(transcript.len(), 5, "run {run}: every step's tool result, once: {transcript:?}");
            let ids: BTreeSet<&str> = transcript.iter().map(|(id, _)| id.as_str()).collect();
            assert_eq!(ids.len(), 5, "run {run}: a call twice in the transcript: {transcript:?}");
            for (call, content) in transcript {
                let effects = state.effects.get(&(key.clone(), call.clone())).copied().unwrap_or(0);
                if content.starts_with("effect ") {
                    assert_eq!(
                        effects, 1,
                        "run {run} call {call}: a completed call's effect ran {effects} times"
                    );
                } else {
                    // In flight at a kill: not run again (the tool is not idempotent).
                    assert!(content.contains("interrupted"), "run {run} call {call}: {content}");
                    assert!(effects <= 1, "run {run} call {call}: an interrupted call ran {effects} times");
                    interrupted_calls += 1;
                }
            }
        }
        assert!(state.effects.values().all(|n| *n == 1), "an effect applied twice");
    }
    for run in &runs {
        let entry = queue.entry(*run).await.unwrap().unwrap();
        assert_eq!(entry.status.as_deref(), Some("completed"), "run {run}: {entry:?}");
    }
    // Graceful stops.
    for w in workers {
        let (status, lines) = w.sigterm().await;
        assert!(status.success(), "a worker stopped by SIGTERM exits 0: {status:?} {lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("STOPPED")), "{lines:?}");
    }
    let resumed: usize = restarted
        .iter()
        .map(|p| p.lines().iter().filter(|l| l.starts_with("STARTED") && l.ends_with("true")).count())
        .sum();
    eprintln!(
        "chaos: {runs_n} runs, {kills} kills, {interrupted_calls} tool calls interrupted in flight, {resumed} orphan starts in killed workers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cron_job_over_three_workers_fires_each_slot_once() {
    let Some(db) = PgDb::create("a_cron_job_over_three_workers_fires_each_slot_once").await else { return };
    let slots = if full() { 50 } else { 10 };
    let mock = MockLlm::start(0, Duration::from_millis(1), 16).await;
    let _store = db.open().await;
    let args = worker_args(10_000, &["cron=* * * * * *", "steps=0"]);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Proc::start(&db.url, &mock.url, &args).await);
    }
    let fired = |workers: &[Proc]| -> Vec<i64> {
        workers
            .iter()
            .flat_map(|w| w.lines())
            .filter_map(|l| l.strip_prefix("FIRED tick ").and_then(|r| r.split(' ').next()?.parse().ok()))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + HANG;
    while fired(&workers).len() < slots + 2 {
        // Slots missed on a stalled machine are caught up (one run for them) or skipped, never
        // run twice; the count is of runs, so a slow machine just waits longer.
        assert!(tokio::time::Instant::now() < deadline, "the job stopped firing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Slots up to the last one run before the stop are checked for gaps (later ones may be
    // claimed by a worker being stopped).
    let checked_until = fired(&workers).into_iter().max().unwrap();
    let mut lines = Vec::new();
    for w in workers {
        let (status, l) = w.sigterm().await;
        assert!(status.success());
        lines.push(l);
    }
    // Each fire a worker handled: (first slot, last slot, ran). A run stands for its slot (a
    // catch-up run for every missed slot from its first); a skip (overlap, missed fires
    // skipped) for its slots without a run. Fires another worker claimed are not printed.
    let handled: Vec<(i64, i64, bool)> = lines
        .iter()
        .flatten()
        .filter_map(|l| {
            let (ran, rest) = if let Some(r) = l.strip_prefix("FIRED tick ") {
                (true, r)
            } else {
                (false, l.strip_prefix("SKIPPED tick ")?)
            };
            let f: Vec<&str> = rest.split(' ').collect();
            let fire: i64 = f.first()?.parse().ok()?;
            let first: i64 = if ran { f.get(2)?.parse().ok()? } else { f.get(1)?.parse().ok()? };
            Some((first, fire, ran))
        })
        .collect();
    let mut slots_ran: Vec<i64> = Vec::new();
    let mut covered: BTreeSet<i64> = BTreeSet::new();
    for (first, last, ran) in &handled {
        let mut slot = *first;
        while slot <= *last {
            if *ran {
                slots_ran.push(slot);
            }
            covered.insert(slot);
            slot += 1_000;
        }
    }
    let total = slots_ran.len();
    slots_ran.sort_unstable();
    slots_ran.dedup();
    assert_eq!(slots_ran.len(), total, "a slot ran in two workers (or twice): {handled:?}");
    assert!(slots_ran.len() >= slots, "{handled:?}");
    let (lo, hi) = (covered.first().copied().unwrap(), covered.last().copied().unwrap());
    let lost: Vec<i64> = (0..=(hi.min(checked_until) - lo) / 1_000)
        .map(|i| lo + i * 1_000)
        .filter(|s| !covered.contains(s))
        .collect();
    assert!(lost.is_empty(), "slots no worker handled: {lost:?} ({handled:?})");
    let fires = slots_ran;
    let per_worker: Vec<usize> =
        lines.iter().map(|l| l.iter().filter(|l| l.starts_with("FIRED")).count()).collect();
    eprintln!("cron: {} slots fired once each across 3 workers ({per_worker:?} per worker)", fires.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_runs_across_workers_never_overshoot_one_spend_cap() {
    let Some(db) = PgDb::create("concurrent_runs_across_workers_never_overshoot_one_spend_cap").await else {
        return;
    };
    // Every model call reserves its worst case (64 output tokens at $1 per 1k: $0.064) and
    // settles what it used (64 tokens: the same). A tenant cap of $3 holds 46 calls.
    let mock = MockLlm::start(1, Duration::from_millis(2), 64).await;
    let budget = serde_json::json!({
        "window": "1d",
        "unknown_model": "deny",
        "caps": {"default_tenant": 3.0},
        "prices": {"mock/*": {"input": 0.0, "output": 1000.0}}
    })
    .to_string();
    let (store, queue) = queue_of(&db).await;
    let args = worker_args(10_000, &[&format!("budget={budget}"), "steps=1"]);
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Proc::start(&db.url, &mock.url, &args).await);
    }
    let runs: Vec<RunId> = (0..100).map(|_| RunId::new()).collect();
    for run in &runs {
        let mut req = request(*run, "capped");
        req.agent = agent(1);
        queue.enqueue(*run, &req).await.unwrap();
    }
    all_ended(&queue, &runs).await;
    let mut statuses: HashMap<String, usize> = HashMap::new();
    for run in &runs {
        let entry = queue.entry(*run).await.unwrap().unwrap();
        *statuses.entry(entry.status.unwrap_or_default()).or_default() += 1;
    }
    use executus_budget::BudgetStore as _;
    let totals =
        store.budget().spent(&executus_budget::tenant_scope("capped"), 0, u64::MAX / 2).await.unwrap();
    let cap = executus_budget::Money::usd(3.0);
    let one = executus_budget::Money::usd(0.064);
    assert!(
        totals.spent <= cap.saturating_add(one),
        "spent {} over the cap {} by more than one reservation ({statuses:?})",
        totals.spent,
        cap
    );
    assert!(
        totals.spent.saturating_add(one) > cap,
        "the cap was never reached: {} ({statuses:?})",
        totals.spent
    );
    assert!(statuses.get("budget_denied").copied().unwrap_or(0) > 0, "{statuses:?}");
    for w in workers {
        let (status, _) = w.sigterm().await;
        assert!(status.success());
    }
    eprintln!("budget: spent {} of a {} cap; outcomes {statuses:?}", totals.spent, cap);
}

/// The worker binary's `effect` tool, for a runtime in this process.
struct Effect {
    mock: String,
}

#[async_trait::async_trait]
impl executus::tool::Tool for Effect {
    fn name(&self) -> &str {
        "effect"
    }

    fn description(&self) -> &str {
        "Applies one effect (not idempotent)."
    }

    fn parameters(&self) -> serde_json::Value {
        serde_json::json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]})
    }

    async fn call(
        &self,
        ctx: executus::tool::ToolContext,
        args: serde_json::Value,
    ) -> Result<executus::tool::ToolOutput, executus::tool::ToolError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let key = args["key"].as_str().unwrap_or("?").to_owned();
        let body =
            serde_json::json!({"run": ctx.run_id.to_string(), "call": ctx.call_id, "worker": 0}).to_string();
        let host = self.mock.trim_start_matches("http://").to_owned();
        let fail = |e: std::io::Error| executus::tool::ToolError::failed("effect", e.to_string());
        let mut stream = tokio::net::TcpStream::connect(&host).await.map_err(fail)?;
        let request = format!(
            "POST /effect HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.map_err(fail)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(fail)?;
        Ok(format!("effect {key} applied (call {})", ctx.call_id).into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_store_with_interrupted_runs_is_copied_into_postgres_and_finished_there() {
    use executus::ports::{AuditEvent, AuditRecord, CheckpointStore as _, Ports};
    use executus_audit::AuditStore as _;
    use executus_budget::BudgetStore as _;
    use executus_persona::PersonaStore as _;
    use executus_schedule::ScheduleStore as _;
    use executus_skill::SkillStore as _;

    const TEST: &str = "a_sqlite_store_with_interrupted_runs_is_copied_into_postgres_and_finished_there";
    let Some(db) = PgDb::create(TEST).await else { return };
    // The runs are held half-way (their model request after the second effect gets no answer),
    // so the stop below catches every one of them there whatever the machine's speed.
    let mock = MockLlm::start(5, Duration::from_millis(5), 16).await;
    mock.state().hold_after = Some(2);
    let tmp = crate::common::TempStore::new();
    let sqlite = tmp.open().await;

    // Everything else a store holds, so the copy has it all to move.
    sqlite.personas().put(executus_persona::Persona::new("helper", "You help.", "mock/m")).await.unwrap();
    let skill = |n: u32| executus_skill::SkillVersion {
        name: "grep".into(),
        version: n,
        instructions: format!("v{n}"),
        tools: vec![],
        created_ms: u64::from(n),
        note: None,
    };
    sqlite.skills().create(skill(1)).await.unwrap();
    sqlite.skills().put_version(skill(2)).await.unwrap();
    sqlite.skills().set_state("grep", executus_skill::SkillState::Active, 5).await.unwrap();
    sqlite.skills().set_active_version("grep", 2, 6).await.unwrap();
    let audit: Vec<AuditRecord> = (0..3)
        .map(|i| {
            AuditRecord::now(
                None,
                Identity::new("ada", "acme"),
                None,
                AuditEvent::ApprovalAnswered { call_id: format!("c{i}"), approved: true, reason: None },
            )
        })
        .collect();
    sqlite.audit().append(&audit).await.unwrap();
    sqlite
        .budget()
        .settle(&executus_budget::SettleRequest {
            reservation_id: 1,
            scopes: vec!["user:ada".into(), "tenant:acme".into()],
            actual: executus_budget::Money::usd(0.5),
            now_ms: 1_000,
        })
        .await
        .unwrap();
    let job = executus_schedule::JobDef::new("nightly", "@daily", "effector", "go");
    sqlite.schedule().put_job(&job).await.unwrap();
    use executus_chat::ChatHistory as _;
    let chat = executus_chat::ChatKey { user: "ada".into(), tenant: "acme".into(), persona: "helper".into() };
    sqlite.chats().append(&chat, &[Message::user("hi"), Message::assistant("hello")]).await.unwrap();
    let fire = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
    sqlite.schedule().advance("nightly", fire).await.unwrap();
    let extras = put_extras(&sqlite).await;

    // Runs driven here on SQLite, stopped half-way (as a deploy would stop the process).
    let registry = executus::llm::Registry::from_vars(
        [("EXECUTUS_LLM_MOCK", format!("openai+http://{}/v1", mock.url.trim_start_matches("http://")))],
        &executus::llm::HttpOptions::default(),
    )
    .unwrap();
    let tools = executus::tool::ToolRegistry::new().with(Arc::new(Effect { mock: mock.url.clone() }));
    let config = executus::RuntimeConfig { streaming: false, ..executus::RuntimeConfig::default() };
    let runtime = executus::Runtime::builder()
        .registry(registry)
        .tools(tools)
        .ports(Ports { checkpoints: Arc::new(sqlite.checkpoints()), ..Ports::default() })
        .config(config)
        .build();
    let runs: Vec<RunId> = (0..4).map(|_| RunId::new()).collect();
    for run in &runs {
        let request =
            executus::RunRequest::new(agent(5), format!("Apply your effects. #run={run}")).run_id(*run);
        let _ = runtime.spawn_with(request).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let halfway = {
            let state = mock.state();
            runs.iter().all(|r| state.effects.keys().filter(|(run, _)| *run == r.to_string()).count() >= 2)
        };
        if halfway {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the runs never got half-way");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runtime.shutdown(Duration::ZERO).await;
    let interrupted = sqlite.checkpoints().list_interrupted().await.unwrap();
    assert_eq!(interrupted.len(), runs.len(), "every run was interrupted, none finished");
    // The held requests end with their clients; then answers flow again.
    let deadline = tokio::time::Instant::now() + HANG;
    while !mock.state().idle() {
        assert!(tokio::time::Instant::now() < deadline, "a held request outlived its run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mock.state().hold_after = None;

    // The copy, then a second one into the same target is refused.
    let pg = db.open().await;
    let report = executus_store::copy(&sqlite, &pg).await.unwrap();
    assert_eq!(
        (report.runs, report.personas, report.skills, report.skill_versions, report.audit_records),
        (4, 1, 1, 2, 3)
    );
    assert_eq!((report.spend_rows, report.jobs, report.watermarks), (2, 1, 1));
    assert_eq!((report.conversations, report.chat_messages), (1, 2));
    let texts: Vec<String> = pg.chats().load(&chat).await.unwrap().iter().map(Message::text).collect();
    assert_eq!(texts, ["hi", "hello"]);
    assert_eq!((report.sessions, report.review_cells), (3, 3));
    assert_eq!(
        (
            report.fleet_activity,
            report.fleet_samples,
            report.fleet_buckets,
            report.fleet_model_states,
            report.fleet_bench_runs,
            report.fleet_actions
        ),
        (3, 4, extras.buckets as u64, 3, 2, 2)
    );
    assert_eq!(read_extras(&pg).await, read_extras(&sqlite).await, "everything reads back equal");
    let finalize =
        pg.gateway_sessions().unwrap().load("ada\u{1f}fp:1").await.unwrap().unwrap().finalize_total;
    assert_eq!(finalize, 4, "a session's finalize count survives the move");
    let again = executus_store::copy(&sqlite, &pg).await.unwrap_err();
    assert!(again.to_string().contains("not empty"), "{again}");
    assert_eq!(pg.personas().get("helper").await.unwrap().unwrap().model, "mock/m");
    let active = pg.skills().active("grep").await.unwrap().unwrap();
    assert_eq!((active.skill.state, active.version.version), (executus_skill::SkillState::Active, 2));
    assert_eq!(pg.audit().query(&executus_audit::AuditQuery::new()).await.unwrap().records.len(), 3);
    assert_eq!(
        pg.budget().spent("tenant:acme", 0, 2_000).await.unwrap().spent,
        executus_budget::Money::usd(0.5)
    );
    assert_eq!(pg.schedule().watermark("nightly").await.unwrap(), Some(fire));
    for (meta, _) in &interrupted {
        let a = sqlite.checkpoints().load(meta.run_id).await.unwrap().unwrap();
        let b = pg.checkpoints().load(meta.run_id).await.unwrap().unwrap();
        assert_eq!(a, b, "run {} copied byte for byte", meta.run_id);
    }

    // A worker on PostgreSQL finishes them: no lease, so they are orphans at once.
    let worker = Proc::start(&db.url, &mock.url, &worker_args(10_000, &[])).await;
    let queue = pg.as_postgres().unwrap().queue();
    all_ended(&queue, &runs).await;
    {
        let state = mock.state();
        assert!(state.violations.is_empty(), "{:?}", state.violations);
        for run in &runs {
            let key = run.to_string();
            let transcript = &state.transcripts[&key];
            assert_eq!(transcript.len(), 5, "{transcript:?}");
            for (call, content) in transcript {
                let effects = state.effects.get(&(key.clone(), call.clone())).copied().unwrap_or(0);
                if content.starts_with("effect ") {
                    assert_eq!(effects, 1, "run {run} call {call} ran {effects} times");
                } else {
                    assert!(effects <= 1 && content.contains("interrupted"), "{content}");
                }
            }
        }
    }
    for run in &runs {
        assert_eq!(queue.entry(*run).await.unwrap().unwrap().status.as_deref(), Some("completed"));
    }
    let (status, _) = worker.sigterm().await;
    assert!(status.success());
}

/// What [`put_extras`] wrote that the test needs.
struct Extras {
    buckets: usize,
}

/// The gateway's sessions, the swarm's review cache and the fleet's history, written into
/// `store` through their own stores.
async fn put_extras(store: &Store) -> Extras {
    use executus_fleet::store::{ActionRecord, ActivityRecord, ModelStateRecord, PerfSample, rollup};
    use executus_gateway::guard::SessionState;
    use executus_store::ReviewCacheKey;
    let t = |s: i64| chrono::DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();

    let sessions = store.gateway_sessions().unwrap();
    let settings =
        executus_gateway::LoopSettings { limits: executus::LoopLimits::default(), finalize_hard_cap: 6 };
    let mut state = SessionState::new();
    state.prepare(&[Message::user("loop please"), Message::assistant("again")], &settings);
    for _ in 0..4 {
        state.count_continuation();
    }
    sessions.save("ada\u{1f}fp:1", &state, 1_000).await.unwrap();
    sessions.save("bob\u{1f}fp:2", &SessionState::new(), 2_000).await.unwrap();
    sessions.save("cy\u{1f}fp:3", &SessionState::new(), 3_000).await.unwrap();

    let cache = store.review_cache();
    for (i, lens) in ["bugs", "security", "style"].into_iter().enumerate() {
        let key = ReviewCacheKey {
            model: "mock/m".into(),
            lens: lens.into(),
            prompt_version: "v1".into(),
            content_hash: format!("h{i}"),
        };
        cache.put(&key, &format!("{{\"findings\":[{i}]}}")).await.unwrap();
    }

    let fleet = store.fleet().unwrap();
    let mut row = ActivityRecord::new("gpu1", 7, t(1), "qwen");
    row.output_tokens = 64;
    row.gen_tps = 42.5;
    row.error = Some("boom".into());
    fleet
        .insert_activity(&[
            row,
            ActivityRecord::new("gpu1", 8, t(2), "qwen"),
            ActivityRecord::new("gpu2", 1, t(3), "llama"),
        ])
        .await
        .unwrap();
    let samples: Vec<PerfSample> = (0..4)
        .map(|i| {
            let mut p = PerfSample::empty("gpu1", t(i * 30));
            p.cpu_pct = Some(i as f64);
            p.gpu_temp_c = Some(60.0 + i as f64);
            p
        })
        .collect();
    fleet.insert_perf(&samples).await.unwrap();
    // Buckets of another host whose raw samples were already rolled up and deleted.
    let buckets = rollup(&[PerfSample::empty("gpu3", t(0)), PerfSample::empty("gpu3", t(400))]);
    fleet.upsert_buckets(&buckets).await.unwrap();
    fleet
        .record_model_states(&[
            ModelStateRecord::new("gpu1", "qwen", executus_fleet::wire::ModelState::Starting, t(1)),
            ModelStateRecord::new("gpu1", "qwen", executus_fleet::wire::ModelState::Ready, t(2)),
            ModelStateRecord::new("gpu2", "llama", executus_fleet::wire::ModelState::Stopped, t(3)),
        ])
        .await
        .unwrap();
    for (id, at) in [("b1", 1), ("b2", 2)] {
        let run = executus_fleet::bench::BenchRun {
            id: id.into(),
            host: "gpu1".into(),
            model: "qwen".into(),
            started: t(at),
            finished: t(at + 10),
            grid: executus_fleet::bench::BenchGrid::default(),
            cells: Vec::new(),
            aborted: (at == 2).then(|| "lease lost".into()),
        };
        fleet.save_run(&run).await.unwrap();
    }
    for (id, outcome) in [("a1", "done"), ("a2", "refused")] {
        let action = ActionRecord {
            id: id.into(),
            at: t(5),
            host: "gpu1".into(),
            action: "load".into(),
            model: Some("qwen".into()),
            actor: "cli".into(),
            outcome: outcome.into(),
            detail: String::new(),
        };
        fleet.record_action(&action).await.unwrap();
    }
    Extras { buckets: buckets.len() }
}

/// Everything [`put_extras`] wrote, read back through the stores (as comparable text).
async fn read_extras(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for s in store.gateway_sessions().unwrap().list(None, 100).await.unwrap() {
        out.push(format!("session {:?} {} {}", s.key, s.saved_ms, serde_json::to_string(&s.state).unwrap()));
    }
    for e in store.review_cache().entries(None, 100).await.unwrap() {
        out.push(format!("cell {e:?}"));
    }
    let fleet = store.fleet().unwrap();
    let (start, end) = (
        chrono::DateTime::from_timestamp(0, 0).unwrap(),
        chrono::DateTime::from_timestamp(4_000_000_000, 0).unwrap(),
    );
    let hosts = fleet.history_hosts().await.unwrap();
    assert_eq!(hosts, ["gpu1", "gpu2", "gpu3"]);
    for host in &hosts {
        out.push(format!("activity {:?}", fleet.recent_activity(Some(host), 100).await.unwrap()));
        out.push(format!("perf {:?}", fleet.raw_perf(host, start, end).await.unwrap()));
        out.push(format!("buckets {:?}", fleet.buckets(host, start, end).await.unwrap()));
        out.push(format!("states {:?}", fleet.model_state_history(host).await.unwrap()));
    }
    out.push(format!("bench {:?}", fleet.runs(None, None, 100).await.unwrap()));
    out.push(format!("actions {:?}", fleet.actions(None, 100).await.unwrap()));
    out
}
