//! A runtime over the fake provider with a `reporter` agent, a channel delivery, and a
//! cron schedule on a tokio-following clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use executus::llm::Registry;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{ChannelDelivery, DeliveryItem, Ports};
use executus::{RunnableAgent, Runtime, RuntimeConfig};
use executus_schedule::{CronSchedule, MemoryScheduleStore, ScheduleEvent, ScheduleStore};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

/// A test bench: runtime, schedule, its store, events and deliveries.
pub struct Bench {
    pub fake: FakeProvider,
    pub runtime: Runtime,
    pub schedule: CronSchedule,
    pub store: Arc<MemoryScheduleStore>,
    pub events: broadcast::Receiver<ScheduleEvent>,
    pub delivered: mpsc::Receiver<DeliveryItem>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Bench {
    /// Every run of `reporter` takes `run_time` (tokio time) and answers "report".
    /// `store` may hold watermarks already (a previous process).
    pub fn new(base: DateTime<Utc>, run_time: Duration, store: Arc<MemoryScheduleStore>) -> Self {
        Self::build(base, run_time, store, false)
    }

    /// As [`Bench::new`], with a schedule built `shared` (several runners on one store).
    pub fn build(
        base: DateTime<Utc>,
        run_time: Duration,
        store: Arc<MemoryScheduleStore>,
        shared: bool,
    ) -> Self {
        let fake = FakeProvider::new("fake");
        fake.fallback_for("m", Outcome::delay(run_time, Outcome::text("report")));
        let registry = Registry::new();
        registry.add_provider(Arc::new(fake.clone())).unwrap();
        let schedule = CronSchedule::builder()
            .store(store.clone())
            .clock(Arc::new(executus::llm::TokioClock::starting_at(base.timestamp_millis() as u64)))
            .jitter_seed(42)
            .shared(shared)
            .build();
        let (tx, delivered) = mpsc::channel(1000);
        let ports = Ports {
            schedule: Arc::new(schedule.clone()),
            delivery: Arc::new(ChannelDelivery(tx)),
            ..Ports::default()
        };
        let mut config = RuntimeConfig { streaming: false, ..RuntimeConfig::default() };
        config.agents.insert("reporter".into(), RunnableAgent::new("reporter", "You report.", "fake/m"));
        config.lanes.insert("scheduled".into(), Default::default());
        let runtime = Runtime::builder().registry(registry).ports(ports).config(config).build();
        let events = schedule.subscribe();
        Self {
            fake,
            runtime,
            schedule,
            store,
            events,
            delivered,
            shutdown: CancellationToken::new(),
            task: None,
        }
    }

    /// Starts `Runtime::run_schedule` in a task.
    pub fn start(&mut self) {
        let runtime = self.runtime.clone();
        let shutdown = self.shutdown.clone();
        self.task = Some(tokio::spawn(async move { runtime.run_schedule(shutdown).await }));
    }

    /// Cancels the schedule and waits for `run` to return; returns how long that took.
    pub async fn stop(&mut self) -> Duration {
        let started = tokio::time::Instant::now();
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        started.elapsed()
    }

    /// Every event so far.
    pub fn drain(&mut self) -> Vec<ScheduleEvent> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Every delivered item so far.
    pub fn deliveries(&mut self) -> Vec<DeliveryItem> {
        let mut out = Vec::new();
        while let Ok(d) = self.delivered.try_recv() {
            out.push(d);
        }
        out
    }

    pub async fn watermark(&self, job: &str) -> Option<DateTime<Utc>> {
        self.store.watermark(job).await.unwrap()
    }
}

/// `(fire, at)` of every `Fired` event.
pub fn fired(events: &[ScheduleEvent]) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    events
        .iter()
        .filter_map(|e| match e {
            ScheduleEvent::Fired { fire, at, .. } => Some((*fire, *at)),
            _ => None,
        })
        .collect()
}

/// Sleeps (paused tokio time) for `secs` seconds.
pub async fn wait(secs: u64) {
    tokio::time::sleep(Duration::from_secs(secs)).await;
}
