//! The Messages API event stream -> [`StreamEvent`]s.
//!
//! Events handled: `message_start` (model, usage with cache tokens), `content_block_start`
//! (text, tool_use, thinking, redacted_thinking), `content_block_delta` (`text_delta`,
//! `input_json_delta`, `thinking_delta`, `signature_delta`), `content_block_stop` (a tool_use
//! block becomes a completed [`StreamEvent::ToolCall`]), `message_delta` (stop reason, usage),
//! `message_stop` (-> [`StreamEvent::Done`]), `ping`, and `error`. Unknown event and delta
//! types are ignored, as the API's versioning policy asks.
//!
//! Guarantees: after an error item the stream ends; a stream that ends before `message_stop`
//! yields a transient truncation error; data that is not the expected JSON is a decode error;
//! no input makes it panic, and a tool call's argument text is capped (at the client's
//! `max_body_bytes`) so a hostile server cannot grow it without bound.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;

use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::Value;

use super::request::Plan;
use super::response::{WireError, WireUsage, adjust_finish, finish_reason};
use super::thinking;
use crate::error::{Error, ErrorKind, Result};
use crate::http::Http;
use crate::stream::{EventStream, StreamEvent};
use crate::types::{FinishReason, ToolCall};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: StartBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    #[serde(default)]
    model: String,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StartBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Default, Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// A content block being streamed.
#[derive(Debug)]
enum Block {
    Text,
    Tool { index: u32, id: String, name: String, args: String, start_input: Value, answer: bool },
    Thinking { text: String, signature: String },
    Redacted { data: String },
    Other,
}

/// The stream state machine. Feed it events with [`Parser::event`]; it queues output items.
#[derive(Debug)]
pub(super) struct Parser {
    http: Http,
    model_id: String,
    plan: Plan,
    model: Option<String>,
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<String>,
    /// Signed thinking blocks waiting for the tool call that follows them.
    pending_thinking: Vec<Value>,
    /// With structured output, text is held back: if the answer tool is called, text around it
    /// is preamble and dropped; if not, it is flushed at the end.
    held_text: String,
    answered: bool,
    real_calls: usize,
    max_args: usize,
    finished: bool,
    out: VecDeque<Result<StreamEvent>>,
}

impl Parser {
    /// A parser for a response from `model_id`, built with `plan`.
    pub(super) fn new(http: Http, model_id: &str, plan: Plan) -> Self {
        let max_args = http.options.max_body_bytes;
        Self {
            http,
            model_id: model_id.to_owned(),
            plan,
            model: None,
            blocks: BTreeMap::new(),
            stop_reason: None,
            pending_thinking: Vec::new(),
            held_text: String::new(),
            answered: false,
            real_calls: 0,
            max_args,
            finished: false,
            out: VecDeque::new(),
        }
    }

    /// The next queued output item.
    pub(super) fn pop(&mut self) -> Option<Result<StreamEvent>> {
        self.out.pop_front()
    }

    /// True once the stream has ended (completed or failed); nothing more will be queued.
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    fn emit(&mut self, event: StreamEvent) {
        self.out.push_back(Ok(event));
    }

    /// Ends the stream with `error`, after flushing held-back text so it lands in the partial.
    pub(super) fn fail(&mut self, error: Error) {
        if self.finished {
            return;
        }
        self.flush_held();
        self.out.push_back(Err(error));
        self.finished = true;
    }

    fn decode_error(&mut self, message: impl AsRef<str>) {
        let error = self.http.error(ErrorKind::Decode, &self.model_id, message);
        self.fail(error);
    }

    /// The transport ended.
    pub(super) fn end(&mut self) {
        if !self.finished {
            let error = self.http.error(
                ErrorKind::Transient,
                &self.model_id,
                "event stream ended before message_stop (truncated)",
            );
            self.fail(error);
        }
    }

    fn flush_held(&mut self) {
        if !self.held_text.is_empty() {
            let text = std::mem::take(&mut self.held_text);
            self.emit(StreamEvent::TextDelta { text });
        }
    }

