//! llama-swap: a proxy that starts and stops local model servers (llama.cpp, vLLM...) on
//! demand behind one OpenAI-compatible endpoint.
//!
//! Chat is plain Chat Completions, so it is delegated to an inner [`OpenAi`] client at
//! `{base}/v1` — there is no second wire client. `config.base_url` is the server *root*
//! (e.g. `http://127.0.0.1:8080`); a base that already ends in `/v1` is accepted and
//! trimmed. The token, if any, is sent as `Authorization: Bearer` on every call (llama-swap's
//! `apiKeys` setting accepts it on chat and management routes alike).
//!
//! Management routes called, as llama-swap's proxy manager defines them:
//! - [`LlamaSwap::list_models`]: `GET /v1/models` — the configured models
//!   (`{"object":"list","data":[{"id","object","created","owned_by","name"?,"description"?,
//!   "meta"?}]}`); unlisted models are not shown by the server.
//! - [`LlamaSwap::running`]: `GET /running` — the processes currently up
//!   (`{"running":[{"model","state","name","description","ttl","proxy","cmd"}]}`). The
//!   launch command (`cmd`) is deliberately not surfaced: it can hold flags such as a
//!   backend's `--api-key`.
//! - [`LlamaSwap::unload`]: `POST /api/models/unload/{model}` — stops one model; the route's
//!   wildcard takes ids containing `/`. An unknown model is a 404, hence [`ErrorKind::NotFound`].
//! - [`LlamaSwap::unload_all`]: `GET /unload` — the long-standing public route that stops
//!   every running model (the UI's `POST /api/models/unload` does the same).
//!
//! Management calls send `Accept: application/json` so that llama-swap reports failures as
//! `{"error": "..."}` rather than plain text. They share the chat client's HTTP layer:
//! classified errors, `Retry-After`, timeouts, the token scrubbed. Errors from calls that
//! concern no single model name the model `*`.

use std::sync::Arc;

use serde_json::Value;

use super::ProviderConfig;
use super::openai::{OpenAi, OpenAiOptions};
use crate::error::{ErrorKind, Result};
use crate::http::{Http, join, preview};
use crate::model::{Model, Provider};

/// The model name used in errors of calls that concern no single model.
const ALL: &str = "*";

/// A llama-swap server: chat through its OpenAI-compatible `/v1`, plus model management.
#[derive(Debug, Clone)]
pub struct LlamaSwap {
    openai: OpenAi,
    root: String,
}

/// A model llama-swap is configured to serve, from `GET /v1/models`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ModelInfo {
    /// The model id to request.
    pub id: String,
    /// Display name, when configured.
    pub name: Option<String>,
    /// Description, when configured.
    pub description: Option<String>,
    /// Owner (`llama-swap` for its own models).
    pub owned_by: Option<String>,
    /// Creation time the server reports (Unix seconds).
    pub created: Option<i64>,
    /// Free-form metadata (`meta`), when configured.
    pub meta: Option<Value>,
}

/// The state of a model process, from `GET /running`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModelState {
    /// Serving requests.
    Ready,
    /// Loading.
    Starting,
    /// Being stopped.
    Stopping,
    /// Stopped.
    Stopped,
    /// Failed its start-up health check.
    Failed,
    /// Shut down for good.
    Shutdown,
    /// A state this crate does not know, verbatim.
    Other(String),
}

impl ModelState {
    fn parse(s: &str) -> Self {
        match s {
            "ready" => Self::Ready,
            "starting" => Self::Starting,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            "failed" => Self::Failed,
            "shutdown" => Self::Shutdown,
            other => Self::Other(other.to_owned()),
        }
    }
}

/// A model process llama-swap has running, from `GET /running`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunningModel {
    /// The model id.
    pub model: String,
    /// Process state.
    pub state: ModelState,
    /// Display name, when configured.
    pub name: Option<String>,
    /// Description, when configured.
    pub description: Option<String>,
    /// Idle seconds after which llama-swap unloads it (`0`: never), when reported.
    pub ttl: Option<u64>,
    /// The upstream URL llama-swap proxies this model to.
    pub proxy: Option<String>,
}

impl LlamaSwap {
    /// A provider from its config. `config.base_url` is the server root, e.g.
    /// `http://127.0.0.1:8080`.
    pub fn new(config: ProviderConfig) -> Self {
        let trimmed = config.base_url.trim_end_matches('/');
        let root = trimmed.strip_suffix("/v1").unwrap_or(trimmed).to_owned();
        let openai = OpenAi::new(ProviderConfig { base_url: join(&root, "v1"), ..config });
        Self { openai, root }
    }

    /// The same server with these Chat Completions options.
    #[must_use]
    pub fn with_options(self, options: OpenAiOptions) -> Self {
        Self { openai: self.openai.with_options(options), root: self.root }
    }

    /// The inner Chat Completions client (at `{base}/v1`).
    pub fn openai(&self) -> &OpenAi {
        &self.openai
    }

    /// The server root URL.
    pub fn root(&self) -> &str {
        &self.root
    }

    fn http(&self) -> &Http {
        self.openai.http()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let http = self.http();
        let mut builder = http
            .client
            .request(method, join(&self.root, path))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &http.secret {
            builder = builder.bearer_auth(key.expose());
        }
        builder
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let http = self.http();
        let response = http.send(ALL, self.request(reqwest::Method::GET, path)).await?;
        http.read_json(ALL, response).await
    }

