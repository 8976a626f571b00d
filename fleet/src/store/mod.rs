//! The fleet's durable history, behind four traits with an in-memory default
//! ([`MemoryFleetStore`]) and a conformance suite (feature `conformance`) that every backend
//! passes; executus-store implements them on SQLite.
//!
//! | trait | what it keeps |
//! | --- | --- |
//! | [`HistoryStore`] | activity rows (deduplicated on host, row id and time), perf samples (on host and time) and their 5-minute buckets, model state changes |
//! | [`BenchStore`] | bench runs with their cells |
//! | [`ActionLog`] | the audit of every action (load, unload, unload-all, takeover) |
//! | [`LeaseStore`] | host leases (one holder per host, expiring) |
//!
//! [`FleetStore`] is all four; `Arc<dyn FleetStore>` is what the fleet holds.
//!
//! Guarantees every backend gives (the conformance suite checks them):
//! - inserting a row seen before changes nothing and is not counted: ingestion may re-fetch
//!   freely (gap recovery re-reads an overlap);
//! - watermarks (`activity_watermark`, `perf_watermark`) are the largest stored id / time per
//!   host, so a restarted process resumes where the stored history ends;
//! - `upsert_buckets` replaces a bucket with the same key: re-running a rollup over the same
//!   raw samples gives identical buckets;
//! - deletions and prunes take a row cap, so retention works in bounded chunks;
//! - a lease is held by at most one holder at a time, also under concurrent acquirers;
//!   lease times are the caller's (each process passes its own clock's time);
//! - everything stored can be read back (`history_hosts`, then per host activity, raw samples,
//!   buckets and `model_state_history`; bench runs and actions without a filter): what a
//!   store copy moves.
//!
//! Times are kept to the microsecond (records built by this crate are already truncated).
//!
//! What the stores do not do: no retention policy of their own (see [`crate::retention`]),
//! and no secret ever reaches them (hosts' keys are not part of any record).

mod memory;
mod types;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use self::memory::MemoryFleetStore;
pub use self::types::{
    ActionRecord, ActivityRecord, BUCKET_SECS, LeaseRecord, ModelStateRecord, PerfBucket, PerfSample,
    bucket_start, rollup, to_micros,
};
use crate::bench::BenchRun;

/// An error of a fleet store backend.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FleetStoreError {
    /// The backend failed the operation.
    #[error("fleet store ({backend}): {op} failed: {message}")]
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What was being done.
        op: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A stored row could not be decoded.
    #[error("fleet store ({backend}): undecodable {what}: {message}")]
    Corrupt {
        /// Which backend.
        backend: &'static str,
        /// What was being read.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, FleetStoreError>;

/// Activity rows, perf samples and buckets, model state changes.
#[async_trait]
pub trait HistoryStore: Send + Sync + fmt::Debug {
    /// Stores rows not seen before (key: host, remote id, timestamp); returns how many were new.
    async fn insert_activity(&self, rows: &[ActivityRecord]) -> StoreResult<u64>;
    /// The largest remote row id stored for `host`.
    async fn activity_watermark(&self, host: &str) -> StoreResult<Option<u64>>;
    /// The newest rows (by time, then id), of one host or all, at most `limit`.
    async fn recent_activity(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActivityRecord>>;
    /// Deletes at most `max_rows` rows older than `before`; returns how many.
    async fn prune_activity(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64>;

    /// Stores samples not seen before (key: host, timestamp); returns how many were new.
    async fn insert_perf(&self, samples: &[PerfSample]) -> StoreResult<u64>;
    /// The newest raw sample time stored for `host`.
    async fn perf_watermark(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// The oldest raw sample time stored for `host`.
    async fn oldest_raw_perf(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>>;
    /// Raw samples of `host` in `[from, to)`, oldest first.
    async fn raw_perf(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfSample>>;
    /// Deletes the raw samples of `host` in `[from, to)`; returns how many.
    async fn delete_raw_perf(&self, host: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64>;
    /// Hosts that have raw samples.
    async fn perf_hosts(&self) -> StoreResult<Vec<String>>;
    /// Inserts or replaces buckets (key: host, bucket start), all in one transaction.
    async fn upsert_buckets(&self, buckets: &[PerfBucket]) -> StoreResult<()>;
    /// Buckets of `host` starting in `[from, to)`, oldest first.
    async fn buckets(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfBucket>>;
    /// Deletes at most `max_rows` buckets starting before `before`; returns how many.
    async fn prune_buckets(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64>;

    /// Records model state changes.
    async fn record_model_states(&self, records: &[ModelStateRecord]) -> StoreResult<()>;
    /// The latest recorded state of each model of `host`, by model id.
    async fn latest_model_states(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>>;
    /// Every state change recorded for `host`, in the order recorded (what a store copy moves).
    async fn model_state_history(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>>;

    /// Every host the history names (activity, raw samples, buckets or model states), sorted.
    async fn history_hosts(&self) -> StoreResult<Vec<String>>;
}

/// Bench runs.
#[async_trait]
pub trait BenchStore: Send + Sync + fmt::Debug {
    /// Stores a run (replacing one with the same id).
    async fn save_run(&self, run: &BenchRun) -> StoreResult<()>;
    /// Runs, newest first, optionally of one host and/or model, at most `limit`.
    async fn runs(&self, host: Option<&str>, model: Option<&str>, limit: u32) -> StoreResult<Vec<BenchRun>>;
}

/// The audit of actions.
#[async_trait]
pub trait ActionLog: Send + Sync + fmt::Debug {
    /// Appends a record.
    async fn record_action(&self, record: &ActionRecord) -> StoreResult<()>;
    /// Records, newest first, optionally of one host, at most `limit`.
    async fn actions(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActionRecord>>;
}

/// Host leases. Times are the caller's.
#[async_trait]
pub trait LeaseStore: Send + Sync + fmt::Debug {
    /// Takes `host` for `holder` until `until`, if nobody else holds an unexpired lease
    /// (`expires > now`). The same holder re-acquiring refreshes its lease. Returns the new
    /// lease, or the lease standing in the way.
    async fn acquire(
        &self,
        host: &str,
        holder: &str,
        purpose: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Result<LeaseRecord, LeaseRecord>>;
    /// Extends `holder`'s lease on `host` to `until`; `false` when it no longer holds it.
    async fn renew(&self, host: &str, holder: &str, until: DateTime<Utc>) -> StoreResult<bool>;
    /// Gives `holder`'s lease on `host` up; `false` when it did not hold it.
    async fn release(&self, host: &str, holder: &str) -> StoreResult<bool>;
    /// Removes whatever lease `host` has (a takeover); returns it.
    async fn revoke(&self, host: &str) -> StoreResult<Option<LeaseRecord>>;
    /// The unexpired lease on `host`, if any.
    async fn current(&self, host: &str, now: DateTime<Utc>) -> StoreResult<Option<LeaseRecord>>;
}

/// Every fleet store at once.
pub trait FleetStore: HistoryStore + BenchStore + ActionLog + LeaseStore {}

impl<T: HistoryStore + BenchStore + ActionLog + LeaseStore> FleetStore for T {}
