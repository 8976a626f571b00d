//! Streaming: the event type and the helpers that turn a stream into a [`Response`].
//!
//! Semantics the helpers guarantee:
//! - [`collect`] folds a stream into a `Response`;
//! - [`drive`] does the same while calling a callback per event; the callback's error stops
//!   the stream (dropping it cancels the HTTP request) and is returned;
//! - [`with_cancellation`] ends a stream with [`ErrorKind::Cancelled`] when a token fires;
//!   dropping a stream also cancels it;
//! - a failure after partial output returns the error *and* what was received so far
//!   ([`Partial`]): text, completed tool calls, tool calls still being streamed, usage.
//! - a stream that ends without a [`StreamEvent::Done`] is a transient error (truncated).

use std::collections::BTreeMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::types::{FinishReason, Message, Part, Response, Role, ToolCall, Usage};

/// A streamed response: events until `Done`, or an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, Error>> + Send + 'static>>;

/// One event of a streamed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// A piece of answer text.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A piece of reasoning ("thinking") text, where the provider exposes it. Not part of the
    /// final message.
    ReasoningDelta {
        /// The text.
        text: String,
    },
    /// A fragment of a tool call being streamed. Calls are keyed by `index`; `id` and `name`
    /// arrive once (usually first), `args` fragments concatenate to the JSON arguments.
    ToolCallDelta {
        /// Position of the call in this response.
        index: u32,
        /// Call id, when this fragment carries it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Tool name, when this fragment carries it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Argument text fragment.
        #[serde(default)]
        args: String,
    },
    /// A completed tool call (arguments parsed).
    ToolCall {
        /// The call.
        call: ToolCall,
    },
    /// Token usage (may arrive more than once; the last value wins per field that is non-zero).
    Usage {
        /// The usage.
        usage: Usage,
    },
    /// The end of the response.
    Done {
        /// Why generation stopped.
        finish_reason: FinishReason,
        /// The provider that answered.
        provider: String,
        /// The model that answered.
        model: String,
    },
}

/// What a stream had delivered when it failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Partial {
    /// Answer text so far.
    pub text: String,
    /// Tool calls completed so far.
    pub tool_calls: Vec<ToolCall>,
    /// Tool calls whose fragments had started but not completed: `(id, name, raw args)`.
    pub incomplete_tool_calls: Vec<(String, String, String)>,
    /// Usage reported so far.
    pub usage: Usage,
}

/// A stream failure together with the partial output received before it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{error}")]
pub struct StreamFailure {
    /// The error.
    pub error: Error,
    /// Output received before the error.
    pub partial: Partial,
}

/// Why [`drive`] stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DriveError<E> {
    /// The stream failed.
    #[error(transparent)]
    Stream(StreamFailure),
    /// The callback returned an error; the stream was dropped (cancelling the request).
    #[error("stream stopped by callback")]
    Callback {
        /// The callback's error.
        error: E,
        /// Output received before it.
        partial: Partial,
    },
}

#[derive(Debug, Default)]
struct PendingCall {
    id: Option<String>,
    name: Option<String>,
    args: String,
}

/// Folds stream events into a [`Response`]. Usable on its own by hosts that consume events
/// themselves.
#[derive(Debug, Default)]
pub struct Collector {
    parts: Vec<Part>,
    pending: BTreeMap<u32, PendingCall>,
    usage: Usage,
    done: Option<(FinishReason, String, String)>,
}

impl Collector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event in.
    pub fn push(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => {
                if let Some(Part::Text { text: last }) = self.parts.last_mut() {
                    last.push_str(text);
                } else if !text.is_empty() {
                    self.parts.push(Part::Text { text: text.clone() });
                }
            }
            StreamEvent::ReasoningDelta { .. } => {}
            StreamEvent::ToolCallDelta { index, id, name, args } => {
                let p = self.pending.entry(*index).or_default();
                if id.is_some() {
                    p.id.clone_from(id);
                }
                if name.is_some() {
                    p.name.clone_from(name);
                }
                p.args.push_str(args);
            }
            StreamEvent::ToolCall { call } => {
                // The completed call supersedes its fragments.
                self.pending.retain(|_, p| p.id.as_deref() != Some(call.id.as_str()));
                self.parts.push(Part::ToolCall(call.clone()));
            }
            StreamEvent::Usage { usage } => merge_usage(&mut self.usage, usage),
            StreamEvent::Done { finish_reason, provider, model } => {
                self.done = Some((finish_reason.clone(), provider.clone(), model.clone()));
            }
        }
    }

    /// True once a `Done` event was seen.
    pub fn is_done(&self) -> bool {
        self.done.is_some()
    }

    /// What has been received so far.
    pub fn partial(&self) -> Partial {
        let mut partial = Partial { usage: self.usage, ..Partial::default() };
        for part in &self.parts {
            match part {
                Part::Text { text } => partial.text.push_str(text),
                Part::ToolCall(c) => partial.tool_calls.push(c.clone()),
                _ => {}
            }
        }
        partial.incomplete_tool_calls = self
            .pending
            .values()
            .map(|p| (p.id.clone().unwrap_or_default(), p.name.clone().unwrap_or_default(), p.args.clone()))
            .collect();
        partial
    }

    /// The final response.
    ///
    /// # Errors
    /// A transient error when no `Done` event was seen (the stream was truncated).
    pub fn finish(self, provider: &str, model: &str) -> Result<Response, StreamFailure> {
        let Some((finish_reason, p, m)) = self.done.clone() else {
            return Err(StreamFailure {
                error: Error::new(
                    ErrorKind::Transient,
                    provider,
                    model,
                    "stream ended before its completion event (truncated)",
                ),
                partial: self.partial(),
            });
        };
        Ok(Response {
            message: Message { role: Role::Assistant, parts: self.parts },
            usage: self.usage,
            finish_reason,
            provider: p,
            model: m,
        })
    }
}

