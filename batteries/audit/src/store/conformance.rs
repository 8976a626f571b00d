//! A conformance suite for [`AuditStore`] implementations: the contract of the trait as
//! executable checks, with [`AuditQuery::matches`] as the oracle for every filter.
//! `MemoryAuditStore` passes it; a SQL store should run it against a fresh database in its
//! own tests (on a multi-thread runtime, so the concurrency check really races):
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use executus_audit::store::conformance;
//! use executus_audit::{AuditStore, MemoryAuditStore};
//!
//! # async fn demo() -> Result<(), conformance::Violation> {
//! // A SQL store would open a fresh database file here.
//! conformance::check(|| async { Arc::new(MemoryAuditStore::new()) as Arc<dyn AuditStore> }).await
//! # }
//! ```
//!
//! Each check gets a fresh store from the factory. Failures are returned, not panicked, and
//! name the check and what was observed.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use executus::llm::Usage;
use executus::ports::{AuditEvent, AuditRecord, PortError};
use executus::{Identity, RunId};

use super::AuditStore;
use crate::query::{AuditCursor, AuditQuery, MAX_PAGE, StoredAuditRecord};

/// A violated expectation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit store conformance: {check}: {detail}")]
pub struct Violation {
    /// The check that failed.
    pub check: &'static str,
    /// What was expected and what was observed.
    pub detail: String,
}

macro_rules! ensure {
    ($check:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Violation { check: $check, detail: format!($($fmt)+) });
        }
    };
}

fn port(check: &'static str) -> impl Fn(PortError) -> Violation {
    move |e| Violation { check, detail: format!("unexpected store error: {e}") }
}

/// A varied record: three runs, two users, two tenants, five kinds, times 1000 + i.
fn sample(i: u64, runs: &[RunId; 3]) -> AuditRecord {
    let event = match i % 5 {
        0 => AuditEvent::RunStarted { model: format!("m{i}"), parent: None, resumed: false },
        1 => AuditEvent::ModelCall {
            step: 1,
            provider: "p".into(),
            model: "m".into(),
            attempt: 1,
            latency_ms: i,
            usage: Usage { input_tokens: i, ..Usage::default() },
            error: None,
        },
        2 => AuditEvent::ToolCall {
            step: 1,
            tool: "t".into(),
            call_id: format!("c{i}"),
            decision: executus::ports::ToolDecision::Block,
            rule: Some("r".into()),
            reason: None,
            is_error: true,
            latency_ms: 0,
        },
        3 => AuditEvent::LoopProtection {
            trigger: executus::loops::LoopKind::Cycle,
            detail: i.to_string(),
            action: executus::loops::LoopAction::Stop,
        },
        _ => AuditEvent::Failover { from: "a/x".into(), to: "b/y".into(), error: i.to_string() },
    };
    AuditRecord {
        at_ms: 1000 + i,
        // Every seventh record belongs to no run.
        run_id: (!i.is_multiple_of(7)).then(|| runs[(i % 3) as usize]),
        identity: Identity::new(
            if i.is_multiple_of(2) { "ann" } else { "bob" },
            if i.is_multiple_of(3) { "acme" } else { "beta" },
        ),
        agent: Some("agent".into()),
        event,
    }
}

/// Runs every check, each on a fresh store from `fresh`.
///
/// # Errors
/// The first [`Violation`].
pub async fn check<F, Fut>(fresh: F) -> Result<(), Violation>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn AuditStore>>,
{
    appends_keep_order_and_assign_increasing_ids(fresh().await.as_ref()).await?;
    queries_match_the_reference_semantics(fresh().await.as_ref()).await?;
    bad_queries_are_rejected(fresh().await.as_ref()).await?;
    prune_is_bounded_and_ids_are_never_reused(fresh().await.as_ref()).await?;
    concurrent_appends_lose_nothing(fresh().await).await?;
    Ok(())
}

/// Every page of `query`, following cursors.
async fn pages(
    store: &dyn AuditStore,
    query: &AuditQuery,
    check: &'static str,
) -> Result<(Vec<StoredAuditRecord>, usize), Violation> {
    let mut out = Vec::new();
    let mut cursor = query.cursor;
    let mut n = 0;
    loop {
        let page = store.query(&query.clone().after(cursor)).await.map_err(port(check))?;
        n += 1;
        ensure!(
            check,
            page.records.len() <= query.limit,
            "a page of {} exceeds limit {}",
            page.records.len(),
            query.limit
        );
        ensure!(
            check,
            page.next.is_none() || page.records.len() == query.limit.min(MAX_PAGE),
            "a page with a next cursor must be full ({} of {})",
            page.records.len(),
            query.limit
        );
        if let (Some(next), Some(last)) = (page.next, page.records.last()) {
            ensure!(check, next.after_id == last.id, "next cursor {next:?} is not the last id {}", last.id);
        }
        ensure!(check, n <= 100_000, "paging does not terminate");
        out.extend(page.records);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok((out, n)),
        }
    }
}

