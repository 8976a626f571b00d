//! The checkpoint store's contract: on every backend (a SQLite file, SQLite in memory,
//! PostgreSQL) where it is the port's contract, on a real SQLite file where it is about the
//! file.

use executus::RunId;
use executus::ports::{CheckpointStore, Entry, PortError, RunAppend, StoredStatus};
use executus_store::{Store, StoreOptions};

use crate::common::{TempStore, append, entries, meta};
use crate::conformance::{Db, backends};

#[tokio::test]
async fn round_trip_survives_reopening_the_store() {
    const TEST: &str = "round_trip_survives_reopening_the_store";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let run = RunId::new();
        let m = meta(run, 1_000);
        {
            let store = db.open().await;
            let cp = store.checkpoints();
            cp.append(&[append(&m, StoredStatus::Running, 0..1)]).await.unwrap();
            cp.append(&[append(&m, StoredStatus::Running, 1..5)]).await.unwrap();
            if db.shared() {
                store.close().await;
            }
        }
        let store = db.open().await;
        let loaded = store.checkpoints().load(run).await.unwrap().expect("stored");
        assert_eq!(loaded.meta, m, "{backend:?}");
        assert_eq!(loaded.status, StoredStatus::Running);
        assert_eq!(loaded.entries, entries(0..5));
        assert!(store.checkpoints().load(RunId::new()).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn appends_are_idempotent_and_a_gap_rejects_the_whole_batch() {
    const TEST: &str = "appends_are_idempotent_and_a_gap_rejects_the_whole_batch";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let store = db.open().await;
        let cp = store.checkpoints();
        let (a, b) = (meta(RunId::new(), 1), meta(RunId::new(), 2));
        cp.append(&[append(&a, StoredStatus::Running, 0..5)]).await.unwrap();
        // A redelivered batch (overlapping old and new entries) stores each seq once.
        let stats = cp.append_batch(&[append(&a, StoredStatus::Running, 0..7)]).await.unwrap();
        assert_eq!(stats.inserted, 2);
        assert_eq!(cp.load(a.run_id).await.unwrap().unwrap().entries, entries(0..7));

        // Run b is fine, run a has a gap: nothing of the batch is written.
        let batch = [
            append(&b, StoredStatus::Running, 0..3),
            RunAppend { meta: a.clone(), status: StoredStatus::Running, entries: entries(9..10) },
        ];
        match cp.append(&batch).await {
            Err(PortError::Invalid { port: "checkpoint", reason, .. }) => {
                assert!(reason.contains("sequence gap: expected 7, got 9"), "{reason}");
            }
            other => panic!("expected a gap error, got {other:?}"),
        }
        assert!(cp.load(b.run_id).await.unwrap().is_none(), "run b of the failed batch must not exist");
        assert_eq!(cp.load(a.run_id).await.unwrap().unwrap().entries.len(), 7);
    }
}

#[tokio::test]
async fn payloads_come_back_byte_for_byte_with_and_without_compression() {
    let tmp = TempStore::new();
    let run = RunId::new();
    let m = meta(run, 5);
    let big: Vec<u8> = serde_json::to_vec(&serde_json::json!({
        "v": 1, "fact": "steered", "text": "all work and no play ".repeat(50_000)
    }))
    .unwrap();
    let future = br#"{"v":7,"fact":"steered","text":"from a newer build"}"#.to_vec();
    let payloads: Vec<Vec<u8>> = vec![
        b"{\"v\":1,\"fact\":\"steered\",\"text\":\"hi\"}".to_vec(),
        Vec::new(),
        big,
        vec![0, 159, 146, 150, 255, 0, 1],
        future.clone(),
        (0..3000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect(),
    ];
    let half = payloads.len() / 2;
    {
        let store = Store::open_with(&tmp.url(), StoreOptions::default().compress(true)).await.unwrap();
        let first: Vec<Entry> = payloads[..half]
            .iter()
            .enumerate()
            .map(|(i, p)| Entry { seq: i as u64, payload: p.clone() })
            .collect();
        store
            .checkpoints()
            .append(&[RunAppend { meta: m.clone(), status: StoredStatus::Running, entries: first }])
            .await
            .unwrap();
        store.close().await;
    }
    // Reopened without compression: old compressed rows stay readable, new rows verbatim.
    let store = Store::open_with(&tmp.url(), StoreOptions::default().compress(false)).await.unwrap();
    let rest: Vec<Entry> = payloads[half..]
        .iter()
        .enumerate()
        .map(|(i, p)| Entry { seq: (half + i) as u64, payload: p.clone() })
        .collect();
    store
        .checkpoints()
        .append(&[RunAppend { meta: m.clone(), status: StoredStatus::Running, entries: rest }])
        .await
        .unwrap();
    let loaded = store.checkpoints().load(run).await.unwrap().unwrap();
    let got: Vec<Vec<u8>> = loaded.entries.iter().map(|e| e.payload.clone()).collect();
    assert_eq!(got, payloads);
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    let encodings: Vec<i64> = sqlx::query_scalar("SELECT encoding FROM checkpoint_entries ORDER BY seq")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(encodings[..half].contains(&1), "the big payload was stored compressed: {encodings:?}");
    assert!(encodings[half..].iter().all(|&e| e == 0), "{encodings:?}");
    // The core reads the unknown version by name: the store passed it through intact.
    match executus::checkpoint::decode(&got[4]) {
        Err(PortError::UnknownVersion { version: 7, supported: 1, .. }) => {}
        other => panic!("expected the core to report version 7, got {other:?}"),
    }
}

#[tokio::test]
async fn finish_deletes_the_log_and_keeps_the_final_status() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let cp = store.checkpoints();
    let (done, failed, open) = (meta(RunId::new(), 1), meta(RunId::new(), 2), meta(RunId::new(), 3));
    cp.append(&[
        append(&done, StoredStatus::Running, 0..4),
        append(&failed, StoredStatus::Running, 0..2),
        append(&open, StoredStatus::Running, 0..3),
    ])
    .await
    .unwrap();
    cp.finish(done.run_id, StoredStatus::Completed).await.unwrap();
    cp.finish(failed.run_id, StoredStatus::Failed).await.unwrap();
    assert!(cp.load(done.run_id).await.unwrap().is_none());
    assert_eq!(cp.status(done.run_id).await.unwrap(), Some(StoredStatus::Completed));
    assert_eq!(cp.status(failed.run_id).await.unwrap(), Some(StoredStatus::Failed));
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    let left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM checkpoint_entries").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 3, "only the open run's entries remain");
    let listed: Vec<RunId> =
        cp.list_interrupted().await.unwrap().into_iter().map(|(m, _)| m.run_id).collect();
    assert_eq!(listed, vec![open.run_id]);
    match cp.finish(open.run_id, StoredStatus::Running).await {
        Err(PortError::Invalid { reason, .. }) => {
            assert!(reason.contains("not a finished status"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Finishing an unknown run is harmless (the core may finish a run whose start failed).
    cp.finish(RunId::new(), StoredStatus::Failed).await.unwrap();
}

#[tokio::test]
async fn interrupted_runs_are_listed_oldest_first_with_their_status() {
    const TEST: &str = "interrupted_runs_are_listed_oldest_first_with_their_status";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let store = db.open().await;
        let cp = store.checkpoints();
        let runs: Vec<_> = [30u64, 10, 20, 5].iter().map(|&t| meta(RunId::new(), t)).collect();
        cp.append(&[
            append(&runs[0], StoredStatus::Running, 0..1),
            append(&runs[1], StoredStatus::AwaitingApproval, 0..2),
            append(&runs[2], StoredStatus::Running, 0..1),
            append(&runs[3], StoredStatus::Running, 0..1),
        ])
        .await
        .unwrap();
        cp.finish(runs[3].run_id, StoredStatus::Completed).await.unwrap();
        let listed = cp.list_interrupted().await.unwrap();
        let got: Vec<_> = listed.iter().map(|(m, s)| (m.created_ms, *s)).collect();
        assert_eq!(
            got,
            vec![
                (10, StoredStatus::AwaitingApproval),
                (20, StoredStatus::Running),
                (30, StoredStatus::Running)
            ]
        );
        assert_eq!(listed[0].0, runs[1]);
        // A status-only save (no entries) moves a run between running and awaiting approval.
        cp.append(&[RunAppend { meta: runs[1].clone(), status: StoredStatus::Running, entries: vec![] }])
            .await
            .unwrap();
        assert_eq!(cp.load(runs[1].run_id).await.unwrap().unwrap().status, StoredStatus::Running);
    }
}

#[tokio::test]
async fn a_reused_run_id_after_finish_starts_afresh() {
    const TEST: &str = "a_reused_run_id_after_finish_starts_afresh";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let store = db.open().await;
        let cp = store.checkpoints();
        let run = RunId::new();
        cp.append(&[append(&meta(run, 1), StoredStatus::Running, 0..5)]).await.unwrap();
        cp.finish(run, StoredStatus::Completed).await.unwrap();
        let mut again = meta(run, 99);
        again.agent = "second".into();
        cp.append(&[append(&again, StoredStatus::Running, 0..2)]).await.unwrap();
        let loaded = cp.load(run).await.unwrap().unwrap();
        assert_eq!(loaded.meta, again);
        assert_eq!(loaded.entries, entries(0..2));
    }
}

#[tokio::test]
async fn a_row_with_an_unknown_encoding_is_an_error_naming_it() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let run = RunId::new();
    store.checkpoints().append(&[append(&meta(run, 1), StoredStatus::Running, 0..3)]).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    sqlx::query("UPDATE checkpoint_entries SET encoding = 9 WHERE seq = 1").execute(&pool).await.unwrap();
    match store.checkpoints().load(run).await {
        Err(PortError::Corrupt { port: "checkpoint", message }) => {
            assert!(message.contains("unknown payload encoding 9"), "{message}");
            assert!(message.contains(&format!("run {run} entry 1")), "{message}");
        }
        other => panic!("expected a corrupt-data error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_in_memory_store_keeps_the_same_contract() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let cp = store.checkpoints();
    let run = RunId::new();
    let m = meta(run, 7);
    cp.append(&[append(&m, StoredStatus::Running, 0..3)]).await.unwrap();
    cp.append(&[append(&m, StoredStatus::Running, 2..6)]).await.unwrap();
    assert_eq!(cp.load(run).await.unwrap().unwrap().entries, entries(0..6));
    assert_eq!(cp.list_interrupted().await.unwrap().len(), 1);
    cp.finish(run, StoredStatus::Completed).await.unwrap();
    assert!(cp.list_interrupted().await.unwrap().is_empty());
    // Two in-memory stores are two databases.
    let other = Store::open("sqlite::memory:").await.unwrap();
    assert_eq!(other.checkpoints().status(run).await.unwrap(), None);
}

#[tokio::test]
async fn one_group_commit_with_hundreds_of_runs_and_a_run_twice() {
    const TEST: &str = "one_group_commit_with_hundreds_of_runs_and_a_run_twice";
    for backend in backends(TEST) {
        let db = Db::new(backend, TEST).await;
        let store = db.open().await;
        let cp = store.checkpoints();
        let runs: Vec<_> = (0..230).map(|i| meta(RunId::new(), i)).collect();
        let mut batch: Vec<RunAppend> = runs.iter().map(|m| append(m, StoredStatus::Running, 0..3)).collect();
        // The same run twice in one batch: entries in order, the last status wins.
        batch.push(append(&runs[7], StoredStatus::AwaitingApproval, 3..300));
        let stats = cp.append_batch(&batch).await.unwrap();
        assert_eq!(stats.runs, 231);
        assert_eq!(stats.inserted, 230 * 3 + 297);
        let seven = cp.load(runs[7].run_id).await.unwrap().unwrap();
        assert_eq!(seven.status, StoredStatus::AwaitingApproval);
        assert_eq!(seven.entries, entries(0..300));
        assert_eq!(cp.load(runs[229].run_id).await.unwrap().unwrap().entries, entries(0..3));
        assert_eq!(cp.list_interrupted().await.unwrap().len(), 230);
    }
}

#[tokio::test]
async fn a_run_is_claimed_by_one_holder_at_a_time_and_released_on_drop() {
    let tmp = TempStore::new();
    let (first, second) = (tmp.open().await, tmp.open().await);
    let run = RunId::new();
    let held = first.checkpoints().claim(run).await.unwrap().expect("a free run is granted");
    // Another handle on the file — as another process would be — is refused while held.
    assert!(second.checkpoints().claim(run).await.unwrap().is_none());
    assert!(first.checkpoints().claim(run).await.unwrap().is_none(), "not even the same handle twice");
    let other = second.checkpoints().claim(RunId::new()).await.unwrap();
    assert!(other.is_some(), "claims are per run");
    let claims = tmp.path.with_file_name("store.db.claims");
    assert!(claims.join(format!("{run}.lock")).exists());
    drop(held);
    assert!(!claims.join(format!("{run}.lock")).exists(), "released claims leave no file");
    let again = second.checkpoints().claim(run).await.unwrap();
    assert!(again.is_some(), "released on drop");
    // In memory: nothing to share, every claim is granted.
    let memory = Store::open("sqlite::memory:").await.unwrap();
    let a = memory.checkpoints().claim(run).await.unwrap();
    assert!(a.is_some() && memory.checkpoints().claim(run).await.unwrap().is_some());
}
