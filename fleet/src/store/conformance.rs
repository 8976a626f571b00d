//! The contract every fleet store backend must meet, as one check: [`check`] runs it on
//! fresh stores from a factory and returns the first broken rule.
//!
//! The memory store runs it in this crate's tests; executus-store runs it on SQLite and
//! PostgreSQL.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::{ActionRecord, ActivityRecord, FleetStore, LeaseRecord, ModelStateRecord, PerfSample, rollup};
use crate::bench::{BenchGrid, BenchRun};
use crate::wire::ModelState;

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap_or_default()
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)*) => {
        if !$cond {
            return Err(format!($($msg)*));
        }
    };
}

fn e(err: impl std::fmt::Display) -> String {
    err.to_string()
}

/// Runs every check, each on a fresh store from `make`.
///
/// # Errors
/// The first rule the backend breaks, described.
pub async fn check<F, Fut>(make: F) -> Result<(), String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn FleetStore>>,
{
    activity(make().await).await.map_err(|m| format!("activity: {m}"))?;
    perf(make().await).await.map_err(|m| format!("perf: {m}"))?;
    model_states(make().await).await.map_err(|m| format!("model states: {m}"))?;
    hosts(make().await).await.map_err(|m| format!("history hosts: {m}"))?;
    bench(make().await).await.map_err(|m| format!("bench: {m}"))?;
    actions(make().await).await.map_err(|m| format!("actions: {m}"))?;
    leases(make().await).await.map_err(|m| format!("leases: {m}"))?;
    concurrent_leases(make().await).await.map_err(|m| format!("concurrent leases: {m}"))?;
    Ok(())
}

async fn activity(s: Arc<dyn FleetStore>) -> Result<(), String> {
    ensure!(s.activity_watermark("a").await.map_err(e)?.is_none(), "an empty store has no watermark");
    let mut r1 = ActivityRecord::new("a", 1, t(1), "m");
    r1.gen_tps = 42.5;
    r1.output_tokens = 64;
    r1.error = Some("boom".into());
    let rows =
        vec![r1.clone(), ActivityRecord::new("a", 2, t(2), "m"), ActivityRecord::new("b", 1, t(3), "m")];
    ensure!(s.insert_activity(&rows).await.map_err(e)? == 3, "three new rows are counted");
    ensure!(s.insert_activity(&rows).await.map_err(e)? == 0, "rows seen before are not counted again");
    // Same id, another time: the host's ids restarted; it is a different row.
    ensure!(
        s.insert_activity(&[ActivityRecord::new("a", 1, t(50), "m")]).await.map_err(e)? == 1,
        "same id at another time is a new row"
    );
    ensure!(s.activity_watermark("a").await.map_err(e)? == Some(2), "watermark is the largest id");
    let recent = s.recent_activity(Some("a"), 10).await.map_err(e)?;
    let ids: Vec<(u64, DateTime<Utc>)> = recent.iter().map(|r| (r.remote_id, r.ts)).collect();
    ensure!(ids == [(1, t(50)), (2, t(2)), (1, t(1))], "newest first, got {ids:?}");
    ensure!(recent[2] == r1, "a row reads back as written: {:?}", recent[2]);
    ensure!(s.recent_activity(None, 2).await.map_err(e)?.len() == 2, "limit applies");
    ensure!(s.recent_activity(None, 10).await.map_err(e)?.len() == 4, "all hosts");
    ensure!(s.prune_activity(t(3), 1).await.map_err(e)? == 1, "prune honours its row cap");
    ensure!(s.prune_activity(t(3), 10).await.map_err(e)? == 1, "then prunes the rest before the cutoff");
    ensure!(s.recent_activity(None, 10).await.map_err(e)?.len() == 2, "rows at or after the cutoff stay");
    Ok(())
}

fn sample(host: &str, at: DateTime<Utc>, cpu: f64) -> PerfSample {
    let mut p = PerfSample::empty(host, at);
    p.cpu_pct = Some(cpu);
    p.gpu_util_pct = Some(cpu / 2.0);
    p.vram_used_mb = Some(1000.0 + cpu);
    p
}

