//! Unit tests: the fair queue on its own, and the `Full` error's message.

use std::time::Duration;

use super::queue::{FairQueue, Queued};
use super::{LaneError, PENDING_LISTED, PendingJob};
use crate::JobId;

#[derive(Debug, PartialEq, Eq)]
struct Item {
    id: u64,
    tenant: &'static str,
}

impl Queued for Item {
    fn id(&self) -> JobId {
        JobId(self.id)
    }

    fn tenant(&self) -> &str {
        self.tenant
    }
}

fn filled(spec: &[(&'static str, usize)]) -> FairQueue<Item> {
    let mut queue = FairQueue::new();
    let mut id = 0;
    for &(tenant, n) in spec {
        for _ in 0..n {
            id += 1;
            queue.push(Item { id, tenant });
        }
    }
    queue
}

fn tenants_in_pop_order(queue: &mut FairQueue<Item>) -> Vec<&'static str> {
    std::iter::from_fn(|| queue.pop()).map(|i| i.tenant).collect()
}

#[test]
fn pops_round_robin_across_tenants_and_fifo_within() {
    let mut queue = filled(&[("a", 4), ("b", 2), ("c", 1)]);
    assert_eq!(queue.len(), 7);
    let mut ids = Vec::new();
    let mut order = Vec::new();
    while let Some(item) = queue.pop() {
        ids.push(item.id);
        order.push(item.tenant);
    }
    assert_eq!(order, ["a", "b", "c", "a", "b", "a", "a"]);
    // a's jobs are 1..=4, b's 5..=6, c's 7: FIFO within each tenant.
    assert_eq!(ids, [1, 5, 7, 2, 6, 3, 4]);
    assert_eq!(queue.len(), 0);
    assert!(queue.per_tenant().is_empty());
}

#[test]
fn a_tenant_that_empties_rejoins_at_the_back() {
    let mut queue = filled(&[("a", 1), ("b", 2)]);
    assert_eq!(queue.pop().map(|i| i.tenant), Some("a"));
    // a left the ring; pushing again puts it behind b.
    queue.push(Item { id: 10, tenant: "a" });
    assert_eq!(tenants_in_pop_order(&mut queue), ["b", "a", "b"]);
}

#[test]
fn remove_takes_the_job_out_and_keeps_the_ring_consistent() {
    let mut queue = filled(&[("a", 2), ("b", 1), ("c", 2)]);
    // b's only job (id 3): b must leave the ring.
    assert_eq!(queue.remove(JobId(3)), Some(Item { id: 3, tenant: "b" }));
    // a middle-of-queue job.
    assert_eq!(queue.remove(JobId(4)).map(|i| i.id), Some(4));
    assert_eq!(queue.remove(JobId(4)), None, "removed twice");
    assert_eq!(queue.remove(JobId(99)), None, "unknown id");
    assert_eq!(queue.len(), 3);
    assert_eq!(
        queue.per_tenant().into_iter().collect::<Vec<_>>(),
        [("a".to_owned(), 2), ("c".to_owned(), 1)]
    );
    let ids: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|i| i.id).collect();
    assert_eq!(ids, [1, 5, 2]);
}

#[test]
fn peek_lists_in_service_order_without_consuming() {
    let queue = filled(&[("a", 3), ("b", 1), ("c", 2)]);
    let peeked: Vec<u64> = queue.peek_in_service_order(10).iter().map(|i| i.id).collect();
    assert_eq!(peeked, [1, 4, 5, 2, 6, 3]);
    let limited: Vec<u64> = queue.peek_in_service_order(4).iter().map(|i| i.id).collect();
    assert_eq!(limited, [1, 4, 5, 2]);
    assert_eq!(queue.len(), 6, "peek must not consume");
    let mut queue = queue;
    let popped: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|i| i.id).collect();
    assert_eq!(popped, peeked, "peek order is pop order");
}

#[test]
fn drain_empties_everything() {
    let mut queue = filled(&[("a", 2), ("b", 3)]);
    let drained = queue.drain();
    assert_eq!(drained.len(), 5);
    assert_eq!(queue.len(), 0);
    assert!(queue.pop().is_none());
    assert!(queue.per_tenant().is_empty());
}

fn pending(n: usize) -> Vec<PendingJob> {
    (1..=n as u64)
        .map(|i| PendingJob {
            id: JobId(i),
            tenant: format!("t{}", i % 3),
            label: format!("job {i}"),
            queued_for: Duration::from_millis(1500),
        })
        .collect()
}

#[test]
fn full_error_lists_pending_jobs_and_truncates() {
    let few = LaneError::Full {
        lane: "review".into(),
        capacity: 2,
        max_queue: 3,
        pending: pending(3),
        running: 2,
        queued: 3,
    };
    let text = few.to_string();
    assert!(
        text.starts_with("lane `review` is full: 2 of 2 slots busy, 3 of 3 queue places taken; pending: "),
        "{text}"
    );
    assert!(text.contains("job-1 (tenant `t1`, `job 1`, queued 1s 500ms)"), "{text}");
    assert!(text.contains("job-3 (tenant `t0`, `job 3`"), "{text}");
    assert!(!text.contains("more"), "{text}");

    let many = LaneError::Full {
        lane: "review".into(),
        capacity: 1,
        max_queue: 100,
        pending: pending(PENDING_LISTED),
        running: 1,
        queued: 100,
    };
    let text = many.to_string();
    assert!(text.contains("`job 20`"), "{text}");
    assert!(!text.contains("`job 21`"), "{text}");
    assert!(text.ends_with(", and 80 more"), "{text}");

    let no_queue = LaneError::Full {
        lane: "solo".into(),
        capacity: 1,
        max_queue: 0,
        pending: Vec::new(),
        running: 1,
        queued: 0,
    };
    assert_eq!(no_queue.to_string(), "lane `solo` is full: 1 of 1 slots busy, and it keeps no queue");
}
