//! Ingestion: activity rows fetched by watermark, perf samples polled by watermark, both
//! stored and turned into facts.
//!
//! # Guarantees
//! - **Each row once.** Activity is fetched with `min_id = watermark + 1` after every
//!   `activity` ping and after every reconnect; rows already stored are not stored or
//!   reported again (the store de-duplicates on host, id and time), so an overlap is harmless
//!   and a row written while the stream was down is fetched on reconnect.
//! - **Restart-safe watermarks.** Both watermarks start from the store (largest stored row
//!   id, newest stored sample), so a restarted process neither re-reads everything nor skips.
//! - **A host whose ids restarted** (its activity database was reset) is noticed on
//!   reconnect — its newest id is below the watermark — and read again from its first row.
//! - **Pings coalesce.** A burst of pings while a fetch runs causes one more fetch, not one
//!   per ping.
//!
//! # What it does not do
//! Hosts older than v236 have no activity API (404): their rows arrive whole in `metrics`
//! events instead (see the connector), and this task stops asking.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::client::{HostClient, Perf};
use crate::clock::Sleeper;
use crate::error::FleetError;
use crate::state::{ActivityView, Fact, PerfView, StateHandle};
use crate::store::{ActivityRecord, FleetStore, PerfSample};

/// Why to fetch activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// The host announced a new row.
    Ping,
    /// A new events stream opened (rows may have been missed).
    Reconnected,
}

/// The view of a stored row.
pub(crate) fn view_of(r: &ActivityRecord) -> ActivityView {
    ActivityView {
        id: r.remote_id,
        ts: r.ts,
        model: r.model.clone(),
        path: r.req_path.clone(),
        status: r.status,
        output_tokens: r.output_tokens,
        gen_tps: r.gen_tps,
        duration_ms: r.duration_ms,
    }
}

/// Stores `records`; the ones that were new become an `Activity` fact. Returns how many
/// were new.
pub(crate) async fn store_activity(
    store: &Arc<dyn FleetStore>,
    state: &StateHandle,
    host: &str,
    mut records: Vec<ActivityRecord>,
) -> u64 {
    if records.is_empty() {
        return 0;
    }
    records.sort_by_key(|r| (r.remote_id, r.ts));
    // Which are new: ask the store per row would be N round trips; instead insert one by one
    // is what tells us. Rows come in pages of at most a few hundred.
    let mut fresh = Vec::new();
    for r in records {
        match store.insert_activity(std::slice::from_ref(&r)).await {
            Ok(1) => fresh.push(view_of(&r)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "fleet: cannot store activity");
                break;
            }
        }
    }
    let n = fresh.len() as u64;
    if !fresh.is_empty() {
        state.apply(Fact::Activity { host: host.to_owned(), rows: fresh });
    }
    n
}

/// The activity task of one host.
pub(crate) struct ActivityIngest {
    pub client: HostClient,
    pub store: Arc<dyn FleetStore>,
    pub state: StateHandle,
}

impl ActivityIngest {
    /// Runs until the signal channel closes.
    pub async fn run(self, mut signals: mpsc::UnboundedReceiver<Signal>) {
        let host = self.client.name().to_owned();
        let mut watermark = match self.store.activity_watermark(&host).await {
            Ok(w) => w.unwrap_or(0),
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "fleet: cannot read the activity watermark");
                0
            }
        };
        let mut legacy = false;
        while let Some(first) = signals.recv().await {
            // Coalesce whatever else is pending.
            let mut reconnected = first == Signal::Reconnected;
            while let Ok(more) = signals.try_recv() {
                reconnected |= more == Signal::Reconnected;
            }
            if legacy {
                continue;
            }
            match self.fetch(&host, watermark, reconnected).await {
                Ok(w) => watermark = w,
                Err(FleetError::Host { status: 404, .. }) => {
                    tracing::info!(host = %host, "fleet: host has no activity API (before v236); using its metrics events");
                    legacy = true;
                }
                Err(e) => tracing::warn!(host = %host, error = %e, "fleet: activity fetch failed"),
            }
        }
    }

    /// Fetches every row after `watermark`; returns the new watermark.
    async fn fetch(&self, host: &str, mut watermark: u64, reconnected: bool) -> Result<u64, FleetError> {
        if reconnected && watermark > 0 {
            match self.client.newest_activity_id().await? {
                Some(newest) if newest < watermark => {
                    tracing::warn!(host = %host, newest, watermark, "fleet: host activity ids restarted; reading from its first row");
                    watermark = 0;
                }
                None => watermark = 0,
                Some(_) => {}
            }
        }
        let mut page = 1;
        let mut rows = Vec::new();
        loop {
            let p = self.client.activity(watermark + 1, page).await?;
            let last_page = p.data.is_empty() || page >= p.total_pages;
            rows.extend(p.data.into_iter().filter(|r| r.id > watermark));
            if last_page || page >= 10_000 {
                break;
            }
            page += 1;
        }
        let newest = rows.iter().map(|r| r.id).max().unwrap_or(watermark);
        let records: Vec<ActivityRecord> = rows.iter().map(|r| ActivityRecord::from_row(host, r)).collect();
        store_activity(&self.store, &self.state, host, records).await;
        Ok(newest.max(watermark))
    }
}

/// The perf poller of one host.
pub(crate) struct PerfPoll {
    pub client: HostClient,
    pub store: Arc<dyn FleetStore>,
    pub state: StateHandle,
    pub sleeper: Arc<dyn Sleeper>,
    pub every: Duration,
}

impl PerfPoll {
    /// Polls until the task is aborted.
    pub async fn run(self) {
        let host = self.client.name().to_owned();
        let mut after: Option<DateTime<Utc>> = match self.store.perf_watermark(&host).await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(host = %host, error = %e, "fleet: cannot read the perf watermark");
                None
            }
        };
        loop {
            let mut wait = self.every;
            match self.poll_once(&host, after).await {
                Ok(Some(w)) => after = Some(w),
                Ok(None) => {}
                Err(PollError::Disabled) => wait = self.every * 12,
                Err(PollError::Fleet(e)) => {
                    tracing::debug!(host = %host, error = %e, "fleet: perf poll failed")
                }
            }
            self.sleeper.sleep(wait).await;
        }
    }

    async fn poll_once(
        &self,
        host: &str,
        after: Option<DateTime<Utc>>,
    ) -> Result<Option<DateTime<Utc>>, PollError> {
        let report = match self.client.performance(after).await.map_err(PollError::Fleet)? {
            Perf::Report(r) => r,
            Perf::Disabled => return Err(PollError::Disabled),
        };
        let samples: Vec<PerfSample> = PerfSample::from_report(host, &report.sys_stats, &report.gpu_stats)
            .into_iter()
            .filter(|s| after.is_none_or(|a| s.ts > a))
            .collect();
        let Some(latest) = samples.last().cloned() else { return Ok(None) };
        self.store.insert_perf(&samples).await.map_err(|e| PollError::Fleet(e.into()))?;
        self.state.apply(Fact::Perf {
            host: host.to_owned(),
            perf: PerfView {
                ts: latest.ts,
                cpu_pct: latest.cpu_pct,
                gpu_util_pct: latest.gpu_util_pct,
                vram_used_mb: latest.vram_used_mb,
                gpu_temp_c: latest.gpu_temp_c,
            },
        });
        Ok(Some(latest.ts))
    }
}

enum PollError {
    Disabled,
    Fleet(FleetError),
}
