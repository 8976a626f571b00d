//! The failover chain: a [`Model`] that tries ordered targets until one answers.
//!
//! For each target in order (targets are named `provider/model`):
//! 1. **benched** (see [`crate::health`]) → skipped, listed in the exhaustion error with its
//!    remaining cooldown;
//! 2. **normalised** to the target's [`Capabilities`] (unknown means "try"): a target known
//!    not to do vision is skipped for a request with images, one known not to do tools for a
//!    request with tools — both without any health penalty; the request's images are shaped
//!    to the target's [`Model::media_limits`] (see [`crate::media`]; converted once per image
//!    and set of limits, then served from the chain's [`MediaCache`]): an image that cannot be
//!    sent at all (not an image, malformed, a decompression bomb) ends the call with a
//!    [`ErrorKind::Permanent`](crate::ErrorKind::Permanent) error naming it, before any network call; one that only this
//!    target cannot take (over its limits in a build without the `media` feature, or not
//!    fitting its budget) skips the target, penalty-free ([`SkipReason::Media`]); for a target
//!    known not to do structured output the schema moves into the system prompt; for a
//!    target known not to stream, [`Model::stream`] is served by `generate` replayed as
//!    events;
//! 3. **called**, and the outcome decides:
//!    - success → recorded as a health success; the response is returned unchanged (its
//!      `provider`/`model` are those of the target that answered);
//!    - [`ErrorKind::Transient`](crate::ErrorKind::Transient) → retried on the same target up to
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
//!    - [`ErrorKind::Decode`](crate::ErrorKind::Decode) → the server answered something unparseable. Retrying the same
//!      server rarely helps, so the chain advances at once, but it counts against the
//!      target's health exactly like a spent transient;
//!    - [`ErrorKind::NotFound`](crate::ErrorKind::NotFound), [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported) (and [`ErrorKind::Exhausted`](crate::ErrorKind::Exhausted)
//!      from a nested chain) → advance, no health penalty: the target is fine, it just cannot
//!      serve this model or request;
//!    - [`ErrorKind::Permanent`](crate::ErrorKind::Permanent) → that error is returned at once, unless
//!      [`ChainOptions::advance_on_permanent`], in which case the chain advances (no health
//!      penalty: a 400 is usually about the request, not the target's availability);
//!    - [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled) → returned at once.
//! 4. When no target answers, one [`ErrorKind::Exhausted`](crate::ErrorKind::Exhausted) error (provider `chain`, model =
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

mod failover;
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

pub(crate) use self::failover::{Answer, Failover, Link, Named, Prepared};
pub use self::observe::{
    ChainEvent, ChainObserver, NoopObserver, SkipReason, SleepFuture, Sleeper, TokioSleeper,
};
use crate::error::{Error, Result};
use crate::health::HealthTracker;
use crate::media::{MediaCache, normalise_request};
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
    /// Sets the sleeper (tests pass a [`crate::ManualClock`]).
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

/// A failover chain over ordered targets; itself a [`Model`]. See the module docs for the
/// exact semantics. Cloning is cheap (targets are shared models) and keeps the health tracker
/// and the media cache shared.
#[derive(Clone)]
pub struct Chain {
    core: Failover,
    targets: Arc<[Link<dyn Model>]>,
    media: Arc<MediaCache>,
}

impl fmt::Debug for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chain")
            .field("spec", &self.core.spec)
            .field("targets", &self.targets().collect::<Vec<_>>())
            .field("options", &self.core.options)
            .finish_non_exhaustive()
    }
}

impl Named for dyn Model {
    fn provider(&self) -> &str {
        Model::provider(self)
    }

    fn model_id(&self) -> &str {
        Model::model_id(self)
    }
}

impl Chain {
    /// A chain named `spec` (its [`Model::model_id`]) over `targets`, in order, sharing
    /// `health` with every other chain of the same registry. Default options, no observer, a
    /// media cache of its own.
    pub fn new(
        spec: impl Into<String>,
        targets: impl IntoIterator<Item = Arc<dyn Model>>,
        health: HealthTracker,
    ) -> Self {
        Self::from_links(
            Arc::from(spec.into()),
            targets.into_iter().map(Link::new).collect(),
            health,
            ChainOptions::default(),
            Self::no_observer(),
        )
    }

    /// The shared do-nothing observer (one allocation per process, not one per chain).
    pub(crate) fn no_observer() -> Arc<dyn ChainObserver> {
        static NOOP: std::sync::LazyLock<Arc<dyn ChainObserver>> =
            std::sync::LazyLock::new(|| Arc::new(NoopObserver));
        Arc::clone(&NOOP)
    }

    /// A chain over links built before (the registry keeps a spec's name and links, so a
    /// chain per request copies nothing but a few reference counts).
    pub(crate) fn from_links(
        spec: Arc<str>,
        targets: Arc<[Link<dyn Model>]>,
        health: HealthTracker,
        options: ChainOptions,
        observer: Arc<dyn ChainObserver>,
    ) -> Self {
        Self {
            core: Failover { spec, health, options, observer },
            targets,
            media: Arc::new(MediaCache::default()),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: ChainOptions) -> Self {
        self.core.options = options;
        self
    }

    /// Sets the observer.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn ChainObserver>) -> Self {
        self.core.observer = observer;
        self
    }

    /// Shares `cache` for normalised images (by default each chain has its own, and its clones
    /// share it).
    #[must_use]
    pub fn with_media_cache(mut self, cache: Arc<MediaCache>) -> Self {
        self.media = cache;
        self
    }

    /// The cache of normalised images (see [`crate::media`]).
    pub fn media_cache(&self) -> &Arc<MediaCache> {
        &self.media
    }

