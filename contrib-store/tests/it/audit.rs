//! The SQLite audit store beyond the battery's conformance suite: every query shape walks an
//! index (`EXPLAIN QUERY PLAN`), results equal the in-memory reference store's under
//! out-of-order, late and future time stamps, appends are all or nothing, bad rows are
//! reported, floats round-trip exactly, and retention deletes in small batches.

use std::sync::Arc;
use std::time::Duration;

use executus::llm::ManualClock;
use executus::llm::Usage;
use executus::ports::{AuditEvent, AuditRecord, PortError};
use executus::{Identity, RunId};
use executus_audit::{AuditCursor, AuditQuery, AuditStore, MAX_PAGE, MemoryAuditStore, StoredAuditRecord};
use executus_store::{Store, StoreOptions};

use crate::common::TempStore;

/// "Now" for these tests (the store's clock), 2023-11-14.
const NOW: u64 = 1_700_000_000_000;
const MINUTE: u64 = 60_000;

const KINDS: [&str; 6] =
    ["run_started", "model_call", "tool_call", "failover", "budget_denied", "compaction"];

fn event(kind: usize, i: u64) -> AuditEvent {
    match kind % KINDS.len() {
        0 => AuditEvent::RunStarted { model: format!("m{i}"), parent: None, resumed: i.is_multiple_of(2) },
        1 => AuditEvent::ModelCall {
            step: (i % 9) as u32,
            provider: "p".into(),
            model: "m".into(),
            attempt: 1,
            latency_ms: i,
            usage: Usage { input_tokens: i, output_tokens: i / 2, ..Usage::default() },
            error: None,
        },
        2 => AuditEvent::ToolCall {
            step: 1,
            tool: "grep".into(),
            call_id: format!("c{i}"),
            decision: executus::ports::ToolDecision::Allow,
            rule: None,
            reason: None,
            is_error: false,
            latency_ms: 3,
        },
        3 => AuditEvent::Failover { from: "a/x".into(), to: "b/y".into(), error: format!("e{i}") },
        4 => AuditEvent::BudgetDenied {
            spent: 0.1 + 0.2,
            reserved: (i as f64) / 3.0,
            limit: 1e-7 / 3.0,
            scope: "user:ann".into(),
        },
        _ => AuditEvent::Compaction { replaced: 3, tokens_before: 900, tokens_after: 120 },
    }
}

fn record(at_ms: u64, run: Option<RunId>, user: &str, tenant: &str, kind: usize, i: u64) -> AuditRecord {
    AuditRecord {
        at_ms,
        run_id: run,
        identity: Identity::new(user, tenant),
        agent: Some("agent".into()),
        event: event(kind, i),
    }
}

async fn store_at(tmp: &TempStore, now: u64) -> Store {
    let clock = Arc::new(ManualClock::at(now));
    Store::open_with(&tmp.url(), StoreOptions::default().clock(clock)).await.unwrap()
}

async fn all_pages(store: &dyn AuditStore, query: &AuditQuery) -> Vec<StoredAuditRecord> {
    let mut out = Vec::new();
    let mut cursor = query.cursor;
    loop {
        let page = store.query(&query.clone().after(cursor)).await.unwrap();
        out.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
}

/// A realistic trail: mostly rising times with millisecond jitter, a few records minutes
/// late (a slow emitter), a few far in the future (a wrong clock).
fn trail(n: u64, runs: &[RunId], seed: u64) -> Vec<AuditRecord> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = NOW - 3 * 3_600_000;
    (0..n)
        .map(|i| {
            let base = start + i * 1_000;
            let at = match rng.u32(0..100) {
                0..=2 => base.saturating_sub(rng.u64(2 * MINUTE..30 * MINUTE)), // late
                3 => NOW + rng.u64(20 * MINUTE..100_000 * MINUTE),              // future clock
                _ => base.saturating_sub(rng.u64(0..3_000)),                    // jitter
            };
            let pick = rng.usize(0..runs.len());
            let run = (rng.u32(0..8) != 0).then(|| runs[pick]);
            let user = ["ann", "bob", "cyd"][rng.usize(0..3)];
            let tenant = ["acme", "beta"][rng.usize(0..2)];
            record(at, run, user, tenant, rng.usize(0..KINDS.len()), i)
        })
        .collect()
}

