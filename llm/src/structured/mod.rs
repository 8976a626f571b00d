//! Structured output: ask a model for a typed value.
//!
//! [`generate_typed`] (or [`ModelExt::generate_typed`]) derives a JSON schema for `T` with
//! schemars, makes it acceptable to strict providers ([`strict_schema`]), sets it as the
//! request's [`ResponseSchema`](crate::ResponseSchema) and decodes the reply into `T`.
//!
//! Guarantees:
//! - the reply is decoded after stripping one surrounding Markdown code fence
//!   (```` ```json ... ``` ```` or plain ```` ``` ````); any other prose around the JSON is a decode
//!   failure, never guessed away;
//! - on a decode failure the request is retried **once**, with the bad reply and the decoder's
//!   error fed back to the model; a second failure is an [`ErrorKind::Decode`] error naming the
//!   provider and model that answered and showing the start of the bad reply;
//! - errors from the model itself (transient, permanent, ...) pass through unchanged;
//! - [`Typed::usage`] is the sum over every attempt, so budgets see the retry;
//! - a `null` for a `#[serde(default)]` field that is not an `Option` (strict mode makes every
//!   optional field nullable) decodes as if the field were absent.
//!
//! It does not validate the value against the schema beyond what serde's decoding checks, and
//! it does not fall back to prompting for JSON when a provider lacks native structured output:
//! that is the wire client's job (the Ollama client, for one, also states the schema in the
//! system prompt).

mod schema;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::future::Future;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use schema::{sanitize_name, schema_for, strict_schema};

use crate::error::{Error, ErrorKind, Result};
use crate::model::Model;
use crate::types::{Message, Request, Response, Usage};

/// How many characters of a bad reply a decode error shows.
const SHOWN_CHARS: usize = 200;

/// A decoded structured reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed<T> {
    /// The decoded value.
    pub value: T,
    /// The response the value was decoded from (the last attempt's).
    pub response: Response,
    /// Token usage summed over every attempt (a retry after a decode failure costs tokens).
    pub usage: Usage,
}

/// Asks `model` for a `T`: sets a strict [`schema_for::<T>()`](schema_for) as the request's
/// response schema (replacing any already set), calls [`Model::generate`] and decodes the reply, retrying once with the
/// decode error fed back (see the [module docs](self)).
///
/// ```
/// use executus_llm::fake::{FakeProvider, Outcome};
/// use executus_llm::{Request, generate_typed};
///
/// #[derive(schemars::JsonSchema, serde::Deserialize, Debug, PartialEq)]
/// struct Verdict {
///     ok: bool,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), executus_llm::Error> {
/// let fake = FakeProvider::new("fake");
/// fake.push("judge", Outcome::text("```json\n{\"ok\": true}\n```"));
/// let model = fake.model("judge");
/// let typed = generate_typed::<Verdict>(model.as_ref(), Request::user("is it ok?")).await?;
/// assert_eq!(typed.value, Verdict { ok: true });
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// The model's own errors unchanged; [`ErrorKind::Decode`] when the reply could not be decoded
/// into `T` twice.
pub async fn generate_typed<T>(model: &dyn Model, mut request: Request) -> Result<Typed<T>>
where
    T: JsonSchema + DeserializeOwned,
{
    request.response_schema = Some(schema_for::<T>());
    let first = model.generate(request.clone()).await?;
    let mut usage = first.usage;
    let first_text = first.text();
    let error = match decode::<T>(&first_text) {
        Ok(value) => {
            return Ok(Typed { value, response: first, usage });
        }
        Err(error) => error,
    };
    tracing::debug!(
        provider = %first.provider,
        model = %first.model,
        %error,
        "structured reply did not decode; retrying once with the error fed back"
    );

    request.messages.push(Message::assistant(first_text));
    request.messages.push(Message::user(format!(
        "Your previous reply could not be decoded as JSON matching the required schema: {error}. \
         Reply again with only a JSON value that matches the schema, with no prose and no code \
         fences."
    )));
    let second = model.generate(request).await?;
    usage.add(&second.usage);
    let second_text = second.text();
    match decode::<T>(&second_text) {
        Ok(value) => Ok(Typed { value, response: second, usage }),
        Err(error) => {
            let provider = non_empty(&second.provider, model.provider());
            let model_id = non_empty(&second.model, model.model_id());
            Err(Error::new(
                ErrorKind::Decode,
                provider,
                model_id,
                format!(
                    "could not decode the reply as {} after 2 attempts: {error}; the reply starts \
                     with: {:?}",
                    schema::type_name::<T>(),
                    head(&second_text, SHOWN_CHARS),
                ),
            ))
        }
    }
}

