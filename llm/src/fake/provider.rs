//! [`FakeProvider`]: a scriptable [`Provider`] with per-model outcome queues and request
//! recording.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use super::outcome::{Outcome, ScriptStep, StreamScript};
use crate::error::{Error, Result};
use crate::media::MediaLimits;
use crate::model::{Model, Provider};
use crate::stream::{EventStream, StreamEvent, collect, response_to_stream};
use crate::types::{Capabilities, Request, Response};

/// How many [`Outcome::Dynamic`] closures may hand over to each other for one request before
/// the fake gives up (a closure that always returns another closure would spin forever).
const MAX_DYNAMIC_CHAIN: usize = 64;

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// The model id it was sent to.
    pub model: String,
    /// The request, as received.
    pub request: Request,
    /// True when it came through [`Model::stream`], false for [`Model::generate`].
    pub streamed: bool,
}

/// A scriptable provider for tests: each model id has a queue of [`Outcome`]s served in
/// order, one per call, plus an optional fallback repeated once the queue is empty.
///
/// Cloning is cheap and clones share the same queues and recordings, so a test can keep one
/// handle to script and inspect while the code under test calls models it handed out. All
/// methods are safe to call concurrently; none panics.
///
/// With no outcome queued and no fallback, a call fails with a permanent error saying so
/// (`fake provider NAME: no scripted outcome left for model ID (N requests served)`).
///
/// ```
/// use executus_llm::fake::{FakeProvider, Outcome};
/// use executus_llm::{ErrorKind, Request};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let fake = FakeProvider::new("fake");
/// fake.push("small", Outcome::text("first"))
///     .push("small", Outcome::transient("overloaded"))
///     .fallback_for("small", Outcome::text("again"));
///
/// let model = fake.model("small");
/// assert_eq!(model.generate(Request::user("a")).await.unwrap().text(), "first");
/// let err = model.generate(Request::user("b")).await.unwrap_err();
/// assert_eq!(err.kind, ErrorKind::Transient);
/// assert_eq!(err.model, "small");
/// assert_eq!(model.generate(Request::user("c")).await.unwrap().text(), "again");
///
/// assert_eq!(fake.calls_for("small"), 3);
/// assert_eq!(fake.requests_for("small")[1], Request::user("b"));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct FakeProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    queues: HashMap<String, VecDeque<Outcome>>,
    fallbacks: HashMap<String, Outcome>,
    fallback: Option<Outcome>,
    capabilities: HashMap<String, Capabilities>,
    media: HashMap<String, MediaLimits>,
    requests: Vec<RecordedRequest>,
    served: HashMap<String, usize>,
}

impl Default for FakeProvider {
    /// A fake named `fake`.
    fn default() -> Self {
        Self::new("fake")
    }
}

impl FakeProvider {
    /// A fake provider with this registry name and nothing scripted.
    pub fn new(name: impl Into<String>) -> Self {
        Self { inner: Arc::new(Inner { name: name.into(), state: Mutex::new(State::default()) }) }
    }

    /// The provider name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The model `id` as an `Arc<dyn Model>`; calls are served from that id's queue.
    pub fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(FakeModel { provider: self.clone(), id: id.to_owned() })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The lock is never held across user code or an await, so poisoning can only come
        // from a panic inside this module's own bookkeeping; the state is still consistent.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `outcome` for the next call to `model`.
    pub fn push(&self, model: &str, outcome: impl Into<Outcome>) -> &Self {
        self.state().queues.entry(model.to_owned()).or_default().push_back(outcome.into());
        self
    }

    /// Queues several outcomes for `model`, in order.
    pub fn push_all(&self, model: &str, outcomes: impl IntoIterator<Item = Outcome>) -> &Self {
        self.state().queues.entry(model.to_owned()).or_default().extend(outcomes);
        self
    }

    /// Queues a text reply for `model`.
    pub fn push_text(&self, model: &str, text: impl Into<String>) -> &Self {
        self.push(model, Outcome::text(text))
    }