/// Appends the same batches to both stores.
async fn fill(sql: &dyn AuditStore, mem: &dyn AuditStore, records: &[AuditRecord], seed: u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rest = records;
    while !rest.is_empty() {
        let n = rng.usize(1..=rest.len().min(97));
        sql.append(&rest[..n]).await.unwrap();
        mem.append(&rest[..n]).await.unwrap();
        rest = &rest[n..];
    }
}

/// Every shape of query the brief names, and combinations.
fn shapes(runs: &[RunId], trail: &[AuditRecord]) -> Vec<(&'static str, AuditQuery)> {
    let mid = trail[trail.len() / 2].at_ms;
    let q = AuditQuery::new;
    vec![
        ("everything", q()),
        ("by run", q().run(runs[0])),
        ("by unknown run", q().run(RunId::new())),
        ("by user", q().user("ann")),
        ("by tenant", q().tenant("beta")),
        ("by user and tenant", q().user("bob").tenant("acme")),
        ("by time range", q().between(Some(mid - 20 * MINUTE), Some(mid + 20 * MINUTE))),
        ("from a time", q().between(Some(mid), None)),
        ("until a time", q().between(None, Some(mid))),
        ("an empty time range", q().between(Some(mid), Some(mid))),
        ("the future", q().between(Some(NOW + MINUTE), None)),
        ("by kind", q().kind("tool_call")),
        ("by two kinds", q().kind("failover").kind("run_started")),
        ("by an unknown kind", q().kind("no_such_kind")),
        ("by many kinds", {
            let mut many = q();
            for i in 0..40 {
                many = many.kind(format!("k{i}"));
            }
            many.kind("model_call")
        }),
        ("with a cursor", q().after(Some(AuditCursor::after(trail.len() as u64 / 3)))),
        (
            "by run, user, kind and time",
            q().run(runs[1])
                .user("ann")
                .kind("model_call")
                .between(Some(mid - 60 * MINUTE), Some(mid + 60 * MINUTE)),
        ),
        (
            "by tenant and kind with a cursor",
            q().tenant("acme").kind("failover").after(Some(AuditCursor::after(50))),
        ),
        ("by kind and time", q().kind("compaction").between(Some(mid - 90 * MINUTE), None)),
        (
            "by tenant and time with a cursor",
            q().tenant("beta").between(None, Some(mid)).after(Some(AuditCursor::after(700))),
        ),
    ]
}