/// Records come back as appended, in order, with strictly increasing ids.
///
/// # Errors
/// The first [`Violation`].
pub async fn appends_keep_order_and_assign_increasing_ids(store: &dyn AuditStore) -> Result<(), Violation> {
    const C: &str = "appends_keep_order_and_assign_increasing_ids";
    let runs = [RunId::new(), RunId::new(), RunId::new()];
    let records: Vec<AuditRecord> = (0..40).map(|i| sample(i, &runs)).collect();
    for chunk in [&records[..1], &records[1..25], &[][..], &records[25..]] {
        store.append(chunk).await.map_err(port(C))?;
    }
    let (rows, _) = pages(store, &AuditQuery::new().limit(MAX_PAGE), C).await?;
    ensure!(C, rows.len() == 40, "expected 40 records, got {}", rows.len());
    ensure!(C, rows.first().is_some_and(|r| r.id >= 1), "ids start at 1 or above");
    ensure!(C, rows.windows(2).all(|w| w[0].id < w[1].id), "ids must strictly increase");
    for (i, (row, want)) in rows.iter().zip(&records).enumerate() {
        ensure!(C, &row.record == want, "record {i} did not round-trip: {:?} != {want:?}", row.record);
    }
    Ok(())
}

/// Every filter and combination, at several page sizes, returns exactly the records
/// `AuditQuery::matches` accepts, each once, in id order.
///
/// # Errors
/// The first [`Violation`].
pub async fn queries_match_the_reference_semantics(store: &dyn AuditStore) -> Result<(), Violation> {
    const C: &str = "queries_match_the_reference_semantics";
    let runs = [RunId::new(), RunId::new(), RunId::new()];
    let records: Vec<AuditRecord> = (0..150).map(|i| sample(i, &runs)).collect();
    store.append(&records).await.map_err(port(C))?;
    let (all, _) = pages(store, &AuditQuery::new().limit(MAX_PAGE), C).await?;
    let queries = [
        AuditQuery::new(),
        AuditQuery::new().run(runs[0]),
        AuditQuery::new().run(RunId::new()),
        AuditQuery::new().user("ann"),
        AuditQuery::new().tenant("acme"),
        AuditQuery::new().user("bob").tenant("beta"),
        AuditQuery::new().between(Some(1010), Some(1090)),
        AuditQuery::new().between(Some(1100), None),
        AuditQuery::new().between(None, Some(1001)),
        AuditQuery::new().between(Some(1050), Some(1050)),
        AuditQuery::new().kind("tool_call"),
        AuditQuery::new().kind("failover").kind("run_started"),
        AuditQuery::new().kind("no_such_kind"),
        AuditQuery::new().run(runs[1]).user("ann").kind("model_call").between(Some(1020), Some(1140)),
        AuditQuery::new().tenant("beta").after(all.get(60).map(|r| AuditCursor::after(r.id))),
    ];
    for query in queries {
        let want: Vec<&StoredAuditRecord> = all.iter().filter(|r| query.matches(r)).collect();
        for limit in [1, 4, 33, MAX_PAGE] {
            let q = query.clone().limit(limit);
            let (got, n) = pages(store, &q, C).await?;
            let ids: BTreeSet<u64> = got.iter().map(|r| r.id).collect();
            ensure!(C, ids.len() == got.len(), "{q:?}: a record came back twice");
            ensure!(C, got.windows(2).all(|w| w[0].id < w[1].id), "{q:?}: not in ascending id order");
            let got_refs: Vec<&StoredAuditRecord> = got.iter().collect();
            ensure!(C, got_refs == want, "{q:?}: got {} records, want {}", got.len(), want.len());
            let want_pages = want.len().div_ceil(limit).max(1);
            ensure!(
                C,
                n == want_pages,
                "{q:?}: {n} pages, want {want_pages} (next must be None on the last page)"
            );
        }
    }
    Ok(())
}

