//! [`CronSchedule`]: the cron runner, implementing the core's
//! [`Schedule`](executus::ports::Schedule) port. The guarantees (watermarks, crashes,
//! missed fires, shutdown) are documented on [`CronSchedule`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use executus::RunSubmitter;
use executus::ports::Schedule;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use executus::llm::{Clock, SystemClock};

use crate::clock::utc_now;
use crate::error::ScheduleError;
use crate::job::{Job, JobDef};
use crate::store::{MemoryScheduleStore, ScheduleStore};

mod driver;
mod events;
mod plan;

pub use events::{ScheduleEvent, SkipReason};

/// Capacity of the event channel; a subscriber further behind is told how many it missed.
pub const EVENT_CAPACITY: usize = 1024;

/// Default late tolerance.
pub const DEFAULT_LATE_TOLERANCE: Duration = Duration::from_secs(60);

/// Builds a [`CronSchedule`].
pub struct CronScheduleBuilder {
    store: Arc<dyn ScheduleStore>,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    late_tolerance: Duration,
    shared: bool,
}

impl Default for CronScheduleBuilder {
    fn default() -> Self {
        Self {
            store: Arc::new(MemoryScheduleStore::new()),
            clock: Arc::new(SystemClock),
            seed: None,
            late_tolerance: DEFAULT_LATE_TOLERANCE,
            shared: false,
        }
    }
}

impl std::fmt::Debug for CronScheduleBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronScheduleBuilder")
            .field("clock", &self.clock)
            .field("seed", &self.seed)
            .field("late_tolerance", &self.late_tolerance)
            .finish_non_exhaustive()
    }
}

impl CronScheduleBuilder {
    /// Keeps watermarks and job definitions in `store` (default: in memory).
    #[must_use]
    pub fn store(mut self, store: Arc<dyn ScheduleStore>) -> Self {
        self.store = store;
        self
    }

    /// Reads the calendar from `clock` (default: the system clock).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Seeds the jitter (default: random per process). With a fixed seed every fire's
    /// delay is reproducible (see [`Job::jitter_for`]).
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// How late a single fire may be handled and still count as on time (default 60 s);
    /// later, it is missed and its catch-up policy applies.
    #[must_use]
    pub fn late_tolerance(mut self, tolerance: Duration) -> Self {
        self.late_tolerance = tolerance;
        self
    }

    /// Several runners (processes, machines) run the same jobs on one shared store, and each
    /// fire must run once across all of them (default false: one runner per store). A shared
    /// runner claims a fire before it submits it — [`ScheduleStore::advance`] to that fire, an
    /// atomic conditional update of which exactly one concurrent caller is told it moved the
    /// watermark — and submits it only if it won; the others report
    /// [`SkipReason::ClaimedElsewhere`]. The order flips from "submit, then advance" to
    /// "claim, then submit": a runner that dies between its claim and its submission loses
    /// that one fire (at most once) instead of running it twice. Overlap policies see only
    /// this runner's own runs.
    #[must_use]
    pub fn shared(mut self, shared: bool) -> Self {
        self.shared = shared;
        self
    }

