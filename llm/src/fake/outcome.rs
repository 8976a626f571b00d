//! What a [`FakeProvider`](super::FakeProvider) does with one request: [`Outcome`], and the
//! event script of a streamed outcome, [`StreamScript`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::stream::StreamEvent;
use crate::types::{FinishReason, Message, Part, Request, Response, Role, ToolCall, Usage};

/// A closure that decides the outcome from the request (see [`Outcome::dynamic`]).
pub type DynamicOutcome = Arc<dyn Fn(&Request) -> Outcome + Send + Sync>;

/// What the fake does with one request.
///
/// Provider and model names left empty in a scripted [`Response`], [`Error`] or
/// [`StreamEvent::Done`] are filled in with the fake's name and the called model id when the
/// outcome is served, so the helpers below need neither.
#[derive(Clone)]
#[non_exhaustive]
pub enum Outcome {
    /// Answer with this response (streamed as events by `stream`).
    Respond(Response),
    /// Fail with this error (before the first event, for `stream`).
    Fail(Error),
    /// Play this event script (collected into a response by `generate`).
    Stream(StreamScript),
    /// Wait (tokio time, so paused-clock tests advance instantly), then serve the inner outcome.
    Delay(Duration, Box<Outcome>),
    /// Compute the outcome from the request.
    Dynamic(DynamicOutcome),
    /// Never answer: the call stays pending until the caller drops it (to test timeouts).
    Hang,
}

impl fmt::Debug for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Respond(r) => f.debug_tuple("Respond").field(r).finish(),
            Self::Fail(e) => f.debug_tuple("Fail").field(e).finish(),
            Self::Stream(s) => f.debug_tuple("Stream").field(s).finish(),
            Self::Delay(d, o) => f.debug_tuple("Delay").field(d).field(o).finish(),
            Self::Dynamic(_) => f.write_str("Dynamic(..)"),
            Self::Hang => f.write_str("Hang"),
        }
    }
}

fn assistant(parts: Vec<Part>, finish_reason: FinishReason) -> Outcome {
    Outcome::Respond(Response {
        message: Message { role: Role::Assistant, parts },
        usage: Usage::default(),
        finish_reason,
        provider: String::new(),
        model: String::new(),
    })
}

impl Outcome {
    /// A text reply (finish reason `stop`, zero usage).
    pub fn text(text: impl Into<String>) -> Self {
        assistant(vec![Part::Text { text: text.into() }], FinishReason::Stop)
    }

    /// A reply asking for these tool calls (finish reason `tool_calls`).
    pub fn tool_calls(calls: impl IntoIterator<Item = ToolCall>) -> Self {
        assistant(calls.into_iter().map(Part::ToolCall).collect(), FinishReason::ToolCalls)
    }

    /// A reply asking for one tool call, with id `call_1`.
    pub fn tool_call(name: impl Into<String>, args: Value) -> Self {
        Self::tool_calls([ToolCall { id: "call_1".to_owned(), name: name.into(), args, signature: None }])
    }

    /// A text reply holding `value` serialised as JSON (for structured-output tests). A value
    /// that cannot be serialised becomes a permanent error outcome saying so.
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Self {
        match serde_json::to_string(value) {
            Ok(text) => Self::text(text),
            Err(e) => Self::error(ErrorKind::Permanent, format!("fake: JSON reply not serialisable: {e}")),
        }
    }

    /// This exact response.
    pub fn response(response: Response) -> Self {
        Self::Respond(response)
    }

    /// A failure with this error.
    pub fn fail(error: Error) -> Self {
        Self::Fail(error)
    }

    /// A failure of `kind` with `message` (provider and model filled in when served).
    pub fn error(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Fail(Error::new(kind, "", "", message))
    }

    /// A transient failure (`message`), e.g. to test retries.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::error(ErrorKind::Transient, message)
    }

    /// A permanent failure (`message`).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::error(ErrorKind::Permanent, message)
    }

    /// An HTTP 429 transient failure with a `Retry-After` delay.
    pub fn rate_limited(retry_after: Duration) -> Self {
        Self::Fail(
            Error::new(ErrorKind::Transient, "", "", "rate limited")
                .with_status(429)
                .with_retry_after(Some(retry_after)),
        )
    }

    /// A streamed outcome playing `script`.
    pub fn stream(script: impl Into<StreamScript>) -> Self {
        Self::Stream(script.into())
    }

    /// Waits `delay`, then serves `outcome`.
    pub fn delay(delay: Duration, outcome: Outcome) -> Self {
        Self::Delay(delay, Box::new(outcome))
    }

    /// This outcome, served after `delay`.
    #[must_use]
    pub fn after(self, delay: Duration) -> Self {
        Self::delay(delay, self)
    }

    /// An outcome computed from the request when it arrives.
    pub fn dynamic(f: impl Fn(&Request) -> Outcome + Send + Sync + 'static) -> Self {
        Self::Dynamic(Arc::new(f))
    }

    /// Never answers.
    pub fn hang() -> Self {
        Self::Hang
    }

    /// Sets the usage of a response outcome (also inside a delay); other outcomes are returned
    /// unchanged.
    #[must_use]
    pub fn with_usage(self, usage: Usage) -> Self {
        match self {
            Self::Respond(mut r) => {
                r.usage = usage;
                Self::Respond(r)
            }
            Self::Delay(d, inner) => Self::Delay(d, Box::new(inner.with_usage(usage))),
            other => other,
        }
    }

    /// Sets the model reported as having answered (`Response::model`) on a response outcome
    /// (also inside a delay); other outcomes are returned unchanged.
    #[must_use]
    pub fn with_model(self, model: impl Into<String>) -> Self {
        match self {
            Self::Respond(mut r) => {
                r.model = model.into();
                Self::Respond(r)
            }
            Self::Delay(d, inner) => Self::Delay(d, Box::new(inner.with_model(model))),
            other => other,
        }
    }
}