#[tokio::test]
async fn every_query_shape_walks_an_index_never_the_table() {
    let tmp = TempStore::new();
    let store = store_at(&tmp, NOW).await;
    let audit = store.as_sqlite().unwrap().audit();
    let runs: Vec<RunId> = (0..20).map(|_| RunId::new()).collect();
    let records = trail(3_000, &runs, 7);
    for chunk in records.chunks(250) {
        audit.append(chunk).await.unwrap();
    }
    // The trail has 3% late and 1% future records; only they are off-step (a wrong clock
    // does not drag the records after it off-step).
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    let off: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_records WHERE off_step = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert!((40..=200).contains(&off), "{off} of 3000 records are off-step");
    // With and without planner statistics: the plans are pinned, statistics cannot move them.
    for analyzed in [false, true] {
        if analyzed {
            let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
            pool.close().await;
        }
        for (shape, query) in shapes(&runs, &records) {
            let explained = audit.explain(&query).await.unwrap();
            assert!(!explained.is_empty(), "{shape}: no statements");
            if analyzed {
                println!("{shape}:");
                for stmt in &explained {
                    println!("  [{}] {}", stmt.label, stmt.plan.join(" | "));
                }
            }
            for stmt in &explained {
                let on_table: Vec<&String> =
                    stmt.plan.iter().filter(|l| l.contains("audit_records")).collect();
                assert!(
                    !on_table.is_empty(),
                    "{shape} / {}: the plan never reads the table: {:?}",
                    stmt.label,
                    stmt.plan
                );
                for line in &on_table {
                    assert!(
                        line.starts_with("SEARCH audit_records USING"),
                        "{shape} / {}: {line:?} is not an index search ({})",
                        stmt.label,
                        stmt.sql
                    );
                    assert!(!line.starts_with("SCAN audit_records"), "{shape}: table scan {line:?}");
                }
                // Only the off-step branch (a handful of records) may be sorted.
                if !stmt.label.starts_with("off-step") {
                    assert!(
                        stmt.plan.iter().all(|l| !l.contains("TEMP B-TREE")),
                        "{shape} / {}: sorts: {:?}",
                        stmt.label,
                        stmt.plan
                    );
                }
            }
            // The driving index is the one the shape asks for.
            let plans: Vec<&str> = explained.iter().flat_map(|s| s.plan.iter().map(String::as_str)).collect();
            let expect = match shape {
                s if s.starts_with("by run") || s == "by unknown run" => {
                    "USING INDEX audit_records_run (run_id=? AND rowid>?"
                }
                "by user" | "by user and tenant" => "USING INDEX audit_records_user (user=? AND rowid>?)",
                "by tenant" => "USING INDEX audit_records_tenant (tenant=? AND rowid>?)",
                s if s.starts_with("by tenant and time") => {
                    "USING INDEX audit_records_tenant (tenant=? AND rowid>? AND rowid<?)"
                }
                "by kind" | "by two kinds" | "by an unknown kind" | "by tenant and kind with a cursor" => {
                    "USING INDEX audit_records_kind (kind=? AND rowid>?)"
                }
                "by kind and time" => "USING INDEX audit_records_kind (kind=? AND rowid>?)",
                "by time range" | "until a time" => "USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)",
                "from a time" => "USING INTEGER PRIMARY KEY (rowid>?)",
                // No in-step record is that new: only the off-step index is consulted.
                "the future" => "USING INDEX audit_records_off_step (at_ms>?)",
                "everything" | "with a cursor" | "by many kinds" => "USING INTEGER PRIMARY KEY (rowid>?)",
                "an empty time range" => "USING INDEX audit_records_off_step (at_ms>? AND at_ms<?)",
                other => panic!("no expectation for {other}"),
            };
            assert!(plans.iter().any(|l| l.contains(expect)), "{shape}: expected {expect:?} in {plans:#?}");
            if query.from_ms.is_some() || query.to_ms.is_some() {
                assert!(
                    plans.iter().any(|l| l.contains("USING COVERING INDEX audit_records_high")),
                    "{shape}: the time range is not turned into an id range: {plans:#?}"
                );
                assert!(
                    plans.iter().any(|l| l.contains("USING INDEX audit_records_off_step")),
                    "{shape}: off-step records are not looked up by index: {plans:#?}"
                );
            }
        }
    }
    // Retention's lookups too.
    for stmt in audit.explain_prune(NOW - 60 * MINUTE, 500).await.unwrap() {
        for line in stmt.plan.iter().filter(|l| l.contains("audit_records")) {
            assert!(line.starts_with("SEARCH audit_records USING"), "prune / {}: {line:?}", stmt.label);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_prunes_equal_the_reference_store_with_late_and_future_records() {
    let tmp = TempStore::new();
    let store = store_at(&tmp, NOW).await;
    let sql = store.audit();
    let mem = MemoryAuditStore::new();
    let runs: Vec<RunId> = (0..6).map(|_| RunId::new()).collect();
    let records = trail(2_500, &runs, 11);
    fill(&sql, &mem, &records, 12).await;
    let mut rng = fastrand::Rng::with_seed(13);
    let times: Vec<u64> = records.iter().map(|r| r.at_ms).collect();
    let mut queries: Vec<AuditQuery> = shapes(&runs, &records).into_iter().map(|(_, q)| q).collect();
    for _ in 0..40 {
        let mut q = AuditQuery::new();
        if rng.bool() {
            let (a, b) = (times[rng.usize(0..times.len())], times[rng.usize(0..times.len())]);
            q = q.between(rng.bool().then_some(a.min(b)), rng.bool().then_some(a.max(b)));
        }
        if rng.u32(0..3) == 0 {
            q = q.run(runs[rng.usize(0..runs.len())]);
        }
        if rng.u32(0..3) == 0 {
            q = q.user(["ann", "bob", "cyd"][rng.usize(0..3)]);
        }
        if rng.u32(0..3) == 0 {
            q = q.tenant(["acme", "beta"][rng.usize(0..2)]);
        }
        for _ in 0..rng.usize(0..3) {
            q = q.kind(KINDS[rng.usize(0..KINDS.len())]);
        }
        if rng.bool() {
            q = q.after(Some(AuditCursor::after(rng.u64(0..2_600))));
        }
        queries.push(q);
    }
    for query in &queries {
        for limit in [5, 100, MAX_PAGE] {
            let q = query.clone().limit(limit);
            let want = all_pages(&mem, &q).await;
            let got = all_pages(&sql, &q).await;
            assert_eq!(got.len(), want.len(), "{q:?}");
            assert!(got == want, "{q:?}: records differ");
        }
    }
    // Prunes at several bounds and sizes delete exactly what the reference deletes.
    for (before, max) in [
        (NOW - 150 * MINUTE, 40),
        (NOW - 100 * MINUTE, 1_000),
        (NOW + 200 * MINUTE, 7),
        (NOW - 10 * MINUTE, 400),
    ] {
        let want = mem.prune(before, max).await.unwrap();
        let got = sql.prune(before, max).await.unwrap();
        assert_eq!(got, want, "prune({before}, {max})");
        assert!(
            all_pages(&sql, &AuditQuery::new().limit(MAX_PAGE)).await == mem.all(),
            "after prune({before}, {max})"
        );
    }
    // New appends after pruning get the same fresh ids as the reference's.
    fill(&sql, &mem, &trail(300, &runs, 14), 15).await;
    assert!(all_pages(&sql, &AuditQuery::new().limit(MAX_PAGE)).await == mem.all());
}

#[tokio::test]
async fn append_is_all_or_nothing() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let audit = store.audit();
    audit.append(&[record(NOW, None, "ann", "acme", 0, 0)]).await.unwrap();
    let batch = vec![record(NOW + 1, None, "ann", "acme", 1, 1), record(u64::MAX, None, "ann", "acme", 2, 2)];
    let err = audit.append(&batch).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Invalid { port: "audit", reason, .. } if reason.contains(&u64::MAX.to_string())),
        "{err:?}"
    );
    let all = all_pages(&audit, &AuditQuery::new()).await;
    assert_eq!(all.len(), 1, "the refused batch wrote part of itself: {all:?}");
    audit.append(&[]).await.unwrap();
    audit.append(&batch[..1]).await.unwrap();
    let all = all_pages(&audit, &AuditQuery::new()).await;
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [1, 2], "a refused batch consumes no id");
}

