//! Small test doubles for the chain and registry tests: a scripted model, a provider handing
//! them out, and an observer that records chain events as compact strings.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use executus_llm::{
    Capabilities, ChainEvent, ChainObserver, Error, EventStream, FinishReason, Message, Model, Provider,
    Request, Response, SkipReason, StreamEvent, Usage,
};

/// Locks a mutex; a panicking test thread must not cascade into other assertions.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one call to a [`Scripted`] model does.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Answer with this text (streamed: one text delta, then done).
    Reply(String),
    /// Fail at once (`generate` or `stream()` itself returns the error).
    Fail(Error),
    /// Streams only: `stream()` succeeds, its first item is this error.
    FirstItemFails(Error),
    /// Streams only: yields this text, then fails with the error.
    FailsAfter(String, Error),
}

/// A model that plays back queued outcomes, then a fallback (a reply naming it, by default).
#[derive(Debug)]
pub struct Scripted {
    provider: String,
    id: String,
    caps: Mutex<Capabilities>,
    queue: Mutex<VecDeque<Outcome>>,
    fallback: Mutex<Option<Outcome>>,
    requests: Mutex<Vec<Request>>,
}

impl Scripted {
    pub fn new(provider: &str, id: &str) -> Arc<Self> {
        Arc::new(Self {
            provider: provider.to_owned(),
            id: id.to_owned(),
            caps: Mutex::new(Capabilities::UNKNOWN),
            queue: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
        })
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.provider, self.id)
    }

    pub fn push(&self, outcome: Outcome) -> &Self {
        lock(&self.queue).push_back(outcome);
        self
    }

    /// What every call does once the queue is empty.
    pub fn always(&self, outcome: Outcome) -> &Self {
        *lock(&self.fallback) = Some(outcome);
        self
    }

    pub fn set_caps(&self, caps: Capabilities) {
        *lock(&self.caps) = caps;
    }

    pub fn calls(&self) -> usize {
        lock(&self.requests).len()
    }

    pub fn requests(&self) -> Vec<Request> {
        lock(&self.requests).clone()
    }

    fn next(&self, request: Request) -> Outcome {
        lock(&self.requests).push(request);
        let queued = lock(&self.queue).pop_front();
        queued
            .or_else(|| lock(&self.fallback).clone())
            .unwrap_or_else(|| Outcome::Reply(format!("hello from {}", self.key())))
    }

    fn response(&self, text: String) -> Response {
        Response {
            message: Message::assistant(text),
            usage: Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() },
            finish_reason: FinishReason::Stop,
            provider: self.provider.clone(),
            model: self.id.clone(),
        }
    }
}

#[async_trait]
impl Model for Scripted {
    fn provider(&self) -> &str {
        &self.provider
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        *lock(&self.caps)
    }

    async fn generate(&self, request: Request) -> executus_llm::Result<Response> {
        match self.next(request) {
            Outcome::Reply(text) => Ok(self.response(text)),
            Outcome::Fail(error) => Err(error),
            other => panic!("stream-only outcome {other:?} used with generate"),
        }
    }

    async fn stream(&self, request: Request) -> executus_llm::Result<EventStream> {
        let done = StreamEvent::Done {
            finish_reason: FinishReason::Stop,
            provider: self.provider.clone(),
            model: self.id.clone(),
        };
        let items = match self.next(request) {
            Outcome::Reply(text) => vec![Ok(StreamEvent::TextDelta { text }), Ok(done)],
            Outcome::Fail(error) => return Err(error),
            Outcome::FirstItemFails(error) => vec![Err(error)],
            Outcome::FailsAfter(text, error) => {
                vec![Ok(StreamEvent::TextDelta { text }), Err(error)]
            }
        };
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

/// A provider whose models are [`Scripted`], created on first use and kept by id.
#[derive(Debug)]
pub struct ScriptedProvider {
    name: String,
    models: Mutex<BTreeMap<String, Arc<Scripted>>>,
}

impl ScriptedProvider {
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self { name: name.to_owned(), models: Mutex::new(BTreeMap::new()) })
    }

    pub fn get(&self, id: &str) -> Arc<Scripted> {
        let mut models = lock(&self.models);
        Arc::clone(models.entry(id.to_owned()).or_insert_with(|| Scripted::new(&self.name, id)))
    }
}

impl Provider for ScriptedProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        self.get(id)
    }
}

/// Records chain events as compact strings, e.g. `retry a/m #1 250ms transient`.
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.0))
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl ChainObserver for Recorder {
    fn on_event(&self, event: &ChainEvent) {
        let line = match event {
            ChainEvent::Attempt { target, n } => format!("attempt {target} #{n}"),
            ChainEvent::Retry { target, n, delay, error } => {
                format!("retry {target} #{n} {} {}", ms(*delay), error.kind)
            }
            ChainEvent::Bench { target, cooldown } => format!("bench {target} {}", ms(*cooldown)),
            ChainEvent::Skip { target, reason: SkipReason::Benched { remaining } } => {
                format!("skip {target} benched {}", ms(*remaining))
            }
            ChainEvent::Skip { target, reason: SkipReason::Incapable { capability } } => {
                format!("skip {target} no {capability}")
            }
            ChainEvent::Success { target, latency } => format!("success {target} {}", ms(*latency)),
            ChainEvent::Failover { from, to, error } => {
                format!("failover {from} -> {to} {}", error.kind)
            }
            other => format!("{other:?}"),
        };
        lock(&self.0).push(line);
    }
}

/// A transient error from `model`.
pub fn transient(model: &Scripted) -> Error {
    Error::transient(model.provider(), model.model_id(), "overloaded").with_status(503)
}
