//! Opening: creation, WAL, the ownership marker, and refusing files that are not ours.

use std::path::Path;

use executus::RunId;
use executus::ports::{CheckpointStore, StoredStatus};
use executus_store::{APPLICATION_ID, Store, StoreError};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::common::{TempStore, append, meta};

async fn raw(path: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new().filename(path).create_if_missing(true).connect().await.unwrap()
}

fn siblings(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn creates_a_missing_file_in_wal_mode_marked_as_ours() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    assert_eq!(store.location(), tmp.path.display().to_string());
    let mut conn = raw(&tmp.path).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn).await.unwrap();
    assert_eq!(mode, "wal");
    let id: i32 = sqlx::query_scalar("PRAGMA application_id").fetch_one(&mut conn).await.unwrap();
    assert_eq!(id, APPLICATION_ID);
    let owner: String = sqlx::query_scalar("SELECT value FROM executus_meta WHERE key = 'owner'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(owner, "executus-store");
    let vacuum: i64 = sqlx::query_scalar("PRAGMA auto_vacuum").fetch_one(&mut conn).await.unwrap();
    assert_eq!(vacuum, 2, "incremental auto-vacuum on new files");
    // Reopening an existing store of ours works and keeps its data.
    let run = RunId::new();
    store.checkpoints().append(&[append(&meta(run, 1), StoredStatus::Running, 0..2)]).await.unwrap();
    store.close().await;
    let again = tmp.open().await;
    assert_eq!(again.checkpoints().load(run).await.unwrap().unwrap().entries.len(), 2);
}

#[tokio::test]
async fn an_empty_file_is_adopted() {
    let tmp = TempStore::new();
    std::fs::write(&tmp.path, b"").unwrap();
    let store = tmp.open().await;
    store.checkpoints().list_interrupted().await.unwrap();
}

#[tokio::test]
async fn a_file_that_is_not_sqlite_is_refused_and_left_untouched() {
    let tmp = TempStore::new();
    let text = b"name,balance\nada,100\n".repeat(20);
    std::fs::write(&tmp.path, &text).unwrap();
    let err = Store::open(&tmp.url()).await.unwrap_err();
    assert!(matches!(&err, StoreError::NotSqlite { path } if path == &tmp.path), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&tmp.path.display().to_string()), "{message}");
    assert!(message.contains("not a SQLite database"), "{message}");
    assert_eq!(std::fs::read(&tmp.path).unwrap(), text);
    assert_eq!(siblings(&tmp.path), vec!["store.db"], "no -wal or -shm created");
}

#[tokio::test]
async fn another_programs_sqlite_database_is_refused_and_left_untouched() {
    let tmp = TempStore::new();
    {
        let mut conn = raw(&tmp.path).await;
        sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO users (name) VALUES ('ada')").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let before = std::fs::read(&tmp.path).unwrap();
    let err = Store::open(&tmp.url()).await.unwrap_err();
    match &err {
        StoreError::Foreign { path, application_id: 0, tables } => {
            assert_eq!(path, &tmp.path);
            assert_eq!(tables, &vec!["users".to_owned()]);
        }
        other => panic!("expected Foreign, got {other:?}"),
    }
    assert!(err.to_string().contains(&tmp.path.display().to_string()), "{err}");
    assert!(err.to_string().contains("tables: users"), "{err}");
    assert_eq!(std::fs::read(&tmp.path).unwrap(), before, "the file is byte-for-byte unchanged");
    assert_eq!(siblings(&tmp.path), vec!["store.db"]);
}

#[tokio::test]
async fn a_database_with_another_application_id_is_refused() {
    let tmp = TempStore::new();
    {
        let mut conn = raw(&tmp.path).await;
        sqlx::query("PRAGMA application_id = 42").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }
    let err = Store::open(&tmp.url()).await.unwrap_err();
    assert!(matches!(err, StoreError::Foreign { application_id: 42, .. }), "{err:?}");
}

#[tokio::test]
async fn a_corrupt_database_is_a_clear_error_naming_the_path() {
    let tmp = TempStore::new();
    {
        let store = tmp.open().await;
        store
            .checkpoints()
            .append(&[append(&meta(RunId::new(), 1), StoredStatus::Running, 0..50)])
            .await
            .unwrap();
        store.checkpoint_wal().await.unwrap();
        store.close().await;
    }
    // Keep the 100-byte header (so it still looks like ours) and overwrite the rest of the
    // first page, where the schema lives, with garbage.
    let mut bytes = std::fs::read(&tmp.path).unwrap();
    for (i, b) in bytes[100..4096].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0xa5;
    }
    std::fs::write(&tmp.path, &bytes).unwrap();
    let err = Store::open(&tmp.url()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { path, .. } if path == &tmp.path), "{err:?}");
    assert!(err.to_string().contains(&tmp.path.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&tmp.path).unwrap(), bytes, "a corrupt file of ours is not rewritten either");

    // A file with the SQLite magic and nothing sensible after it.
    let junk = TempStore::new();
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192u32).map(|i| (i * 7 + 3) as u8));
    std::fs::write(&junk.path, &bytes).unwrap();
    let err = Store::open(&junk.url()).await.unwrap_err();
    assert!(matches!(&err, StoreError::Corrupt { path, .. } if path == &junk.path), "{err:?}");
    assert_eq!(std::fs::read(&junk.path).unwrap(), bytes, "a corrupt file is never rewritten");
}

