//! The connector against the stand-in: reconnect waits within the jitter bounds, the circuit
//! breaker's open / half-open / recovered cycle with timed liveness changes, gap recovery of
//! activity, legacy hosts, keys. Waits go through a gated sleeper and a manual clock: no
//! test sleeps for a backoff.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use executus_fleet::clock::{GatedSleeper, ManualClock, SleepGate, utc_now};
use executus_fleet::state::Change;
use executus_fleet::{Fleet, FleetConfig, HostSpec, Liveness, MemoryFleetStore, ReconnectPolicy};
use executus_llm::Secret;

use crate::common::{self, HANG_GUARD, until};
use crate::standin::{ModelDef, Options, Standin};

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_900_000_000, 0).expect("in range")
}

async fn gated(standin: &Standin) -> (Fleet, SleepGate, ManualClock) {
    let clock = ManualClock::at(t0().timestamp_millis() as u64);
    let (sleeper, gate) = GatedSleeper::new(Some(clock.clone()));
    let config = FleetConfig {
        hosts: vec![HostSpec::new("desk", standin.url())],
        reconnect: ReconnectPolicy::default(),
        perf_poll: None,
        ..FleetConfig::default()
    };
    let fleet = Fleet::builder(config)
        .store(Arc::new(MemoryFleetStore::new()))
        .clock(Arc::new(clock.clone()))
        .sleeper(Arc::new(sleeper))
        .http(common::http())
        .retention(false)
        .build()
        .await
        .expect("fleet");
    fleet.start();
    (fleet, gate, clock)
}

async fn next_sleep(gate: &mut SleepGate) -> executus_fleet::clock::HeldSleep {
    tokio::time::timeout(HANG_GUARD, gate.next()).await.expect("the connector sleeps").expect("gate open")
}

fn within(d: Duration, base_secs: u64) -> bool {
    let base = Duration::from_secs(base_secs);
    d >= base && d <= base + base / 2
}

#[tokio::test]
async fn a_dropped_stream_reconnects_after_a_jittered_delay() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let (fleet, mut gate, clock) = gated(&standin).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "first connection", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let mut waits = Vec::new();
    for round in 0..12 {
        let dropped_at = utc_now(&clock);
        standin.drop_streams();
        let held = next_sleep(&mut gate).await;
        assert!(within(held.duration, 1), "round {round}: wait {:?} outside [1 s, 1.5 s]", held.duration);
        waits.push(held.duration);
        let s = until(&mut sub, "reconnecting", |s| {
            s.host("desk").is_some_and(|h| h.liveness == Liveness::Reconnecting)
        })
        .await;
        assert_eq!(s.host("desk").expect("desk").since, dropped_at, "the change is stamped with the clock");
        held.release();
        until(&mut sub, "reconnected", |s| {
            s.host("desk").is_some_and(|h| h.liveness == Liveness::Connected && h.synced)
        })
        .await;
    }
    waits.sort();
    waits.dedup();
    assert!(waits.len() > 1, "the jitter varies: {waits:?}");
    assert_eq!(standin.streams_served(), 13);
    standin.shutdown().await;
}

