//! The transcript file format shared by [`Recorder`](super::Recorder) (writes it) and
//! [`ReplayProvider`](super::ReplayProvider) (reads it).
//!
//! JSON lines, one object per model call:
//!
//! ```json
//! {"provider":"openai","model":"gpt-4o-mini","request":{"messages":[...]},"response":{...}}
//! {"provider":"openai","model":"gpt-4o-mini","request":{...},"error":{"kind":"transient","provider":"openai","model":"gpt-4o-mini","status":503,"message":"..."}}
//! ```
//!
//! `request` and `response` are this crate's [`Request`] and [`Response`] in their serde form;
//! exactly one of `response` and `error` is present. Blank lines are ignored. A streamed call
//! is recorded as the response its events collect into.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Attempt, Error, ErrorKind};
use crate::types::{Request, Response};

/// One recorded model call: one line of a transcript file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptEntry {
    /// The provider name of the model that was called.
    pub provider: String,
    /// The model id that was called.
    pub model: String,
    /// The request sent.
    pub request: Request,
    /// The response, when the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Response>,
    /// The error, when the call failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
}

impl TranscriptEntry {
    /// The recorded outcome: the response, or the error rebuilt.
    ///
    /// # Errors
    /// The recorded error; a permanent error if the entry holds neither (or both).
    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the Model trait's error type; boxing it here would only be undone at the trait boundary"
    )]
    pub fn outcome(&self) -> Result<Response, Error> {
        match (&self.response, &self.error) {
            (Some(response), None) => Ok(response.clone()),
            (None, Some(error)) => Err(error.to_error().unwrap_or_else(|reason| {
                Error::permanent(&self.provider, &self.model, format!("recorded error: {reason}"))
            })),
            _ => Err(Error::permanent(
                &self.provider,
                &self.model,
                "transcript entry holds neither exactly one response nor one error",
            )),
        }
    }
}

/// An [`Error`] in serialisable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedError {
    /// [`ErrorKind::as_str`] of the kind (`transient`, `permanent`, ...).
    pub kind: String,
    /// Provider name.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `Retry-After`, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The message.
    pub message: String,
    /// A chain's attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<RecordedAttempt>,
    /// A chain's skipped targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
}

/// An [`Attempt`] in serialisable form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAttempt {
    /// Provider name.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Error kind name.
    pub kind: String,
    /// HTTP status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The message.
    pub message: String,
}

/// Parses [`ErrorKind::as_str`] back.
fn parse_kind(kind: &str) -> Option<ErrorKind> {
    [
        ErrorKind::Transient,
        ErrorKind::Permanent,
        ErrorKind::NotFound,
        ErrorKind::Cancelled,
        ErrorKind::Decode,
        ErrorKind::Unsupported,
        ErrorKind::Exhausted,
    ]
    .into_iter()
    .find(|k| k.as_str() == kind)
}

impl From<&Error> for RecordedError {
    fn from(error: &Error) -> Self {
        Self {
            kind: error.kind.as_str().to_owned(),
            provider: error.provider.clone(),
            model: error.model.clone(),
            status: error.status,
            retry_after_ms: error.retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            message: error.message.clone(),
            attempts: error
                .attempts
                .iter()
                .map(|a| RecordedAttempt {
                    provider: a.provider.clone(),
                    model: a.model.clone(),
                    attempt: a.attempt,
                    kind: a.kind.as_str().to_owned(),
                    status: a.status,
                    message: a.message.clone(),
                })
                .collect(),
            skipped: error.skipped.clone(),
        }
    }
}

impl RecordedError {
    /// The [`Error`] this records.
    ///
    /// # Errors
    /// A description of the problem when a `kind` is not a known error kind.
    pub fn to_error(&self) -> Result<Error, String> {
        let kind = parse_kind(&self.kind).ok_or_else(|| format!("unknown error kind {:?}", self.kind))?;
        let mut error = Error::new(kind, &self.provider, &self.model, &self.message)
            .with_retry_after(self.retry_after_ms.map(Duration::from_millis));
        error.status = self.status;
        error.skipped.clone_from(&self.skipped);
        for a in &self.attempts {
            let kind =
                parse_kind(&a.kind).ok_or_else(|| format!("unknown error kind {:?} in attempts", a.kind))?;
            error.attempts.push(Attempt {
                provider: a.provider.clone(),
                model: a.model.clone(),
                attempt: a.attempt,
                kind,
                status: a.status,
                message: a.message.clone(),
            });
        }
        Ok(error)
    }
}

/// A transcript file could not be read, parsed or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscriptError {
    /// Reading, creating or writing the file failed.
    #[error("transcript {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a valid transcript entry.
    #[error("transcript {}, line {line}: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// A transcript entry with its position in the file.
#[derive(Debug, Clone)]
pub(crate) struct Located {
    /// 1-based line number.
    pub line: usize,
    /// The entry.
    pub entry: TranscriptEntry,
}

/// Reads and validates a transcript file.
pub(crate) fn read(path: &Path) -> Result<Vec<Located>, TranscriptError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| TranscriptError::Io { path: path.to_owned(), source })?;
    parse(&text, path)
}

/// Parses transcript text; `path` is only used in error messages.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Vec<Located>, TranscriptError> {
    let malformed =
        |line: usize, reason: String| TranscriptError::Malformed { path: path.to_owned(), line, reason };
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let entry: TranscriptEntry = serde_json::from_str(raw).map_err(|e| malformed(line, e.to_string()))?;
        match (&entry.response, &entry.error) {
            (Some(_), None) => {}
            (None, Some(error)) => {
                error.to_error().map_err(|reason| malformed(line, reason))?;
            }
            (None, None) => {
                return Err(malformed(line, "entry has neither `response` nor `error`".into()));
            }
            (Some(_), Some(_)) => {
                return Err(malformed(line, "entry has both `response` and `error`".into()));
            }
        }
        entries.push(Located { line, entry });
    }
    Ok(entries)
}