/// A zero limit and an inverted time range are `PortError::Invalid`; big limits clamp.
///
/// # Errors
/// The first [`Violation`].
pub async fn bad_queries_are_rejected(store: &dyn AuditStore) -> Result<(), Violation> {
    const C: &str = "bad_queries_are_rejected";
    let zero = store.query(&AuditQuery::new().limit(0)).await;
    ensure!(C, matches!(zero, Err(PortError::Invalid { .. })), "limit 0: {zero:?}");
    let inverted = store.query(&AuditQuery::new().between(Some(2), Some(1))).await;
    ensure!(C, matches!(inverted, Err(PortError::Invalid { .. })), "inverted range: {inverted:?}");
    let runs = [RunId::new(), RunId::new(), RunId::new()];
    let many: Vec<AuditRecord> = (0..(MAX_PAGE as u64 + 5)).map(|i| sample(i, &runs)).collect();
    store.append(&many).await.map_err(port(C))?;
    let page = store.query(&AuditQuery::new().limit(usize::MAX)).await.map_err(port(C))?;
    ensure!(
        C,
        page.records.len() == MAX_PAGE,
        "a huge limit clamps to {MAX_PAGE}, got {}",
        page.records.len()
    );
    ensure!(C, page.next.is_some(), "more records remain after a clamped page");
    Ok(())
}

/// Prune deletes at most `max_rows` of the records older than the bound, oldest first, and
/// later appends get ids above every id ever assigned.
///
/// # Errors
/// The first [`Violation`].
pub async fn prune_is_bounded_and_ids_are_never_reused(store: &dyn AuditStore) -> Result<(), Violation> {
    const C: &str = "prune_is_bounded_and_ids_are_never_reused";
    let runs = [RunId::new(), RunId::new(), RunId::new()];
    let records: Vec<AuditRecord> = (0..30).map(|i| sample(i, &runs)).collect();
    store.append(&records).await.map_err(port(C))?;
    let (before, _) = pages(store, &AuditQuery::new().limit(MAX_PAGE), C).await?;
    let max_id = before.last().map_or(0, |r| r.id);
    let mut deleted = Vec::new();
    loop {
        let n = store.prune(1025, 10).await.map_err(port(C))?;
        ensure!(C, n <= 10, "prune deleted {n} > max_rows 10");
        if n == 0 {
            break;
        }
        deleted.push(n);
        ensure!(C, deleted.len() <= 10, "prune does not converge");
    }
    ensure!(C, deleted == [10, 10, 5], "25 old records in steps of 10: {deleted:?}");
    let (after, _) = pages(store, &AuditQuery::new().limit(MAX_PAGE), C).await?;
    ensure!(C, after.len() == 5 && after.iter().all(|r| r.record.at_ms >= 1025), "left: {after:?}");
    // Delete the newest record too, then append: its id must not come back.
    store.prune(u64::MAX, 1000).await.map_err(port(C))?;
    store.append(&records[..1]).await.map_err(port(C))?;
    let (fresh, _) = pages(store, &AuditQuery::new(), C).await?;
    ensure!(
        C,
        fresh.len() == 1 && fresh[0].id > max_id,
        "after pruning everything, a new id must exceed {max_id}: {fresh:?}"
    );
    Ok(())
}

/// 16 concurrent appenders of 25 batches of 4: all 1600 records stored once, each
/// appender's records in its own order.
///
/// # Errors
/// The first [`Violation`].
pub async fn concurrent_appends_lose_nothing(store: Arc<dyn AuditStore>) -> Result<(), Violation> {
    const C: &str = "concurrent_appends_lose_nothing";
    let tasks: Vec<_> = (0..16u64)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for b in 0..25u64 {
                    let batch: Vec<AuditRecord> = (0..4u64)
                        .map(|i| AuditRecord {
                            at_ms: b * 4 + i,
                            run_id: None,
                            identity: Identity::new(format!("w{w}"), "t"),
                            agent: None,
                            event: AuditEvent::Failover {
                                from: String::new(),
                                to: String::new(),
                                error: (b * 4 + i).to_string(),
                            },
                        })
                        .collect();
                    store.append(&batch).await?;
                }
                Ok::<(), PortError>(())
            })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok(r) => r.map_err(port(C))?,
            Err(e) => return Err(Violation { check: C, detail: format!("appender failed: {e}") }),
        }
    }
    for w in 0..16 {
        let (rows, _) =
            pages(store.as_ref(), &AuditQuery::new().user(format!("w{w}")).limit(MAX_PAGE), C).await?;
        let order: Vec<u64> = rows.iter().map(|r| r.record.at_ms).collect();
        let want: Vec<u64> = (0..100).collect();
        ensure!(C, order == want, "appender w{w}: records {order:?}");
    }
    let (all, _) = pages(store.as_ref(), &AuditQuery::new().limit(MAX_PAGE), C).await?;
    ensure!(C, all.len() == 1600, "expected 1600 records, found {}", all.len());
    Ok(())
}
