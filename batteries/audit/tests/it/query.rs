//! Queries and paging over `MemoryAuditStore` (the reference semantics SQL stores follow).

use std::collections::BTreeSet;

use executus::RunId;
use executus::ports::{AuditEvent, AuditRecord, PortError};
use executus_audit::{AuditCursor, AuditQuery, AuditStore, MAX_PAGE, MemoryAuditStore};

use crate::common::{all_pages, record};

/// 120 records: 3 runs x (2 users) x 2 tenants, at_ms 1000..1120, two kinds.
async fn seeded() -> (MemoryAuditStore, Vec<RunId>, Vec<AuditRecord>) {
    let store = MemoryAuditStore::new();
    let runs = vec![RunId::new(), RunId::new(), RunId::new()];
    let mut all = Vec::new();
    for i in 0..120u64 {
        let user = if i % 2 == 0 { "ann" } else { "bob" };
        let tenant = if i % 3 == 0 { "acme" } else { "beta" };
        let mut r = record(1000 + i, Some(runs[(i % 3) as usize]), user, tenant, &i.to_string());
        if i % 4 == 0 {
            r.event = AuditEvent::LoopProtection {
                trigger: executus::loops::LoopKind::Cycle,
                detail: i.to_string(),
                action: executus::loops::LoopAction::Finalize,
            };
        }
        all.push(r);
    }
    // Appended in a few batches of different sizes, as the writer would.
    for chunk in [&all[..1], &all[1..50], &all[50..51], &all[51..]] {
        store.append(chunk).await.unwrap();
    }
    (store, runs, all)
}

#[tokio::test]
async fn ids_are_assigned_in_append_order_and_strictly_increase() {
    let (store, _, all) = seeded().await;
    let rows = store.all();
    assert_eq!(rows.len(), 120);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(rows.iter().map(|r| r.record.clone()).collect::<Vec<_>>(), all);
}

/// A query and the predicate its results must equal.
type Case = (AuditQuery, Box<dyn Fn(&AuditRecord) -> bool>);

#[tokio::test]
async fn every_filter_pages_through_its_rows_exactly_once() {
    let (store, runs, all) = seeded().await;
    let (r1, r2) = (runs[1], runs[2]);
    let cases: Vec<Case> = vec![
        (AuditQuery::new(), Box::new(|_| true)),
        (AuditQuery::new().run(r1), Box::new(move |r| r.run_id == Some(r1))),
        (AuditQuery::new().user("ann"), Box::new(|r| r.identity.user == "ann")),
        (AuditQuery::new().tenant("acme"), Box::new(|r| r.identity.tenant == "acme")),
        (
            AuditQuery::new().user("bob").tenant("acme"),
            Box::new(|r| r.identity.user == "bob" && r.identity.tenant == "acme"),
        ),
        (AuditQuery::new().between(Some(1010), Some(1042)), Box::new(|r| (1010..1042).contains(&r.at_ms))),
        (AuditQuery::new().between(Some(1100), None), Box::new(|r| r.at_ms >= 1100)),
        (AuditQuery::new().between(None, Some(1003)), Box::new(|r| r.at_ms < 1003)),
        (AuditQuery::new().kind("loop_protection"), Box::new(|r| r.event.kind() == "loop_protection")),
        (AuditQuery::new().kind("loop_protection").kind("failover"), Box::new(|_| true)),
        (AuditQuery::new().kind("run_started"), Box::new(|_| false)),
        (
            AuditQuery::new().run(r2).user("bob").kind("failover").between(Some(1020), Some(1110)),
            Box::new(move |r| {
                r.run_id == Some(r2)
                    && r.identity.user == "bob"
                    && r.event.kind() == "failover"
                    && (1020..1110).contains(&r.at_ms)
            }),
        ),
    ];
    for (query, pred) in cases {
        let want: Vec<AuditRecord> = all.iter().filter(|r| pred(r)).cloned().collect();
        for limit in [1, 3, 7, 200] {
            let (rows, pages) = all_pages(&store, query.clone().limit(limit)).await;
            let got: Vec<AuditRecord> = rows.iter().map(|r| r.record.clone()).collect();
            assert_eq!(got, want, "query {query:?} limit {limit}");
            let ids: BTreeSet<u64> = rows.iter().map(|r| r.id).collect();
            assert_eq!(ids.len(), rows.len(), "no row twice");
            assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "ascending ids");
            // The last page is the only one with `next == None`, and no page is empty
            // except the only page of an empty result.
            assert_eq!(pages, want.len().div_ceil(limit).max(1), "query {query:?} limit {limit}");
        }
    }
}