    /// The current observer.
    pub fn observer(&self) -> &Arc<dyn ChainObserver> {
        &self.core.observer
    }

    /// The targets, as `provider/model`, in order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|t| &*t.key)
    }

    /// The same chain without `target`, for a caller that saw it break after its first event
    /// and wants to re-issue the call elsewhere; `None` if it is not a target or is the only
    /// one. Health, options, observer and media cache are shared.
    pub fn without(&self, target: &crate::Target) -> Option<Chain> {
        let key = target.to_string();
        let targets: Arc<[Link<dyn Model>]> =
            self.targets.iter().filter(|t| *t.key != *key).cloned().collect();
        if targets.len() == self.targets.len() || targets.is_empty() {
            return None;
        }
        Some(Chain { targets, ..self.clone() })
    }

    /// The shared health tracker.
    pub fn health(&self) -> &HealthTracker {
        &self.core.health
    }

    /// The options.
    pub fn options(&self) -> &ChainOptions {
        &self.core.options
    }

    #[cfg(test)]
    fn retry_delay(&self, error: &Error, n: u32) -> Option<Duration> {
        self.core.retry_delay(error, n)
    }

    /// The failover loop (see [`failover`]) with this chain's preparation: capabilities,
    /// images, schema. The request is lent to each attempt ([`Model::generate_ref`]), never
    /// copied for it: it is copied only where a target needs it changed.
    async fn run<T, F>(&self, request: &Request, call: F) -> Result<T>
    where
        T: Answer,
        F: for<'a> Fn(&'a (dyn Model + 'static), &'a Cow<'_, Request>) -> BoxFuture<'a, Result<T>>
            + Send
            + Sync,
    {
        let prepare = |model: &(dyn Model + 'static)| prepare(request, model, &self.media);
        self.core.run(&self.targets, "chat", prepare, call).await
    }
}

/// Shapes `request` for `model`: skipped when it lacks a capability the request needs (no
/// penalty), images normalised to its media limits (refused before any network call when
/// they cannot be), the schema moved into the system prompt when it lacks structured output.
fn prepare<'r>(request: &'r Request, model: &dyn Model, cache: &MediaCache) -> Prepared<Cow<'r, Request>> {
    let caps = model.capabilities();
    if let Err(capability) = capable(request, caps) {
        return Prepared::Skip(SkipReason::Incapable { capability });
    }
    // Limits are asked for only when there are images: the text-only hot path pays nothing.
    let limits = if request.has_images() { model.media_limits() } else { None };
    let shaped = match limits {
        Some(limits) => match normalise_request(request, &limits, cache) {
            Ok(shaped) => shaped,
            Err(e) if e.is_intrinsic() => {
                return Prepared::Fail(Error::permanent(
                    Model::provider(model),
                    Model::model_id(model),
                    format!("{e} (refused before any network call)"),
                ));
            }
            Err(e) => return Prepared::Skip(SkipReason::Media { reason: e.to_string() }),
        },
        None => Cow::Borrowed(request),
    };
    Prepared::Call(schema_to_system(shaped, caps))
}

/// `Err(capability)` when a target with `caps` cannot serve `request` at all.
fn capable(request: &Request, caps: Capabilities) -> std::result::Result<(), &'static str> {
    if !Capabilities::allows(caps.vision) && request.has_images() {
        return Err("vision");
    }
    if !Capabilities::allows(caps.tools) && !request.tools.is_empty() {
        return Err("tools");
    }
    Ok(())
}

/// For a target known not to do structured output, the response schema moved into the system
/// prompt (the request copied only then).
fn schema_to_system(request: Cow<'_, Request>, caps: Capabilities) -> Cow<'_, Request> {
    if Capabilities::allows(caps.structured_output) || request.response_schema.is_none() {
        return request;
    }
    let mut request = request.into_owned();
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
    Cow::Owned(request)
}

/// Adapts a request to what a target can do. `Err(capability)` means the target cannot serve
/// it at all and must be skipped. The request is copied only when it must change (a schema
/// moved into the system prompt); otherwise it is borrowed as is.
#[cfg(test)]
fn normalise(request: &Request, caps: Capabilities) -> std::result::Result<Cow<'_, Request>, &'static str> {
    capable(request, caps)?;
    Ok(schema_to_system(Cow::Borrowed(request), caps))
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
#[allow(clippy::ptr_arg, reason = "the failover loop lends each target its prepared `Cow`")]
fn generate_attempt<'a>(
    model: &'a (dyn Model + 'static),
    request: &'a Cow<'_, Request>,
) -> BoxFuture<'a, Result<Response>> {
    model.generate_ref(request)
}

/// Opens a stream on `model` and waits for its first item, so that a failure before any
/// output counts as a failed attempt. The returned stream replays that first event.
#[allow(clippy::ptr_arg, reason = "the failover loop lends each target its prepared `Cow`")]
fn open_stream<'a>(
    model: &'a (dyn Model + 'static),
    request: &'a Cow<'_, Request>,
) -> BoxFuture<'a, Result<EventStream>> {
    let request: &'a Request = request;
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
        &self.core.spec
    }

    /// Unknown: each target is normalised on its own.
    fn capabilities(&self) -> Capabilities {
        Capabilities::UNKNOWN
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        self.run(&request, generate_attempt).await
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        self.run(&request, open_stream).await
    }

    async fn generate_ref(&self, request: &Request) -> Result<Response> {
        self.run(request, generate_attempt).await
    }

    async fn stream_ref(&self, request: &Request) -> Result<EventStream> {
        self.run(request, open_stream).await
    }
}
