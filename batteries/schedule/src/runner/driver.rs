//! The runner's loop: per-job state (cursor, runs in flight, a queued fire), what is due,
//! overlap policies, submission, watermarks. See the parent module for the guarantees.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use executus::{RunHandle, RunId, RunRequest, RunSubmitter, RuntimeError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Inner;
use super::events::{ScheduleEvent, SkipReason};
use super::plan::{Due, due};
use crate::job::{CatchUp, Job, Overlap};

/// Longest sleep between two looks at the wall clock (catches clock jumps).
const MAX_SLEEP: Duration = Duration::from_secs(60);
/// Shortest sleep (a due time already reached is handled on the next pass).
const MIN_SLEEP: Duration = Duration::from_millis(1);
/// Wait before retrying a job whose watermark could not be read.
const STORE_RETRY: TimeDelta = TimeDelta::seconds(30);

/// One fire to submit.
#[derive(Debug, Clone, Copy)]
struct Fire {
    fire: DateTime<Utc>,
    catch_up_from: Option<DateTime<Utc>>,
}

/// A run of a job ended.
struct Done {
    job: String,
    run_id: RunId,
    status: executus::RunStatus,
}

struct JobState {
    job: Arc<Job>,
    /// The last fire handled in this process (`None` until the watermark is loaded).
    cursor: Option<DateTime<Utc>>,
    /// When to retry loading the watermark.
    retry_at: Option<DateTime<Utc>>,
    active: HashSet<RunId>,
    pending: Option<Fire>,
}

impl JobState {
    fn new(job: Arc<Job>) -> Self {
        Self { job, cursor: None, retry_at: None, active: HashSet::new(), pending: None }
    }
}

/// Everything but the job states (so a state can be borrowed mutably beside it).
struct Ctx {
    inner: Arc<Inner>,
    runs: RunSubmitter,
    watchers: JoinSet<Done>,
}

pub(super) struct Driver {
    ctx: Ctx,
    states: BTreeMap<String, JobState>,
}

