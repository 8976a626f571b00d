//! Streamed Chat Completions: SSE `data:` chunks -> [`StreamEvent`]s.
//!
//! Per chunk: `delta.content` -> [`StreamEvent::TextDelta`]; `delta.reasoning_content` (or
//! `delta.reasoning`) -> [`StreamEvent::ReasoningDelta`]; `delta.tool_calls[]` ->
//! [`StreamEvent::ToolCallDelta`], keyed by `index` so several parallel calls can interleave
//! (the first fragment of a call carries its id and name, later ones argument text); a
//! `finish_reason` completes every call as a [`StreamEvent::ToolCall`]; a `usage` object
//! (OpenAI's usage-only final chunk with empty `choices`, or llama.cpp's last chunk) ->
//! [`StreamEvent::Usage`]. `data: [DONE]` ends the stream with [`StreamEvent::Done`].
//!
//! Ends: a stream that closes after a `finish_reason` but without `[DONE]` is accepted (some
//! servers omit it); one that closes with neither is truncated, a transient error. A
//! `data: {"error": ...}` chunk (or an `event: error`) is an error item, transient unless its
//! code/type says otherwise. Malformed JSON in a data line is a decode error. Nothing after an
//! error or `[DONE]` is read. Buffered tool-call arguments are capped at the client's
//! `max_body_bytes`, and the number of parallel calls at [`MAX_TOOL_CALLS`].

use std::collections::{BTreeMap, VecDeque};

use futures::StreamExt;
use serde_json::Value;

use super::error::body_error;
use super::response::{IdSynth, finish_reason, non_empty_str, parse_arguments, usage};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{Http, preview};
use crate::stream::{EventStream, StreamEvent};
use crate::types::{FinishReason, ToolCall};

/// Most parallel tool calls accepted in one streamed response.
pub(super) const MAX_TOOL_CALLS: usize = 1024;

/// The event stream of a streamed response whose headers have arrived.
pub(super) fn event_stream(http: &Http, model: &str, response: reqwest::Response) -> EventStream {
    let sse = Box::pin(http.sse(model, response));
    let parser = ChunkParser::new(http.clone(), model);
    let state = (sse, parser, VecDeque::<Result<StreamEvent>>::new());
    Box::pin(futures::stream::unfold(Some(state), |state| async move {
        let (mut sse, mut parser, mut queue) = state?;
        loop {
            if let Some(item) = queue.pop_front() {
                // An error ends the stream: nothing after it is read.
                let next = if item.is_err() { None } else { Some((sse, parser, queue)) };
                return Some((item, next));
            }
            if parser.is_finished() {
                return None;
            }
            match sse.next().await {
                Some(Ok((event, data))) => queue.extend(parser.on_event(&event, &data)),
                Some(Err(error)) => queue.extend(parser.on_transport_error(error)),
                None => queue.extend(parser.on_end()),
            }
        }
    }))
}

#[derive(Debug)]
struct CallState {
    id: String,
    /// True while `id` is one we made up (a later fragment may still bring the real one).
    synthetic: bool,
    name: String,
    args: String,
    /// A completed `ToolCall` event was emitted; later fragments are ignored.
    emitted: bool,
}

/// The chunk-by-chunk state machine, free of I/O so it can be tested on its own.
#[derive(Debug)]
pub(super) struct ChunkParser {
    http: Http,
    requested: String,
    model: Option<String>,
    finish: Option<FinishReason>,
    calls: BTreeMap<u32, CallState>,
    last_index: Option<u32>,
    ids: IdSynth,
    buffered: usize,
    finished: bool,
}

impl ChunkParser {
    pub(super) fn new(http: Http, requested: &str) -> Self {
        Self {
            http,
            requested: requested.to_owned(),
            model: None,
            finish: None,
            calls: BTreeMap::new(),
            last_index: None,
            ids: IdSynth::new(),
            buffered: 0,
            finished: false,
        }
    }

    /// True once the stream is over (`[DONE]`, an error, or the end of the body).
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    fn fail(&mut self, error: Error) -> Vec<Result<StreamEvent>> {
        self.finished = true;
        vec![Err(error)]
    }

