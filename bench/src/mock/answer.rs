//! What the mock answers: a deterministic function of the request's content.
//!
//! The rule, for a Chat Completions request body:
//! - with a non-empty `tools` array and fewer `role: "tool"` messages than the server's
//!   `tool_steps`, the answer is a call to the first offered tool, with arguments
//!   `{"key":"k<n>"}` where `n` counts the tool results already in the request (so a 3-step
//!   agent sees: call, call, answer);
//! - otherwise the answer is the text `done after <n> lookups`.
//!
//! `stream: true` gets the same answer as Server-Sent Events (role + content or tool-call
//! deltas, a `finish_reason` chunk, a final chunk with `usage` and no choices, `[DONE]`),
//! otherwise one `chat.completion` JSON object. Usage is derived from the body size, so it
//! is deterministic too.
//!
//! A run is recognised by a `#run=<digits>` marker anywhere in the body (the bench puts it
//! in the user message); it keys the per-run gap measurements ([`super::Snapshot::gaps_us`]).

use std::borrow::Cow;

use serde::Deserialize;

#[derive(Deserialize)]
struct ChatRequest<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: bool,
    #[serde(borrow, default)]
    messages: Vec<ChatMessage<'a>>,
    #[serde(borrow, default)]
    tools: Option<Vec<ToolDef<'a>>>,
}

#[derive(Deserialize)]
struct ChatMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
}

#[derive(Deserialize)]
struct ToolDef<'a> {
    #[serde(borrow, default)]
    function: Option<FunctionDef<'a>>,
}

#[derive(Deserialize)]
struct FunctionDef<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
}

/// What the mock decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Tool results already in the request (the step index, 0-based).
    pub tool_results: usize,
    /// The response body.
    pub body: Vec<u8>,
    /// Content type of `body`.
    pub content_type: &'static str,
}

/// Finds the `#run=<digits>` marker.
pub fn run_key(body: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(body, b"#run=")? + 5;
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&body[at..at + digits]).ok()?.parse().ok()
}

/// Decides the answer to a Chat Completions body. `Err` carries a message for a 400.
pub fn answer(body: &[u8], tool_steps: usize) -> Result<Decision, String> {
    let request: ChatRequest<'_> =
        serde_json::from_slice(body).map_err(|e| format!("not a chat completions body: {e}"))?;
    let tool_results = request.messages.iter().filter(|m| m.role == "tool").count();
    let tool = request
        .tools
        .as_deref()
        .and_then(|t| t.first())
        .and_then(|t| t.function.as_ref())
        .map(|f| f.name.as_ref());
    let model = request.model.as_deref().unwrap_or("mock");
    let model = serde_json::to_string(model).unwrap_or_else(|_| "\"mock\"".to_owned());
    let usage = format!(
        r#"{{"prompt_tokens":{p},"completion_tokens":8,"total_tokens":{t}}}"#,
        p = body.len() / 4,
        t = body.len() / 4 + 8
    );
    let call = match tool {
        Some(name) if tool_results < tool_steps => {
            let name = serde_json::to_string(name).unwrap_or_else(|_| "\"tool\"".to_owned());
            let id = format!("call_{}", tool_results + 1);
            let args =
                serde_json::to_string(&format!(r#"{{"key":"k{}"}}"#, tool_results + 1)).unwrap_or_default();
            Some((id, name, args))
        }
        _ => None,
    };
    let text = format!("done after {tool_results} lookups");
    let (body, content_type) = if request.stream {
        (sse(&model, call.as_ref(), &text, &usage), "text/event-stream")
    } else {
        (whole(&model, call.as_ref(), &text, &usage), "application/json")
    };
    Ok(Decision { tool_results, body, content_type })
}

fn whole(model: &str, call: Option<&(String, String, String)>, text: &str, usage: &str) -> Vec<u8> {
    let (message, finish) = match call {
        Some((id, name, args)) => (
            format!(
                r#"{{"role":"assistant","content":null,"tool_calls":[{{"id":"{id}","type":"function","function":{{"name":{name},"arguments":{args}}}}}]}}"#
            ),
            "tool_calls",
        ),
        None => (format!(r#"{{"role":"assistant","content":"{text}"}}"#), "stop"),
    };
    format!(
        r#"{{"id":"chatcmpl-mock","object":"chat.completion","created":0,"model":{model},"choices":[{{"index":0,"message":{message},"finish_reason":"{finish}"}}],"usage":{usage}}}"#
    )
    .into_bytes()
}

fn sse(model: &str, call: Option<&(String, String, String)>, text: &str, usage: &str) -> Vec<u8> {
    let chunk = |choices: &str, tail: &str| {
        format!(
            "data: {{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":{model},\"choices\":[{choices}]{tail}}}\n\n"
        )
    };
    let mut out = String::with_capacity(1024);
    match call {
        Some((id, name, args)) => {
            out.push_str(&chunk(
                &format!(
                    r#"{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"{id}","type":"function","function":{{"name":{name},"arguments":""}}}}]}},"finish_reason":null}}"#
                ),
                "",
            ));
            out.push_str(&chunk(
                &format!(
                    r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{args}}}}}]}},"finish_reason":null}}"#
                ),
                "",
            ));
            out.push_str(&chunk(r#"{"index":0,"delta":{},"finish_reason":"tool_calls"}"#, ""));
        }
        None => {
            out.push_str(&chunk(
                &format!(
                    r#"{{"index":0,"delta":{{"role":"assistant","content":"{text}"}},"finish_reason":null}}"#
                ),
                "",
            ));
            out.push_str(&chunk(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#, ""));
        }
    }
    out.push_str(&chunk("", &format!(",\"usage\":{usage}")));
    out.push_str("data: [DONE]\n\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests;
