//! The store's hot queries are served by indexes, not scans (`EXPLAIN QUERY PLAN`).

use executus::RunId;
use executus::ports::{CheckpointStore, StoredStatus};
use executus_store::checkpoint::{LIST_INTERRUPTED, LOAD_ENTRIES, LOAD_RUN, PRUNE_FINISHED};

use crate::common::{TempStore, append, meta};

async fn plan(pool: &sqlx::SqlitePool, sql: &str) -> Vec<String> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {sql}"))
        .bind(1i64)
        .bind(1i64)
        .fetch_all(pool)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.3).collect()
}

fn assert_no_scan(sql: &str, plan: &[String]) {
    for step in plan {
        let bare_scan = step.starts_with("SCAN ") && !step.contains("USING");
        assert!(!bare_scan, "full table scan in {sql:?}: {plan:?}");
        assert!(!step.contains("TEMP B-TREE"), "sort without an index in {sql:?}: {plan:?}");
    }
}

#[tokio::test]
async fn hot_queries_use_indexes() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let cp = store.checkpoints();
    for i in 0..200u64 {
        let m = meta(RunId::new(), i);
        cp.append(&[append(&m, StoredStatus::Running, 0..5)]).await.unwrap();
        if i % 3 == 0 {
            cp.finish(m.run_id, StoredStatus::Completed).await.unwrap();
        }
    }
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();

    let list = plan(&pool, LIST_INTERRUPTED).await;
    assert_no_scan(LIST_INTERRUPTED, &list);
    assert!(list.iter().any(|s| s.contains("USING INDEX checkpoint_runs_interrupted")), "{list:?}");

    let run = plan(&pool, LOAD_RUN).await;
    assert_no_scan(LOAD_RUN, &run);
    assert!(
        run.iter().any(|s| s.starts_with("SEARCH checkpoint_runs USING INDEX") && s.contains("(run_id=?)")),
        "{run:?}"
    );

    let entries = plan(&pool, LOAD_ENTRIES).await;
    assert_no_scan(LOAD_ENTRIES, &entries);
    assert!(
        entries.iter().any(|s| s.starts_with("SEARCH checkpoint_entries USING") && s.contains("(run=?)")),
        "{entries:?}"
    );

    let prune = plan(&pool, PRUNE_FINISHED).await;
    assert_no_scan(PRUNE_FINISHED, &prune);
    assert!(prune.iter().any(|s| s.contains("USING INDEX checkpoint_runs_finished")), "{prune:?}");
}
