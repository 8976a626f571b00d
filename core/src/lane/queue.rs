//! The lane's waiting room: one FIFO queue per tenant, served round-robin.
//!
//! Pure data structure, no I/O and no clock: the actor owns one and decides when to push and
//! pop. Guarantees:
//! - `push` and `pop` are O(1) (one hash lookup each, amortised `VecDeque` growth).
//! - Service is fair-share: each tenant with waiting jobs gets one job per round, in the order
//!   tenants became active; a tenant that empties leaves the ring and rejoins at the back.
//! - Within a tenant, FIFO.
//!
//! Removal by id (`remove`) is O(tenants + log n): ids are handed out in increasing order, so
//! each tenant's queue is sorted by id and can be binary-searched.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::JobId;

/// Anything the queue holds: it must expose its id (for removal) and its tenant.
pub(crate) trait Queued {
    fn id(&self) -> JobId;
    fn tenant(&self) -> &str;
}

/// Round-robin over per-tenant FIFO queues.
pub(crate) struct FairQueue<J> {
    /// Non-empty queues only: a tenant whose queue empties is removed, so a lane that sees many
    /// short-lived tenants does not grow without bound.
    queues: HashMap<Arc<str>, VecDeque<J>>,
    /// Tenants with waiting jobs, in service order. Invariant: same key set as `queues`.
    ring: VecDeque<Arc<str>>,
    len: usize,
}

impl<J: Queued> FairQueue<J> {
    pub(crate) fn new() -> Self {
        Self { queues: HashMap::new(), ring: VecDeque::new(), len: 0 }
    }

    /// Number of waiting jobs, all tenants together.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `job` to its tenant's queue. A tenant that had nothing waiting joins the back of
    /// the ring.
    pub(crate) fn push(&mut self, job: J) {
        if let Some(queue) = self.queues.get_mut(job.tenant()) {
            queue.push_back(job);
        } else {
            let key: Arc<str> = Arc::from(job.tenant());
            let mut queue = VecDeque::with_capacity(4);
            queue.push_back(job);
            self.queues.insert(Arc::clone(&key), queue);
            self.ring.push_back(key);
        }
        self.len += 1;
    }

    /// Takes the next job in fair-share order: the oldest job of the tenant at the front of
    /// the ring; that tenant then moves to the back (or leaves the ring if it has no more).
    pub(crate) fn pop(&mut self) -> Option<J> {
        let tenant = self.ring.pop_front()?;
        let Some(queue) = self.queues.get_mut(&tenant) else {
            // Unreachable by the ring/queues invariant; recover by dropping the stale entry.
            debug_assert!(false, "tenant in ring without a queue");
            return self.pop();
        };
        let job = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(&tenant);
        } else {
            self.ring.push_back(tenant);
        }
        if job.is_some() {
            self.len -= 1;
        }
        job
    }

    /// Removes the job with this id, wherever it waits.
    pub(crate) fn remove(&mut self, id: JobId) -> Option<J> {
        let (tenant, index) = self.queues.iter().find_map(|(tenant, queue)| {
            queue.binary_search_by_key(&id, Queued::id).ok().map(|index| (Arc::clone(tenant), index))
        })?;
        let queue = self.queues.get_mut(&tenant)?;
        let job = queue.remove(index)?;
        if queue.is_empty() {
            self.queues.remove(&tenant);
            self.ring.retain(|t| *t != tenant);
        }
        self.len -= 1;
        Some(job)
    }

    /// Empties the queue, returning every job (tenant by tenant in ring order, FIFO within).
    pub(crate) fn drain(&mut self) -> Vec<J> {
        let mut out = Vec::with_capacity(self.len);
        for tenant in self.ring.drain(..) {
            if let Some(queue) = self.queues.remove(&tenant) {
                out.extend(queue);
            }
        }
        self.queues.clear();
        self.len = 0;
        out
    }

    /// Waiting jobs per tenant.
    pub(crate) fn per_tenant(&self) -> BTreeMap<String, usize> {
        self.queues.iter().map(|(tenant, queue)| (tenant.to_string(), queue.len())).collect()
    }

    /// The first `limit` jobs in the order `pop` would serve them, without removing them.
    /// Cost is bounded by `limit * min(limit, tenants)`: if at least `limit` tenants wait,
    /// the first round already yields `limit` jobs.
    pub(crate) fn peek_in_service_order(&self, limit: usize) -> Vec<&J> {
        let mut out = Vec::with_capacity(limit.min(self.len));
        let mut round = 0;
        while out.len() < limit {
            let before = out.len();
            for tenant in &self.ring {
                if out.len() == limit {
                    break;
                }
                if let Some(job) = self.queues.get(tenant).and_then(|q| q.get(round)) {
                    out.push(job);
                }
            }
            if out.len() == before {
                break;
            }
            round += 1;
        }
        out
    }
}
