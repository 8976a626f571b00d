//! Test doubles for [`Model`](crate::Model): scripted, recorded and replayed models.
//!
//! Public so that hosts test their own agents with them, offline and deterministically.
//!
//! - [`FakeProvider`] serves scripted [`Outcome`]s from a queue per model id — responses,
//!   errors, event scripts (with mid-stream errors and never-resolving pauses), delays on the
//!   tokio clock, closures over the request, hangs — and records every request it receives.
//! - [`Recorder`] wraps a live model and appends each call to a JSON-lines transcript
//!   ([`transcript`] describes the format), scrubbing secrets.
//! - [`ReplayProvider`] answers from such a transcript, matching requests by content so that
//!   concurrent callers get the right answers.
//!
//! Guarantees: all three are safe to share between tasks and never panic on misuse — an
//! exhausted script, an unknown request or a malformed file is a classified [`Error`](crate::Error)
//! or a [`TranscriptError`] that says what went wrong. Delays use tokio's clock, so tests under
//! `#[tokio::test(start_paused = true)]` never sleep for real.
//!
//! Not provided: HTTP. These doubles stand in for a [`Model`](crate::Model); to test a wire
//! client, use a loopback HTTP server.

mod canon;
mod outcome;
mod provider;
mod recorder;
mod replay;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
pub mod transcript;

pub use outcome::{DynamicOutcome, Outcome, ScriptStep, StreamScript};
pub use provider::{FakeProvider, RecordedRequest};
pub use recorder::{Recorder, RecordingProvider, TranscriptWriter};
pub use replay::{ReplayOptions, ReplayProvider};
pub use transcript::{RecordedAttempt, RecordedError, TranscriptEntry, TranscriptError};