#[tokio::test]
async fn records_round_trip_exactly_floats_included_and_survive_reopening() {
    let tmp = TempStore::new();
    let records: Vec<AuditRecord> = (0..200u64)
        .map(|i| AuditRecord {
            event: AuditEvent::BudgetDenied {
                spent: 0.1 * i as f64 + 0.2,
                reserved: (i as f64).sqrt() / 7.0,
                limit: f64::MIN_POSITIVE * (i + 1) as f64,
                scope: format!("tenant:t{i}"),
            },
            ..record(NOW + i, Some(RunId::new()), "ann", "acme", 4, i)
        })
        .collect();
    {
        let store = tmp.open().await;
        store.audit().append(&records).await.unwrap();
        store.close().await;
    }
    let store = tmp.open().await;
    let got = all_pages(&store.audit(), &AuditQuery::new().limit(MAX_PAGE)).await;
    assert_eq!(got.len(), records.len());
    for (g, want) in got.iter().zip(&records) {
        assert_eq!(&g.record, want, "record {} changed on the way through SQLite", g.id);
    }
}

#[tokio::test]
async fn a_row_that_does_not_decode_is_reported_by_id() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let audit = store.audit();
    audit
        .append(&[record(NOW, None, "ann", "acme", 0, 0), record(NOW, None, "ann", "acme", 1, 1)])
        .await
        .unwrap();
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("UPDATE audit_records SET record = '{\"not\": \"a record\"}' WHERE id = 2")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let err = audit.query(&AuditQuery::new()).await.unwrap_err();
    assert!(
        matches!(&err, PortError::Corrupt { port: "audit", message } if message.contains("audit record 2")),
        "{err:?}"
    );
    // A page that does not reach the bad row still reads.
    assert_eq!(audit.query(&AuditQuery::new().limit(1)).await.unwrap().records.len(), 1);
}

