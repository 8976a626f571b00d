//! [`Recorder`]: wraps a live model and appends every call to a transcript file that a
//! [`ReplayProvider`](super::ReplayProvider) can answer from later.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;

use super::canon;
use super::transcript::{RecordedError, TranscriptEntry, TranscriptError};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::secret::Secret;
use crate::stream::{Collector, EventStream};
use crate::types::{Capabilities, Request, Response};

/// Appends transcript lines to one file. Clones share the file, so every [`Recorder`] of a
/// swarm can write to the same transcript.
///
/// Each entry is serialised, scrubbed of the configured secrets (in every string and key,
/// wherever it appears), and written as one line with a single `write_all` on a file opened in
/// append mode, under a lock: lines from concurrent calls never interleave. Headers are never
/// part of an entry: only the canonical request and response are written.
///
/// A failed write does not fail the model call it records: it is logged (`tracing` error) and
/// counted in [`failed_writes`](Self::failed_writes), so a full disk does not take down the
/// traffic being recorded; a test or CI job can assert the count is zero.
#[derive(Clone)]
pub struct TranscriptWriter {
    file: Arc<Shared>,
    secrets: Arc<[Secret]>,
}

struct Shared {
    path: PathBuf,
    file: Mutex<File>,
    failures: AtomicUsize,
}

impl fmt::Debug for TranscriptWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TranscriptWriter")
            .field("path", &self.file.path)
            .field("secrets", &self.secrets.len())
            .finish_non_exhaustive()
    }
}

impl TranscriptWriter {
    /// Opens `path` for appending, creating it if missing.
    ///
    /// # Errors
    /// [`TranscriptError::Io`] naming the path.
    pub fn append(path: impl AsRef<Path>) -> Result<Self, TranscriptError> {
        Self::open(path.as_ref(), OpenOptions::new().create(true).append(true))
    }

    /// Creates `path` (emptying it if it exists) and opens it for appending.
    ///
    /// # Errors
    /// [`TranscriptError::Io`] naming the path.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TranscriptError> {
        let path = path.as_ref();
        File::create(path).map_err(|source| TranscriptError::Io { path: path.to_owned(), source })?;
        Self::append(path)
    }

    fn open(path: &Path, options: &OpenOptions) -> Result<Self, TranscriptError> {
        let file =
            options.open(path).map_err(|source| TranscriptError::Io { path: path.to_owned(), source })?;
        Ok(Self {
            file: Arc::new(Shared {
                path: path.to_owned(),
                file: Mutex::new(file),
                failures: AtomicUsize::new(0),
            }),
            secrets: Arc::from(Vec::new()),
        })
    }

    /// Redacts these secrets (as `[redacted]`) from everything this writer writes. Secrets
    /// shorter than 4 characters are not redacted (see [`Secret::scrub`]).
    #[must_use]
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        let mut all = self.secrets.to_vec();
        all.extend(secrets);
        self.secrets = Arc::from(all);
        self
    }

    /// The transcript file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// How many entries could not be written.
    pub fn failed_writes(&self) -> usize {
        self.file.failures.load(Ordering::Relaxed)
    }

    /// Wraps `model` so its calls are recorded here.
    pub fn record(&self, model: Arc<dyn Model>) -> Arc<dyn Model> {
        Arc::new(Recorder::new(model, self.clone()))
    }

    /// Replaces every provider of `registry` with a [`RecordingProvider`] writing here, so
    /// every model call made through it is recorded (how hosts record replay transcripts).
    ///
    /// # Errors
    /// The registry's [`ConfigError`](crate::ConfigError) if a provider cannot be registered again (it was
    /// registered under the same name before, so this does not happen in practice).
    pub fn record_registry(&self, registry: &crate::Registry) -> std::result::Result<(), crate::ConfigError> {
        for name in registry.provider_names() {
            if let Some(inner) = registry.provider(&name) {
                registry.add_provider(Arc::new(RecordingProvider { inner, writer: self.clone() }))?;
            }
        }
        Ok(())
    }

    /// Appends one entry (scrubbed).
    ///
    /// # Errors
    /// [`TranscriptError::Io`] when the line could not be written.
    pub fn write_entry(&self, entry: &TranscriptEntry) -> Result<(), TranscriptError> {
        let io = |source| TranscriptError::Io { path: self.file.path.clone(), source };
        let mut value = serde_json::to_value(entry).map_err(|e| io(e.into()))?;
        canon::scrub(&mut value, &self.secrets);
        let mut line = serde_json::to_string(&value).map_err(|e| io(e.into()))?;
        line.push('\n');
        // One write of the whole line, under the lock: entries never interleave.
        let mut file = self.file.file.lock().unwrap_or_else(PoisonError::into_inner);
        file.write_all(line.as_bytes()).map_err(io)
    }

    fn write_or_log(&self, entry: &TranscriptEntry) {
        if let Err(error) = self.write_entry(entry) {
            self.file.failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "could not record a model call in the transcript");
        }
    }

    fn record_call(&self, model: &dyn Model, request: &Request, outcome: Result<&Response, &Error>) {
        let (response, error) = match outcome {
            Ok(response) => (Some(response.clone()), None),
            Err(error) => (None, Some(RecordedError::from(error))),
        };
        self.write_or_log(&TranscriptEntry {
            provider: model.provider().to_owned(),
            model: model.model_id().to_owned(),
            request: request.clone(),
            response,
            error,
        });
    }
}