    /// The models llama-swap is configured to serve (`GET /v1/models`).
    ///
    /// # Errors
    /// A classified error on a transport failure or error status; [`ErrorKind::Decode`] when
    /// the body is not a model list.
    pub async fn list_models(&self) -> Result<Vec<ModelInfo>> {
        let body = self.get_json("v1/models").await?;
        let Some(data) = body.get("data").and_then(Value::as_array) else {
            return Err(self.decode_error("`/v1/models` has no `data` array", &body));
        };
        data.iter()
            .enumerate()
            .map(|(i, entry)| {
                let Some(id) = str_field(entry, "id") else {
                    return Err(self.decode_error(&format!("`/v1/models` entry {i} has no `id`"), entry));
                };
                Ok(ModelInfo {
                    id,
                    name: str_field(entry, "name"),
                    description: str_field(entry, "description"),
                    owned_by: str_field(entry, "owned_by"),
                    created: entry.get("created").and_then(Value::as_i64),
                    meta: entry.get("meta").filter(|m| !m.is_null()).cloned(),
                })
            })
            .collect()
    }

    /// The model processes currently running (`GET /running`).
    ///
    /// # Errors
    /// A classified error on a transport failure or error status; [`ErrorKind::Decode`] when
    /// the body is not a list of running models.
    pub async fn running(&self) -> Result<Vec<RunningModel>> {
        let body = self.get_json("running").await?;
        let Some(running) = body.get("running").and_then(Value::as_array) else {
            return Err(self.decode_error("`/running` has no `running` array", &body));
        };
        running
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let Some(model) = str_field(entry, "model") else {
                    return Err(self.decode_error(&format!("`/running` entry {i} has no `model`"), entry));
                };
                Ok(RunningModel {
                    model,
                    state: ModelState::parse(entry.get("state").and_then(Value::as_str).unwrap_or_default()),
                    name: str_field(entry, "name"),
                    description: str_field(entry, "description"),
                    ttl: entry.get("ttl").and_then(Value::as_u64),
                    proxy: str_field(entry, "proxy"),
                })
            })
            .collect()
    }

    /// Stops one model (`POST /api/models/unload/{model}`). Unloading a model that is not
    /// running succeeds.
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when llama-swap does not know the model;
    /// [`ErrorKind::Permanent`] for an id that cannot be put in a URL path (empty, or with a
    /// `.`/`..` segment); otherwise a classified transport or status error.
    pub async fn unload(&self, model: &str) -> Result<()> {
        let path =
            model_path(model).map_err(|reason| self.http().error(ErrorKind::Permanent, model, reason))?;
        let http = self.http();
        let builder = self.request(reqwest::Method::POST, &format!("api/models/unload/{path}"));
        let response = http.send(model, builder).await?;
        // The body is a short "OK"; read it (bounded) so the connection can be reused.
        http.read_body(model, response, 64 << 10).await?;
        Ok(())
    }

    /// Stops every running model (`GET /unload`).
    ///
    /// # Errors
    /// A classified transport or status error.
    pub async fn unload_all(&self) -> Result<()> {
        let http = self.http();
        let response = http.send(ALL, self.request(reqwest::Method::GET, "unload")).await?;
        http.read_body(ALL, response, 64 << 10).await?;
        Ok(())
    }

    fn decode_error(&self, what: &str, body: &Value) -> crate::Error {
        self.http().error(
            ErrorKind::Decode,
            ALL,
            format!("{what}; body starts: {}", preview(body.to_string().as_bytes())),
        )
    }
}

impl Provider for LlamaSwap {
    fn name(&self) -> &str {
        self.openai.name()
    }

    fn model(&self, id: &str) -> Arc<dyn Model> {
        self.openai.model(id)
    }

    /// `POST {root}/v1/images/generations`, which llama-swap routes by `model` to the server
    /// it runs for it (stable-diffusion.cpp's `sd-server`, for instance).
    fn image_model(&self, id: &str) -> Option<Arc<dyn crate::imagegen::ImageModel>> {
        self.openai.image_model(id)
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A model id as a URL path: `/` and `:` stay (llama-swap's route is a wildcard and ids like
/// `org/model:q4` are common); everything outside the unreserved set is percent-encoded.
/// `.` and `..` segments are refused: URL normalisation would resolve them into another
/// route.
fn model_path(model: &str) -> Result<String, String> {
    if model.is_empty() {
        return Err("empty model id".into());
    }
    if model.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("model id {model:?} has a `.` or `..` path segment"));
    }
    let mut out = String::with_capacity(model.len());
    for b in model.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_path_keeps_slashes_and_colons_and_encodes_the_rest() {
        assert_eq!(model_path("org/model:q4_K_M").as_deref(), Ok("org/model:q4_K_M"));
        assert_eq!(model_path("a b?#%").as_deref(), Ok("a%20b%3F%23%25"));
        assert_eq!(model_path("é").as_deref(), Ok("%C3%A9"));
        assert!(model_path("").is_err());
        assert!(model_path("../running").is_err());
        assert!(model_path("a/./b").is_err());
        assert_eq!(model_path("a..b").as_deref(), Ok("a..b"));
    }

    #[test]
    fn root_is_derived_from_base_with_or_without_v1() {
        for base in ["http://h:8080", "http://h:8080/", "http://h:8080/v1", "http://h:8080/v1/"] {
            let ls = LlamaSwap::new(ProviderConfig::new("ls", base));
            assert_eq!(ls.root(), "http://h:8080", "{base}");
        }
    }

    #[test]
    fn model_states_parse() {
        assert_eq!(ModelState::parse("ready"), ModelState::Ready);
        assert_eq!(ModelState::parse("starting"), ModelState::Starting);
        assert_eq!(ModelState::parse("sleeping"), ModelState::Other("sleeping".into()));
    }
}