    fn text(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        if self.plan.answer.is_some() {
            if !self.answered {
                self.held_text.push_str(&text);
            }
        } else {
            self.emit(StreamEvent::TextDelta { text });
        }
    }

    /// Handles one SSE event (`event:` name and `data:`).
    pub(super) fn event(&mut self, name: &str, data: &str) {
        if self.finished {
            return;
        }
        if name == "error" {
            // Anthropic wraps the error (`{"type":"error","error":{..}}`); llama-server sends
            // the error object itself; anything else is still an error event.
            let error = self.error_event(data);
            self.fail(error);
            return;
        }
        if data.trim().is_empty() {
            // A bare `event: ping` with no data, or keep-alive framing.
            return;
        }
        let event = match serde_json::from_str::<WireEvent>(data) {
            Ok(event) => event,
            Err(e) => {
                let preview = crate::http::preview(data.as_bytes());
                self.decode_error(format!("invalid `{name}` event ({e}); data starts: {preview}"));
                return;
            }
        };
        match event {
            WireEvent::MessageStart { message } => {
                if !message.model.is_empty() {
                    self.model = Some(message.model);
                }
                if let Some(usage) = message.usage {
                    self.emit(StreamEvent::Usage { usage: usage.to_usage() });
                }
            }
            WireEvent::ContentBlockStart { index, content_block } => self.block_start(index, content_block),
            WireEvent::ContentBlockDelta { index, delta } => self.block_delta(index, delta),
            WireEvent::ContentBlockStop { index } => self.block_stop(index),
            WireEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(usage) = usage {
                    self.emit(StreamEvent::Usage { usage: usage.to_usage() });
                }
            }
            WireEvent::MessageStop => {
                self.flush_held();
                let reason = finish_reason(self.stop_reason.as_deref());
                let finish_reason: FinishReason = adjust_finish(reason, self.answered, self.real_calls);
                let model = self.model.clone().unwrap_or_else(|| self.model_id.clone());
                let provider = self.http.provider.clone();
                self.emit(StreamEvent::Done { finish_reason, provider, model });
                self.finished = true;
            }
            WireEvent::Ping | WireEvent::Unknown => {}
            WireEvent::Error { error } => {
                let error = error.to_error(&self.http, &self.model_id);
                self.fail(error);
            }
        }
    }

    fn error_event(&self, data: &str) -> Error {
        let value = serde_json::from_str::<Value>(data).unwrap_or(Value::Null);
        let object = match value.get("error") {
            Some(inner) if inner.is_object() => inner,
            _ => &value,
        };
        let field = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut error = WireError { kind: field("type"), message: field("message") };
        if error.kind.is_empty() && error.message.is_empty() {
            error.message = crate::http::preview(data.as_bytes());
        }
        error.to_error(&self.http, &self.model_id)
    }

    fn block_start(&mut self, index: u64, block: StartBlock) {
        let block = match block {
            StartBlock::Text { text } => {
                self.text(text);
                Block::Text
            }
            StartBlock::ToolUse { id, name, input } => {
                let Ok(call_index) = u32::try_from(index) else {
                    self.decode_error(format!("content block index {index} out of range"));
                    return;
                };
                let id = if id.is_empty() { format!("toolu_{index}") } else { id };
                let answer = self.plan.is_answer(&name);
                if answer {
                    self.answered = true;
                    self.held_text.clear();
                } else {
                    self.emit(StreamEvent::ToolCallDelta {
                        index: call_index,
                        id: Some(id.clone()),
                        name: Some(name.clone()),
                        args: String::new(),
                    });
                }
                Block::Tool { index: call_index, id, name, args: String::new(), start_input: input, answer }
            }
            StartBlock::Thinking { thinking, signature } => {
                if !thinking.is_empty() {
                    self.emit(StreamEvent::ReasoningDelta { text: thinking.clone() });
                }
                Block::Thinking { text: thinking, signature }
            }
            StartBlock::RedactedThinking { data } => Block::Redacted { data },
            StartBlock::Other => Block::Other,
        };
        self.blocks.insert(index, block);
    }

    fn block_delta(&mut self, index: u64, delta: BlockDelta) {
        match delta {
            BlockDelta::TextDelta { text } => self.text(text),
            BlockDelta::ThinkingDelta { thinking } => {
                if let Some(Block::Thinking { text, .. }) = self.blocks.get_mut(&index) {
                    text.push_str(&thinking);
                }
                if !thinking.is_empty() {
                    self.emit(StreamEvent::ReasoningDelta { text: thinking });
                }
            }
            BlockDelta::SignatureDelta { signature } => {
                if let Some(Block::Thinking { signature: sig, .. }) = self.blocks.get_mut(&index) {
                    sig.push_str(&signature);
                }
            }
            BlockDelta::InputJsonDelta { partial_json } => {
                let max = self.max_args;
                let Some(Block::Tool { index: call_index, args, answer, .. }) = self.blocks.get_mut(&index)
                else {
                    self.decode_error(format!(
                        "input_json_delta for content block {index}, which is not a tool_use block"
                    ));
                    return;
                };
                if args.len() + partial_json.len() > max {
                    self.decode_error(format!("tool call arguments exceed {max} bytes"));
                    return;
                }
                args.push_str(&partial_json);
                let (call_index, answer) = (*call_index, *answer);
                if partial_json.is_empty() {
                    return;
                }
                if answer {
                    // An object schema streams as is; a wrapped one is unwrapped at the end.
                    if !self.plan.answer.as_ref().is_some_and(|a| a.wrapped) {
                        self.emit(StreamEvent::TextDelta { text: partial_json });
                    }
                } else {
                    self.emit(StreamEvent::ToolCallDelta {
                        index: call_index,
                        id: None,
                        name: None,
                        args: partial_json,
                    });
                }
            }
            BlockDelta::Other => {}
        }
    }

    fn block_stop(&mut self, index: u64) {
        match self.blocks.remove(&index) {
            Some(Block::Tool { id, name, args, start_input, answer, .. }) => {
                let input = if args.trim().is_empty() {
                    // No fragments: the start event's input (empty for the real API) or `{}`.
                    match start_input {
                        Value::Object(map) => Value::Object(map),
                        _ => Value::Object(serde_json::Map::new()),
                    }
                } else {
                    serde_json::from_str::<Value>(&args).unwrap_or(Value::String(args.clone()))
                };
                if answer {
                    let wrapped = self.plan.answer.as_ref().is_some_and(|a| a.wrapped);
                    if wrapped || args.trim().is_empty() {
                        let text = self.plan.answer_text(&input);
                        self.emit(StreamEvent::TextDelta { text });
                    }
                } else {
                    self.real_calls += 1;
                    let signature = thinking::encode(std::mem::take(&mut self.pending_thinking));
                    self.emit(StreamEvent::ToolCall { call: ToolCall { id, name, args: input, signature } });
                }
            }
            Some(Block::Thinking { text, signature }) => {
                self.pending_thinking.extend(thinking::thinking_block(&text, &signature));
            }
            Some(Block::Redacted { data }) => self.pending_thinking.push(thinking::redacted_block(&data)),
            Some(Block::Text | Block::Other) | None => {}
        }
    }
}

/// SSE `(event name, data)` items, as [`Http::sse`] yields them.
pub(super) type SseEvents = Pin<Box<dyn Stream<Item = Result<(String, String)>> + Send>>;

/// Runs `parser` over SSE `(event, data)` items until the stream completes or fails.
pub(super) fn drive(events: SseEvents, parser: Parser) -> EventStream {
    Box::pin(futures::stream::unfold((events, parser), |(mut events, mut parser)| async move {
        loop {
            if let Some(item) = parser.pop() {
                return Some((item, (events, parser)));
            }
            if parser.is_finished() {
                return None;
            }
            match events.next().await {
                Some(Ok((name, data))) => parser.event(&name, &data),
                Some(Err(error)) => parser.fail(error),
                None => parser.end(),
            }
        }
    }))
}
