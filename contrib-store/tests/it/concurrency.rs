//! Concurrent writers: many tasks, many runs, two stores (two "processes") on one file —
//! and no `SQLITE_BUSY` ever surfaces.

use std::time::Duration;

use executus::RunId;
use executus::ports::{CheckpointStore, RunMeta, StoredStatus};
use executus_store::{Store, StoreError, StoreOptions};
use sqlx::Connection;

use crate::common::{TempStore, append, entries, meta};

/// Appends `steps` single-entry saves for a fresh run, then finishes it if `finish`.
async fn drive_run(store: Store, created: u64, steps: u64, finish: bool) -> RunMeta {
    let cp = store.checkpoints();
    let m = meta(RunId::new(), created);
    for seq in 0..steps {
        cp.append(&[append(&m, StoredStatus::Running, seq..seq + 1)]).await.expect("no append may fail");
        if seq % 8 == 0 {
            tokio::task::yield_now().await;
        }
    }
    if finish {
        cp.finish(m.run_id, StoredStatus::Completed).await.expect("no finish may fail");
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_appending_for_many_runs() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let tasks: Vec<_> =
        (0..64u64).map(|i| tokio::spawn(drive_run(store.clone(), i, 40, i % 2 == 0))).collect();
    let mut open = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let m = t.await.unwrap();
        if i % 2 == 1 {
            open.push(m);
        }
    }
    let cp = store.checkpoints();
    for m in &open {
        assert_eq!(cp.load(m.run_id).await.unwrap().unwrap().entries, entries(0..40));
    }
    assert_eq!(cp.list_interrupted().await.unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_stores_on_one_file_like_two_processes() {
    let tmp = TempStore::new();
    let (a, b) = (tmp.open().await, tmp.open().await);
    let mut tasks = Vec::new();
    for i in 0..16u64 {
        tasks.push(tokio::spawn(drive_run(a.clone(), i, 30, false)));
        tasks.push(tokio::spawn(drive_run(b.clone(), 100 + i, 30, i % 4 == 0)));
    }
    // Readers on both sides while the writers run.
    let readers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|s| {
            tokio::spawn(async move {
                for _ in 0..50 {
                    s.checkpoints().list_interrupted().await.expect("no read may fail");
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    let mut metas = Vec::new();
    for t in tasks {
        metas.push(t.await.unwrap());
    }
    for r in readers {
        r.await.unwrap();
    }
    // Each side sees everything the other wrote.
    let listed = b.checkpoints().list_interrupted().await.unwrap();
    assert_eq!(listed.len(), 32 - 4);
    for m in metas.iter().filter(|m| m.created_ms < 100 || (m.created_ms - 100) % 4 != 0) {
        assert_eq!(a.checkpoints().load(m.run_id).await.unwrap().unwrap().entries.len(), 30);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_held_elsewhere_is_waited_out_or_reported_as_contention() {
    let tmp = TempStore::new();
    let opts = StoreOptions::default().busy_timeout(Duration::from_millis(20)).write_attempts(3);
    let store = Store::open_with(&tmp.url(), opts).await.unwrap();
    let cp = store.checkpoints();

    // Another "process" holds the write lock for good: the store gives up with a clear
    // contention error after its attempts, never a raw SQLITE_BUSY.
    let mut other = sqlx::SqliteConnection::connect(&tmp.url()).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let m = meta(RunId::new(), 1);
    let err = cp.append_batch(&[append(&m, StoredStatus::Running, 0..1)]).await.unwrap_err();
    assert!(matches!(err, StoreError::Contended { attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains("stayed locked"), "{err}");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    // A lock released while the store is retrying is simply waited out.
    let patient = Store::open_with(
        &tmp.url(),
        StoreOptions::default().busy_timeout(Duration::from_millis(20)).write_attempts(8),
    )
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(80)).await;
        sqlx::query("COMMIT").execute(&mut other).await.unwrap();
    });
    patient.checkpoints().append(&[append(&m, StoredStatus::Running, 0..2)]).await.unwrap();
    release.await.unwrap();
    assert_eq!(patient.checkpoints().load(m.run_id).await.unwrap().unwrap().entries.len(), 2);
}
