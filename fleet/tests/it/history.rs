//! History: a restarted fleet serves its stored state before any host answers; perf polling
//! resumes from the stored watermark; retention rolls raw samples into buckets idempotently.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use executus_fleet::bench::{BenchCell, BenchGrid, BenchRun, Quantiles, SpeedSource};
use executus_fleet::store::{
    ActivityRecord, BenchStore, FleetStore, HistoryStore, PerfSample, bucket_start, rollup,
};
use executus_fleet::{Fleet, Liveness, MemoryFleetStore, Retention};

use crate::common::{self, until};
use crate::standin::{ModelDef, Options, Standin};

fn bench_run(host: &str, model: &str, gen_tps: f64) -> BenchRun {
    let t = DateTime::from_timestamp(1_900_000_000, 0).expect("in range");
    let q = Quantiles { p50: gen_tps, p90: gen_tps };
    BenchRun {
        id: "run-1".into(),
        host: host.into(),
        model: model.into(),
        started: t,
        finished: t,
        grid: BenchGrid::default(),
        cells: vec![BenchCell {
            prompt_tokens: 16,
            gen_tokens: 8,
            concurrency: 1,
            samples: 3,
            errors: 0,
            first_error: None,
            prompt_tokens_seen: 20.0,
            ttft_ms: Quantiles { p50: 30.0, p90: 40.0 },
            prompt_tps: q,
            gen_tps: q,
            source: SpeedSource::Timings,
        }],
        aborted: None,
    }
}

#[tokio::test]
async fn a_restarted_fleet_serves_the_stored_state_before_any_host_answers() {
    let standin = Standin::start(Options {
        models: vec![ModelDef::new("m", "tiny-llama3"), ModelDef::new("n", "tiny-qwen2")],
        ..Options::default()
    })
    .await;
    let store = Arc::new(MemoryFleetStore::new());
    store.save_run(&bench_run("desk", "m", 77.0)).await.expect("run");
    {
        let fleet = common::fleet(common::config(&[("desk", standin.url())]), Some(Arc::clone(&store))).await;
        let mut sub = fleet.subscribe().await.expect("subscribe");
        until(&mut sub, "connected", |s| s.host("desk").is_some_and(|h| h.synced)).await;
        standin.push_activity("m", 10, 31.0);
        standin.push_activity("n", 11, 32.0);
        until(&mut sub, "rows", |s| s.host("desk").is_some_and(|h| h.recent.len() == 2)).await;
    }
    // The process is gone, and so is the host for now.
    standin.go_offline();
    let fleet = Fleet::builder(common::config(&[("desk", standin.url())]))
        .store(Arc::clone(&store) as Arc<dyn FleetStore>)
        .http(common::http())
        .retention(false)
        .build()
        .await
        .expect("fleet");
    // Before starting anything: the first snapshot is already rebuilt from the store.
    let s = fleet.snapshot().await.expect("snapshot");
    let desk = s.host("desk").expect("desk");
    assert_eq!(desk.liveness, Liveness::Reconnecting, "not connected yet");
    assert!(desk.stale, "restored models are marked as last known");
    assert_eq!(
        desk.models.iter().map(|m| (m.id.as_str(), m.state.as_str())).collect::<Vec<_>>(),
        [("m", "stopped"), ("n", "stopped")]
    );
    assert_eq!(desk.recent.iter().map(|a| (a.id, a.gen_tps)).collect::<Vec<_>>(), [(1, 31.0), (2, 32.0)]);
    assert_eq!(desk.speeds["m"].bench, Some(77.0), "bench medians restored");
    assert_eq!(desk.speeds["n"].live, Some(32.0));
    // Once the host is back, its live snapshot replaces the restored one.
    fleet.start();
    let mut sub = fleet.subscribe().await.expect("subscribe");
    standin.come_back().await;
    let s = until(&mut sub, "live again", |s| {
        s.host("desk").is_some_and(|h| h.synced && h.liveness == Liveness::Connected)
    })
    .await;
    assert!(!s.host("desk").expect("desk").stale);
    standin.shutdown().await;
}

