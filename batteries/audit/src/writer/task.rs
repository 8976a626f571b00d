//! The writer's background task and the batch write with retries.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;

use executus::ports::{AuditRecord, PortError};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot};

use super::{Shared, is_permanent};

/// What travels on the writer's channel.
pub(super) enum Msg {
    /// A record to store (boxed: records are large, acknowledgements small).
    Record(Box<AuditRecord>),
    /// Acknowledge once everything before this message is handled.
    Flush(oneshot::Sender<()>),
    /// Drain, acknowledge, stop.
    Shutdown(oneshot::Sender<()>),
}

/// Drains the channel in batches until every sender is gone or a shutdown drained it.
pub(super) async fn run(mut rx: mpsc::Receiver<Msg>, shared: std::sync::Arc<Shared>) {
    let max = shared.options.max_batch;
    let mut batch: Vec<AuditRecord> = Vec::with_capacity(max.min(1024));
    let mut acks: Vec<oneshot::Sender<()>> = Vec::new();
    let mut closing: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Record(record) => batch.push(*record),
                Msg::Flush(ack) => acks.push(ack),
                Msg::Shutdown(ack) => {
                    // No new sends from now on; what is buffered is still delivered, and
                    // `recv` returns `None` once it is drained.
                    rx.close();
                    closing.push(ack);
                }
            }
            next = if batch.len() < max { rx.try_recv().ok() } else { None };
        }
        if !batch.is_empty() {
            write(&shared, &batch).await;
            batch.clear();
        }
        // Every record accepted before these acknowledgements was in this batch or an
        // earlier one.
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    for ack in closing {
        let _ = ack.send(());
    }
}

/// Appends `batch`, retrying backend failures with backoff; reports what cannot be stored.
pub(super) async fn write(shared: &Shared, batch: &[AuditRecord]) {
    let n = batch.len() as u64;
    let mut retries = 0u32;
    loop {
        let result = AssertUnwindSafe(shared.store.append(batch)).catch_unwind().await.unwrap_or_else(|_| {
            Err(PortError::Backend { port: "audit", message: "the audit store panicked in append".into() })
        });
        let error = match result {
            Ok(()) => {
                shared.counters.written.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(error) => error,
        };
        if !is_permanent(&error) && retries < shared.options.max_retries {
            retries += 1;
            shared.counters.retried.fetch_add(1, Ordering::Relaxed);
            let delay = shared.options.backoff(retries);
            tracing::warn!(
                target: "executus::audit",
                error = %error,
                records = n,
                retry = retries,
                delay_ms = delay.as_millis() as u64,
                "audit store append failed; retrying"
            );
            tokio::time::sleep(delay).await;
            continue;
        }
        let failed_total = shared.counters.failed.fetch_add(n, Ordering::Relaxed) + n;
        let unstored = serde_json::to_string(batch)
            .unwrap_or_else(|e| format!("(records not serialisable for this report: {e})"));
        tracing::error!(
            target: "executus::audit",
            error = %error,
            records = n,
            retries,
            failed_total,
            unstored = %unstored,
            "audit records could not be stored"
        );
        return;
    }
}