    fn decode_error(&mut self, message: String) -> Vec<Result<StreamEvent>> {
        let error = self.http.error(ErrorKind::Decode, &self.requested, message);
        self.fail(error)
    }

    /// One SSE event.
    pub(super) fn on_event(&mut self, event: &str, data: &str) -> Vec<Result<StreamEvent>> {
        if self.finished {
            return Vec::new();
        }
        let data = data.trim();
        if data == "[DONE]" {
            return self.complete();
        }
        if event == "error" {
            let value =
                serde_json::from_str::<Value>(data).unwrap_or_else(|_| Value::String(data.to_owned()));
            let inner = value.get("error").cloned().unwrap_or(value);
            let error = body_error(&self.http, &self.requested, &inner, ErrorKind::Transient);
            return self.fail(error);
        }
        if data.is_empty() {
            return Vec::new();
        }
        let chunk = match serde_json::from_str::<Value>(data) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return self.decode_error(format!(
                    "stream chunk is not a JSON object: {}",
                    preview(data.as_bytes())
                ));
            }
            Err(e) => {
                return self.decode_error(format!(
                    "invalid JSON in stream chunk ({e}): {}",
                    preview(data.as_bytes())
                ));
            }
        };
        if let Some(error) = chunk.get("error").filter(|e| e.is_object() || e.is_string()) {
            let error = body_error(&self.http, &self.requested, error, ErrorKind::Transient);
            return self.fail(error);
        }
        if self.model.is_none() {
            self.model = non_empty_str(chunk.get("model")).map(str::to_owned);
        }

        let mut out = Vec::new();
        let choices = chunk.get("choices").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        // Only the first choice is the answer (`n > 1` is never requested).
        for choice in choices.iter().filter(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0) {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(text) = non_empty_str(delta.get("content")) {
                out.push(Ok(StreamEvent::TextDelta { text: text.to_owned() }));
            }
            let reasoning = non_empty_str(delta.get("reasoning_content"))
                .or_else(|| non_empty_str(delta.get("reasoning")));
            if let Some(text) = reasoning {
                out.push(Ok(StreamEvent::ReasoningDelta { text: text.to_owned() }));
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    match self.tool_delta(call) {
                        Ok(Some(event)) => out.push(Ok(event)),
                        Ok(None) => {}
                        Err(error) => {
                            out.push(Err(error));
                            self.finished = true;
                            return out;
                        }
                    }
                }
            }
            if let Some(reason) = non_empty_str(choice.get("finish_reason")) {
                self.finish = Some(finish_reason(reason));
                out.extend(self.complete_calls().into_iter().map(Ok));
            }
        }
        if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
            out.push(Ok(StreamEvent::Usage { usage: usage(u) }));
        }
        out
    }

    /// One `delta.tool_calls[]` entry.
    fn tool_delta(&mut self, call: &Value) -> Result<Option<StreamEvent>> {
        let given_id = non_empty_str(call.get("id"));
        let function = call.get("function").unwrap_or(&Value::Null);
        let name = non_empty_str(function.get("name"));
        let fragment = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            // A server that sends the whole arguments object at once.
            Some(v @ (Value::Object(_) | Value::Array(_))) => v.to_string(),
            _ => String::new(),
        };
        let index = match call.get("index") {
            Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(i) => i,
                None => {
                    return Err(self.http.error(
                        ErrorKind::Decode,
                        &self.requested,
                        format!("tool call index {} is not a valid index", preview(v.to_string().as_bytes())),
                    ));
                }
            },
            // No index (some servers): a new id starts a new call, anything else continues the
            // last one.
            None => match (given_id, self.last_index) {
                (Some(id), _) if !self.calls.values().any(|c| c.id == id) => {
                    self.calls.keys().next_back().map_or(0, |k| k.saturating_add(1))
                }
                (_, Some(last)) => last,
                (_, None) => 0,
            },
        };
        self.last_index = Some(index);

        if !self.calls.contains_key(&index) && self.calls.len() >= MAX_TOOL_CALLS {
            return Err(self.http.error(
                ErrorKind::Decode,
                &self.requested,
                format!("more than {MAX_TOOL_CALLS} parallel tool calls in one response"),
            ));
        }
        self.buffered += fragment.len();
        if self.buffered > self.http.options.max_body_bytes {
            return Err(self.http.error(
                ErrorKind::Decode,
                &self.requested,
                format!("streamed tool-call arguments exceed {} bytes", self.http.options.max_body_bytes),
            ));
        }

        let position = self.calls.len();
        let mut new_id = None;
        let state = match self.calls.entry(index) {
            std::collections::btree_map::Entry::Occupied(e) => {
                let state = e.into_mut();
                // A real id arriving after we had to make one up replaces it (the delta
                // carries it, so a collector follows); a taken id does not.
                if let Some(id) = given_id.filter(|id| state.synthetic && self.ids.is_free(id)) {
                    state.id = self.ids.assign(Some(id), position);
                    state.synthetic = false;
                    new_id = Some(state.id.clone());
                }
                state
            }
            std::collections::btree_map::Entry::Vacant(e) => {
                let id = self.ids.assign(given_id, position);
                let synthetic = given_id != Some(id.as_str());
                new_id = Some(id.clone());
                e.insert(CallState {
                    id,
                    synthetic,
                    name: String::new(),
                    args: String::new(),
                    emitted: false,
                })
            }
        };
        if state.emitted {
            return Ok(None);
        }
        let mut new_name = None;
        if let Some(name) = name.filter(|n| state.name != *n) {
            state.name = name.to_owned();
            new_name = Some(state.name.clone());
        }
        state.args.push_str(&fragment);
        if new_id.is_none() && new_name.is_none() && fragment.is_empty() {
            return Ok(None);
        }
        Ok(Some(StreamEvent::ToolCallDelta { index, id: new_id, name: new_name, args: fragment }))
    }

    /// Completed `ToolCall` events for every call not yet completed, in index order.
    fn complete_calls(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        for state in self.calls.values_mut().filter(|s| !s.emitted) {
            state.emitted = true;
            let raw = std::mem::take(&mut state.args);
            self.buffered = self.buffered.saturating_sub(raw.len());
            out.push(StreamEvent::ToolCall {
                call: ToolCall {
                    id: state.id.clone(),
                    name: state.name.clone(),
                    args: parse_arguments(Some(&Value::String(raw))),
                    signature: None,
                },
            });
        }
        out
    }

    /// The normal end: pending calls completed, then `Done`.
    fn complete(&mut self) -> Vec<Result<StreamEvent>> {
        self.finished = true;
        let mut out: Vec<Result<StreamEvent>> = self.complete_calls().into_iter().map(Ok).collect();
        let finish_reason = self.finish.take().unwrap_or(if self.calls.is_empty() {
            FinishReason::Stop
        } else {
            FinishReason::ToolCalls
        });
        let model = self.model.clone().unwrap_or_else(|| self.requested.clone());
        out.push(Ok(StreamEvent::Done { finish_reason, provider: self.http.provider.clone(), model }));
        out
    }

    /// The body ended.
    pub(super) fn on_end(&mut self) -> Vec<Result<StreamEvent>> {
        if self.finished {
            return Vec::new();
        }
        if self.finish.is_some() {
            // Some servers close after the finish_reason chunk without `[DONE]`.
            return self.complete();
        }
        let error = self.http.error(
            ErrorKind::Transient,
            &self.requested,
            "stream ended before a finish_reason or [DONE] (truncated)",
        );
        self.fail(error)
    }

    /// The transport failed (reset, idle timeout, invalid UTF-8...).
    pub(super) fn on_transport_error(&mut self, error: Error) -> Vec<Result<StreamEvent>> {
        if self.finished {
            return Vec::new();
        }
        if self.finish.is_some() && error.kind == ErrorKind::Transient {
            // The answer was complete; only the trailing usage chunk or `[DONE]` was lost.
            tracing::debug!(provider = %self.http.provider, model = %self.requested, %error, "stream failed after finish_reason; treating as complete");
            return self.complete();
        }
        self.fail(error)
    }
}
