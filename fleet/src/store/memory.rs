//! [`MemoryFleetStore`]: every fleet store in memory — the default, and the reference the
//! conformance suite is written against. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    ActionLog, ActionRecord, ActivityRecord, BenchStore, HistoryStore, LeaseRecord, LeaseStore,
    ModelStateRecord, PerfBucket, PerfSample, StoreResult,
};
use crate::bench::BenchRun;

#[derive(Debug, Default)]
struct Inner {
    /// Keyed by (host, remote id, time).
    activity: BTreeMap<(String, u64, DateTime<Utc>), ActivityRecord>,
    /// Keyed by (host, time).
    perf: BTreeMap<(String, DateTime<Utc>), PerfSample>,
    buckets: BTreeMap<(String, DateTime<Utc>), PerfBucket>,
    /// Appended in order.
    model_states: Vec<ModelStateRecord>,
    /// Keyed by id; `order` keeps insertion order.
    runs: HashMap<String, (u64, BenchRun)>,
    next_run: u64,
    actions: Vec<ActionRecord>,
    leases: HashMap<String, LeaseRecord>,
}

/// Every fleet store in memory.
#[derive(Debug, Default)]
pub struct MemoryFleetStore {
    inner: Mutex<Inner>,
}

impl MemoryFleetStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below is a single insert or removal: a poisoned lock still guards
        // consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn cap(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[async_trait]
