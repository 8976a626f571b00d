//! Errors as each dialect writes them, with the HTTP status the official SDKs map to their
//! exception classes.
//!
//! | class | status | OpenAI `type` | Anthropic `type` | SDK exception |
//! | --- | --- | --- | --- | --- |
//! | `InvalidRequest` | 400 | `invalid_request_error` | `invalid_request_error` | `BadRequestError` |
//! | `Authentication` | 401 | `authentication_error` | `authentication_error` | `AuthenticationError` |
//! | `Permission` | 403 | `permission_error` | `permission_error` | `PermissionDeniedError` |
//! | `NotFound` | 404 | `not_found_error` | `not_found_error` | `NotFoundError` |
//! | `RequestTooLarge` | 413 | `invalid_request_error` | `request_too_large` | `APIStatusError` (413) |
//! | `RateLimited` | 429 (+ `Retry-After`) | `rate_limit_error` | `rate_limit_error` | `RateLimitError` |
//! | `Internal` | 500 | `server_error` | `api_error` | `InternalServerError` |
//! | `BadGateway` | 502 | `server_error` | `api_error` | `InternalServerError` |
//! | `Unavailable` | 503 | `server_error` | `api_error` | `InternalServerError` |
//! | `Overloaded` | 529 | `server_error` | `overloaded_error` | `InternalServerError` / `OverloadedError` |
//!
//! [`ApiError::from_llm`] decides what an upstream failure means for the client: a request the
//! upstream rejected as malformed is the client's 400, but an upstream that refused the
//! gateway's own credentials is a 502 (the client's key was fine), a chain that found no
//! usable target a 503, and a rate limit or overload keeps its status and `Retry-After`.
//! Messages come from [`crate::Error`], which never carries an API key.

use std::time::Duration;

use serde::Serialize;

use super::Dialect;
use crate::error::{Error, ErrorKind};

/// What kind of failure the client gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// 400: the request is malformed or asks for something impossible.
    InvalidRequest,
    /// 401: no key, or a key that matches none.
    Authentication,
    /// 403: a valid key that may not do this (e.g. use this model).
    Permission,
    /// 404: unknown model or path.
    NotFound,
    /// 413: the body is too large.
    RequestTooLarge,
    /// 429: rate, budget or concurrency limit; comes with `Retry-After`.
    RateLimited,
    /// 500: a fault of the server itself.
    Internal,
    /// 502: the upstream failed or answered something unusable.
    BadGateway,
    /// 503: no upstream can serve now (all failed or benched), or the server is stopping.
    Unavailable,
    /// 529: the upstream is overloaded.
    Overloaded,
}

impl ErrorClass {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::Authentication => 401,
            Self::Permission => 403,
            Self::NotFound => 404,
            Self::RequestTooLarge => 413,
            Self::RateLimited => 429,
            Self::Internal => 500,
            Self::BadGateway => 502,
            Self::Unavailable => 503,
            Self::Overloaded => 529,
        }
    }

    /// The OpenAI error `type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            Self::InvalidRequest | Self::RequestTooLarge => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RateLimited => "rate_limit_error",
            Self::Internal | Self::BadGateway | Self::Unavailable | Self::Overloaded => "server_error",
        }
    }

    /// The OpenAI error `code`.
    pub fn openai_code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Authentication => "invalid_api_key",
            Self::Permission => "permission_denied",
            Self::NotFound => "model_not_found",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limit_exceeded",
            Self::Internal => "internal_error",
            Self::BadGateway => "upstream_error",
            Self::Unavailable => "upstream_unavailable",
            Self::Overloaded => "overloaded",
        }
    }

    /// The Anthropic error `type`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limit_error",
            Self::Internal | Self::BadGateway | Self::Unavailable => "api_error",
            Self::Overloaded => "overloaded_error",
        }
    }

    /// A short snake-case name for metrics (`invalid_request`, `rate_limited`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::Authentication => "authentication",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::BadGateway => "bad_gateway",
            Self::Unavailable => "unavailable",
            Self::Overloaded => "overloaded",
        }
    }
}

/// An error to send to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// Its class (status and type).
    pub class: ErrorClass,
    /// The message.
    pub message: String,
    /// `Retry-After`, for 429 / 503 / 529.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error of `class` saying `message`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), retry_after: None }
    }

    /// Sets `Retry-After`.
    #[must_use]
    pub fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.class.status()
    }

    /// `Retry-After` in whole seconds (at least 1), when set.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| d.as_secs_f64().ceil().max(1.0) as u64)
    }

    /// What an upstream failure means for the client (see the module docs).
    pub fn from_llm(error: &Error) -> Self {
        let class = match error.kind {
            ErrorKind::Transient => match error.status {
                Some(429) => ErrorClass::RateLimited,
                Some(529) => ErrorClass::Overloaded,
                Some(503) => ErrorClass::Unavailable,
                _ => ErrorClass::BadGateway,
            },
            ErrorKind::Permanent => match error.status {
                // The upstream refused the gateway's credentials: not the client's fault.
                Some(401 | 403) => ErrorClass::BadGateway,
                Some(413) => ErrorClass::RequestTooLarge,
                _ => ErrorClass::InvalidRequest,
            },
            ErrorKind::NotFound => ErrorClass::NotFound,
            ErrorKind::Unsupported => ErrorClass::InvalidRequest,
            ErrorKind::Decode => ErrorClass::BadGateway,
            ErrorKind::Cancelled => ErrorClass::Unavailable,
            ErrorKind::Exhausted => exhausted_class(error),
        };
        Self { class, message: error.to_string(), retry_after: error.retry_after }
    }

    /// The JSON error body in `dialect`'s form.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let encoded = match dialect {
            Dialect::Chat | Dialect::Responses => serde_json::to_vec(&OpenAiBody {
                error: OpenAiError {
                    message: &self.message,
                    kind: self.class.openai_type(),
                    param: None,
                    code: self.class.openai_code(),
                },
            }),
            Dialect::Messages => serde_json::to_vec(&AnthropicBody {
                kind: "error",
                error: AnthropicError { kind: self.class.anthropic_type(), message: &self.message },
            }),
        };
        // Two strings and constants: serialising cannot fail.
        encoded.unwrap_or_default()
    }
}

/// An exhausted chain: when every attempt failed the same way, what that way means for the
/// client (a rate limit or an overload keeps its status so the client backs off; answers that
/// could not be decoded are the upstream's fault, 502); otherwise 503.
fn exhausted_class(error: &Error) -> ErrorClass {
    let attempts = &error.attempts;
    let all = |f: &dyn Fn(&crate::error::Attempt) -> bool| !attempts.is_empty() && attempts.iter().all(f);
    if all(&|a| a.status == Some(429)) {
        ErrorClass::RateLimited
    } else if all(&|a| a.status == Some(529)) {
        ErrorClass::Overloaded
    } else if all(&|a| a.kind == ErrorKind::NotFound) {
        ErrorClass::NotFound
    } else if all(&|a| a.kind == ErrorKind::Decode || matches!(a.status, Some(401 | 403))) {
        ErrorClass::BadGateway
    } else {
        ErrorClass::Unavailable
    }
}

#[derive(Serialize)]
struct OpenAiBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    param: Option<&'a str>,
    code: &'static str,
}

#[derive(Serialize)]
struct AnthropicBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
}

#[derive(Serialize)]
pub(super) struct AnthropicError<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) message: &'a str,
}
