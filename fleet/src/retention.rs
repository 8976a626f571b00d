//! Retention: raw perf samples rolled into 5-minute buckets, then deleted; old buckets and
//! old activity rows pruned. Windows come from [`Retention`].
//!
//! # Guarantees
//! - **Raw samples are deleted only after their buckets are committed.** Work goes one
//!   host-hour at a time: the hour's buckets are computed from all of its raw samples and
//!   upserted (one transaction), and only then are that hour's raw samples deleted. A crash
//!   between the two leaves raw samples whose buckets exist; the next run recomputes the
//!   same buckets from them (the upsert is idempotent) and deletes them.
//! - **Bounded chunks.** One hour of one host per rollup step; prunes delete at most
//!   `chunk_rows` rows per statement and loop, never one huge transaction.
//! - **Idempotent.** Running twice over the same data leaves the same buckets.
//!
//! # What it does not do
//! A raw sample arriving for an hour already rolled up (a host whose clock jumped back)
//! replaces that bucket with one computed from the late samples only.

use std::sync::Arc;

use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};

use crate::config::Retention;
use crate::store::{FleetStore, StoreResult, rollup};

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Host-hours rolled up.
    pub hours_rolled: u64,
    /// Buckets written.
    pub buckets_written: u64,
    /// Raw samples deleted.
    pub raw_deleted: u64,
    /// Buckets deleted.
    pub buckets_deleted: u64,
    /// Activity rows deleted.
    pub activity_deleted: u64,
}

fn window(d: std::time::Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// Runs one retention pass as of `now`.
///
/// # Errors
/// The first store error (work done before it stays done).
pub async fn run_once(
    store: &Arc<dyn FleetStore>,
    policy: &Retention,
    now: DateTime<Utc>,
) -> StoreResult<RetentionReport> {
    let mut report = RetentionReport::default();
    let raw_cutoff = now.checked_sub_signed(window(policy.perf_raw)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    let hour = ChronoDuration::hours(1);
    for host in store.perf_hosts().await? {
        // Hours wholly before the cutoff, oldest first.
        while let Some(oldest) = store.oldest_raw_perf(&host).await? {
            let start = oldest.duration_trunc(hour).unwrap_or(oldest);
            let end = start + hour;
            if end > raw_cutoff {
                break;
            }
            let samples = store.raw_perf(&host, start, end).await?;
            let buckets = rollup(&samples);
            store.upsert_buckets(&buckets).await?;
            report.buckets_written += buckets.len() as u64;
            report.raw_deleted += store.delete_raw_perf(&host, start, end).await?;
            report.hours_rolled += 1;
        }
    }
    let bucket_cutoff =
        now.checked_sub_signed(window(policy.perf_buckets)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    loop {
        let n = store.prune_buckets(bucket_cutoff, policy.chunk_rows).await?;
        report.buckets_deleted += n;
        if n < u64::from(policy.chunk_rows) {
            break;
        }
    }
    let activity_cutoff = now.checked_sub_signed(window(policy.activity)).unwrap_or(DateTime::<Utc>::MIN_UTC);
    loop {
        let n = store.prune_activity(activity_cutoff, policy.chunk_rows).await?;
        report.activity_deleted += n;
        if n < u64::from(policy.chunk_rows) {
            break;
        }
    }
    Ok(report)
}