/// [`generate_typed`] as a method, on `dyn Model` (so also through `Arc<dyn Model>` and
/// `&dyn Model`) and on every concrete [`Model`].
///
/// ```
/// use std::sync::Arc;
/// use executus_llm::fake::{FakeProvider, Outcome};
/// use executus_llm::{Model, ModelExt, Request};
///
/// #[derive(schemars::JsonSchema, serde::Deserialize)]
/// struct Count {
///     n: u32,
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), executus_llm::Error> {
/// let fake = FakeProvider::new("fake");
/// fake.push("m", Outcome::text(r#"{"n": 3}"#));
/// let model: Arc<dyn Model> = fake.model("m");
/// let count = model.generate_typed::<Count>(Request::user("how many?")).await?;
/// assert_eq!(count.value.n, 3);
/// # Ok(())
/// # }
/// ```
pub trait ModelExt {
    /// See [`generate_typed`].
    ///
    /// # Errors
    /// As [`generate_typed`].
    fn generate_typed<T>(&self, request: Request) -> impl Future<Output = Result<Typed<T>>> + Send
    where
        T: JsonSchema + DeserializeOwned;
}

impl ModelExt for dyn Model {
    fn generate_typed<T>(&self, request: Request) -> impl Future<Output = Result<Typed<T>>> + Send
    where
        T: JsonSchema + DeserializeOwned,
    {
        generate_typed::<T>(self, request)
    }
}

impl<M: Model> ModelExt for M {
    fn generate_typed<T>(&self, request: Request) -> impl Future<Output = Result<Typed<T>>> + Send
    where
        T: JsonSchema + DeserializeOwned,
    {
        generate_typed::<T>(self, request)
    }
}

/// Removes one Markdown code fence around `text` (```` ```json ```` or ```` ``` ```` with any
/// info word), and surrounding whitespace. Text that does not start with a fence is returned
/// trimmed; a missing closing fence (a truncated reply) is tolerated.
///
/// ```
/// use executus_llm::structured::strip_code_fences;
/// assert_eq!(strip_code_fences("```json\n{\"a\": 1}\n```"), "{\"a\": 1}");
/// assert_eq!(strip_code_fences("  {\"a\": 1}\n"), "{\"a\": 1}");
/// assert_eq!(strip_code_fences("Sure! {\"a\": 1}"), "Sure! {\"a\": 1}");
/// ```
pub fn strip_code_fences(text: &str) -> &str {
    let trimmed = text.trim();
    let Some(rest) = trimmed.strip_prefix("```") else {
        return trimmed;
    };
    let rest = rest.strip_suffix("```").unwrap_or(rest);
    // The info word (`json`, `JSON`, ...) runs up to the first newline or JSON start.
    let info_len =
        rest.find(|c: char| c.is_whitespace() || c == '{' || c == '[' || c == '"').unwrap_or(rest.len());
    let info = &rest[..info_len];
    if info.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        rest[info_len..].trim()
    } else {
        rest.trim()
    }
}

/// Decodes a reply: strip fences, then serde. Strict mode turns optional fields into nullable
/// ones, and a `#[serde(default)]` field that is not an `Option` rejects `null`; when the
/// direct decode fails, the value is decoded once more with `null`-valued object fields
/// removed, which is how "absent" reads to serde.
fn decode<T: DeserializeOwned>(text: &str) -> std::result::Result<T, serde_json::Error> {
    let body = strip_code_fences(text);
    let error = match serde_json::from_str::<T>(body) {
        Ok(value) => return Ok(value),
        Err(error) => error,
    };
    if let Ok(mut value) = serde_json::from_str::<Value>(body)
        && remove_null_fields(&mut value)
        && let Ok(decoded) = T::deserialize(value)
    {
        return Ok(decoded);
    }
    Err(error)
}

/// Removes `null`-valued fields of every object in `value`; true if any was removed.
fn remove_null_fields(value: &mut Value) -> bool {
    match value {
        Value::Object(map) => {
            let before = map.len();
            map.retain(|_, v| !v.is_null());
            let mut removed = map.len() != before;
            for v in map.values_mut() {
                removed |= remove_null_fields(v);
            }
            removed
        }
        Value::Array(items) => {
            // Visit every item: no short-circuit.
            let mut removed = false;
            for item in items.iter_mut() {
                removed |= remove_null_fields(item);
            }
            removed
        }
        _ => false,
    }
}

fn non_empty<'a>(preferred: &'a str, fallback: &'a str) -> &'a str {
    if preferred.is_empty() { fallback } else { preferred }
}

/// The first `max` characters of `text` (on a character boundary), with `...` when cut.
fn head(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}
