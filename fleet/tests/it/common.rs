//! Helpers shared by the integration tests.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use executus_fleet::state::Subscription;
use executus_fleet::{Fleet, FleetConfig, HostSpec, MemoryFleetStore, ReconnectPolicy, Snapshot};

/// Every wait in these tests is bounded by this hang guard (many times what it takes).
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// Says loudly that a suite did not run (stderr, and the terminal when there is one, which
/// the test harness does not capture); under `CI=true` a missing peer fails the test instead.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{line} (CI=true: a peer that cannot be used fails the suite)");
    }
    eprintln!("{line}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{line}");
    }
}

/// True when the llama.cpp peer is built; otherwise a loud skip (or a failure in CI).
pub fn llama(test: &str) -> bool {
    if crate::standin::llama_server().is_some() {
        return true;
    }
    skip(test, "llama-server is not built (run ../shared/peers/llama-server.sh setup, or scripts/test.sh)");
    false
}

/// An HTTP client that keeps no idle connections, so a host that goes offline refuses the
/// next request instead of answering on a pooled connection.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .connect_timeout(Duration::from_secs(5))
        .build()
        .expect("client")
}

/// A fast reconnect policy for tests that wait on real time.
pub fn quick() -> ReconnectPolicy {
    ReconnectPolicy {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(100),
        jitter: 0.5,
        threshold: 6,
        cooldown: Duration::from_millis(200),
    }
}

/// A configuration over `hosts` with quick reconnects and perf polling off.
pub fn config(hosts: &[(&str, String)]) -> FleetConfig {
    FleetConfig {
        hosts: hosts.iter().map(|(n, u)| HostSpec::new(*n, u.clone())).collect(),
        reconnect: quick(),
        perf_poll: None,
        ..FleetConfig::default()
    }
}

/// A started fleet over `config`, on a memory store (or `store`).
pub async fn fleet(config: FleetConfig, store: Option<Arc<MemoryFleetStore>>) -> Fleet {
    let store = store.unwrap_or_else(|| Arc::new(MemoryFleetStore::new()));
    let fleet =
        Fleet::builder(config).store(store).http(http()).retention(false).build().await.expect("fleet");
    fleet.start();
    fleet
}

/// Applies deltas until `pred` holds on the consumer's view; returns it.
pub async fn until(sub: &mut Subscription, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let wait = async {
        while !pred(&sub.snapshot) {
            let delta = sub.deltas.recv().await.expect("the fleet keeps running");
            assert!(sub.snapshot.apply(&delta), "deltas arrive in sequence: {delta:?}");
        }
        sub.snapshot.clone()
    };
    match tokio::time::timeout(HANG_GUARD, wait).await {
        Ok(s) => s,
        Err(_) => panic!("hang guard: {what} never happened; last view: {:#?}", sub.snapshot),
    }
}

/// The state of `model` on `host` in `s`.
pub fn state_of(s: &Snapshot, host: &str, model: &str) -> Option<String> {
    s.host(host)?.model_state(model).map(|m| m.to_string())
}
