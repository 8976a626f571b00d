//! The writer: backpressure, no loss, order, retries, reporting, flush and shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use executus::ports::AuditSink;
use executus_audit::{AuditQuery, AuditStore, AuditWriter, MemoryAuditStore, WriterOptions, WriterStats};
use tracing::Level;

use crate::capture::Capture;
use crate::common::{Fault, FlakyStore, GatedStore, SlowStore, all_pages, marker, record};

fn options(capacity: usize, max_batch: usize, max_retries: u32) -> WriterOptions {
    WriterOptions {
        capacity,
        max_batch,
        max_retries,
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_channel_makes_record_wait_and_loses_nothing() {
    let store = Arc::new(GatedStore { inner: MemoryAuditStore::new(), gate: tokio::sync::Semaphore::new(0) });
    let writer = Arc::new(AuditWriter::with_options(store.clone(), options(1, 1, 0)));
    let accepted = Arc::new(AtomicUsize::new(0));
    let producer = {
        let (writer, accepted) = (writer.clone(), accepted.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                writer.record(record(i, None, "u", "t", &i.to_string())).await;
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Let everything run until idle: the task holds record 0 in a blocked append, record 1
    // fills the one-slot channel, and the producer is parked in record 2.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "record() must wait while the channel is full");
    assert_eq!(writer.queued(), 1);
    assert!(!producer.is_finished());
    assert_eq!(store.inner.len(), 0);

    store.gate.add_permits(1000);
    producer.await.unwrap();
    writer.flush().await;
    let markers: Vec<String> = store.inner.all().iter().map(|r| marker(&r.record).to_owned()).collect();
    let expected: Vec<String> = (0..20).map(|i: u64| i.to_string()).collect();
    assert_eq!(markers, expected, "every record stored once, in order");
    assert_eq!(writer.stats(), WriterStats { written: 20, failed: 0, retried: 0 });
}

#[tokio::test(start_paused = true)]
async fn a_slow_store_with_concurrent_producers_keeps_every_record_in_per_producer_order() {
    let store = Arc::new(SlowStore {
        inner: MemoryAuditStore::new(),
        delay: Duration::from_millis(50),
        appends: AtomicUsize::new(0),
    });
    let writer = Arc::new(AuditWriter::with_options(store.clone(), options(2, 4, 0)));
    let started = tokio::time::Instant::now();
    let producers: Vec<_> = (0..5)
        .map(|p| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for i in 0..40u64 {
                    writer.record(record(i, None, &format!("p{p}"), "t", &format!("{p}:{i}"))).await;
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    // 200 records through a 2-slot channel into 4-record batches of 50 ms each: the
    // producers could only finish by waiting for the store.
    assert!(started.elapsed() >= Duration::from_millis(50 * (200 / 4 - 2)), "{:?}", started.elapsed());
    writer.flush().await;
    assert_eq!(store.inner.len(), 200);
    assert!(store.appends.load(Ordering::SeqCst) <= 200 / 2, "records travel in batches");
    for p in 0..5 {
        let (rows, _) = all_pages(store.as_ref(), AuditQuery::new().user(format!("p{p}")).limit(7)).await;
        let got: Vec<String> = rows.iter().map(|r| marker(&r.record).to_owned()).collect();
        let want: Vec<String> = (0..40).map(|i| format!("{p}:{i}")).collect();
        assert_eq!(got, want);
    }
    assert_eq!(writer.stats().written, 200);
}

#[tokio::test(start_paused = true)]
async fn a_store_that_recovers_is_retried_with_backoff_and_nothing_is_lost() {
    let store = Arc::new(FlakyStore::new(Fault::Backend, Some(3)));
    let writer = AuditWriter::with_options(store.clone(), options(16, 16, 5));
    let started = tokio::time::Instant::now();
    for i in 0..3 {
        writer.record(record(i, None, "u", "t", "r")).await;
    }
    writer.flush().await;
    // Backoff 100 + 200 + 400 ms before the fourth attempt succeeds.
    assert_eq!(started.elapsed(), Duration::from_millis(700));
    assert_eq!(store.inner.len(), 3);
    let stats = writer.stats();
    assert_eq!((stats.written, stats.failed, stats.retried), (3, 0, 3));
}

#[tokio::test(start_paused = true)]
async fn a_failing_store_is_retried_then_reported_with_a_running_count() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let store = Arc::new(FlakyStore::new(Fault::Backend, None));
    let writer = AuditWriter::with_options(store.clone(), options(16, 2, 2));
    for i in 0..3 {
        writer.record(record(i, None, "u", "t", &format!("m{i}"))).await;
    }
    writer.flush().await;
    let stats = writer.stats();
    assert_eq!(stats.failed, 3);
    assert_eq!(stats.written, 0);
    // Batches of at most two records, each tried 1 + 2 times.
    let batches = store.calls.load(Ordering::SeqCst) / 3;
    assert_eq!(store.calls.load(Ordering::SeqCst), batches * 3);
    assert_eq!(stats.retried, batches as u64 * 2);

    let errors = capture.at(Level::ERROR, "executus::audit");
    assert_eq!(errors.len(), batches, "one error report per lost batch: {errors:?}");
    let last = errors.last().unwrap();
    assert_eq!(last.fields["failed_total"], "3");
    assert!(last.fields["error"].contains("disk on fire"));
    let reported: String = errors.iter().map(|e| e.fields["unstored"].clone()).collect();
    for i in 0..3 {
        assert!(reported.contains(&format!("m{i}")), "lost record m{i} is in the report");
    }
    let warnings = capture.at(Level::WARN, "executus::audit");
    assert_eq!(warnings.len() as u64, stats.retried, "each retry is logged");

    // The writer keeps working after a loss.
    let healthy = Arc::new(MemoryAuditStore::new());
    let writer = AuditWriter::with_options(healthy.clone(), options(16, 2, 2));
    writer.record(record(9, None, "u", "t", "after")).await;
    writer.flush().await;
    assert_eq!(healthy.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn invalid_batches_are_not_retried_and_panics_count_as_failed_attempts() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let invalid = Arc::new(FlakyStore::new(Fault::Invalid, Some(1)));
    let writer = AuditWriter::with_options(invalid.clone(), options(4, 4, 5));
    writer.record(record(1, None, "u", "t", "x")).await;
    writer.flush().await;
    assert_eq!(writer.stats(), WriterStats { written: 0, failed: 1, retried: 0 });
    assert_eq!(invalid.calls.load(Ordering::SeqCst), 1);
    writer.record(record(2, None, "u", "t", "y")).await;
    writer.flush().await;
    assert_eq!(writer.stats().written, 1, "the next batch goes through");

    let panicky = Arc::new(FlakyStore::new(Fault::Panic, Some(1)));
    let writer = AuditWriter::with_options(panicky.clone(), options(4, 4, 5));
    writer.record(record(1, None, "u", "t", "z")).await;
    writer.flush().await;
    assert_eq!(writer.stats(), WriterStats { written: 1, failed: 0, retried: 1 });
    assert_eq!(panicky.inner.len(), 1);
    let warned = capture.at(Level::WARN, "executus::audit");
    assert!(warned.iter().any(|w| w.fields["error"].contains("panicked")), "{warned:?}");
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_and_later_records_are_written_through() {
    let store = Arc::new(SlowStore {
        inner: MemoryAuditStore::new(),
        delay: Duration::from_millis(10),
        appends: AtomicUsize::new(0),
    });
    let writer = AuditWriter::with_options(store.clone(), options(64, 8, 0));
    for i in 0..30 {
        writer.record(record(i, None, "u", "t", &i.to_string())).await;
    }
    writer.shutdown().await;
    assert_eq!(store.inner.len(), 30, "shutdown drains everything accepted");
    writer.record(record(99, None, "u", "t", "late")).await;
    assert_eq!(store.inner.len(), 31, "a record after shutdown is written by its caller");
    writer.flush().await;
    writer.shutdown().await;
    assert_eq!(writer.stats().written, 31);
    let page = store.query(&AuditQuery::new().limit(1000)).await.unwrap();
    assert_eq!(marker(&page.records.last().unwrap().record), "late");
}

#[tokio::test]
async fn a_writer_built_outside_a_runtime_starts_on_first_use() {
    let store = Arc::new(MemoryAuditStore::new());
    let writer = std::thread::spawn({
        let store = store.clone();
        move || AuditWriter::new(store)
    })
    .join()
    .unwrap();
    writer.record(record(1, None, "u", "t", "a")).await;
    writer.flush().await;
    assert_eq!(store.len(), 1);
}
