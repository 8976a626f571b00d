//! Wire clients, one module per protocol, all hand-written on `reqwest` so that HTTP status
//! and `Retry-After` survive into [`crate::Error`] — what failover decides on.

use crate::http::HttpOptions;
use crate::media::{MediaKind, MediaLimits};
use crate::secret::Secret;

pub mod anthropic;
pub mod gemini;
pub mod llama_swap;
pub mod ollama;
pub mod openai;
pub(crate) mod wire;

/// What every wire client needs: its registry name, endpoint, credentials and HTTP options.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// Registry name (`openai`, `local`, ...); appears in errors and responses.
    pub name: String,
    /// Base URL, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`.
    pub base_url: String,
    /// API key or bearer token, if the endpoint needs one.
    pub api_key: Option<Secret>,
    /// Timeouts and limits.
    pub http: HttpOptions,
    /// Image-input limits replacing the provider kind's row of the limits table (see
    /// [`crate::media`]); `None` keeps the row.
    pub media: Option<MediaLimits>,
}

impl ProviderConfig {
    /// A config with default HTTP options and no key.
    pub fn new(name: impl Into<String>, base_url: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            base_url: base_url.into(),
            api_key: None,
            http: HttpOptions::default(),
            media: None,
        }
    }

    /// Sets the API key.
    #[must_use]
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// Sets the HTTP options.
    #[must_use]
    pub fn with_http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }

    /// Sets the image-input limits (overriding the provider kind's row of the table).
    #[must_use]
    pub fn with_media(mut self, media: MediaLimits) -> Self {
        self.media = Some(media);
        self
    }

    /// The image-input limits in effect: the override, else `kind`'s row.
    pub(crate) fn media_or(&self, kind: MediaKind) -> MediaLimits {
        self.media.clone().unwrap_or_else(|| kind.limits())
    }
}
