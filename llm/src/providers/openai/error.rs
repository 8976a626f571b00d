//! Errors reported *inside* a body: a `200` whose JSON is `{"error": ...}` or a mid-stream
//! `data: {"error": ...}` event.
//!
//! Servers disagree on the shape: OpenAI sends `code` as a string (`"rate_limit_exceeded"`)
//! next to a `type`; llama.cpp sends `code` as an integer HTTP status (`500`) next to a
//! `type`; some proxies send `"error": "text"`. All of them parse. Classification, in order:
//! an integer code that is an HTTP error status is classified like that status; a known
//! code/type word decides next; otherwise the message is checked for "model not found"; the
//! caller's default applies last (transient for a stream: the server gave up mid-answer).

use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::http::{Http, classify_status};

/// Builds the classified error for an in-body `error` value.
pub(super) fn body_error(http: &Http, model: &str, error: &Value, default: ErrorKind) -> Error {
    let (message, code, kind_word) = match error {
        Value::String(s) => (s.clone(), None, None),
        Value::Object(map) => {
            let message = map.get("message").and_then(Value::as_str).unwrap_or_default();
            let typ = map.get("type").and_then(Value::as_str);
            let code = map.get("code").filter(|c| !c.is_null());
            let mut text = match typ {
                Some(t) if !message.is_empty() => format!("{t}: {message}"),
                Some(t) => t.to_owned(),
                None if message.is_empty() => error.to_string(),
                None => message.to_owned(),
            };
            if let Some(c) = code {
                let c = c.as_str().map_or_else(|| c.to_string(), str::to_owned);
                if Some(c.as_str()) != typ {
                    text.push_str(&format!(" (code {c})"));
                }
            }
            (text, code, typ)
        }
        other => (other.to_string(), None, None),
    };
    let status = code.and_then(http_status);
    let kind = classify(code, kind_word, &message, default);
    let mut err = http.error(kind, model, truncate(&message));
    if let Some(status) = status {
        err = err.with_status(status);
    }
    err
}

/// An integer (or integer-string) code that is an HTTP error status.
fn http_status(code: &Value) -> Option<u16> {
    let n = code.as_u64().or_else(|| code.as_str().and_then(|s| s.trim().parse().ok()))?;
    u16::try_from(n).ok().filter(|s| (400..600).contains(s))
}

/// Classifies an in-body error by its code, type and message.
pub(super) fn classify(
    code: Option<&Value>,
    typ: Option<&str>,
    message: &str,
    default: ErrorKind,
) -> ErrorKind {
    if let Some(status) = code.and_then(http_status) {
        return classify_status(status, message);
    }
    let words = [code.and_then(Value::as_str), typ];
    for word in words.into_iter().flatten() {
        match word.to_ascii_lowercase().as_str() {
            "rate_limit_exceeded"
            | "rate_limit_error"
            | "server_error"
            | "internal_error"
            | "internal_server_error"
            | "api_error"
            | "overloaded"
            | "overloaded_error"
            | "unavailable_error"
            | "service_unavailable"
            | "timeout"
            | "timeout_error" => {
                return ErrorKind::Transient;
            }
            "model_not_found" | "not_found_error" | "not_found" => return ErrorKind::NotFound,
            "invalid_request_error"
            | "invalid_api_key"
            | "authentication_error"
            | "permission_error"
            | "permission_denied"
            | "insufficient_quota"
            | "context_length_exceeded"
            | "not_supported_error"
            | "invalid_value"
            | "exceed_context_size_error" => {
                // `classify_status` turns a client error that names an unknown model into
                // NotFound, as for an HTTP 400.
                return classify_status(400, message);
            }
            _ => {}
        }
    }
    if classify_status(400, message) == ErrorKind::NotFound {
        return ErrorKind::NotFound;
    }
    default
}

/// Error messages are for humans; a hostile server must not make them megabytes long.
fn truncate(message: &str) -> String {
    const MAX: usize = 1000;
    if message.chars().count() <= MAX {
        return message.to_owned();
    }
    let mut out: String = message.chars().take(MAX).collect();
    out.push('…');
    out
}

/// Sharpens an HTTP error's class where a server's wording says more than its status:
/// - llama-swap answers a request for a model it does not serve with a 400 "could not find
///   suitable inference handler for <model>", which is a NotFound (failover advances);
/// - llama.cpp's `llama-server` without a multimodal projector answers an image with a 500
///   "image input is not supported", which is Unsupported: the server is healthy, it just
///   has no vision (failover advances without retrying or benching it).
pub(super) fn refine(mut error: Error) -> Error {
    if error.kind == ErrorKind::Permanent
        && error.message.contains("could not find suitable inference handler")
    {
        error.kind = ErrorKind::NotFound;
    }
    if error.message.contains("image input is not supported") {
        error.kind = ErrorKind::Unsupported;
    }
    error
}
