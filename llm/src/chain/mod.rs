//! The failover chain: a [`Model`] that tries ordered targets until one answers.
//!
//! For each target in order (targets are named `provider/model`):
//! 1. **benched** (see [`crate::health`]) → skipped, listed in the exhaustion error with its
//!    remaining cooldown;
//! 2. **normalised** to the target's [`Capabilities`] (unknown means "try"): a target known
//!    not to do vision is skipped for a request with images, one known not to do tools for a
//!    request with tools — both without any health penalty; for a target known not to do
//!    structured output the schema moves into the system prompt; for a target known not to
//!    stream, [`Model::stream`] is served by `generate` replayed as events;
//! 3. **called**, and the outcome decides:
//!    - success → recorded as a health success; the response is returned unchanged (its
//!      `provider`/`model` are those of the target that answered);
//!    - [`ErrorKind::Transient`] → retried on the same target up to
//!      [`ChainOptions::retries`] times, waiting `Retry-After` when the server gave one no
//!      longer than [`ChainOptions::retry_after_ceiling`], else an exponential backoff with
//!      jitter; a `Retry-After` above the ceiling advances at once without waiting. When the
//!      retries are spent, one health failure is recorded (which may bench the target) and
//!      the chain advances;
//!    - a **refused connection** ([`Error::connection_refused`], still transient) is not
//!      retried when a later target that is not benched remains: nothing listens at that
//!      address, and it will not start listening within a backoff of a few hundred
//!      milliseconds, so waiting only delays the answer. One health failure is recorded (three
//!      refused requests bench the target, by default) and the chain advances at once. On the
//!      last usable target a refused connection is retried like any transient error: there is
//!      nowhere else to go, and a local server being restarted may come back;
//!    - [`ErrorKind::Decode`] → the server answered something unparseable. Retrying the same
//!      server rarely helps, so the chain advances at once, but it counts against the
//!      target's health exactly like a spent transient;
//!    - [`ErrorKind::NotFound`], [`ErrorKind::Unsupported`] (and [`ErrorKind::Exhausted`]
//!      from a nested chain) → advance, no health penalty: the target is fine, it just cannot
//!      serve this model or request;
//!    - [`ErrorKind::Permanent`] → that error is returned at once, unless
//!      [`ChainOptions::advance_on_permanent`], in which case the chain advances (no health
//!      penalty: a 400 is usually about the request, not the target's availability);
//!    - [`ErrorKind::Cancelled`] → returned at once.
//! 4. When no target answers, one [`ErrorKind::Exhausted`] error (provider `chain`, model =
//!    the chain spec) lists every attempt and every skipped target; its `retry_after` is the
//!    shortest remaining cooldown of a benched target, if any.
//!
//! Streams fail over only before their first event: if `stream()` fails, or the stream's
//! first item is an error (or it ends without any item), that counts as a failed attempt.
//! Once one event has been yielded the stream belongs to the caller, and later errors reach
//! it unchanged — no other target is called (the caller has already seen output). The health
//! success is recorded at that first event; a later mid-stream error does not touch health.
//!
//! Every attempt runs in a `tracing` span named `gen_ai.call` with OpenTelemetry GenAI
//! attribute names (`gen_ai.system` = provider name, `gen_ai.request.model`, `attempt`, and
//! on success `gen_ai.response.model` and `gen_ai.usage.*_tokens`; on failure `error.type`).
//! Request content and keys are never logged. An optional [`ChainObserver`] sees the same
//! story as [`ChainEvent`]s.

mod observe;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::BoxFuture;
use tracing::Instrument;
use tracing::field::Empty;

pub use self::observe::{
    ChainEvent, ChainObserver, NoopObserver, SkipReason, SleepFuture, Sleeper, TokioSleeper,
};
use crate::error::{Attempt, Error, ErrorKind, Result};
use crate::health::HealthTracker;
use crate::model::Model;
use crate::stream::{EventStream, response_to_stream};
use crate::types::{Capabilities, Request, Response};

