//! The failover loop itself, shared by the chat [`super::Chain`] and the image
//! [`crate::imagegen::ImageChain`]: one set of rules for skipping, retrying, benching and
//! advancing, whatever the call is.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tracing::Instrument;
use tracing::field::Empty;

use super::ChainOptions;
use super::observe::{ChainEvent, ChainObserver, SkipReason};
use crate::error::{Attempt, Error, ErrorKind, Result};
use crate::health::HealthTracker;

/// What the loop needs to name a target in spans and errors.
pub(crate) trait Named {
    fn provider(&self) -> &str;
    fn model_id(&self) -> &str;
}

/// One target: its `provider/model` key (the health tracker's) and the model.
pub(crate) struct Link<M: ?Sized> {
    pub(crate) key: Arc<str>,
    pub(crate) model: Arc<M>,
}

impl<M: ?Sized> Clone for Link<M> {
    fn clone(&self) -> Self {
        Self { key: Arc::clone(&self.key), model: Arc::clone(&self.model) }
    }
}

impl<M: ?Sized + Named> Link<M> {
    pub(crate) fn new(model: Arc<M>) -> Self {
        Self { key: Arc::from(format!("{}/{}", model.provider(), model.model_id())), model }
    }
}

/// What the chain does with a target before calling it.
pub(crate) enum Prepared<Q> {
    /// Call it with this request.
    Call(Q),
    /// Skip it, penalty-free.
    Skip(SkipReason),
    /// Stop: no target could serve the request (returned as is).
    Fail(Error),
}

/// A successful attempt's answer; records itself on the attempt's span.
pub(crate) trait Answer: Send {
    fn record(&self, span: &tracing::Span);
}

/// Spec, health, options and observer: everything but the targets.
#[derive(Clone)]
pub(crate) struct Failover {
    pub(crate) spec: Arc<str>,
    pub(crate) health: HealthTracker,
    pub(crate) options: ChainOptions,
    pub(crate) observer: Arc<dyn ChainObserver>,
}

impl Failover {
    pub(crate) fn emit(&self, event: impl FnOnce() -> ChainEvent) {
        if self.observer.wants_events() {
            self.observer.on_event(&event());
        }
    }

    /// The delay before retrying after failed attempt `n`, or `None` to advance at once
    /// (retries spent, or a `Retry-After` above the ceiling).
    pub(crate) fn retry_delay(&self, error: &Error, n: u32) -> Option<Duration> {
        if n > self.options.retries {
            return None;
        }
        match error.retry_after {
            Some(after) if after > self.options.retry_after_ceiling => None,
            Some(after) => Some(after),
            None => Some(self.options.backoff(n)),
        }
    }

    fn penalise(&self, key: &str) {
        if let Some(cooldown) = self.health.record_failure(key) {
            tracing::warn!(target_key = key, cooldown_s = cooldown.as_secs_f64(), "llm target benched");
            self.emit(|| ChainEvent::Bench { target: key.to_owned(), cooldown });
        }
    }