impl Driver {
    pub(super) fn new(inner: Arc<Inner>, runs: RunSubmitter) -> Self {
        Self { ctx: Ctx { inner, runs, watchers: JoinSet::new() }, states: BTreeMap::new() }
    }

    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        tracing::info!(jobs = self.ctx.inner.snapshot().len(), "schedule started");
        while !shutdown.is_cancelled() {
            let now = self.ctx.inner.now();
            self.sync(now).await;
            let mut wake: Option<DateTime<Utc>> = None;
            for state in self.states.values_mut() {
                if let Some(at) = self.ctx.process(state, now).await {
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
            let sleep = wake
                .map_or(MAX_SLEEP, |w| {
                    (w - crate::clock::utc_now(self.ctx.inner.clock.as_ref()))
                        .to_std()
                        .unwrap_or(Duration::ZERO)
                })
                .clamp(MIN_SLEEP, MAX_SLEEP);
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(done) = self.ctx.watchers.join_next(), if !self.ctx.watchers.is_empty() => match done {
                    Ok(done) => self.on_done(done).await,
                    // Watchers only await an outcome; they end early only when aborted.
                    Err(e) => tracing::warn!(error = %e, "schedule run watcher ended early"),
                },
                () = self.ctx.inner.changed.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
        let queued: Vec<&str> =
            self.states.values().filter(|s| s.pending.is_some()).map(|s| s.job.id()).collect();
        tracing::info!(
            ?queued,
            running = self.ctx.watchers.len(),
            "schedule stopped; submitted runs continue, queued fires are caught up at the next start"
        );
    }

    /// Follows job additions and removals; loads watermarks of new jobs.
    async fn sync(&mut self, now: DateTime<Utc>) {
        let jobs = self.ctx.inner.snapshot();
        self.states.retain(|id, state| jobs.get(id).is_some_and(|job| Arc::ptr_eq(job, &state.job)));
        for (id, job) in jobs {
            self.states.entry(id).or_insert_with(|| JobState::new(job));
        }
        for state in self.states.values_mut() {
            if state.cursor.is_some() || state.retry_at.is_some_and(|at| at > now) {
                continue;
            }
            match self.ctx.inner.store.init_watermark(state.job.id(), now).await {
                Ok(watermark) => {
                    state.cursor = Some(watermark);
                    state.retry_at = None;
                }
                Err(e) => {
                    tracing::error!(job = state.job.id(), error = %e, "cannot read the job's watermark; retrying");
                    state.retry_at = Some(now + STORE_RETRY);
                }
            }
        }
    }

    async fn on_done(&mut self, done: Done) {
        let now = self.ctx.inner.now();
        self.ctx.inner.emit(ScheduleEvent::RunEnded {
            job: done.job.clone(),
            run_id: done.run_id,
            status: done.status,
            at: now,
        });
        let Some(state) = self.states.get_mut(&done.job) else { return };
        state.active.remove(&done.run_id);
        if state.active.is_empty()
            && let Some(fire) = state.pending.take()
        {
            self.ctx.submit(state, fire, now).await;
        }
    }
}

impl Ctx {
    /// Handles everything due for one job; returns when it is next due.
    async fn process(&mut self, state: &mut JobState, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let inner = self.inner.clone();
        loop {
            let Some(cursor) = state.cursor else { return state.retry_at };
            match due(&state.job, cursor, now, inner.late_tolerance, inner.seed) {
                Due::Wait(at) => return at,
                Due::OnTime(fire) => {
                    state.cursor = Some(fire);
                    self.fire(state, Fire { fire, catch_up_from: None }, now).await;
                }
                Due::Missed { first, last } => {
                    state.cursor = Some(last);
                    match state.job.def().catch_up {
                        CatchUp::RunOnce => {
                            tracing::info!(job = state.job.id(), %first, %last, "running once for missed fires");
                            self.fire(state, Fire { fire: last, catch_up_from: Some(first) }, now).await;
                        }
                        CatchUp::Skip => {
                            tracing::info!(job = state.job.id(), %first, %last, "skipping missed fires");
                            self.advance(state.job.id(), last).await;
                            inner.emit(ScheduleEvent::Skipped {
                                job: state.job.id().to_owned(),
                                fire: last,
                                at: now,
                                reason: SkipReason::CatchUp { first },
                            });
                        }
                    }
                }
            }
        }
    }

    /// Applies the overlap policy to a due fire.
    async fn fire(&mut self, state: &mut JobState, fire: Fire, now: DateTime<Utc>) {
        let job = state.job.id().to_owned();
        match (state.active.is_empty(), state.job.def().overlap) {
            (true, _) | (false, Overlap::Allow) => self.submit(state, fire, now).await,
            (false, Overlap::Skip) => {
                tracing::info!(%job, fire = %fire.fire, "previous run still going; fire skipped");
                self.advance(&job, fire.fire).await;
                self.inner.emit(ScheduleEvent::Skipped {
                    job,
                    fire: fire.fire,
                    at: now,
                    reason: SkipReason::Overlap,
                });
            }
            (false, Overlap::Queue) => {
                if let Some(older) = state.pending.replace(fire) {
                    self.inner.emit(ScheduleEvent::Skipped {
                        job: job.clone(),
                        fire: older.fire,
                        at: now,
                        reason: SkipReason::Coalesced,
                    });
                }
                self.inner.emit(ScheduleEvent::Queued { job, fire: fire.fire, at: now });
            }
        }
    }

    /// Submits a run for `fire`, then moves the watermark (see the module docs for why
    /// in this order).
    async fn submit(&mut self, state: &mut JobState, fire: Fire, now: DateTime<Utc>) {
        let job = state.job.id().to_owned();
        if self.inner.shared {
            // Claim first: of the runners sharing the store, the one whose advance moved the
            // watermark submits the fire.
            match self.inner.store.advance(&job, fire.fire).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(%job, fire = %fire.fire, "fire claimed by another runner");
                    self.inner.emit(ScheduleEvent::Skipped {
                        job,
                        fire: fire.fire,
                        at: now,
                        reason: SkipReason::ClaimedElsewhere,
                    });
                    return;
                }
                Err(e) => {
                    tracing::error!(%job, fire = %fire.fire, error = %e, "cannot claim the fire; not submitted");
                    self.inner.emit(ScheduleEvent::Failed {
                        job,
                        fire: fire.fire,
                        at: now,
                        error: format!("claiming the fire: {e}"),
                    });
                    return;
                }
            }
        }
        match self.spawn(&state.job).await {
            Ok(handle) => {
                let run_id = handle.id();
                state.active.insert(run_id);
                let watched = job.clone();
                self.watchers.spawn(async move {
                    let outcome = handle.outcome().await;
                    Done { job: watched, run_id, status: outcome.status() }
                });
                tracing::info!(%job, fire = %fire.fire, %run_id, "scheduled run submitted");
                self.inner.emit(ScheduleEvent::Fired {
                    job: job.clone(),
                    fire: fire.fire,
                    at: now,
                    run_id,
                    catch_up_from: fire.catch_up_from,
                });
            }
            Err(e) => {
                tracing::error!(%job, fire = %fire.fire, error = %e, "scheduled run could not be submitted");
                self.inner.emit(ScheduleEvent::Failed {
                    job: job.clone(),
                    fire: fire.fire,
                    at: now,
                    error: e.to_string(),
                });
            }
        }
        if !self.inner.shared {
            self.advance(&job, fire.fire).await;
        }
    }

    async fn spawn(&self, job: &Job) -> Result<RunHandle, RuntimeError> {
        let def = job.def();
        let agent = self.runs.agent(&def.agent).await?;
        let mut request = RunRequest::new(agent, def.input.as_str()).identity(def.identity.clone()).deliver();
        if let Some(lane) = &def.lane {
            request = request.lane(lane.clone());
        }
        self.runs.submit(request).await
    }

    async fn advance(&self, job: &str, fire: DateTime<Utc>) {
        if let Err(e) = self.inner.store.advance(job, fire).await {
            // The in-memory cursor has moved, so this process does not fire it again; after
            // a restart the fire is caught up per the job's policy.
            tracing::error!(%job, %fire, error = %e, "cannot move the job's watermark");
        }
    }
}