/// A [`Model`] that forwards every call to the wrapped model and appends the request and its
/// response (or error) to a transcript (see [`TranscriptWriter`]).
///
/// A streamed call is recorded once it ends, as the response its events collect into (or as
/// its error); a stream dropped before its end is not recorded. The entry's `provider` and
/// `model` are the wrapped model's [`Model::provider`] and [`Model::model_id`].
///
/// ```
/// use executus_llm::fake::{FakeProvider, Outcome, Recorder, TranscriptWriter};
/// use executus_llm::{Model, Request, Secret};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("calls.jsonl");
/// let fake = FakeProvider::new("fake");
/// fake.push("m", Outcome::text("hi"));
///
/// let writer = TranscriptWriter::create(&path)?.with_secrets([Secret::new("sk-live-1234")]);
/// let model = Recorder::new(fake.model("m"), writer);
/// model.generate(Request::user("my key is sk-live-1234")).await?;
///
/// let written = std::fs::read_to_string(&path)?;
/// assert!(written.contains("[redacted]") && !written.contains("sk-live-1234"));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Recorder {
    model: Arc<dyn Model>,
    writer: TranscriptWriter,
}

impl Recorder {
    /// Records `model`'s calls with `writer`.
    pub fn new(model: Arc<dyn Model>, writer: TranscriptWriter) -> Self {
        Self { model, writer }
    }

    /// The writer.
    pub fn writer(&self) -> &TranscriptWriter {
        &self.writer
    }
}

#[async_trait]
impl Model for Recorder {
    fn provider(&self) -> &str {
        self.model.provider()
    }

    fn model_id(&self) -> &str {
        self.model.model_id()
    }

    fn capabilities(&self) -> Capabilities {
        self.model.capabilities()
    }

    fn media_limits(&self) -> Option<crate::media::MediaLimits> {
        self.model.media_limits()
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        let result = self.model.generate(request.clone()).await;
        self.writer.record_call(self.model.as_ref(), &request, result.as_ref());
        result
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        match self.model.stream(request.clone()).await {
            Err(error) => {
                self.writer.record_call(self.model.as_ref(), &request, Err(&error));
                Err(error)
            }
            Ok(stream) => Ok(recording_stream(stream, self.model.clone(), self.writer.clone(), request)),
        }
    }
}

struct Recording {
    inner: EventStream,
    collector: Collector,
    model: Arc<dyn Model>,
    writer: TranscriptWriter,
    request: Request,
    recorded: bool,
}

impl Recording {
    fn record(&mut self, outcome: Result<&Response, &Error>) {
        if !self.recorded {
            self.recorded = true;
            self.writer.record_call(self.model.as_ref(), &self.request, outcome);
        }
    }
}

/// Passes events through unchanged, folding them into a response recorded at the end (or the
/// first error, recorded when it passes).
fn recording_stream(
    inner: EventStream,
    model: Arc<dyn Model>,
    writer: TranscriptWriter,
    request: Request,
) -> EventStream {
    let state = Recording { inner, collector: Collector::new(), model, writer, request, recorded: false };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        match state.inner.next().await {
            Some(Ok(event)) => {
                state.collector.push(&event);
                Some((Ok(event), state))
            }
            Some(Err(error)) => {
                state.record(Err(&error));
                Some((Err(error), state))
            }
            None => {
                if !state.recorded {
                    let collector = std::mem::take(&mut state.collector);
                    let finished = collector.finish(state.model.provider(), state.model.model_id());
                    match finished {
                        Ok(response) => state.record(Ok(&response)),
                        Err(failure) => state.record(Err(&failure.error)),
                    }
                }
                None
            }
        }
    }))
}

/// A provider whose models record every call to a [`TranscriptWriter`]
/// (see [`TranscriptWriter::record_registry`]).
#[derive(Debug)]
pub struct RecordingProvider {
    inner: Arc<dyn crate::Provider>,
    writer: TranscriptWriter,
}

impl RecordingProvider {
    /// `inner`'s models, recording to `writer`.
    pub fn new(inner: Arc<dyn crate::Provider>, writer: TranscriptWriter) -> Self {
        Self { inner, writer }
    }
}

impl crate::Provider for RecordingProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        self.writer.record(self.inner.model(id))
    }
}
