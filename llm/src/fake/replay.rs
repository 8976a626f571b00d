//! [`ReplayProvider`]: answers from a recorded transcript, offline and deterministically.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use serde_json::Value;

use super::canon::{self, Canon};
use super::transcript::{self, Located, TranscriptEntry, TranscriptError};
use crate::error::{Error, Result};
use crate::model::{Model, Provider};
use crate::secret::Secret;
use crate::stream::{EventStream, response_to_stream};
use crate::types::{Request, Response};

/// How a [`ReplayProvider`] matches requests.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    name: String,
    strict_order: bool,
    match_provider: bool,
    ignore_fields: Vec<String>,
    secrets: Vec<Secret>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            name: "replay".to_owned(),
            strict_order: false,
            match_provider: false,
            ignore_fields: Vec::new(),
            secrets: Vec::new(),
        }
    }
}

impl ReplayOptions {
    /// Default options: named `replay`, content matching, nothing ignored.
    pub fn new() -> Self {
        Self::default()
    }

    /// The provider name the replay reports (default `replay`). Responses and recorded errors
    /// keep the provider name they were recorded with.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Require the calls to arrive in the recorded global order (default: match by content,
    /// so concurrent callers may arrive in any order).
    #[must_use]
    pub fn strict_order(mut self, strict: bool) -> Self {
        self.strict_order = strict;
        self
    }

    /// Serve only entries recorded with a provider named like this replay (see
    /// [`name`](Self::name)); useful when several providers served the same model id.
    #[must_use]
    pub fn match_provider(mut self, only_own: bool) -> Self {
        self.match_provider = only_own;
        self
    }

    /// Ignore this top-level [`Request`] field (its serde name, e.g. `seed`, `temperature`,
    /// `extra`) when matching.
    #[must_use]
    pub fn ignore_field(mut self, field: impl Into<String>) -> Self {
        self.ignore_fields.push(field.into());
        self
    }

    /// Scrub these secrets from live requests before matching, as the
    /// [`Recorder`](super::Recorder) scrubbed them from the recording.
    #[must_use]
    pub fn secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        self.secrets.extend(secrets);
        self
    }
}

/// A provider that answers from a transcript written by [`Recorder`](super::Recorder) (see
/// [`transcript`](super::transcript) for the format).
///
/// **Matching.** A live request to model `M` matches a recorded entry when the entry's model
/// is `M` and the two requests are equal as JSON (this crate's serde form of [`Request`],
/// object keys in any order). No field is ignored by default: with the responses themselves
/// replayed, nothing in a request varies between runs (tool call ids come from the recorded
/// responses). [`ReplayOptions::ignore_field`] drops top-level fields a host knows to vary,
/// and [`ReplayOptions::secrets`] scrubs secrets the recording scrubbed. The recorded
/// provider name is not compared unless [`ReplayOptions::match_provider`] is set.
///
/// **Order.** Identical requests are served in recorded order; different requests may arrive
/// in any order, so concurrent callers (a swarm running cells in parallel) each get their own
/// answer. [`ReplayOptions::strict_order`] demands the recorded global order instead.
///
/// **Mismatch.** A request with no matching entry fails with a permanent error naming the
/// model, the closest recorded request (index and line) and the first differing field, e.g.
/// `messages[1].parts[0].text`. Nothing here panics.
///
/// ```
/// use executus_llm::fake::{FakeProvider, Outcome, Recorder, ReplayProvider, TranscriptWriter};
/// use executus_llm::{Model, Request};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("calls.jsonl");
///
/// // Record once against a live (here: fake) model...
/// let fake = FakeProvider::new("fake");
/// fake.push("m", Outcome::text("recorded answer"));
/// let recorder = Recorder::new(fake.model("m"), TranscriptWriter::create(&path)?);
/// recorder.generate(Request::user("question")).await?;
///
/// // ...then replay offline.
/// let replay = ReplayProvider::open(&path)?;
/// let answer = replay.model("m").generate(Request::user("question")).await?;
/// assert_eq!(answer.text(), "recorded answer");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ReplayProvider {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    origin: String,
    canon: Canon,
    strict_order: bool,
    entries: Vec<Entry>,
    state: Mutex<State>,
}