impl From<Response> for Outcome {
    fn from(response: Response) -> Self {
        Self::Respond(response)
    }
}

impl From<Error> for Outcome {
    fn from(error: Error) -> Self {
        Self::Fail(error)
    }
}

impl From<StreamScript> for Outcome {
    fn from(script: StreamScript) -> Self {
        Self::Stream(script)
    }
}

/// One step of a [`StreamScript`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ScriptStep {
    /// Yield this event.
    Event(StreamEvent),
    /// Yield this error (the script goes on afterwards if it has more steps; real streams end).
    Error(Error),
    /// Wait (tokio time) before the next step.
    Delay(Duration),
    /// Never yield again: the stream stays pending (to test idle timeouts and cancellation).
    Pending,
}

/// The events of a streamed outcome, in order.
///
/// ```
/// use executus_llm::fake::StreamScript;
/// use executus_llm::Usage;
///
/// let script = StreamScript::new()
///     .text("Hel")
///     .text("lo")
///     .usage(Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() })
///     .done();
/// assert_eq!(script.steps().len(), 4);
/// ```
#[derive(Debug, Clone, Default)]
pub struct StreamScript {
    steps: Vec<ScriptStep>,
}

impl StreamScript {
    /// An empty script (a stream that ends at once, without `Done`: a truncated stream).
    pub fn new() -> Self {
        Self::default()
    }

    /// The steps so far.
    pub fn steps(&self) -> &[ScriptStep] {
        &self.steps
    }

    /// Appends a step.
    #[must_use]
    pub fn step(mut self, step: ScriptStep) -> Self {
        self.steps.push(step);
        self
    }

    /// Appends an event.
    #[must_use]
    pub fn event(self, event: StreamEvent) -> Self {
        self.step(ScriptStep::Event(event))
    }

    /// Appends a text delta.
    #[must_use]
    pub fn text(self, text: impl Into<String>) -> Self {
        self.event(StreamEvent::TextDelta { text: text.into() })
    }

    /// Appends a reasoning delta.
    #[must_use]
    pub fn reasoning(self, text: impl Into<String>) -> Self {
        self.event(StreamEvent::ReasoningDelta { text: text.into() })
    }

    /// Appends a tool-call fragment.
    #[must_use]
    pub fn tool_call_delta(
        self,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        args: impl Into<String>,
    ) -> Self {
        self.event(StreamEvent::ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            args: args.into(),
        })
    }

    /// Appends a completed tool call.
    #[must_use]
    pub fn tool_call(self, call: ToolCall) -> Self {
        self.event(StreamEvent::ToolCall { call })
    }

    /// Appends a usage event.
    #[must_use]
    pub fn usage(self, usage: Usage) -> Self {
        self.event(StreamEvent::Usage { usage })
    }

    /// Appends `Done` with finish reason `stop` (provider and model filled in when served).
    #[must_use]
    pub fn done(self) -> Self {
        self.done_with(FinishReason::Stop)
    }

    /// Appends `Done` with this finish reason.
    #[must_use]
    pub fn done_with(self, finish_reason: FinishReason) -> Self {
        self.event(StreamEvent::Done { finish_reason, provider: String::new(), model: String::new() })
    }

    /// Appends an error.
    #[must_use]
    pub fn error(self, error: Error) -> Self {
        self.step(ScriptStep::Error(error))
    }

    /// Appends a transient error with `message` (e.g. a mid-stream `overloaded` event).
    #[must_use]
    pub fn transient(self, message: impl Into<String>) -> Self {
        self.error(Error::new(ErrorKind::Transient, "", "", message))
    }

    /// Appends a pause of `delay` (tokio time).
    #[must_use]
    pub fn delay(self, delay: Duration) -> Self {
        self.step(ScriptStep::Delay(delay))
    }

    /// Appends a step that never resolves.
    #[must_use]
    pub fn pending(self) -> Self {
        self.step(ScriptStep::Pending)
    }
}

impl From<Vec<Result<StreamEvent, Error>>> for StreamScript {
    fn from(items: Vec<Result<StreamEvent, Error>>) -> Self {
        Self {
            steps: items
                .into_iter()
                .map(|item| match item {
                    Ok(event) => ScriptStep::Event(event),
                    Err(error) => ScriptStep::Error(error),
                })
                .collect(),
        }
    }
}

impl From<Vec<ScriptStep>> for StreamScript {
    fn from(steps: Vec<ScriptStep>) -> Self {
        Self { steps }
    }
}