#[tokio::test]
async fn a_file_from_a_newer_build_is_refused() {
    let tmp = TempStore::new();
    tmp.open().await.close().await;
    {
        let mut conn = raw(&tmp.path).await;
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', 1, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }
    let err = Store::open(&tmp.url()).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { version: 9999, .. }), "{err:?}");
    assert!(err.to_string().contains("newer executus-store"), "{err}");
}

#[tokio::test]
async fn bad_urls_are_refused() {
    for url in ["mysql://localhost/db", "sqlite://", "sqlite://x.db?mode=ro", "executus.db"] {
        let err = Store::open(url).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{url}: {err:?}");
        assert!(err.to_string().contains(url), "{err}");
    }
    // A PostgreSQL server that is not there: an error naming it, never its password.
    let err = Store::open("postgres://ada:hunter2@127.0.0.1:1/db").await.unwrap_err();
    assert!(matches!(err, StoreError::Database { op: "connect", .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("postgres://ada@127.0.0.1:1/db"), "{text}");
    assert!(!text.contains("hunter2") && !format!("{err:?}").contains("hunter2"), "{text}");
}

#[tokio::test]
async fn several_openers_of_a_new_file_at_once_all_succeed() {
    let tmp = TempStore::new();
    let url = tmp.url();
    let opens = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { Store::open(&url).await })
    });
    let stores: Vec<Store> =
        futures_join(opens).await.into_iter().map(|r| r.unwrap().expect("every opener succeeds")).collect();
    let run = RunId::new();
    stores[0].checkpoints().append(&[append(&meta(run, 1), StoredStatus::Running, 0..1)]).await.unwrap();
    assert!(stores[5].checkpoints().load(run).await.unwrap().is_some());
    let mut conn = raw(&tmp.path).await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite")).unwrap().count();
    assert_eq!(applied as usize, files, "each migration applied exactly once");
}

async fn futures_join<T>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}

/// Copies `path` and its rollback journal, taken while `conn` is inside a write transaction
/// that has spilled to the file, to `to`: the state a process killed at that moment leaves
/// (a hot journal that no process holds a lock on).
async fn crashed_copy(conn: &mut sqlx::SqliteConnection, path: &Path, to: &Path) {
    sqlx::query("PRAGMA cache_size = 1").execute(&mut *conn).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS filler (x BLOB)").execute(&mut *conn).await.unwrap();
    for _ in 0..64 {
        sqlx::query("INSERT INTO filler VALUES (randomblob(4096))").execute(&mut *conn).await.unwrap();
    }
    let journal =
        |p: &Path| p.with_file_name(format!("{}-journal", p.file_name().unwrap().to_string_lossy()));
    assert!(journal(path).exists(), "the transaction has a rollback journal");
    std::fs::copy(path, to).unwrap();
    std::fs::copy(journal(path), journal(to)).unwrap();
    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
}

#[tokio::test]
async fn a_new_file_left_with_a_hot_journal_by_a_killed_creator_is_recovered_and_adopted() {
    // Regression: a process killed while creating the store (before the switch to WAL) left
    // a hot rollback journal; the read-only ownership check cannot roll it back, so every
    // later open failed with "attempt to write a readonly database" — the store was lost.
    let tmp = TempStore::new();
    let scratch = tmp.path.with_file_name("scratch.db");
    let mut conn = raw(&scratch).await;
    crashed_copy(&mut conn, &scratch, &tmp.path).await;
    conn.close().await.unwrap();
    let store = tmp.open().await;
    let run = RunId::new();
    store.checkpoints().append(&[append(&meta(run, 1), StoredStatus::Running, 0..3)]).await.unwrap();
    assert_eq!(store.checkpoints().load(run).await.unwrap().unwrap().entries.len(), 3);
    store.close().await;
    let mut conn = raw(&tmp.path).await;
    let filler: i64 = sqlx::query_scalar("SELECT count(*) FROM sqlite_schema WHERE name = 'filler'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(filler, 0, "the interrupted transaction was rolled back, not kept");
}

#[tokio::test]
async fn another_programs_database_with_a_hot_journal_is_refused_and_left_untouched() {
    let tmp = TempStore::new();
    let scratch = tmp.path.with_file_name("scratch.db");
    let mut conn = raw(&scratch).await;
    sqlx::query("CREATE TABLE notes (body TEXT)").execute(&mut conn).await.unwrap();
    sqlx::query("INSERT INTO notes VALUES ('keep me')").execute(&mut conn).await.unwrap();
    crashed_copy(&mut conn, &scratch, &tmp.path).await;
    conn.close().await.unwrap();
    let journal = tmp.path.with_file_name("store.db-journal");
    let before = (std::fs::read(&tmp.path).unwrap(), std::fs::read(&journal).unwrap());
    let err = Store::open(&tmp.url()).await.expect_err("refused");
    assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
    let after = (std::fs::read(&tmp.path).unwrap(), std::fs::read(&journal).unwrap());
    assert!(before == after, "neither the file nor its journal was touched");
}