#[tokio::test]
async fn six_failures_open_the_circuit_then_a_half_open_probe_recovers() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let (fleet, mut gate, clock) = gated(&standin).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "first connection", |s| s.host("desk").is_some_and(|h| h.synced)).await;

    let mut liveness_changes = Vec::new();
    let mut watch = fleet.subscribe().await.expect("subscribe");
    standin.go_offline();
    let dropped_at = utc_now(&clock);
    // Backoff before attempts 1..6, then the circuit opens: cooldown waits.
    let expected = [1, 2, 4, 8, 16, 30];
    for (n, base) in expected.iter().enumerate() {
        let held = next_sleep(&mut gate).await;
        assert!(within(held.duration, *base), "wait {} {:?} outside [{base} s, 1.5x]", n + 1, held.duration);
        held.release();
    }
    let open_at = utc_now(&clock);
    let cooldown = next_sleep(&mut gate).await;
    assert!(within(cooldown.duration, 60), "circuit open: a cooldown, {:?}", cooldown.duration);
    let s = until(&mut sub, "down", |s| s.host("desk").is_some_and(|h| h.liveness == Liveness::Down)).await;
    assert_eq!(s.host("desk").expect("desk").since, open_at, "down since the sixth failure");
    assert_eq!(s.host("desk").expect("desk").failures, 6);
    // Half-open: one probe per cooldown; it fails while the host is away.
    cooldown.release();
    let again = next_sleep(&mut gate).await;
    assert!(within(again.duration, 60), "the failed probe waits another cooldown: {:?}", again.duration);
    assert_eq!(fleet.snapshot().await.expect("s").host("desk").expect("desk").liveness, Liveness::Down);
    // The host comes back; the next probe closes the circuit.
    standin.come_back().await;
    again.release();
    let s = until(&mut sub, "recovered", |s| {
        s.host("desk").is_some_and(|h| h.liveness == Liveness::Connected && h.synced)
    })
    .await;
    let recovered_at = utc_now(&clock);
    assert_eq!(s.host("desk").expect("desk").since, recovered_at);
    assert_eq!(s.host("desk").expect("desk").failures, 0);

    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(200), watch.deltas.recv()).await {
        match d.change {
            Change::Liveness { liveness, since } => liveness_changes.push((liveness, since)),
            Change::Reset(view) => liveness_changes.push((view.liveness, view.since)),
            _ => {}
        }
    }
    assert_eq!(
        liveness_changes,
        [
            (Liveness::Reconnecting, dropped_at),
            (Liveness::Down, open_at),
            (Liveness::Connected, recovered_at)
        ],
        "connected -> reconnecting -> down -> connected, each with its time"
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn activity_missed_while_disconnected_is_recovered_exactly_once() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let store = Arc::new(MemoryFleetStore::new());
    let fleet = common::fleet(common::config(&[("desk", standin.url())]), Some(Arc::clone(&store))).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let mut seen: Vec<u64> = Vec::new();
    let mut watch = fleet.subscribe().await.expect("subscribe");

    standin.push_activity("m", 10, 20.0);
    until(&mut sub, "row 1", |s| s.host("desk").is_some_and(|h| h.recent.len() == 1)).await;
    standin.go_offline();
    until(&mut sub, "offline noticed", |s| s.host("desk").is_some_and(|h| h.liveness != Liveness::Connected))
        .await;
    standin.push_activity("m", 11, 21.0);
    standin.push_activity("m", 12, 22.0);
    standin.come_back().await;
    let s = until(&mut sub, "rows 2 and 3", |s| s.host("desk").is_some_and(|h| h.recent.len() == 3)).await;
    assert_eq!(s.host("desk").expect("desk").recent.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2, 3]);
    // Another reconnect with nothing new fetches again and stores nothing twice.
    standin.drop_streams();
    until(&mut sub, "drop noticed", |s| s.host("desk").is_some_and(|h| h.liveness == Liveness::Reconnecting))
        .await;
    until(&mut sub, "reconnected", |s| {
        s.host("desk").is_some_and(|h| h.synced && h.liveness == Liveness::Connected)
    })
    .await;
    standin.push_activity("m", 13, 23.0);
    until(&mut sub, "row 4", |s| s.host("desk").is_some_and(|h| h.recent.len() == 4)).await;

    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_millis(300), watch.deltas.recv()).await {
        if let Change::Activity { rows } = d.change {
            seen.extend(rows.iter().map(|r| r.id));
        }
    }
    assert_eq!(seen, [1, 2, 3, 4], "each row reported once");
    let stored = fleet.activity(Some("desk"), 100).await.expect("stored");
    let mut ids: Vec<u64> = stored.iter().map(|r| r.remote_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4], "each row stored once");
    assert_eq!(stored.iter().find(|r| r.remote_id == 3).expect("row 3").gen_tps, 22.0);
    standin.shutdown().await;
}

#[tokio::test]
async fn a_legacy_host_feeds_rows_from_metrics_events_and_counts_in_flight() {
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("m", "tiny-llama3")],
        legacy: true,
        ..Options::default()
    })
    .await;
    standin.push_activity("m", 7, 14.0);
    let fleet = common::fleet(common::config(&[("old", standin.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "the replayed ring", |s| s.host("old").is_some_and(|h| h.synced && h.recent.len() == 1))
        .await;
    standin.push_activity("m", 8, 16.0);
    until(&mut sub, "a live row", |s| s.host("old").is_some_and(|h| h.recent.len() == 2)).await;
    // A reconnect replays the whole ring again: nothing is stored twice.
    standin.drop_streams();
    until(&mut sub, "reconnected", |s| s.host("old").is_some_and(|h| h.liveness == Liveness::Reconnecting))
        .await;
    until(&mut sub, "synced", |s| s.host("old").is_some_and(|h| h.synced)).await;
    standin.push_activity("m", 9, 18.0);
    let s = until(&mut sub, "third row", |s| s.host("old").is_some_and(|h| h.recent.len() == 3)).await;
    assert_eq!(s.host("old").expect("old").recent.iter().map(|a| a.id).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(fleet.activity(Some("old"), 10).await.expect("rows").len(), 3);
    standin.shutdown().await;
}

#[tokio::test]
async fn the_host_key_is_sent_and_never_shown() {
    let key = "sk-fleet-host-0123456789";
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("m", "tiny-llama3")],
        key: Some(key.into()),
        ..Options::default()
    })
    .await;
    let mut config = common::config(&[("desk", standin.url())]);
    config.hosts[0].key = Some(Secret::new(key));
    let fleet = common::fleet(config, None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected with the key", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    assert!(standin.requests().iter().any(|(_, path, k)| path == "/api/events" && k.as_deref() == Some(key)));

    // A wrong key: the host's 401 is reported with its message, without either key.
    let mut config = common::config(&[("desk", standin.url())]);
    config.hosts[0].key = Some(Secret::new("sk-wrong-key-987654"));
    let wrong = common::fleet(config, None).await;
    let err = wrong.client("desk").expect("client").unload("m").await.expect_err("401");
    let text = format!("{err} {err:?}");
    assert!(text.contains("401") && text.contains("invalid or missing API key"), "{text}");
    assert!(!text.contains("sk-wrong-key") && !text.contains(key), "{text}");
    let status = serde_json::to_string(&wrong.status().await.expect("status")).expect("json");
    assert!(!status.contains("sk-"), "{status}");
    standin.shutdown().await;
}