#[tokio::test]
async fn perf_polling_resumes_from_the_stored_watermark() {
    let standin = Standin::start(Options { models: vec![], perf: true, ..Options::default() }).await;
    let t1 = Utc::now() - chrono::Duration::seconds(20);
    standin.push_perf(t1, 10.0);
    standin.push_perf(t1 + chrono::Duration::seconds(5), 20.0);
    let store = Arc::new(MemoryFleetStore::new());
    let mut config = common::config(&[("desk", standin.url())]);
    config.perf_poll = Some(Duration::from_millis(20));
    {
        let fleet = common::fleet(config.clone(), Some(Arc::clone(&store))).await;
        let mut sub = fleet.subscribe().await.expect("subscribe");
        let s = until(&mut sub, "two samples", |s| {
            s.host("desk").and_then(|h| h.perf.as_ref()).is_some_and(|p| p.cpu_pct == Some(20.0))
        })
        .await;
        assert_eq!(
            s.host("desk").expect("desk").perf.as_ref().expect("perf").ts,
            executus_fleet::store::to_micros(t1 + chrono::Duration::seconds(5))
        );
    }
    let watermark = store.perf_watermark("desk").await.expect("watermark").expect("some");
    standin.push_perf(t1 + chrono::Duration::seconds(10), 30.0);
    let polls_before = standin.requests().iter().filter(|(_, p, _)| p == "/api/performance").count();
    let fleet = common::fleet(config, Some(Arc::clone(&store))).await;
    let mut sub = fleet.subscribe().await.expect("subscribe");
    until(&mut sub, "the third sample", |s| {
        s.host("desk").and_then(|h| h.perf.as_ref()).is_some_and(|p| p.cpu_pct == Some(30.0))
    })
    .await;
    let samples = store.raw_perf("desk", t1 - chrono::Duration::seconds(1), Utc::now()).await.expect("raw");
    assert_eq!(
        samples.iter().map(|s| s.cpu_pct).collect::<Vec<_>>(),
        [Some(10.0), Some(20.0), Some(30.0)],
        "each once"
    );
    let restarted: Vec<String> = standin
        .queries()
        .into_iter()
        .filter(|(p, _)| p == "/api/performance")
        .skip(polls_before)
        .map(|(_, q)| q)
        .collect();
    let after = watermark.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(
        restarted.first().map(String::as_str),
        Some(format!("after={after}").as_str()),
        "the first poll resumes at the stored watermark"
    );
    standin.shutdown().await;
}

fn sample(host: &str, ts: DateTime<Utc>, cpu: f64) -> PerfSample {
    let mut s = PerfSample::empty(host, ts);
    s.cpu_pct = Some(cpu);
    s
}

#[tokio::test]
async fn retention_rolls_raw_samples_into_buckets_idempotently_and_prunes_old_rows() {
    // On the hour, so that every rolled hour holds twelve whole buckets.
    let now = DateTime::from_timestamp(1_900_000_800, 0).expect("in range");
    let store: Arc<dyn FleetStore> = Arc::new(MemoryFleetStore::new());
    // Two days of a sample every minute, on two hosts.
    let mut samples = Vec::new();
    for host in ["a", "b"] {
        for m in 0..=(48 * 60) {
            samples.push(sample(host, now - chrono::Duration::minutes(m), f64::from(m as u32 % 100)));
        }
    }
    store.insert_perf(&samples).await.expect("insert");
    let old = ActivityRecord::new("a", 1, now - chrono::Duration::days(91), "m");
    let recent = ActivityRecord::new("a", 2, now - chrono::Duration::days(89), "m");
    store.insert_activity(&[old, recent]).await.expect("rows");
    let policy = Retention { chunk_rows: 7, ..Retention::default() };

    // A crash right after an hour's buckets were written but before its raw rows were
    // deleted: the next pass recomputes the same buckets and deletes the rows.
    let cutoff = now - chrono::Duration::hours(24);
    let first_hour_start =
        bucket_start(samples.iter().filter(|s| s.host == "a").map(|s| s.ts).min().expect("min"));
    let crashed: Vec<PerfSample> = store
        .raw_perf("a", first_hour_start, first_hour_start + chrono::Duration::hours(1))
        .await
        .expect("raw");
    store.upsert_buckets(&rollup(&crashed)).await.expect("half done");

    let report = executus_fleet::retention::run_once(&store, &policy, now).await.expect("pass");
    assert_eq!(report.hours_rolled, 48, "24 hours of each host: {report:?}");
    assert_eq!(report.activity_deleted, 1);
    for host in ["a", "b"] {
        let oldest = store.oldest_raw_perf(host).await.expect("oldest").expect("recent raw stays");
        assert_eq!(oldest, cutoff, "raw samples older than the window are gone, the rest stays");
        let buckets = store.buckets(host, now - chrono::Duration::days(3), now).await.expect("buckets");
        assert_eq!(buckets.len(), 24 * 12);
        assert!(buckets.iter().all(|b| b.samples == 5), "every 5-minute bucket holds its 5 samples");
        assert!(buckets.iter().all(|b| b.start < cutoff));
    }
    let before = store.buckets("a", now - chrono::Duration::days(3), now).await.expect("buckets");
    let again = executus_fleet::retention::run_once(&store, &policy, now).await.expect("pass");
    assert_eq!(
        (again.hours_rolled, again.raw_deleted, again.activity_deleted),
        (0, 0, 0),
        "nothing left to do"
    );
    assert_eq!(
        store.buckets("a", now - chrono::Duration::days(3), now).await.expect("buckets"),
        before,
        "identical"
    );
    // Much later, the buckets age out too.
    let later = now + chrono::Duration::days(95);
    let report = executus_fleet::retention::run_once(&store, &policy, later).await.expect("pass");
    assert!(report.buckets_deleted >= 2 * 24 * 12, "{report:?}");
    assert!(store.buckets("a", now - chrono::Duration::days(3), later).await.expect("buckets").is_empty());
    assert!(store.recent_activity(None, 10).await.expect("rows").is_empty());
}