impl HistoryStore for MemoryFleetStore {
    async fn insert_activity(&self, rows: &[ActivityRecord]) -> StoreResult<u64> {
        let mut inner = self.lock();
        let mut new = 0;
        for row in rows {
            let key = (row.host.clone(), row.remote_id, row.ts);
            if let std::collections::btree_map::Entry::Vacant(e) = inner.activity.entry(key) {
                e.insert(row.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn activity_watermark(&self, host: &str) -> StoreResult<Option<u64>> {
        Ok(self.lock().activity.values().filter(|r| r.host == host).map(|r| r.remote_id).max())
    }

    async fn recent_activity(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActivityRecord>> {
        let inner = self.lock();
        let mut rows: Vec<&ActivityRecord> =
            inner.activity.values().filter(|r| host.is_none_or(|h| r.host == h)).collect();
        rows.sort_by(|a, b| (b.ts, b.remote_id, &b.host).cmp(&(a.ts, a.remote_id, &a.host)));
        Ok(rows.into_iter().take(cap(limit)).cloned().collect())
    }

    async fn prune_activity(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64> {
        let mut inner = self.lock();
        let doomed: Vec<_> = inner
            .activity
            .iter()
            .filter(|(_, r)| r.ts < before)
            .map(|(k, _)| k.clone())
            .take(cap(max_rows))
            .collect();
        for k in &doomed {
            inner.activity.remove(k);
        }
        Ok(doomed.len() as u64)
    }

    async fn insert_perf(&self, samples: &[PerfSample]) -> StoreResult<u64> {
        let mut inner = self.lock();
        let mut new = 0;
        for s in samples {
            if let std::collections::btree_map::Entry::Vacant(e) = inner.perf.entry((s.host.clone(), s.ts)) {
                e.insert(s.clone());
                new += 1;
            }
        }
        Ok(new)
    }

    async fn perf_watermark(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.lock().perf.keys().filter(|(h, _)| h == host).map(|(_, ts)| *ts).max())
    }

    async fn oldest_raw_perf(&self, host: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.lock().perf.keys().filter(|(h, _)| h == host).map(|(_, ts)| *ts).min())
    }

    async fn raw_perf(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfSample>> {
        Ok(self
            .lock()
            .perf
            .range((host.to_owned(), from)..(host.to_owned(), to))
            .map(|(_, s)| s.clone())
            .collect())
    }

    async fn delete_raw_perf(&self, host: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<u64> {
        let mut inner = self.lock();
        let keys: Vec<_> = inner
            .perf
            .range((host.to_owned(), from)..(host.to_owned(), to))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            inner.perf.remove(k);
        }
        Ok(keys.len() as u64)
    }

    async fn perf_hosts(&self) -> StoreResult<Vec<String>> {
        let mut hosts: Vec<String> = self.lock().perf.keys().map(|(h, _)| h.clone()).collect();
        hosts.dedup();
        Ok(hosts)
    }

    async fn upsert_buckets(&self, buckets: &[PerfBucket]) -> StoreResult<()> {
        let mut inner = self.lock();
        for b in buckets {
            inner.buckets.insert((b.host.clone(), b.start), b.clone());
        }
        Ok(())
    }

    async fn buckets(
        &self,
        host: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<PerfBucket>> {
        Ok(self
            .lock()
            .buckets
            .range((host.to_owned(), from)..(host.to_owned(), to))
            .map(|(_, b)| b.clone())
            .collect())
    }

    async fn prune_buckets(&self, before: DateTime<Utc>, max_rows: u32) -> StoreResult<u64> {
        let mut inner = self.lock();
        let doomed: Vec<_> =
            inner.buckets.keys().filter(|(_, start)| *start < before).take(cap(max_rows)).cloned().collect();
        for k in &doomed {
            inner.buckets.remove(k);
        }
        Ok(doomed.len() as u64)
    }

    async fn record_model_states(&self, records: &[ModelStateRecord]) -> StoreResult<()> {
        self.lock().model_states.extend_from_slice(records);
        Ok(())
    }

    async fn latest_model_states(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>> {
        let inner = self.lock();
        let mut latest: BTreeMap<&str, &ModelStateRecord> = BTreeMap::new();
        for r in inner.model_states.iter().filter(|r| r.host == host) {
            match latest.get(r.model.as_str()) {
                Some(prev) if prev.at > r.at => {}
                _ => {
                    latest.insert(&r.model, r);
                }
            }
        }
        Ok(latest.into_values().cloned().collect())
    }

    async fn model_state_history(&self, host: &str) -> StoreResult<Vec<ModelStateRecord>> {
        Ok(self.lock().model_states.iter().filter(|r| r.host == host).cloned().collect())
    }

    async fn history_hosts(&self) -> StoreResult<Vec<String>> {
        let inner = self.lock();
        let hosts: std::collections::BTreeSet<String> = inner
            .activity
            .keys()
            .map(|(h, _, _)| h.clone())
            .chain(inner.perf.keys().map(|(h, _)| h.clone()))
            .chain(inner.buckets.keys().map(|(h, _)| h.clone()))
            .chain(inner.model_states.iter().map(|r| r.host.clone()))
            .collect();
        Ok(hosts.into_iter().collect())
    }
}

#[async_trait]
impl BenchStore for MemoryFleetStore {
    async fn save_run(&self, run: &BenchRun) -> StoreResult<()> {
        let mut inner = self.lock();
        inner.next_run += 1;
        let order = match inner.runs.get(&run.id) {
            Some((order, _)) => *order,
            None => inner.next_run,
        };
        inner.runs.insert(run.id.clone(), (order, run.clone()));
        Ok(())
    }

    async fn runs(&self, host: Option<&str>, model: Option<&str>, limit: u32) -> StoreResult<Vec<BenchRun>> {
        let inner = self.lock();
        let mut runs: Vec<&(u64, BenchRun)> = inner
            .runs
            .values()
            .filter(|(_, r)| host.is_none_or(|h| r.host == h) && model.is_none_or(|m| r.model == m))
            .collect();
        runs.sort_by_key(|r| std::cmp::Reverse((r.1.started, r.0)));
        Ok(runs.into_iter().take(cap(limit)).map(|(_, r)| r.clone()).collect())
    }
}

#[async_trait]
impl ActionLog for MemoryFleetStore {
    async fn record_action(&self, record: &ActionRecord) -> StoreResult<()> {
        self.lock().actions.push(record.clone());
        Ok(())
    }

    async fn actions(&self, host: Option<&str>, limit: u32) -> StoreResult<Vec<ActionRecord>> {
        let inner = self.lock();
        Ok(inner
            .actions
            .iter()
            .rev()
            .filter(|a| host.is_none_or(|h| a.host == h))
            .take(cap(limit))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl LeaseStore for MemoryFleetStore {
    async fn acquire(
        &self,
        host: &str,
        holder: &str,
        purpose: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreResult<Result<LeaseRecord, LeaseRecord>> {
        let mut inner = self.lock();
        if let Some(current) = inner.leases.get(host)
            && current.holder != holder
            && current.expires > now
        {
            return Ok(Err(current.clone()));
        }
        let lease = LeaseRecord {
            host: host.to_owned(),
            holder: holder.to_owned(),
            purpose: purpose.to_owned(),
            acquired: now,
            expires: until,
        };
        inner.leases.insert(host.to_owned(), lease.clone());
        Ok(Ok(lease))
    }

    async fn renew(&self, host: &str, holder: &str, until: DateTime<Utc>) -> StoreResult<bool> {
        let mut inner = self.lock();
        match inner.leases.get_mut(host) {
            Some(lease) if lease.holder == holder => {
                lease.expires = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, host: &str, holder: &str) -> StoreResult<bool> {
        let mut inner = self.lock();
        if inner.leases.get(host).is_some_and(|l| l.holder == holder) {
            inner.leases.remove(host);
            return Ok(true);
        }
        Ok(false)
    }

    async fn revoke(&self, host: &str) -> StoreResult<Option<LeaseRecord>> {
        Ok(self.lock().leases.remove(host))
    }

    async fn current(&self, host: &str, now: DateTime<Utc>) -> StoreResult<Option<LeaseRecord>> {
        Ok(self.lock().leases.get(host).filter(|l| l.expires > now).cloned())
    }
}
