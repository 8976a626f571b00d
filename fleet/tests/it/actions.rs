//! Actions and leases: the bounded queue and its listing error, the lease conflict and its
//! confirmed takeover, refusals for hosts that are down, lease expiry, the audit.

use std::sync::Arc;
use std::time::Duration;

use executus_fleet::clock::ManualClock;
use executus_fleet::store::{ActionRecord, FleetStore};
use executus_fleet::{ActionKind, ActionRequest, Fleet, FleetError, Leases, Liveness, MemoryFleetStore};

use crate::common::{self, HANG_GUARD, until};
use crate::standin::{ModelDef, Options, Standin};

fn unload(host: &str, model: &str, confirm: bool) -> ActionRequest {
    ActionRequest { host: host.into(), kind: ActionKind::Unload(model.into()), confirm, actor: "ops".into() }
}

async fn audit(fleet: &Fleet) -> Vec<ActionRecord> {
    let mut rows = fleet.actions_log(None, 100).await.expect("audit");
    rows.reverse();
    rows
}

#[tokio::test]
async fn a_full_queue_refuses_with_the_list_of_what_is_queued() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let fleet = common::fleet(common::config(&[("desk", standin.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let held = standin.hold_unloads().await;
    let mut tickets = Vec::new();
    for _ in 0..4 {
        tickets.push(fleet.act(unload("desk", "m", false)).await.expect("admitted"));
    }
    // The head is running (held at the host), three wait behind it.
    let s = until(&mut sub, "the head runs", |s| {
        s.host("desk").is_some_and(|h| h.queue.len() == 4 && h.queue[0].running)
    })
    .await;
    assert!(s.host("desk").expect("desk").queue[1..].iter().all(|q| !q.running));
    let err = fleet.act(unload("desk", "m", false)).await.expect_err("the fifth is refused");
    let FleetError::QueueFull { queued, .. } = &err else { panic!("{err}") };
    assert_eq!(queued.len(), 4);
    let text = err.to_string();
    for t in &tickets {
        assert!(text.contains(&t.id), "the error lists {}: {text}", t.id);
    }
    assert!(text.contains("unload m (running)"), "{text}");
    drop(held);
    for t in tickets {
        tokio::time::timeout(HANG_GUARD, t.done()).await.expect("hang guard").expect("unload done");
    }
    until(&mut sub, "queue drained", |s| s.host("desk").is_some_and(|h| h.queue.is_empty())).await;
    let outcomes: Vec<String> = audit(&fleet).await.iter().map(|r| r.outcome.clone()).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "queued").count(), 4);
    assert_eq!(outcomes.iter().filter(|o| *o == "done").count(), 4);
    assert_eq!(outcomes.iter().filter(|o| *o == "refused").count(), 1);
    assert_eq!(
        standin.requests().iter().filter(|(m, p, _)| m == "POST" && p == "/api/models/unload/m").count(),
        4
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn an_action_on_a_leased_host_needs_confirmation_and_then_takes_it_over() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let mut config = common::config(&[("desk", standin.url())]);
    config.lease_ttl = Duration::from_millis(600);
    let fleet = common::fleet(config, None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    let lease = fleet.lease("desk", "bench").await.expect("lease");
    until(&mut sub, "leased", |s| s.host("desk").is_some_and(|h| h.lease.is_some())).await;
    assert!(fleet.board().view().host("desk").expect("desk").leased, "routing sees the lease");
    let err = fleet.act(unload("desk", "m", false)).await.expect_err("conflict");
    assert!(matches!(&err, FleetError::Leased { purpose, .. } if purpose == "bench"), "{err}");
    assert!(!lease.is_lost());
    let ticket = fleet.act(unload("desk", "m", true)).await.expect("confirmed");
    assert_eq!(ticket.took_over.as_ref().map(|l| l.holder.as_str()), Some(lease.holder()));
    tokio::time::timeout(HANG_GUARD, ticket.done()).await.expect("hang guard").expect("done");
    tokio::time::timeout(HANG_GUARD, lease.lost()).await.expect("the holder notices the takeover");
    assert!(lease.is_lost());
    until(&mut sub, "lease gone", |s| s.host("desk").is_some_and(|h| h.lease.is_none())).await;
    let rows: Vec<(String, String)> =
        audit(&fleet).await.into_iter().map(|r| (r.action, r.outcome)).collect();
    assert_eq!(
        rows,
        [("unload", "conflict"), ("takeover", "done"), ("unload", "queued"), ("unload", "done")]
            .map(|(a, o)| (a.to_owned(), o.to_owned()))
    );
    standin.shutdown().await;
}

#[tokio::test]
async fn actions_on_a_host_that_is_down_are_refused() {
    let standin =
        Standin::start(Options { models: vec![ModelDef::new("m", "tiny-llama3")], ..Options::default() })
            .await;
    let fleet = common::fleet(common::config(&[("desk", standin.url())]), None).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
    standin.go_offline();
    until(&mut sub, "down", |s| s.host("desk").is_some_and(|h| h.liveness == Liveness::Down)).await;
    let err = fleet.act(unload("desk", "m", false)).await.expect_err("offline");
    assert!(matches!(err, FleetError::HostOffline { .. }), "{err}");
    assert!(err.to_string().contains("down since"), "{err}");
    let err = fleet.act(unload("nowhere", "m", false)).await.expect_err("unknown");
    assert!(err.to_string().contains("unknown host \"nowhere\" (configured: desk)"), "{err}");
    assert_eq!(audit(&fleet).await.last().map(|r| r.outcome.as_str()), Some("refused"));
    standin.shutdown().await;
}

#[tokio::test]
async fn a_lease_whose_holder_died_expires_and_a_released_one_is_free_at_once() {
    let clock = ManualClock::at(1_900_000_000_000);
    let store: Arc<dyn FleetStore> = Arc::new(MemoryFleetStore::new());
    let leases = Leases::new(Arc::clone(&store), Arc::new(clock.clone()), Duration::from_secs(30));
    let lease = leases.acquire("desk", "bench").await.expect("free");
    let err = leases.acquire("desk", "bench").await.expect_err("held");
    assert!(err.to_string().contains("already leased for bench"), "{err}");
    // The holder dies: nothing renews it any more.
    lease.abandon();
    clock.advance(Duration::from_secs(29));
    assert!(leases.acquire("desk", "other").await.is_err(), "not expired yet");
    clock.advance(Duration::from_secs(2));
    let second = leases.acquire("desk", "other").await.expect("expired, free");
    assert_eq!(leases.current("desk").await.expect("current").map(|l| l.purpose), Some("other".to_owned()));
    second.release().await.expect("release");
    assert!(leases.current("desk").await.expect("current").is_none());
    // Dropping a lease releases it too.
    let third = leases.acquire("desk", "x").await.expect("free");
    drop(third);
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while leases.current("desk").await.expect("current").is_some() {
        assert!(tokio::time::Instant::now() < deadline, "a dropped lease is released");
        tokio::task::yield_now().await;
    }
}
