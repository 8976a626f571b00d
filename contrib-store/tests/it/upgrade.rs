//! A database written by an earlier build (checkpoints only: migration 1) upgrades in place
//! when opened: the battery tables are added, the runs already stored stay loadable.

use std::str::FromStr;

use executus::RunId;
use executus::ports::{CheckpointStore, StoredStatus};
use executus_persona::{Persona, PersonaStore};
use executus_store::APPLICATION_ID;
use sqlx::sqlite::SqliteConnectOptions;

use crate::common::{TempStore, append, entries, meta};

#[tokio::test]
async fn a_checkpoints_only_database_upgrades_in_place() {
    let tmp = TempStore::new();
    // Build the file the way the first release did: the marker and migration 1 only.
    let only_first = tempfile::tempdir().unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite/0001_checkpoints.sql"),
        only_first.path().join("0001_checkpoints.sql"),
    )
    .unwrap();
    let options = SqliteConnectOptions::from_str(&tmp.url()).unwrap().create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::query(&format!("PRAGMA application_id = {APPLICATION_ID}")).execute(&pool).await.unwrap();
    sqlx::migrate::Migrator::new(only_first.path()).await.unwrap().run(&pool).await.unwrap();
    // A run the old build stored: header plus four verbatim entries.
    let run = meta(RunId::new(), 7);
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO checkpoint_runs (run_id, agent, identity, parent, status, created_ms, updated_ms) \
         VALUES (?1, ?2, ?3, NULL, 'running', 7, 7) RETURNING id",
    )
    .bind(run.run_id.to_string())
    .bind(&run.agent)
    .bind(serde_json::to_string(&run.identity).unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    for e in entries(0..4) {
        sqlx::query("INSERT INTO checkpoint_entries (run, seq, encoding, payload) VALUES (?1, ?2, 0, ?3)")
            .bind(id)
            .bind(e.seq as i64)
            .bind(e.payload)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    // Open with this build: the new migrations are applied, nothing is lost, the run goes on
    // and the new stores work.
    let store = tmp.open().await;
    assert_eq!(store.checkpoints().load(run.run_id).await.unwrap().unwrap().entries, entries(0..4));
    store.checkpoints().append(&[append(&run, StoredStatus::Running, 4..6)]).await.unwrap();
    assert_eq!(store.checkpoints().load(run.run_id).await.unwrap().unwrap().entries, entries(0..6));
    store.personas().put(Persona::new("helper", "You help.", "fast")).await.unwrap();
    assert_eq!(store.personas().list().await.unwrap(), ["helper"]);
    let pool = sqlx::SqlitePool::connect(&tmp.url()).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 10]);
    pool.close().await;
}