    /// Builds the schedule (no jobs yet).
    pub fn build(self) -> CronSchedule {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        CronSchedule {
            inner: Arc::new(Inner {
                store: self.store,
                clock: self.clock,
                seed: self.seed.unwrap_or_else(|| fastrand::u64(..)),
                late_tolerance: self.late_tolerance,
                shared: self.shared,
                jobs: RwLock::new(BTreeMap::new()),
                changed: Notify::new(),
                events,
                running: AtomicBool::new(false),
            }),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Arc<dyn ScheduleStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) seed: u64,
    pub(crate) late_tolerance: Duration,
    pub(crate) shared: bool,
    jobs: RwLock<BTreeMap<String, Arc<Job>>>,
    pub(crate) changed: Notify,
    pub(crate) events: broadcast::Sender<ScheduleEvent>,
    running: AtomicBool,
}

impl Inner {
    fn jobs(&self) -> RwLockReadGuard<'_, BTreeMap<String, Arc<Job>>> {
        // Held only for map operations; never across an await.
        self.jobs.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn jobs_mut(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Arc<Job>>> {
        self.jobs.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<String, Arc<Job>> {
        self.jobs().clone()
    }

    pub(crate) fn emit(&self, event: ScheduleEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    /// Now, truncated to whole milliseconds (what stores keep exactly).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        utc_now(self.clock.as_ref()).trunc_subsecs(3)
    }
}

/// The cron runner, implementing the core's [`Schedule`](executus::ports::Schedule) port.
/// Cheap to clone (clones share jobs and state).
///
/// `run(runs, shutdown)` loops: it computes each job's next due time, sleeps (tokio
/// time) until the earliest one, a run ending, a job change or shutdown, then submits what
/// is due with `RunSubmitter::submit(RunRequest { .. }.deliver())` — so each run goes through
/// its lane and its outcome through the `Delivery` port.
///
/// ## Watermarks and crashes
/// Each job's watermark (in the [`ScheduleStore`]) is the last fire the runner handled.
/// It is written **after** the fire is handled: after `spawn_with` admitted the run into a
/// lane (or refused it, which counts as handled and is reported as
/// [`ScheduleEvent::Failed`]), after an overlap skip, or after a catch-up skip. A queued
/// fire (overlap `queue`) moves the watermark only when it is finally submitted. So:
/// - a crash between admission and the watermark write makes that one fire count as
///   missed at the next start, where the catch-up policy applies: with `run_once` it runs
///   again — at most one duplicate per job per crash; with `skip` it does not;
/// - a fire is never lost silently: it was submitted, or reported skipped or failed, or it
///   is still after the watermark and handled by catch-up at the next start.
///
/// The watermark only moves forward ([`ScheduleStore::advance`] is monotonic). A job seen
/// for the first time gets the current time as its watermark (no catch-up for a new job).
///
/// ## Missed fires
/// At start-up — and whenever the runner finds it fell behind (a suspended machine, a
/// stalled store) — fires after the watermark that are more than one, or later than
/// `late_tolerance` past their (jittered) time, are *missed*: `run_once` submits one run now
/// for all of them (its [`ScheduleEvent::Fired::catch_up_from`] names the first missed
/// fire); `skip` submits none and moves the watermark to the latest missed fire.
///
/// ## Shutdown
/// When `shutdown` fires while the loop waits (which is nearly always) `run` returns at
/// once; while it is handling due fires, it finishes those first. Runs already submitted
/// keep going (they belong to the runtime: `Runtime::shutdown` drains or checkpoints them).
/// A queued fire that was never submitted is dropped and, being after the watermark, is
/// caught up at the next start. One runner per store — two processes running the same jobs
/// on one store would both fire them — unless the schedule is built
/// [`shared`](CronScheduleBuilder::shared), which claims each fire before submitting it.
#[derive(Clone)]
pub struct CronSchedule {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CronSchedule")
            .field("jobs", &self.inner.jobs().keys().collect::<Vec<_>>())
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

/// What [`CronSchedule::load_jobs`] did.
#[derive(Debug, Default)]
pub struct LoadedJobs {
    /// Ids of the jobs registered.
    pub loaded: Vec<String>,
    /// Stored definitions that were refused (each error names its job).
    pub rejected: Vec<ScheduleError>,
}

impl CronSchedule {
    /// A builder (in-memory store, system clock).
    pub fn builder() -> CronScheduleBuilder {
        CronScheduleBuilder::default()
    }

    /// Validates, registers and stores a job; initialises its watermark to now if it has
    /// none (an existing watermark is kept, so its missed fires are caught up).
    ///
    /// # Errors
    /// Any validation error of [`Job::new`] and [`Job::check_fires`] (each naming the job
    /// and the bad value), [`ScheduleError::DuplicateJob`], or [`ScheduleError::Store`].
    pub async fn add_job(&self, def: JobDef) -> Result<(), ScheduleError> {
        let job = Job::new(def)?;
        let now = self.inner.now();
        job.check_fires(now)?;
        let job = Arc::new(job);
        let id = job.id().to_owned();
        {
            let mut jobs = self.inner.jobs_mut();
            if jobs.contains_key(&id) {
                return Err(ScheduleError::DuplicateJob { job: id });
            }
            jobs.insert(id.clone(), job.clone());
        }
        let stored = async {
            self.inner.store.put_job(job.def()).await?;
            self.inner.store.init_watermark(&id, now).await
        }
        .await;
        if let Err(e) = stored {
            self.inner.jobs_mut().remove(&id);
            return Err(e.into());
        }
        self.inner.changed.notify_one();
        Ok(())
    }

    /// Unregisters a job and deletes its definition and watermark. Its running runs go on.
    ///
    /// # Errors
    /// [`ScheduleError::Store`] if the store fails (the job is unregistered anyway).
    pub async fn remove_job(&self, id: &str) -> Result<bool, ScheduleError> {
        let registered = self.inner.jobs_mut().remove(id).is_some();
        self.inner.changed.notify_one();
        let stored = self.inner.store.delete_job(id).await?;
        Ok(registered || stored)
    }

    /// Registers the job definitions kept in the store that are not registered yet.
    ///
    /// # Errors
    /// [`ScheduleError::Store`] if the store cannot list them; invalid definitions are
    /// reported in [`LoadedJobs::rejected`], not as an error.
    pub async fn load_jobs(&self) -> Result<LoadedJobs, ScheduleError> {
        let mut report = LoadedJobs::default();
        let now = self.inner.now();
        for def in self.inner.store.jobs().await? {
            if self.inner.jobs().contains_key(&def.id) {
                continue;
            }
            let job = Job::new(def).and_then(|job| job.check_fires(now).map(|()| job));
            match job {
                Ok(job) => {
                    let id = job.id().to_owned();
                    self.inner.jobs_mut().entry(id.clone()).or_insert_with(|| Arc::new(job));
                    report.loaded.push(id);
                }
                Err(e) => {
                    tracing::error!(error = %e, "stored schedule job refused");
                    report.rejected.push(e);
                }
            }
        }
        self.inner.changed.notify_one();
        Ok(report)
    }

    /// The registered jobs' definitions, ordered by id.
    pub fn jobs(&self) -> Vec<JobDef> {
        self.inner.jobs().values().map(|j| j.def().clone()).collect()
    }

    /// A registered job.
    pub fn job(&self, id: &str) -> Option<Arc<Job>> {
        self.inner.jobs().get(id).cloned()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ScheduleStore> {
        &self.inner.store
    }

    /// Subscribes to what the runner does from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ScheduleEvent> {
        self.inner.events.subscribe()
    }
}

/// Resets the "running" flag when a `run` call ends.
struct Running<'a>(&'a AtomicBool);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[async_trait]
impl Schedule for CronSchedule {
    /// Runs the schedule until `shutdown` fires. A second concurrent call on the same
    /// schedule (or a clone) returns at once with an error log: one loop per schedule, so
    /// no fire is submitted twice.
    async fn run(&self, runs: RunSubmitter, shutdown: CancellationToken) {
        if self.inner.running.swap(true, Ordering::SeqCst) {
            tracing::error!("this schedule is already running; the second run() returns at once");
            return;
        }
        let _running = Running(&self.inner.running);
        driver::Driver::new(self.inner.clone(), runs).run(shutdown).await;
    }
}