struct Entry {
    line: usize,
    model: String,
    value: Value,
    key: String,
    outcome: Result<Response, Error>,
}

#[derive(Default)]
struct State {
    /// Unserved entry indices per (model, request key), in recorded order.
    unserved: HashMap<(String, String), VecDeque<usize>>,
    served: Vec<bool>,
    /// Next entry index, for strict order.
    cursor: usize,
}

impl fmt::Debug for ReplayProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayProvider")
            .field("name", &self.inner.name)
            .field("origin", &self.inner.origin)
            .field("entries", &self.inner.entries.len())
            .field("strict_order", &self.inner.strict_order)
            .finish_non_exhaustive()
    }
}

impl ReplayProvider {
    /// Loads a transcript file with default options.
    ///
    /// # Errors
    /// [`TranscriptError::Io`] if the file cannot be read, [`TranscriptError::Malformed`]
    /// naming the path and line of the first invalid entry.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TranscriptError> {
        Self::open_with(path, ReplayOptions::default())
    }

    /// Loads a transcript file with these options.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: ReplayOptions) -> Result<Self, TranscriptError> {
        let path = path.as_ref();
        let entries = transcript::read(path)?;
        Ok(Self::build(entries, path.display().to_string(), options))
    }

    /// A replay over entries already in memory (line numbers count from 1 in this order).
    pub fn from_entries(entries: impl IntoIterator<Item = TranscriptEntry>, options: ReplayOptions) -> Self {
        let located = entries.into_iter().enumerate().map(|(i, entry)| Located { line: i + 1, entry });
        Self::build(located.collect(), "(in-memory transcript)".to_owned(), options)
    }

    fn build(located: Vec<Located>, origin: String, options: ReplayOptions) -> Self {
        let canon = Canon { ignore: options.ignore_fields, secrets: options.secrets };
        let mut entries = Vec::new();
        let mut state = State::default();
        for Located { line, entry } in located {
            if options.match_provider && entry.provider != options.name {
                continue;
            }
            let value = canon.value(&entry.request);
            let key = canon::key(&value);
            state.unserved.entry((entry.model.clone(), key.clone())).or_default().push_back(entries.len());
            entries.push(Entry { line, outcome: entry.outcome(), model: entry.model, value, key });
        }
        state.served = vec![false; entries.len()];
        Self {
            inner: Arc::new(Inner {
                name: options.name,
                origin,
                canon,
                strict_order: options.strict_order,
                entries,
                state: Mutex::new(state),
            }),
        }
    }

    /// The provider name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The model `id`, answering from the entries recorded for it.
    pub fn model(&self, id: &str) -> Arc<dyn Model> {
        Arc::new(ReplayModel { replay: self.clone(), id: id.to_owned() })
    }

    /// How many entries the transcript holds (after [`ReplayOptions::match_provider`]).
    pub fn len(&self) -> usize {
        self.inner.entries.len()
    }

    /// True when the transcript holds no entries.
    pub fn is_empty(&self) -> bool {
        self.inner.entries.is_empty()
    }

    /// How many entries have not been served yet (a test can assert 0 at its end).
    pub fn remaining(&self) -> usize {
        self.state().served.iter().filter(|s| !**s).count()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Never held across an await or user code; the state stays consistent.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the Model trait's error type; boxing it here would only be undone at the trait boundary"
    )]
    fn answer(&self, model: &str, request: &Request) -> Result<Response> {
        let value = self.inner.canon.value(request);
        let key = canon::key(&value);
        let mut state = self.state();
        let index = if self.inner.strict_order {
            self.next_in_order(&mut state, model, &value, &key)?
        } else {
            let found = state.unserved.get_mut(&(model.to_owned(), key)).and_then(VecDeque::pop_front);
            match found {
                Some(index) => index,
                None => return Err(self.mismatch(&state, model, &value)),
            }
        };
        if let Some(served) = state.served.get_mut(index) {
            *served = true;
        }
        drop(state);
        match self.inner.entries.get(index) {
            Some(entry) => entry.outcome.clone(),
            None => Err(self.error(model, format!("entry #{index} vanished"))),
        }
    }

    #[allow(
        clippy::result_large_err,
        reason = "crate::Error is the Model trait's error type; boxing it here would only be undone at the trait boundary"
    )]
    fn next_in_order(&self, state: &mut State, model: &str, value: &Value, key: &str) -> Result<usize> {
        let cursor = state.cursor;
        let Some(expected) = self.inner.entries.get(cursor) else {
            return Err(self.error(
                model,
                format!(
                    "replay {} (strict order): all {} recorded calls were already served",
                    self.inner.origin,
                    self.inner.entries.len()
                ),
            ));
        };
        if expected.model == model && expected.key == key {
            state.cursor += 1;
            // Keep the content index consistent for `remaining()`.
            if let Some(queue) = state.unserved.get_mut(&(model.to_owned(), key.to_owned())) {
                queue.retain(|i| *i != cursor);
            }
            return Ok(cursor);
        }
        let why = if expected.model == model {
            match canon::first_difference(&expected.value, value) {
                Some(d) => format!("first difference at {}", d.describe()),
                None => "the requests differ".to_owned(),
            }
        } else {
            format!("it was recorded for model {}, not {model}", expected.model)
        };
        Err(self.error(
            model,
            format!(
                "replay {} (strict order): request for model {model} does not match the next \
                 recorded call, entry #{cursor} (line {}): {why}",
                self.inner.origin, expected.line
            ),
        ))
    }

    fn mismatch(&self, state: &State, model: &str, value: &Value) -> Error {
        let origin = &self.inner.origin;
        let candidates: Vec<(usize, &Entry)> =
            self.inner.entries.iter().enumerate().filter(|(_, e)| e.model == model).collect();
        if candidates.is_empty() {
            let mut models: Vec<&str> = self.inner.entries.iter().map(|e| e.model.as_str()).collect();
            models.sort_unstable();
            models.dedup();
            return self.error(
                model,
                format!(
                    "replay {origin}: no recorded call for model {model} (recorded models: {})",
                    if models.is_empty() { "none".to_owned() } else { models.join(", ") }
                ),
            );
        }
        let served = |i: usize| state.served.get(i).copied().unwrap_or(false);
        let exact: Vec<usize> = candidates
            .iter()
            .filter(|(_, e)| canon::first_difference(&e.value, value).is_none())
            .map(|(i, _)| *i)
            .collect();
        if let Some(first) = exact.first() {
            let line = self.inner.entries.get(*first).map_or(0, |e| e.line);
            return self.error(
                model,
                format!(
                    "replay {origin}: request for model {model} matches entry #{first} (line \
                     {line}), but all {} recorded occurrence(s) of it were already served",
                    exact.len()
                ),
            );
        }
        let closest = candidates
            .iter()
            .min_by_key(|(i, e)| (canon::distance(&e.value, value), served(*i), *i))
            .map(|(i, e)| (*i, *e));
        let Some((index, entry)) = closest else {
            return self.error(model, format!("replay {origin}: no recorded call matches"));
        };
        let difference = canon::first_difference(&entry.value, value)
            .map_or_else(|| "the requests differ".to_owned(), |d| d.describe());
        self.error(
            model,
            format!(
                "replay {origin}: no recorded call for model {model} matches this request; the \
                 closest is entry #{index} (line {}{}), first difference at {difference}",
                entry.line,
                if served(index) { ", already served" } else { "" },
            ),
        )
    }

    fn error(&self, model: &str, message: String) -> Error {
        Error::permanent(&self.inner.name, model, message)
    }
}

impl Provider for ReplayProvider {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        ReplayProvider::model(self, id)
    }
}

#[derive(Debug)]
struct ReplayModel {
    replay: ReplayProvider,
    id: String,
}

#[async_trait]
impl Model for ReplayModel {
    fn provider(&self) -> &str {
        &self.replay.inner.name
    }

    fn model_id(&self) -> &str {
        &self.id
    }

    async fn generate(&self, request: Request) -> Result<Response> {
        self.replay.answer(&self.id, &request)
    }

    async fn stream(&self, request: Request) -> Result<EventStream> {
        self.replay.answer(&self.id, &request).map(response_to_stream)
    }
}