/// How a [`Chain`] retries and advances.
#[derive(Debug, Clone)]
pub struct ChainOptions {
    /// Extra attempts on the same target after a transient error (default 2, so at most
    /// three calls per target).
    pub retries: u32,
    /// Backoff before the first retry (default 250 ms); it doubles per retry, and each delay
    /// is jittered down to between half and all of its value.
    pub backoff_base: Duration,
    /// Longest backoff before jitter (default 10 s).
    pub backoff_max: Duration,
    /// Longest `Retry-After` the chain will wait on one target (default 30 s); a longer one
    /// makes the chain advance at once.
    pub retry_after_ceiling: Duration,
    /// Advance past a target on a permanent error instead of failing (default false).
    pub advance_on_permanent: bool,
    /// How the chain waits between retries (default: the tokio timer).
    pub sleeper: Arc<dyn Sleeper>,
}

impl Default for ChainOptions {
    fn default() -> Self {
        Self {
            retries: 2,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            retry_after_ceiling: Duration::from_secs(30),
            advance_on_permanent: false,
            sleeper: Arc::new(TokioSleeper),
        }
    }
}

impl ChainOptions {
    /// Sets the sleeper (tests pass a [`crate::health::ManualClock`]).
    #[must_use]
    pub fn with_sleeper(mut self, sleeper: Arc<dyn Sleeper>) -> Self {
        self.sleeper = sleeper;
        self
    }

    /// The jittered backoff after failed attempt `n` (1-based): `base * 2^(n-1)`, capped at
    /// `backoff_max`, then scaled by a random factor in `[0.5, 1.0]`.
    pub fn backoff(&self, n: u32) -> Duration {
        let full = doubled(self.backoff_base, n.saturating_sub(1), self.backoff_max);
        let factor = 0.5 + fastrand::f64() * 0.5;
        Duration::try_from_secs_f64(full.as_secs_f64() * factor).unwrap_or(full)
    }
}

/// `base * 2^times`, capped at `cap`.
fn doubled(base: Duration, times: u32, cap: Duration) -> Duration {
    let mut value = base;
    for _ in 0..times {
        if value >= cap {
            break;
        }
        value = value.saturating_mul(2);
    }
    value.min(cap)
}

#[derive(Clone)]
struct Link {
    /// `provider/model` (the health tracker's key).
    key: String,
    model: Arc<dyn Model>,
}

/// A failover chain over ordered targets; itself a [`Model`]. See the module docs for the
/// exact semantics. Cloning is cheap (targets are shared models) and keeps the health tracker
/// shared.
#[derive(Clone)]
pub struct Chain {
    spec: String,
    targets: Vec<Link>,
    health: HealthTracker,
    options: ChainOptions,
    observer: Arc<dyn ChainObserver>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("spec", &self.spec)
            .field("targets", &self.targets().collect::<Vec<_>>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// A chain named `spec` (its [`Model::model_id`]) over `targets`, in order, sharing
    /// `health` with every other chain of the same registry. Default options, no observer.
    pub fn new(
        spec: impl Into<String>,
        targets: impl IntoIterator<Item = Arc<dyn Model>>,
        health: HealthTracker,
    ) -> Self {
        let targets =
            targets.into_iter().map(|model| Link { key: model.target().to_string(), model }).collect();
        Self {
            spec: spec.into(),
            targets,
            health,
            options: ChainOptions::default(),
            observer: Arc::new(NoopObserver),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: ChainOptions) -> Self {
        self.options = options;
        self
    }

    /// Sets the observer.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ChainObserver>) -> Self {
        self.observer = observer;
        self
    }

    /// The current observer.
    pub fn observer(&self) -> &Arc<dyn ChainObserver> {
        &self.observer
    }

    /// The targets, as `provider/model`, in order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| t.key.as_str())
    }

    /// The same chain without `target`, for a caller that saw it break after its first event
    /// and wants to re-issue the call elsewhere; `None` if it is not a target or is the only
    /// one. Health, options and observer are shared.
    pub fn without(&self, target: &crate::Target) -> Option<Chain> {
        let key = target.to_string();
        let targets: Vec<Link> = self.targets.iter().filter(|t| t.key != key).cloned().collect();
        if targets.len() == self.targets.len() || targets.is_empty() {
            return None;
        }
        Some(Chain { targets, ..self.clone() })
    }

