use chrono::{DateTime, Utc};

use super::*;
use crate::connector::Liveness;
use crate::wire::{InflightRequest, InflightUpdate, ModelState, ModelStatus};

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).expect("in range")
}

fn machine() -> FleetState {
    FleetState::new([("a", "http://a"), ("b", "http://b")], t(0))
}

fn models(list: &[(&str, ModelState)]) -> Vec<ModelStatus> {
    list.iter().map(|(id, s)| ModelStatus::new(*id, s.clone())).collect()
}

fn req(id: &str) -> InflightRequest {
    serde_json::from_value(serde_json::json!({"id": id, "model": "m", "req_path": "/v1/chat/completions"}))
        .expect("entry")
}

#[test]
fn facts_bump_the_host_sequence_and_no_op_facts_do_not() {
    let mut m = machine();
    let d = m.apply(Fact::Connected { host: "a".into(), at: t(1) }).expect("a reset");
    assert_eq!((d.host.as_str(), d.seq), ("a", 1));
    let host = m.host("a").expect("a");
    assert_eq!((host.liveness, host.since), (Liveness::Connected, t(1)));
    let d = m
        .apply(Fact::Models { host: "a".into(), models: models(&[("x", ModelState::Ready)]) })
        .expect("models");
    assert_eq!(d.seq, 2);
    assert!(
        m.apply(Fact::Models { host: "a".into(), models: models(&[("x", ModelState::Ready)]) }).is_none()
    );
    assert!(m.apply(Fact::Liveness { host: "a".into(), liveness: Liveness::Connected, at: t(2) }).is_none());
    assert!(m.apply(Fact::Models { host: "nope".into(), models: vec![] }).is_none(), "unknown host");
    assert_eq!(m.host("b").expect("b").seq, 0, "sequences are per host");
}

#[test]
fn a_reconnect_rebuilds_instead_of_merging() {
    let mut m = machine();
    m.apply(Fact::Connected { host: "a".into(), at: t(1) });
    m.apply(Fact::Models {
        host: "a".into(),
        models: models(&[("x", ModelState::Ready), ("y", ModelState::Stopped)]),
    });
    m.apply(Fact::Inflight { host: "a".into(), update: InflightUpdate::Snapshot(vec![req("1"), req("2")]) });
    assert_eq!(m.host("a").expect("a").in_flight, 2);
    m.apply(Fact::Liveness { host: "a".into(), liveness: Liveness::Reconnecting, at: t(5) });
    m.apply(Fact::Connected { host: "a".into(), at: t(9) });
    let a = m.host("a").expect("a");
    assert!(a.models.is_empty() && a.in_flight == 0 && a.inflight.is_empty(), "stale state cleared: {a:?}");
    assert!(!a.synced);
    assert_eq!((a.liveness, a.since), (Liveness::Connected, t(9)));
    // The new stream's replay fills it again — only with what it says.
    m.apply(Fact::Models { host: "a".into(), models: models(&[("y", ModelState::Ready)]) });
    m.apply(Fact::Inflight { host: "a".into(), update: InflightUpdate::Snapshot(vec![]) });
    let a = m.host("a").expect("a");
    assert_eq!(a.models, [ModelView { id: "y".into(), state: ModelState::Ready }]);
    assert!(a.synced);
    assert_eq!(a.in_flight, 0);
}

#[test]
fn inflight_updates_and_legacy_totals() {
    let mut m = machine();
    let apply = |m: &mut FleetState, u| m.apply(Fact::Inflight { host: "a".into(), update: u });
    apply(&mut m, InflightUpdate::Upsert(req("1")));
    apply(&mut m, InflightUpdate::Upsert(req("2")));
    apply(&mut m, InflightUpdate::Upsert(req("2")));
    assert_eq!(m.host("a").expect("a").in_flight, 2);
    apply(&mut m, InflightUpdate::Remove("1".into()));
    assert_eq!(m.host("a").expect("a").in_flight, 1);
    apply(&mut m, InflightUpdate::Total(5));
    let a = m.host("a").expect("a");
    assert_eq!((a.in_flight, a.inflight.len()), (5, 0));
}