    /// Tries `targets` in order. `prepare` decides, per target, whether and with what it is
    /// called; `call` makes one attempt. See [`super`] for the rules.
    pub(crate) async fn run<M, Q, T, P, F>(
        &self,
        targets: &[Link<M>],
        operation: &'static str,
        prepare: P,
        call: F,
    ) -> Result<T>
    where
        M: ?Sized + Named + Send + Sync,
        Q: Send + Sync,
        T: Answer,
        P: Fn(&M) -> Prepared<Q> + Send + Sync,
        F: for<'a> Fn(&'a M, &'a Q) -> BoxFuture<'a, Result<T>> + Send + Sync,
    {
        let clock = self.health.clock();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        let mut shortest_bench: Option<Duration> = None;
        let mut tried = 0usize;
        // The target last given up on, reported as a failover once the next call starts.
        let mut given_up: Option<(String, Error)> = None;
        let usable_after =
            |index: usize| targets.iter().skip(index + 1).any(|t| self.health.is_benched(&t.key).is_none());

        for (index, target) in targets.iter().enumerate() {
            let key: &str = &target.key;
            let skip = |reason: SkipReason, skipped: &mut Vec<String>| {
                tracing::debug!(target_key = key, reason = %reason, "llm target skipped");
                skipped.push(format!("{key} ({reason})"));
                self.emit(|| ChainEvent::Skip { target: key.to_owned(), reason });
            };
            if let Some(remaining) = self.health.is_benched(key) {
                shortest_bench = Some(shortest_bench.map_or(remaining, |s| s.min(remaining)));
                skip(SkipReason::Benched { remaining }, &mut skipped);
                continue;
            }
            let request = match prepare(target.model.as_ref()) {
                Prepared::Call(request) => request,
                Prepared::Skip(reason) => {
                    skip(reason, &mut skipped);
                    continue;
                }
                Prepared::Fail(error) => return Err(error),
            };
            if let Some((from, error)) = given_up.take() {
                tracing::info!(
                    from = from.as_str(),
                    to = key,
                    error.type = error.kind.as_str(),
                    "llm failover"
                );
                self.emit(|| ChainEvent::Failover { from, to: key.to_owned(), error });
            }
            tried += 1;

            let mut n = 0u32;
            let last_error = loop {
                n += 1;
                self.emit(|| ChainEvent::Attempt { target: key.to_owned(), n });
                let span = tracing::info_span!(
                    "gen_ai.call",
                    gen_ai.operation.name = operation,
                    gen_ai.system = target.model.provider(),
                    gen_ai.request.model = target.model.model_id(),
                    attempt = n,
                    executus.chain = &*self.spec,
                    gen_ai.response.model = Empty,
                    gen_ai.usage.input_tokens = Empty,
                    gen_ai.usage.output_tokens = Empty,
                    error.type = Empty,
                );
                let started = clock.now();
                let result = call(target.model.as_ref(), &request).instrument(span.clone()).await;
                let error = match result {
                    Ok(answer) => {
                        answer.record(&span);
                        self.health.record_success(key);
                        let latency = clock.now().saturating_duration_since(started);
                        self.emit(|| ChainEvent::Success { target: key.to_owned(), latency });
                        return Ok(answer);
                    }
                    Err(error) => error,
                };
                span.record("error.type", error.kind.as_str());
                span.in_scope(|| {
                    tracing::warn!(
                        error.type = error.kind.as_str(),
                        http.response.status_code = error.status,
                        "llm attempt failed"
                    );
                });
                attempts.push(Attempt {
                    provider: target.model.provider().to_owned(),
                    model: target.model.model_id().to_owned(),
                    attempt: n,
                    kind: error.kind,
                    status: error.status,
                    message: error.message.clone(),
                });
                match error.kind {
                    ErrorKind::Cancelled => return Err(error),
                    ErrorKind::Permanent if !self.options.advance_on_permanent => {
                        return Err(error);
                    }
                    ErrorKind::Transient => {
                        let retry = if error.connection_refused && usable_after(index) {
                            None
                        } else {
                            self.retry_delay(&error, n)
                        };
                        if let Some(delay) = retry {
                            self.emit(|| ChainEvent::Retry { target: key.to_owned(), n, delay, error });
                            self.options.sleeper.sleep(delay).await;
                            continue;
                        }
                        self.penalise(key);
                        break error;
                    }
                    ErrorKind::Decode => {
                        self.penalise(key);
                        break error;
                    }
                    _ => break error,
                }
            };
            given_up = Some((key.to_owned(), last_error));
        }

        let message = if targets.is_empty() {
            "the chain has no targets".to_owned()
        } else {
            format!(
                "no target answered: {} attempt(s) on {tried} target(s), {} target(s) skipped",
                attempts.len(),
                skipped.len()
            )
        };
        let mut error =
            Error::new(ErrorKind::Exhausted, "chain", &*self.spec, message).with_retry_after(shortest_bench);
        error.attempts = attempts;
        error.skipped = skipped;
        Err(error)
    }
}