    /// The shared health tracker.
    pub fn health(&self) -> &HealthTracker {
        &self.health
    }

    /// The options.
    pub fn options(&self) -> &ChainOptions {
        &self.options
    }

    /// Reports an event, built only if the observer looks at events.
    fn emit(&self, event: impl FnOnce() -> ChainEvent) {
        if self.observer.wants_events() {
            self.observer.on_event(&event());
        }
    }

    /// The delay before retrying after failed attempt `n`, or `None` to advance at once
    /// (retries spent, or a `Retry-After` above the ceiling).
    fn retry_delay(&self, error: &Error, n: u32) -> Option<Duration> {
        if n > self.options.retries {
            return None;
        }
        match error.retry_after {
            Some(after) if after > self.options.retry_after_ceiling => None,
            Some(after) => Some(after),
            None => Some(self.options.backoff(n)),
        }
    }

    /// Whether a target after position `index` is not benched (somewhere to advance to).
    fn usable_after(&self, index: usize) -> bool {
        self.targets.iter().skip(index + 1).any(|t| self.health.is_benched(&t.key).is_none())
    }

    fn penalise(&self, key: &str) {
        if let Some(cooldown) = self.health.record_failure(key) {
            tracing::warn!(target_key = key, cooldown_s = cooldown.as_secs_f64(), "llm target benched");
            self.emit(|| ChainEvent::Bench { target: key.to_owned(), cooldown });
        }
    }