#[tokio::test]
async fn records_appended_while_paging_appear_on_later_pages() {
    let (store, _, _) = seeded().await;
    let first = store.query(&AuditQuery::new().limit(100)).await.unwrap();
    let cursor = first.next.unwrap();
    store.append(&[record(5, None, "late", "t", "new")]).await.unwrap();
    let (rest, _) = all_pages(&store, AuditQuery::new().limit(8).after(Some(cursor))).await;
    assert_eq!(rest.len(), 21);
    assert_eq!(rest.last().unwrap().record.identity.user, "late");
    assert!(rest.iter().all(|r| r.id > cursor.after_id));
}

#[tokio::test]
async fn bad_queries_are_rejected_and_big_limits_clamped() {
    let (store, _, _) = seeded().await;
    assert!(matches!(store.query(&AuditQuery::new().limit(0)).await, Err(PortError::Invalid { .. })));
    assert!(matches!(
        store.query(&AuditQuery::new().between(Some(5), Some(4))).await,
        Err(PortError::Invalid { .. })
    ));
    let big = MemoryAuditStore::new();
    let many: Vec<AuditRecord> = (0..1500).map(|i| record(i, None, "u", "t", "x")).collect();
    big.append(&many).await.unwrap();
    let page = big.query(&AuditQuery::new().limit(5000)).await.unwrap();
    assert_eq!(page.records.len(), MAX_PAGE);
    assert_eq!(page.next, Some(AuditCursor::after(page.records.last().unwrap().id)));
    let past_end = big.query(&AuditQuery::new().after(Some(AuditCursor::after(u64::MAX)))).await.unwrap();
    assert!(past_end.records.is_empty() && past_end.next.is_none());
}

#[tokio::test]
async fn prune_deletes_old_rows_in_bounded_steps_and_never_reuses_ids() {
    let (store, _, _) = seeded().await;
    let max_id = store.all().last().unwrap().id;
    let mut rounds = Vec::new();
    loop {
        let n = store.prune(1050, 20).await.unwrap();
        if n == 0 {
            break;
        }
        rounds.push(n);
    }
    assert_eq!(rounds, [20, 20, 10]);
    assert_eq!(store.len(), 70);
    assert!(store.all().iter().all(|r| r.record.at_ms >= 1050));
    store.append(&[record(1, None, "u", "t", "x")]).await.unwrap();
    assert_eq!(store.all().last().unwrap().id, max_id + 1);
}

#[test]
fn queries_and_pages_round_trip_through_json() {
    let q = AuditQuery::new().user("ann").kind("tool_call").limit(5).after(Some(AuditCursor::after(9)));
    let json = serde_json::to_value(&q).unwrap();
    assert_eq!(json["cursor"], 9);
    assert_eq!(serde_json::from_value::<AuditQuery>(json).unwrap(), q);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_memory_store_conforms() {
    use std::sync::Arc;

    use executus_audit::store::conformance;
    conformance::check(|| async { Arc::new(MemoryAuditStore::new()) as Arc<dyn AuditStore> }).await.unwrap();
}

#[tokio::test]
async fn the_suite_catches_a_store_that_ignores_the_kind_filter() {
    use std::sync::Arc;

    use async_trait::async_trait;
    use executus_audit::AuditPage;
    use executus_audit::store::conformance;

    struct Sloppy(MemoryAuditStore);
    #[async_trait]
    impl AuditStore for Sloppy {
        async fn append(&self, records: &[AuditRecord]) -> Result<(), PortError> {
            self.0.append(records).await
        }
        async fn query(&self, query: &AuditQuery) -> Result<AuditPage, PortError> {
            let mut q = query.clone();
            q.kinds.clear();
            self.0.query(&q).await
        }
        async fn prune(&self, before_ms: u64, max_rows: usize) -> Result<usize, PortError> {
            self.0.prune(before_ms, max_rows).await
        }
    }
    let err =
        conformance::check(|| async { Arc::new(Sloppy(MemoryAuditStore::new())) as Arc<dyn AuditStore> })
            .await
            .unwrap_err();
    assert_eq!(err.check, "queries_match_the_reference_semantics");
    assert!(err.detail.contains("kinds"), "{err}");
}
