//! `executus-fleet-lease-holder`: the holder process of the fleet lease test
//! (`tests/it/fleet.rs`). It opens the SQLite store at `<db>`, takes the lease on `<host>`
//! for `bench` with a time-to-live of `<ttl-ms>` (renewed every third of it), prints
//! `HELD <holder>` and keeps renewing until it is killed.
//!
//! ```text
//! executus-fleet-lease-holder <db> <host> <ttl-ms>
//! ```

use std::sync::Arc;
use std::time::Duration;

use executus_fleet::Leases;
use executus_fleet::clock::SystemClock;
use executus_fleet::store::FleetStore;
use executus_store::{Store, StoreOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let [_, db, host, ttl] = args.as_slice() else {
        return Err("usage: executus-fleet-lease-holder <db> <host> <ttl-ms>".into());
    };
    let ttl = Duration::from_millis(ttl.parse()?);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let store = Store::open_path(db, StoreOptions::default()).await?;
        let fleet: Arc<dyn FleetStore> = store.fleet()?;
        let leases = Leases::new(fleet, Arc::new(SystemClock), ttl);
        let lease = leases.acquire(host, "bench").await?;
        println!("HELD {}", lease.holder());
        // Renewals run on the lease's own task; this process only has to stay alive.
        std::future::pending::<()>().await;
        drop(lease);
        Ok::<(), BoxError>(())
    })
}