#[tokio::test]
async fn bounds_past_sqlite_integers_match_nothing_or_everything_exactly() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let audit = store.audit();
    audit
        .append(&[
            record(5, None, "ann", "acme", 0, 0),
            record(i64::MAX as u64 - 1, None, "ann", "acme", 1, 1),
        ])
        .await
        .unwrap();
    let n = |q: AuditQuery| {
        let audit = audit.clone();
        async move { all_pages(&audit, &q).await.len() }
    };
    assert_eq!(n(AuditQuery::new().between(None, Some(u64::MAX))).await, 2);
    assert_eq!(n(AuditQuery::new().between(Some(i64::MAX as u64), None)).await, 0);
    assert_eq!(n(AuditQuery::new().between(Some(u64::MAX), Some(u64::MAX))).await, 0);
    assert_eq!(n(AuditQuery::new().after(Some(AuditCursor::after(u64::MAX)))).await, 0);
    assert_eq!(audit.prune(u64::MAX, 10).await.unwrap(), 2);
}

#[tokio::test]
async fn retention_deletes_old_records_in_small_batches_and_never_reuses_ids() {
    let tmp = TempStore::new();
    let clock = Arc::new(ManualClock::at(NOW));
    let store = Store::open_with(&tmp.url(), StoreOptions::default().clock(clock.clone()).prune_batch(64))
        .await
        .unwrap();
    let audit = store.audit();
    let day = 86_400_000u64;
    let old: Vec<AuditRecord> =
        (0..300).map(|i| record(NOW - 40 * day + i, None, "ann", "acme", 1, i)).collect();
    let recent: Vec<AuditRecord> =
        (0..20).map(|i| record(NOW - day + i, None, "bob", "acme", 2, i)).collect();
    audit.append(&old).await.unwrap();
    audit.append(&recent).await.unwrap();
    let report = store.prune_audit(Duration::from_secs(30 * 86_400)).await.unwrap();
    assert_eq!(report.audit_records, 300);
    assert_eq!(report.batches, 5, "64 x 4 + 44");
    let left = all_pages(&audit, &AuditQuery::new()).await;
    assert_eq!(left.len(), 20);
    assert!(left.iter().all(|r| r.record.identity.user == "bob"));
    // Checkpoint data is not audit data: the run prune and the audit prune are separate.
    assert_eq!(store.prune(Duration::from_secs(86_400)).await.unwrap().finished_runs, 0);
    clock.advance(Duration::from_secs(60 * 86_400));
    assert_eq!(store.prune_audit(Duration::from_secs(30 * 86_400)).await.unwrap().audit_records, 20);
    audit.append(&recent[..1]).await.unwrap();
    let fresh = all_pages(&audit, &AuditQuery::new()).await;
    assert_eq!(fresh.iter().map(|r| r.id).collect::<Vec<_>>(), [321], "ids are never reused");
}