    /// The failover loop shared by `generate` and `stream`; `call` makes one attempt. The
    /// request is lent to each attempt ([`Model::generate_ref`]), never copied for it: it is
    /// copied only where a target needs it changed (see [`normalise`]).
    async fn run<T, F>(&self, request: &Request, operation: &'static str, call: F) -> Result<T>
    where
        T: Answer,
        F: for<'a> Fn(&'a dyn Model, &'a Request) -> BoxFuture<'a, Result<T>> + Send + Sync,
    {
        let clock = self.health.clock();
        let mut attempts: Vec<Attempt> = Vec::new();
        let mut skipped: Vec<String> = Vec::new();
        let mut shortest_bench: Option<Duration> = None;
        let mut tried = 0usize;
        // The target last given up on, reported as a failover once the next call starts.
        let mut given_up: Option<(String, Error)> = None;

        for (index, target) in self.targets.iter().enumerate() {
            let key = &target.key;
            let skip = |reason: SkipReason, skipped: &mut Vec<String>| {
                tracing::debug!(target_key = key.as_str(), reason = %reason, "llm target skipped");
                skipped.push(format!("{key} ({reason})"));
                self.emit(|| ChainEvent::Skip { target: key.clone(), reason });
            };
            if let Some(remaining) = self.health.is_benched(key) {
                shortest_bench = Some(shortest_bench.map_or(remaining, |s| s.min(remaining)));
                skip(SkipReason::Benched { remaining }, &mut skipped);
                continue;
            }
            let request = match normalise(request, target.model.capabilities()) {
                Ok(request) => request,
                Err(capability) => {
                    skip(SkipReason::Incapable { capability }, &mut skipped);
                    continue;
                }
            };
            if let Some((from, error)) = given_up.take() {
                tracing::info!(
                    from = from.as_str(),
                    to = key.as_str(),
                    error.type = error.kind.as_str(),
                    "llm failover"
                );
                self.emit(|| ChainEvent::Failover { from, to: key.clone(), error });
            }
            tried += 1;

            let mut n = 0u32;
            let last_error = loop {
                n += 1;
                self.emit(|| ChainEvent::Attempt { target: key.clone(), n });
                let span = tracing::info_span!(
                    "gen_ai.call",
                    gen_ai.operation.name = operation,
                    gen_ai.system = target.model.provider(),
                    gen_ai.request.model = target.model.model_id(),
                    attempt = n,
                    executus.chain = self.spec.as_str(),
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
                        self.emit(|| ChainEvent::Success { target: key.clone(), latency });
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
                        let retry = if error.connection_refused && self.usable_after(index) {
                            None
                        } else {
                            self.retry_delay(&error, n)
                        };
                        if let Some(delay) = retry {
                            self.emit(|| ChainEvent::Retry { target: key.clone(), n, delay, error });
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
            given_up = Some((key.clone(), last_error));
        }

        let message = if self.targets.is_empty() {
            "the chain has no targets".to_owned()
        } else {
            format!(
                "no target answered: {} attempt(s) on {tried} target(s), {} target(s) skipped",
                attempts.len(),
                skipped.len()
            )
        };
        let mut error =
            Error::new(ErrorKind::Exhausted, "chain", &self.spec, message).with_retry_after(shortest_bench);
        error.attempts = attempts;
        error.skipped = skipped;
        Err(error)
    }
}

/// Adapts a request to what a target can do. `Err(capability)` means the target cannot serve
/// it at all and must be skipped. The request is copied only when it must change (a schema
/// moved into the system prompt); otherwise it is borrowed as is.
fn normalise(request: &Request, caps: Capabilities) -> std::result::Result<Cow<'_, Request>, &'static str> {
    if !Capabilities::allows(caps.vision) && request.has_images() {
        return Err("vision");
    }
    if !Capabilities::allows(caps.tools) && !request.tools.is_empty() {
        return Err("tools");
    }
    if Capabilities::allows(caps.structured_output) || request.response_schema.is_none() {
        return Ok(Cow::Borrowed(request));
    }
    let mut request = request.clone();
    if let Some(schema) = request.response_schema.take() {
        let schema_text =
            serde_json::to_string_pretty(&schema.schema).unwrap_or_else(|_| schema.schema.to_string());
        let instruction = format!(
            "Answer with a single JSON value that matches this JSON schema, and nothing \
                 else (no prose, no code fences):\n{schema_text}"
        );
        request.system = Some(match request.system.take() {
            Some(system) if !system.trim().is_empty() => format!("{system}\n\n{instruction}"),
            _ => instruction,
        });
    }
    Ok(Cow::Owned(request))
}

/// What a successful attempt yields; records itself on the attempt's span.
trait Answer: Send {
    fn record(&self, span: &tracing::Span);
}

impl Answer for Response {
    fn record(&self, span: &tracing::Span) {
        span.record("gen_ai.response.model", self.model.as_str());
        span.record("gen_ai.usage.input_tokens", self.usage.input_tokens);
        span.record("gen_ai.usage.output_tokens", self.usage.output_tokens);
    }
}

impl Answer for EventStream {
    fn record(&self, _span: &tracing::Span) {}
}

/// One `generate` attempt.
fn generate_attempt<'a>(model: &'a dyn Model, request: &'a Request) -> BoxFuture<'a, Result<Response>> {
    model.generate_ref(request)
}

/// Opens a stream on `model` and waits for its first item, so that a failure before any
/// output counts as a failed attempt. The returned stream replays that first event.
fn open_stream<'a>(model: &'a dyn Model, request: &'a Request) -> BoxFuture<'a, Result<EventStream>> {
    Box::pin(async move {
        let mut stream = if Capabilities::allows(model.capabilities().streaming) {
            model.stream_ref(request).await?
        } else {
            response_to_stream(model.generate_ref(request).await?)
        };
        match stream.next().await {
            Some(Ok(first)) => {
                Ok(Box::pin(futures::stream::once(std::future::ready(Ok(first))).chain(stream))
                    as EventStream)
            }
            Some(Err(error)) => Err(error),
            None => Err(Error::transient(
                model.provider(),
                model.model_id(),
                "stream ended before its first event",
            )),
        }
    })
}

#[async_trait]
impl Model for Chain {
    fn provider(&self) -> &str {
        "chain"
    }

    fn model_id(&self) -> &str {
        &self.spec
    }

    /// Unknown: each target is normalised on its own.
    fn capabilities(&self) -> Capabilities {
        Capabilities::UNKNOWN
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        self.run(&request, "chat", generate_attempt).await
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        self.run(&request, "chat", open_stream).await
    }

    async fn generate_ref(&self, request: &Request) -> Result<Response> {
        self.run(request, "chat", generate_attempt).await
    }

    async fn stream_ref(&self, request: &Request) -> Result<EventStream> {
        self.run(request, "chat", open_stream).await
    }
}
