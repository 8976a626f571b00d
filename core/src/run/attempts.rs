//! Per-call attribution of failover-chain events to a run: each model call gets its own
//! observer (teeing to the registry's), and afterwards its attempts and failovers become
//! audit records of that run.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use executus_llm::{Chain, ChainEvent, ChainObserver, Usage};

use crate::ids::RunId;
use crate::ports::AuditEvent;
use crate::run::events::RunEvent;
use crate::run::handle::RunControl;

/// Collects a chain's events with their time, and forwards them to the previous observer
/// and, as [`RunEvent`]s, to the run's watchers.
pub(crate) struct AttemptLog {
    previous: Arc<dyn ChainObserver>,
    events: Mutex<Vec<(Instant, ChainEvent)>>,
    live: Option<Live>,
}

/// Where a call's attempts and failovers are announced as they happen.
struct Live {
    control: Arc<RunControl>,
    run_id: RunId,
    step: u32,
}

impl AttemptLog {
    /// A chain for one call of step `step` of run `run_id`, observed by a fresh log; when
    /// someone listens to the run, also emitting [`RunEvent::ModelAttempt`] and
    /// [`RunEvent::Failover`] as they happen.
    pub(crate) fn attach_run(
        chain: &Chain,
        control: Arc<RunControl>,
        run_id: RunId,
        step: u32,
    ) -> (Chain, Arc<AttemptLog>) {
        let live = control.listening().then_some(Live { control, run_id, step });
        Self::attach_live(chain, live)
    }

    fn attach_live(chain: &Chain, live: Option<Live>) -> (Chain, Arc<AttemptLog>) {
        let log =
            Arc::new(AttemptLog { previous: chain.observer().clone(), events: Mutex::new(Vec::new()), live });
        (chain.clone().with_observer(log.clone()), log)
    }

    /// Audit events for the call: one `ModelCall` per attempt (the successful one carrying
    /// `usage`), one `Failover` per move to the next target. `broke`: the error of a stream
    /// that failed after its first event — the attempt the chain counted as answered is
    /// audited with it.
    pub(crate) fn audit_events(
        &self,
        step: u32,
        usage: Usage,
        finished: Instant,
        broke: Option<String>,
    ) -> Vec<AuditEvent> {
        let events =
            std::mem::take(&mut *self.events.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let mut out = Vec::new();
        let mut open: Option<(Instant, String, u32)> = None;
        let close = |open: &mut Option<(Instant, String, u32)>,
                     at: Instant,
                     error: Option<String>,
                     usage: Usage,
                     out: &mut Vec<AuditEvent>| {
            if let Some((started, target, n)) = open.take() {
                let (provider, model) = match target.parse::<executus_llm::Target>() {
                    Ok(t) => (t.provider, t.model),
                    Err(_) => (target, String::new()),
                };
                out.push(AuditEvent::ModelCall {
                    step,
                    provider,
                    model,
                    attempt: n,
                    latency_ms: at.saturating_duration_since(started).as_millis() as u64,
                    usage,
                    error,
                });
            }
        };
        for (at, event) in events {
            match event {
                ChainEvent::Attempt { target, n } => {
                    close(&mut open, at, Some("superseded".into()), Usage::default(), &mut out);
                    open = Some((at, target, n));
                }
                ChainEvent::Retry { error, .. } => {
                    close(&mut open, at, Some(error.to_string()), Usage::default(), &mut out)
                }
                ChainEvent::Success { latency, .. } => {
                    if let Some((started, ..)) = &mut open {
                        *started = at.checked_sub(latency).unwrap_or(*started);
                    }
                    match &broke {
                        Some(error) => close(&mut open, finished, Some(error.clone()), usage, &mut out),
                        None => close(&mut open, at, None, usage, &mut out),
                    }
                }
                ChainEvent::Failover { from, to, error } => {
                    close(&mut open, at, Some(error.to_string()), Usage::default(), &mut out);
                    out.push(AuditEvent::Failover { from, to, error: error.to_string() });
                }
                _ => {}
            }
        }
        close(&mut open, finished, Some("failed".into()), Usage::default(), &mut out);
        out
    }
}

impl ChainObserver for AttemptLog {
    fn on_event(&self, event: &ChainEvent) {
        self.previous.on_event(event);
        if let Some(Live { control, run_id, step }) = &self.live {
            let (run_id, step) = (*run_id, *step);
            match event {
                ChainEvent::Attempt { target, n } => {
                    control.emit(RunEvent::ModelAttempt {
                        run_id,
                        step,
                        target: target.clone(),
                        attempt: *n,
                    });
                }
                ChainEvent::Failover { from, to, error } => control.emit(RunEvent::Failover {
                    run_id,
                    step,
                    from: from.clone(),
                    to: to.clone(),
                    error: error.to_string(),
                }),
                _ => {}
            }
        }
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((Instant::now(), event.clone()));
    }
}
