//! executus-fleet's stores: the fleet's conformance suite on a SQLite file, in memory and on
//! PostgreSQL; on a SQLite file, a lease held by another process that is killed with SIGKILL
//! and expires, and a fleet that restores its last known state from the file after a restart.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use executus_fleet::clock::SystemClock;
use executus_fleet::store::{ActivityRecord, FleetStore, ModelStateRecord};
use executus_fleet::wire::ModelState;
use executus_fleet::{Fleet, FleetConfig, FleetError, HostSpec, Leases, Liveness};
use executus_store::Store;

use crate::common::TempStore;

const HOLDER: &str = env!("CARGO_BIN_EXE_executus-fleet-lease-holder");
/// Hang guard of every wait below.
const GUARD: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fleet_stores_pass_the_fleet_conformance_suite() {
    let dirs = std::sync::Mutex::new(Vec::new());
    executus_fleet::store::conformance::check(|| async {
        let tmp = TempStore::new();
        let store = tmp.open().await;
        dirs.lock().unwrap().push(tmp);
        store.fleet().unwrap()
    })
    .await
    .unwrap();
    executus_fleet::store::conformance::check(|| async {
        Store::open("sqlite::memory:").await.unwrap().fleet().unwrap()
    })
    .await
    .unwrap();
    // PostgreSQL: a fresh database for every check.
    if crate::pg::admin_url("the_fleet_stores_pass_the_fleet_conformance_suite").is_some() {
        let dbs = std::sync::Mutex::new(Vec::new());
        executus_fleet::store::conformance::check(|| async {
            let db =
                crate::pg::PgDb::create("the_fleet_stores_pass_the_fleet_conformance_suite").await.unwrap();
            let store = db.open().await;
            dbs.lock().unwrap().push(db);
            store.fleet().unwrap()
        })
        .await
        .unwrap();
    }
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_held_by_a_killed_process_expires() {
    let tmp = TempStore::new();
    let store = tmp.open().await;
    let fleet: Arc<dyn FleetStore> = store.fleet().unwrap();
    let ttl = Duration::from_millis(900);
    let mut child = Command::new(HOLDER)
        .args([tmp.path.to_str().unwrap(), "gpu", &ttl.as_millis().to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("holder starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let holder =
        line.trim().strip_prefix("HELD ").unwrap_or_else(|| panic!("holder said {line:?}")).to_owned();

    let leases = Leases::new(Arc::clone(&fleet), Arc::new(SystemClock), Duration::from_secs(30));
    let err = leases.acquire("gpu", "bench").await.expect_err("held by the other process");
    assert!(matches!(&err, FleetError::LeaseHeld { held, .. } if held.holder == holder), "{err}");
    // The holder renews: its expiry moves forward while it lives.
    let first = fleet.current("gpu", Utc::now()).await.unwrap().expect("held").expires;
    let start = Instant::now();
    loop {
        let now = fleet.current("gpu", Utc::now()).await.unwrap().expect("still held while renewed");
        if now.expires > first {
            break;
        }
        assert!(start.elapsed() < GUARD, "the holder never renewed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no release, no more renewals. The lease is free once it expires.
    child.kill().unwrap();
    child.wait().unwrap();
    let last: DateTime<Utc> =
        fleet.current("gpu", Utc::now()).await.unwrap().map_or_else(Utc::now, |l| l.expires);
    let start = Instant::now();
    let lease = loop {
        match leases.acquire("gpu", "bench").await {
            Ok(lease) => break lease,
            Err(FleetError::LeaseHeld { held, .. }) => assert_eq!(held.holder, holder),
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < GUARD, "the dead holder's lease never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(lease.record().acquired >= last, "taken only after the dead holder's expiry");
    lease.release().await.unwrap();
}

#[tokio::test]
async fn a_fleet_restores_its_last_known_state_from_the_file() {
    let tmp = TempStore::new();
    let t = DateTime::from_timestamp(1_900_000_000, 0).unwrap();
    {
        let store = tmp.open().await;
        let fleet = store.fleet().unwrap();
        fleet
            .record_model_states(&[
                ModelStateRecord::new("desk", "qwen", ModelState::Starting, t),
                ModelStateRecord::new("desk", "qwen", ModelState::Ready, t + chrono::Duration::seconds(3)),
            ])
            .await
            .unwrap();
        let mut row = ActivityRecord::new("desk", 7, t, "qwen");
        row.gen_tps = 48.5;
        fleet.insert_activity(&[row]).await.unwrap();
        store.close().await;
    }
    let store = tmp.open().await;
    let config =
        FleetConfig { hosts: vec![HostSpec::new("desk", "http://127.0.0.1:9")], ..FleetConfig::default() };
    let fleet = Fleet::builder(config).store(store.fleet().unwrap()).build().await.unwrap();
    let s = fleet.snapshot().await.unwrap();
    let desk = s.host("desk").unwrap();
    assert_eq!(desk.liveness, Liveness::Reconnecting);
    assert!(desk.stale);
    assert_eq!(desk.model_state("qwen"), Some(&ModelState::Ready));
    assert_eq!(desk.recent.iter().map(|a| (a.id, a.gen_tps)).collect::<Vec<_>>(), [(7, 48.5)]);
    assert_eq!(desk.speeds["qwen"].live, Some(48.5));
}
