//! One connector per host: it keeps llama-swap's `GET /api/events` stream open and turns
//! what the host says into facts for the state actor, and it feeds the ingestion tasks.
//!
//! # Guarantees
//! - **Backoff with jitter, and a circuit breaker that never gives up** ([`policy`]): waits
//!   go through an injectable [`Sleeper`], so tests see every delay.
//! - **Liveness with times**: `connected → reconnecting → down` changes reach the state
//!   actor stamped with the injectable clock's time.
//! - **Rebuilt, never merged**: each new stream begins with a `Connected` fact, which clears
//!   the host's models and in-flight requests; the stream's own replay (models, in-flight
//!   snapshot) fills them again.
//! - **Gap recovery**: every new stream also triggers an activity fetch by watermark, so
//!   rows written while the stream was down are fetched (and stored once).
//! - **Hostile input**: an event larger than [`MAX_EVENT`] ends the stream (and counts as a
//!   drop); an event that does not decode is logged with the host and skipped.
//!
//! # What it does not do
//! llama-swap sends nothing on an idle stream, so a silently dead TCP connection is only
//! noticed when the operating system reports it; the connector does not probe an open
//! stream.

pub mod policy;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::mpsc;

pub use self::policy::{Liveness, Reconnect, ReconnectPolicy, Step};
use crate::client::HostClient;
use crate::clock::{Clock, Sleeper, utc_now};
use crate::ingest::Signal;
use crate::sse::SseDecoder;
use crate::state::{Fact, StateHandle};
use crate::store::{ActivityRecord, FleetStore, ModelStateRecord};
use crate::wire::{HostEvent, ModelState, decode_event};

/// The largest single event accepted from a host (its replay of logs can be large).
pub const MAX_EVENT: usize = 16 << 20;

/// What a connector needs.
#[derive(Clone)]
pub(crate) struct ConnectorCtx {
    pub client: HostClient,
    pub state: StateHandle,
    pub store: Arc<dyn FleetStore>,
    pub clock: Arc<dyn Clock>,
    pub sleeper: Arc<dyn Sleeper>,
    pub policy: ReconnectPolicy,
    pub ingest: mpsc::UnboundedSender<Signal>,
}

/// Runs the connector until the task is aborted.
pub(crate) async fn run(ctx: ConnectorCtx) {
    let host = ctx.client.name().to_owned();
    let mut machine = Reconnect::new(ctx.policy.clone());
    // The last state recorded per model, so the store gets changes only.
    let mut recorded: HashMap<String, ModelState> = match ctx.store.latest_model_states(&host).await {
        Ok(records) => records.into_iter().map(|r| (r.model, r.state)).collect(),
        Err(e) => {
            tracing::warn!(host = %host, error = %e, "fleet: cannot read the recorded model states");
            HashMap::new()
        }
    };
    loop {
        let step = match ctx.client.events().await {
            Ok(response) => {
                machine.connected();
                ctx.state.apply(Fact::Connected { host: host.clone(), at: utc_now(&*ctx.clock) });
                let _ = ctx.ingest.send(Signal::Reconnected);
                tracing::debug!(host = %host, "fleet: events stream open");
                let end = stream(&ctx, &host, response, &mut recorded).await;
                tracing::info!(host = %host, reason = %end, "fleet: events stream ended");
                machine.dropped(fastrand::f64())
            }
            Err(e) => {
                let step = machine.failed(fastrand::f64());
                tracing::debug!(host = %host, error = %e, failures = machine.failures(), "fleet: connect failed");
                ctx.state.apply(Fact::Attempt { host: host.clone(), ok: false });
                if step.opened {
                    tracing::warn!(host = %host, error = %e, "fleet: circuit open, host down; probing once per cooldown");
                }
                step
            }
        };
        if let Some(liveness) = step.liveness {
            ctx.state.apply(Fact::Liveness { host: host.clone(), liveness, at: utc_now(&*ctx.clock) });
        }
        ctx.sleeper.sleep(step.wait).await;
    }
}

/// Reads one stream to its end; returns why it ended.
async fn stream(
    ctx: &ConnectorCtx,
    host: &str,
    response: reqwest::Response,
    recorded: &mut HashMap<String, ModelState>,
) -> String {
    let mut decoder = SseDecoder::new(MAX_EVENT);
    let mut body = response.bytes_stream();
    let mut frames = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => return crate::client::transport(&e),
        };
        if let Err(e) = decoder.feed(&chunk, &mut frames) {
            return e.to_string();
        }
        for frame in frames.drain(..) {
            if frame.event != "message" {
                continue;
            }
            match decode_event(&frame.data) {
                Ok(event) => handle(ctx, host, event, recorded).await,
                Err(e) => tracing::warn!(host = %host, error = %e, "fleet: undecodable event skipped"),
            }
        }
    }
    "the host closed the stream".to_owned()
}

async fn handle(
    ctx: &ConnectorCtx,
    host: &str,
    event: HostEvent,
    recorded: &mut HashMap<String, ModelState>,
) {
    match event {
        HostEvent::ModelStatus(models) => {
            let at = utc_now(&*ctx.clock);
            let changes: Vec<ModelStateRecord> = models
                .iter()
                .filter(|m| recorded.get(&m.id) != Some(&m.state))
                .map(|m| ModelStateRecord::new(host, &m.id, m.state.clone(), at))
                .collect();
            if !changes.is_empty() {
                match ctx.store.record_model_states(&changes).await {
                    Ok(()) => {
                        for c in changes {
                            recorded.insert(c.model, c.state);
                        }
                    }
                    Err(e) => tracing::warn!(host = %host, error = %e, "fleet: cannot record model states"),
                }
            }
            ctx.state.apply(Fact::Models { host: host.to_owned(), models });
        }
        HostEvent::Activity { .. } => {
            let _ = ctx.ingest.send(Signal::Ping);
        }
        HostEvent::Metrics(rows) => {
            // Hosts before v236 send whole rows (on connect, their whole ring): store them
            // directly, de-duplicated by the store.
            let records: Vec<ActivityRecord> =
                rows.iter().map(|r| ActivityRecord::from_row(host, r)).collect();
            crate::ingest::store_activity(&ctx.store, &ctx.state, host, records).await;
        }
        HostEvent::Inflight(update) => ctx.state.apply(Fact::Inflight { host: host.to_owned(), update }),
        HostEvent::Log { .. }
        | HostEvent::UiConfig(_)
        | HostEvent::ProfileChanged { .. }
        | HostEvent::Other { .. } => {}
    }
}
