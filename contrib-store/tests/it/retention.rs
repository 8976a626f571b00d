//! Retention: old finished runs go, in small transactions; open runs are never touched.

use std::sync::Arc;
use std::time::Duration;

use executus::RunId;
use executus::llm::ManualClock;
use executus::ports::{CheckpointStore, StoredStatus};
use executus_store::{Store, StoreOptions};

use crate::common::{TempStore, append, meta};

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn prune_deletes_only_old_finished_runs() {
    let tmp = TempStore::new();
    let clock = Arc::new(ManualClock::at(1_000_000_000_000));
    let store = tmp.open_with_clock(clock.clone()).await;
    let cp = store.checkpoints();
    let old_done = meta(RunId::new(), 1);
    let old_failed = meta(RunId::new(), 2);
    let old_running = meta(RunId::new(), 3);
    let old_waiting = meta(RunId::new(), 4);
    cp.append(&[
        append(&old_done, StoredStatus::Running, 0..3),
        append(&old_failed, StoredStatus::Running, 0..3),
        append(&old_running, StoredStatus::Running, 0..3),
        append(&old_waiting, StoredStatus::AwaitingApproval, 0..3),
    ])
    .await
    .unwrap();
    cp.finish(old_done.run_id, StoredStatus::Completed).await.unwrap();
    cp.finish(old_failed.run_id, StoredStatus::Failed).await.unwrap();
    clock.advance(20 * DAY);
    let recent_done = meta(RunId::new(), 5);
    cp.append(&[append(&recent_done, StoredStatus::Running, 0..2)]).await.unwrap();
    cp.finish(recent_done.run_id, StoredStatus::Completed).await.unwrap();
    clock.advance(DAY);

    let report = store.prune(7 * DAY).await.unwrap();
    assert_eq!(report.finished_runs, 2);
    assert_eq!(cp.status(old_done.run_id).await.unwrap(), None);
    assert_eq!(cp.status(old_failed.run_id).await.unwrap(), None);
    assert_eq!(cp.status(recent_done.run_id).await.unwrap(), Some(StoredStatus::Completed));
    // Running and awaiting runs are untouched however old, log included.
    assert_eq!(cp.load(old_running.run_id).await.unwrap().unwrap().entries.len(), 3);
    assert_eq!(cp.load(old_waiting.run_id).await.unwrap().unwrap().status, StoredStatus::AwaitingApproval);
    assert_eq!(store.prune(7 * DAY).await.unwrap().finished_runs, 0, "prune is idempotent");
}

#[tokio::test]
async fn prune_works_in_bounded_batches() {
    let tmp = TempStore::new();
    let clock = Arc::new(ManualClock::at(50 * DAY.as_millis() as u64));
    let store = Store::open_with(&tmp.url(), StoreOptions::default().clock(clock.clone()).prune_batch(100))
        .await
        .unwrap();
    let cp = store.checkpoints();
    let runs: Vec<_> = (0..250).map(|i| meta(RunId::new(), i)).collect();
    let batch: Vec<_> = runs.iter().map(|m| append(m, StoredStatus::Running, 0..2)).collect();
    cp.append(&batch).await.unwrap();
    for m in &runs[..230] {
        cp.finish(m.run_id, StoredStatus::Completed).await.unwrap();
    }
    clock.advance(30 * DAY);
    let report = store.prune(DAY).await.unwrap();
    assert_eq!(report.finished_runs, 230);
    assert_eq!(report.batches, 3, "100 + 100 + 30 rows");
    assert_eq!(cp.list_interrupted().await.unwrap().len(), 20);
}