async fn perf(s: Arc<dyn FleetStore>) -> Result<(), String> {
    let samples: Vec<PerfSample> = (0..24).map(|i| sample("a", t(i * 30), i as f64)).collect();
    ensure!(s.insert_perf(&samples).await.map_err(e)? == 24, "new samples are counted");
    ensure!(s.insert_perf(&samples[..3]).await.map_err(e)? == 0, "duplicates are not");
    s.insert_perf(&[sample("b", t(0), 1.0)]).await.map_err(e)?;
    ensure!(s.perf_watermark("a").await.map_err(e)? == Some(t(690)), "watermark is the newest sample");
    ensure!(s.oldest_raw_perf("a").await.map_err(e)? == Some(t(0)), "oldest sample");
    let hosts = s.perf_hosts().await.map_err(e)?;
    ensure!(hosts == ["a", "b"], "hosts with samples, sorted: {hosts:?}");
    let window = s.raw_perf("a", t(60), t(120)).await.map_err(e)?;
    ensure!(window == samples[2..4], "a half-open window, oldest first, as written: {window:?}");
    let buckets = rollup(&s.raw_perf("a", t(0), t(3600)).await.map_err(e)?);
    ensure!(!buckets.is_empty(), "samples roll up");
    s.upsert_buckets(&buckets).await.map_err(e)?;
    s.upsert_buckets(&buckets).await.map_err(e)?;
    let stored = s.buckets("a", t(-3600), t(3600)).await.map_err(e)?;
    ensure!(stored == buckets, "upserting twice keeps one identical copy: {stored:?} vs {buckets:?}");
    ensure!(s.delete_raw_perf("a", t(0), t(300)).await.map_err(e)? == 10, "deletes the window only");
    ensure!(s.raw_perf("a", t(0), t(3600)).await.map_err(e)?.len() == 14, "the rest stays");
    ensure!(s.prune_buckets(t(3600), 1).await.map_err(e)? == 1, "bucket prune honours its cap");
    ensure!(s.prune_buckets(t(3600), 100).await.map_err(e)? == buckets.len() as u64 - 1, "then the rest");
    Ok(())
}

async fn model_states(s: Arc<dyn FleetStore>) -> Result<(), String> {
    let records = [
        ModelStateRecord::new("a", "x", ModelState::Starting, t(1)),
        ModelStateRecord::new("a", "x", ModelState::Ready, t(2)),
        ModelStateRecord::new("a", "y", ModelState::Stopped, t(1)),
        ModelStateRecord::new("b", "x", ModelState::Other("sleeping".into()), t(5)),
    ];
    s.record_model_states(&records).await.map_err(e)?;
    let latest = s.latest_model_states("a").await.map_err(e)?;
    ensure!(latest == [records[1].clone(), records[2].clone()], "latest per model, by model: {latest:?}");
    let b = s.latest_model_states("b").await.map_err(e)?;
    ensure!(b == [records[3].clone()], "unknown states round-trip: {b:?}");
    let history = s.model_state_history("a").await.map_err(e)?;
    ensure!(history == records[..3], "every change of a host, in the order recorded: {history:?}");
    ensure!(s.model_state_history("c").await.map_err(e)?.is_empty(), "an unknown host has no history");
    Ok(())
}

async fn hosts(s: Arc<dyn FleetStore>) -> Result<(), String> {
    ensure!(s.history_hosts().await.map_err(e)?.is_empty(), "an empty store names no host");
    s.insert_activity(&[ActivityRecord::new("d", 1, t(1), "m")]).await.map_err(e)?;
    s.insert_perf(&[sample("b", t(0), 1.0), sample("b", t(30), 2.0)]).await.map_err(e)?;
    let buckets = rollup(&[sample("c", t(0), 1.0)]);
    s.upsert_buckets(&buckets).await.map_err(e)?;
    s.record_model_states(&[ModelStateRecord::new("a", "x", ModelState::Ready, t(1))]).await.map_err(e)?;
    s.insert_activity(&[ActivityRecord::new("a", 1, t(1), "m")]).await.map_err(e)?;
    let hosts = s.history_hosts().await.map_err(e)?;
    ensure!(hosts == ["a", "b", "c", "d"], "every host the history names, once, sorted: {hosts:?}");
    Ok(())
}

fn run(id: &str, host: &str, model: &str, at: i64) -> BenchRun {
    BenchRun {
        id: id.into(),
        host: host.into(),
        model: model.into(),
        started: t(at),
        finished: t(at + 10),
        grid: BenchGrid::default(),
        cells: Vec::new(),
        aborted: (at == 3).then(|| "lease lost".into()),
    }
}

async fn bench(s: Arc<dyn FleetStore>) -> Result<(), String> {
    for r in [run("r1", "a", "m", 1), run("r2", "a", "n", 2), run("r3", "b", "m", 3)] {
        s.save_run(&r).await.map_err(e)?;
    }
    let all: Vec<String> = s.runs(None, None, 10).await.map_err(e)?.into_iter().map(|r| r.id).collect();
    ensure!(all == ["r3", "r2", "r1"], "newest first: {all:?}");
    let am: Vec<String> =
        s.runs(Some("a"), Some("m"), 10).await.map_err(e)?.into_iter().map(|r| r.id).collect();
    ensure!(am == ["r1"], "filtered by host and model: {am:?}");
    ensure!(s.runs(None, Some("m"), 1).await.map_err(e)?.len() == 1, "limit applies");
    let mut again = run("r1", "a", "m", 1);
    again.aborted = Some("redo".into());
    s.save_run(&again).await.map_err(e)?;
    let r1 = s.runs(Some("a"), Some("m"), 10).await.map_err(e)?;
    ensure!(r1 == [again], "saving an id again replaces it: {r1:?}");
    ensure!(
        s.runs(Some("b"), None, 10).await.map_err(e)? == [run("r3", "b", "m", 3)],
        "a run reads back whole"
    );
    Ok(())
}