#[test]
fn activity_feeds_the_sparkline_and_the_live_speed() {
    let mut m = machine();
    let row = |id: u64, tps: f64| ActivityView {
        id,
        ts: t(id as i64),
        model: "x".into(),
        path: "/v1/chat/completions".into(),
        status: 200,
        output_tokens: 10,
        gen_tps: tps,
        duration_ms: 100,
    };
    let rows: Vec<ActivityView> = (1..=40).map(|i| row(i, 10.0)).collect();
    m.apply(Fact::Activity { host: "a".into(), rows });
    let a = m.host("a").expect("a");
    assert_eq!(a.recent.len(), machine::SPARK_LEN);
    assert_eq!(a.recent.back().expect("newest").id, 40);
    assert_eq!(a.speeds["x"].live, Some(10.0));
    m.apply(Fact::Bench { host: "a".into(), model: "x".into(), gen_tps: 55.0 });
    assert_eq!(m.host("a").expect("a").speeds["x"].best(), Some(55.0), "a bench figure wins");
}

#[test]
fn a_consumer_applying_deltas_after_its_snapshot_converges() {
    let mut m = machine();
    m.apply(Fact::Connected { host: "a".into(), at: t(1) });
    let mut view = m.snapshot();
    let mut deltas = Vec::new();
    deltas.extend(m.apply(Fact::Models { host: "a".into(), models: models(&[("x", ModelState::Starting)]) }));
    deltas.extend(m.apply(Fact::Models { host: "a".into(), models: models(&[("x", ModelState::Ready)]) }));
    deltas.extend(m.apply(Fact::Liveness { host: "b".into(), liveness: Liveness::Down, at: t(3) }));
    for d in &deltas {
        assert!(view.apply(d), "{d:?}");
    }
    assert_eq!(view, m.snapshot());
    // A delta already contained, or one after a gap, is refused.
    assert!(!view.apply(&deltas[0]));
    let mut gap = deltas[1].clone();
    gap.seq += 5;
    assert!(!view.apply(&gap));
}

/// Many writers change many hosts while consumers subscribe at random moments: every
/// consumer's snapshot plus its deltas equals the final state, and each host's deltas arrive
/// with contiguous sequence numbers (none lost, none repeated).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_and_deltas_never_lose_or_repeat_under_concurrent_changes() {
    let hosts: Vec<(String, String)> = (0..6).map(|i| (format!("h{i}"), format!("http://h{i}"))).collect();
    let state = StateHandle::spawn(hosts.clone(), t(0)).await.expect("spawn");
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let state = state.clone();
            tokio::spawn(async move {
                for i in 0..300u64 {
                    let host = format!("h{}", (w + i as usize) % 6);
                    let fact = match i % 4 {
                        0 => {
                            Fact::Inflight { host, update: InflightUpdate::Upsert(req(&format!("{w}-{i}"))) }
                        }
                        1 => {
                            Fact::Inflight { host, update: InflightUpdate::Remove(format!("{w}-{}", i - 1)) }
                        }
                        2 => Fact::Models {
                            host,
                            models: models(&[(
                                &format!("m{w}"),
                                if i % 8 == 2 { ModelState::Ready } else { ModelState::Stopped },
                            )]),
                        },
                        _ => Fact::Activity {
                            host,
                            rows: vec![ActivityView {
                                id: i,
                                ts: t(i as i64),
                                model: format!("m{w}"),
                                path: "/".into(),
                                status: 200,
                                output_tokens: 1,
                                gen_tps: i as f64,
                                duration_ms: 1,
                            }],
                        },
                    };
                    state.apply(fact);
                    if i % 37 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..8)
        .map(|c| {
            let state = state.clone();
            tokio::spawn(async move {
                for _ in 0..c * 3 {
                    tokio::task::yield_now().await;
                }
                let sub = state.subscribe().await.expect("subscribe");
                (sub.snapshot, sub.deltas)
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    // A marker fact after every writer: consumers read until they have seen it.
    let marker =
        state.apply_now(Fact::Liveness { host: "h0".into(), liveness: Liveness::Down, at: t(999) }).await;
    let marker = marker.expect("alive").expect("a change");
    let last = state.snapshot().await.expect("alive");
    for c in consumers {
        let (mut view, mut deltas) = c.await.expect("consumer");
        let mut seen_marker = view.host("h0").expect("h0").seq >= marker.seq;
        let mut next: std::collections::HashMap<String, u64> =
            view.hosts.iter().map(|h| (h.name.clone(), h.seq + 1)).collect();
        while !seen_marker || view != last {
            let d = tokio::time::timeout(std::time::Duration::from_secs(60), deltas.recv())
                .await
                .expect("deltas keep coming")
                .expect("subscription open");
            let want = next.get_mut(&d.host).expect("known host");
            assert_eq!(d.seq, *want, "contiguous, exactly once: {d:?}");
            *want += 1;
            assert!(view.apply(&d));
            seen_marker |= d == marker;
        }
        assert_eq!(view, last);
    }
}