    /// Serves `outcome` for every call to any model whose queue is empty (and that has no
    /// [`fallback_for`](Self::fallback_for)).
    pub fn fallback(&self, outcome: impl Into<Outcome>) -> &Self {
        self.state().fallback = Some(outcome.into());
        self
    }

    /// Serves `outcome` for every call to `model` once its queue is empty.
    pub fn fallback_for(&self, model: &str, outcome: impl Into<Outcome>) -> &Self {
        self.state().fallbacks.insert(model.to_owned(), outcome.into());
        self
    }

    /// Sets what `model` reports from [`Model::media_limits`] (none by default: a chain then
    /// passes images through untouched), so that tests see images shaped as for a real kind.
    pub fn set_media_limits(&self, model: &str, limits: MediaLimits) -> &Self {
        self.state().media.insert(model.to_owned(), limits);
        self
    }

    /// Sets what `model` reports from [`Model::capabilities`] (unknown by default).
    pub fn set_capabilities(&self, model: &str, capabilities: Capabilities) -> &Self {
        self.state().capabilities.insert(model.to_owned(), capabilities);
        self
    }

    /// Builder form of [`push_all`](Self::push_all).
    #[must_use]
    pub fn with_outcomes(self, model: &str, outcomes: impl IntoIterator<Item = Outcome>) -> Self {
        self.push_all(model, outcomes);
        self
    }

    /// Builder form of [`fallback`](Self::fallback).
    #[must_use]
    pub fn with_fallback(self, outcome: impl Into<Outcome>) -> Self {
        self.fallback(outcome);
        self
    }