async fn actions(s: Arc<dyn FleetStore>) -> Result<(), String> {
    let rec = |id: &str, host: &str, at: i64| ActionRecord {
        id: id.into(),
        at: t(at),
        host: host.into(),
        action: "unload".into(),
        model: Some("m".into()),
        actor: "ops".into(),
        outcome: "queued".into(),
        detail: String::new(),
    };
    for r in [rec("1", "a", 1), rec("2", "b", 2), rec("3", "a", 3)] {
        s.record_action(&r).await.map_err(e)?;
    }
    let all: Vec<String> = s.actions(None, 10).await.map_err(e)?.into_iter().map(|r| r.id).collect();
    ensure!(all == ["3", "2", "1"], "newest first: {all:?}");
    let a = s.actions(Some("a"), 1).await.map_err(e)?;
    ensure!(a == [rec("3", "a", 3)], "filtered, limited, whole: {a:?}");
    Ok(())
}

async fn leases(s: Arc<dyn FleetStore>) -> Result<(), String> {
    let first = s.acquire("h", "one", "bench", t(0), t(30)).await.map_err(e)?;
    let expected = LeaseRecord {
        host: "h".into(),
        holder: "one".into(),
        purpose: "bench".into(),
        acquired: t(0),
        expires: t(30),
    };
    ensure!(first.as_ref() == Ok(&expected), "a free host is granted: {first:?}");
    let second = s.acquire("h", "two", "bench", t(10), t(40)).await.map_err(e)?;
    ensure!(second == Err(expected.clone()), "a held host is refused with its holder: {second:?}");
    ensure!(s.acquire("g", "two", "bench", t(10), t(40)).await.map_err(e)?.is_ok(), "leases are per host");
    ensure!(s.current("h", t(10)).await.map_err(e)? == Some(expected.clone()), "current lease");
    ensure!(s.renew("h", "one", t(60)).await.map_err(e)?, "the holder renews");
    ensure!(!s.renew("h", "two", t(90)).await.map_err(e)?, "another cannot renew");
    ensure!(s.acquire("h", "two", "bench", t(45), t(75)).await.map_err(e)?.is_err(), "renewal extended it");
    ensure!(s.current("h", t(60)).await.map_err(e)?.is_none(), "expired at its time");
    let taken = s.acquire("h", "two", "bench", t(61), t(91)).await.map_err(e)?;
    ensure!(taken.as_ref().is_ok_and(|l| l.holder == "two"), "an expired lease is taken: {taken:?}");
    ensure!(!s.renew("h", "one", t(100)).await.map_err(e)?, "the old holder lost it");
    ensure!(!s.release("h", "one").await.map_err(e)?, "the old holder cannot release it");
    let revoked = s.revoke("h").await.map_err(e)?;
    ensure!(revoked.as_ref().is_some_and(|l| l.holder == "two"), "revoke returns the lease: {revoked:?}");
    ensure!(s.current("h", t(62)).await.map_err(e)?.is_none(), "revoked");
    ensure!(!s.renew("h", "two", t(100)).await.map_err(e)?, "a revoked holder cannot renew");
    ensure!(s.acquire("h", "three", "x", t(62), t(92)).await.map_err(e)?.is_ok(), "free again");
    ensure!(s.release("h", "three").await.map_err(e)?, "the holder releases");
    ensure!(s.current("h", t(63)).await.map_err(e)?.is_none(), "released");
    Ok(())
}

async fn concurrent_leases(s: Arc<dyn FleetStore>) -> Result<(), String> {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.acquire("h", &format!("holder-{i}"), "bench", t(0), t(0) + Duration::seconds(30)).await
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        match task.await.map_err(e)? {
            Ok(Ok(_)) => granted += 1,
            Ok(Err(_)) => {}
            Err(err) => return Err(err.to_string()),
        }
    }
    ensure!(granted == 1, "exactly one of 16 concurrent acquirers wins, got {granted}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryFleetStore;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn the_memory_store_passes() {
        check(|| async { Arc::new(MemoryFleetStore::new()) as Arc<dyn FleetStore> }).await.unwrap();
    }
}