/// Folds one usage report of a stream into what was reported before: every non-zero field
/// replaces the earlier value (providers report cumulatively or split across events).
pub fn merge_usage(into: &mut Usage, from: &Usage) {
    // Providers report usage either cumulatively (OpenAI's final chunk, Anthropic's
    // message_delta) or split (Anthropic input in message_start, output later). Taking each
    // non-zero field as the latest value handles both.
    let fields = [
        (&mut into.input_tokens, from.input_tokens),
        (&mut into.output_tokens, from.output_tokens),
        (&mut into.cache_read_tokens, from.cache_read_tokens),
        (&mut into.cache_write_tokens, from.cache_write_tokens),
        (&mut into.reasoning_tokens, from.reasoning_tokens),
    ];
    for (slot, value) in fields {
        if value != 0 {
            *slot = value;
        }
    }
}

/// Collects a stream into a [`Response`].
///
/// # Errors
/// The stream's first error, with the partial output received before it; a truncated stream
/// (no `Done`) is a transient error.
pub async fn collect(stream: EventStream) -> Result<Response, StreamFailure> {
    match drive(stream, |_| Ok::<(), std::convert::Infallible>(())).await {
        Ok(r) => Ok(r),
        Err(DriveError::Stream(f)) => Err(f),
        Err(DriveError::Callback { error, .. }) => match error {},
    }
}

/// Drives a stream to its end, calling `on_event` for each event, and returns the collected
/// [`Response`]. The callback's error stops the stream (it is dropped, cancelling the request)
/// and is returned with the partial output.
///
/// # Errors
/// [`DriveError::Stream`] on a stream error, [`DriveError::Callback`] on a callback error.
pub async fn drive<E, F>(mut stream: EventStream, mut on_event: F) -> Result<Response, DriveError<E>>
where
    F: FnMut(&StreamEvent) -> Result<(), E>,
{
    let mut collector = Collector::new();
    let mut who = (String::new(), String::new());
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                collector.push(&event);
                if let StreamEvent::Done { provider, model, .. } = &event {
                    who = (provider.clone(), model.clone());
                }
                if let Err(error) = on_event(&event) {
                    drop(stream);
                    return Err(DriveError::Callback { error, partial: collector.partial() });
                }
            }
            Err(error) => {
                return Err(DriveError::Stream(StreamFailure { error, partial: collector.partial() }));
            }
        }
    }
    collector.finish(&who.0, &who.1).map_err(DriveError::Stream)
}

/// Wraps a stream so that it ends with a [`ErrorKind::Cancelled`] error as soon as `token`
/// fires. The inner stream is dropped at that moment, which aborts its HTTP request.
pub fn with_cancellation(
    stream: EventStream,
    token: CancellationToken,
    provider: &str,
    model: &str,
) -> EventStream {
    let cancelled = Error::cancelled(provider, model);
    Box::pin(futures::stream::unfold(Some((stream, token, cancelled)), |state| async move {
        let (mut stream, token, cancelled) = state?;
        tokio::select! {
            biased;
            () = token.cancelled() => Some((Err(cancelled), None)),
            item = stream.next() => {
                let item = item?;
                Some((item, Some((stream, token, cancelled))))
            }
        }
    }))
}

/// A stream that replays a finished [`Response`] as events (used by fakes and by models that
/// cannot stream natively).
pub fn response_to_stream(response: Response) -> EventStream {
    let mut events = Vec::new();
    for part in response.message.parts {
        match part {
            Part::Text { text } => events.push(Ok(StreamEvent::TextDelta { text })),
            Part::ToolCall(call) => events.push(Ok(StreamEvent::ToolCall { call })),
            _ => {}
        }
    }
    events.push(Ok(StreamEvent::Usage { usage: response.usage }));
    events.push(Ok(StreamEvent::Done {
        finish_reason: response.finish_reason,
        provider: response.provider,
        model: response.model,
    }));
    Box::pin(futures::stream::iter(events))
}