    /// Builder form of [`set_capabilities`](Self::set_capabilities).
    #[must_use]
    pub fn with_capabilities(self, model: &str, capabilities: Capabilities) -> Self {
        self.set_capabilities(model, capabilities);
        self
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    /// The requests received by `model`, in arrival order.
    pub fn requests_for(&self, model: &str) -> Vec<Request> {
        self.state().requests.iter().filter(|r| r.model == model).map(|r| r.request.clone()).collect()
    }

    /// The last request `model` received.
    pub fn last_request(&self, model: &str) -> Option<Request> {
        self.state().requests.iter().rev().find(|r| r.model == model).map(|r| r.request.clone())
    }

    /// How many calls (generate and stream) the fake received, all models together.
    pub fn calls(&self) -> usize {
        self.state().requests.len()
    }

    /// How many calls `model` received.
    pub fn calls_for(&self, model: &str) -> usize {
        self.state().requests.iter().filter(|r| r.model == model).count()
    }

    /// How many outcomes are still queued for `model` (fallbacks not counted).
    pub fn remaining(&self, model: &str) -> usize {
        self.state().queues.get(model).map_or(0, VecDeque::len)
    }

    /// Forgets the recorded requests (queues and counters of served outcomes are kept).
    pub fn clear_requests(&self) {
        self.state().requests.clear();
    }

    /// Records the request and takes the outcome to serve for it (a failure when nothing is
    /// scripted).
    fn take(&self, model: &str, request: &Request, streamed: bool) -> Outcome {
        let mut state = self.state();
        state.requests.push(RecordedRequest { model: model.to_owned(), request: request.clone(), streamed });
        let queued = state.queues.get_mut(model).and_then(VecDeque::pop_front);
        let outcome =
            queued.or_else(|| state.fallbacks.get(model).cloned()).or_else(|| state.fallback.clone());
        let served = state.served.entry(model.to_owned()).or_default();
        match outcome {
            Some(outcome) => {
                *served += 1;
                outcome
            }
            None => {
                let name = &self.inner.name;
                Outcome::Fail(Error::permanent(
                    name,
                    model,
                    format!(
                        "fake provider {name}: no scripted outcome left for model {model} \
                         ({served} requests served)"
                    ),
                ))
            }
        }
    }

    /// Runs delays and dynamic closures until a terminal outcome remains.
    async fn resolve(&self, model: &str, request: &Request, mut outcome: Outcome) -> Resolved {
        let mut dynamic_steps = 0;
        loop {
            outcome = match outcome {
                Outcome::Respond(response) => {
                    return Resolved::Respond(self.fill_response(response, model));
                }
                Outcome::Fail(error) => return Resolved::Fail(self.fill_error(error, model)),
                Outcome::Stream(script) => {
                    return Resolved::Stream(self.script_stream(script, model));
                }
                Outcome::Delay(delay, inner) => {
                    tokio::time::sleep(delay).await;
                    *inner
                }
                Outcome::Dynamic(f) => {
                    dynamic_steps += 1;
                    if dynamic_steps > MAX_DYNAMIC_CHAIN {
                        return Resolved::Fail(Error::permanent(
                            &self.inner.name,
                            model,
                            format!(
                                "fake provider {}: more than {MAX_DYNAMIC_CHAIN} dynamic outcomes \
                                 returned each other for one request",
                                self.inner.name
                            ),
                        ));
                    }
                    f(request)
                }
                Outcome::Hang => std::future::pending().await,
            };
        }
    }

    fn fill_response(&self, mut response: Response, model: &str) -> Response {
        if response.provider.is_empty() {
            response.provider.clone_from(&self.inner.name);
        }
        if response.model.is_empty() {
            model.clone_into(&mut response.model);
        }
        response
    }

    fn fill_error(&self, mut error: Error, model: &str) -> Error {
        if error.provider.is_empty() {
            error.provider.clone_from(&self.inner.name);
        }
        if error.model.is_empty() {
            model.clone_into(&mut error.model);
        }
        error
    }

    fn script_stream(&self, script: StreamScript, model: &str) -> EventStream {
        let steps: Vec<ScriptStep> = script
            .steps()
            .iter()
            .cloned()
            .map(|step| match step {
                ScriptStep::Event(StreamEvent::Done {
                    finish_reason,
                    mut provider,
                    model: mut model_name,
                }) => {
                    if provider.is_empty() {
                        provider.clone_from(&self.inner.name);
                    }
                    if model_name.is_empty() {
                        model.clone_into(&mut model_name);
                    }
                    ScriptStep::Event(StreamEvent::Done { finish_reason, provider, model: model_name })
                }
                ScriptStep::Error(error) => ScriptStep::Error(self.fill_error(error, model)),
                other => other,
            })
            .collect();
        Box::pin(futures::stream::unfold(steps.into_iter(), |mut steps| async move {
            loop {
                match steps.next()? {
                    ScriptStep::Event(event) => return Some((Ok(event), steps)),
                    ScriptStep::Error(error) => return Some((Err(error), steps)),
                    ScriptStep::Delay(delay) => tokio::time::sleep(delay).await,
                    ScriptStep::Pending => std::future::pending::<()>().await,
                }
            }
        }))
    }
}

enum Resolved {
    Respond(Response),
    Fail(Error),
    Stream(EventStream),
}

impl Provider for FakeProvider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        FakeProvider::model(self, id)
    }
}

/// One model id of a [`FakeProvider`].
#[derive(Debug)]
struct FakeModel {
    provider: FakeProvider,
    id: String,
}

#[async_trait]
impl Model for FakeModel {
    fn provider(&self) -> &str {
        &self.provider.inner.name
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.provider.state().capabilities.get(&self.id).copied().unwrap_or_default()
    }

    fn media_limits(&self) -> Option<MediaLimits> {
        self.provider.state().media.get(&self.id).cloned()
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        let outcome = self.provider.take(&self.id, &request, false);
        match self.provider.resolve(&self.id, &request, outcome).await {
            Resolved::Respond(response) => Ok(response),
            Resolved::Fail(error) => Err(error),
            Resolved::Stream(stream) => {
                collect(stream).await.map_err(|failure| self.provider.fill_error(failure.error, &self.id))
            }
        }
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        let outcome = self.provider.take(&self.id, &request, true);
        match self.provider.resolve(&self.id, &request, outcome).await {
            Resolved::Respond(response) => Ok(response_to_stream(response)),
            Resolved::Fail(error) => Err(error),
            Resolved::Stream(stream) => Ok(stream),
        }
    }
}
