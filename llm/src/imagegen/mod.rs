//! Images out: the [`ImageModel`] trait beside the chat [`crate::Model`], its request and
//! response types, and [`ImageChain`], the failover chain over image models.
//!
//! A provider declares that it can generate images by answering
//! [`crate::Provider::image_model`]: the OpenAI-compatible client (`POST
//! {base}/images/generations`: OpenAI, llama-swap in front of stable-diffusion.cpp, LocalAI),
//! llama-swap, and Gemini (`generateContent` with image output). [`crate::Registry::image_chain`]
//! turns a spec such as `"sd, openai/gpt-image-1"` into an [`ImageChain`] that follows the chat
//! chain's rules exactly — the same health tracker, retries, backoff, `Retry-After`, error
//! classes and exhaustion error (see [`crate::chain`]).
//!
//! Guarantees: every returned image is checked to be a PNG, JPEG, GIF or WebP image by its own
//! bytes (format and size read from its header, see [`crate::media::inspect`]); anything else
//! is an [`crate::ErrorKind::Decode`] error naming the provider. Bodies are bounded by the
//! provider's [`crate::HttpOptions::max_body_bytes`].
//!
//! What it does not do: image edits or variations, streaming partial images, or masks.

mod chain;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use self::chain::ImageChain;
use crate::error::Result;
use crate::media::ImageFormat;
use crate::types::Usage;

/// A width x height in pixels, written `1024x1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ImageSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl ImageSize {
    /// The largest side accepted when parsing (servers cap far lower).
    pub const MAX_SIDE: u32 = 16_384;

    /// A size.
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }
}

impl fmt::Display for ImageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

/// A size that is not `WxH` with both sides from 1 to [`ImageSize::MAX_SIDE`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image size {0:?}: expected WIDTHxHEIGHT, e.g. 1024x1024, each side 1 to 16384")]
pub struct BadSize(pub String);

impl FromStr for ImageSize {
    type Err = BadSize;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadSize(s.chars().take(40).collect());
        let (w, h) = s.trim().split_once(['x', 'X', '×']).ok_or_else(bad)?;
        let side = |t: &str| t.trim().parse::<u32>().ok().filter(|v| (1..=Self::MAX_SIDE).contains(v));
        Ok(Self { width: side(w).ok_or_else(bad)?, height: side(h).ok_or_else(bad)? })
    }
}

impl TryFrom<String> for ImageSize {
    type Error = BadSize;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ImageSize> for String {
    fn from(size: ImageSize) -> Self {
        size.to_string()
    }
}

/// A text-to-image request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRequest {
    /// What to draw.
    pub prompt: String,
    /// The size wanted (the server's default when absent). Gemini takes an aspect ratio:
    /// the closest one it supports is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ImageSize>,
    /// How many images (1 to [`ImageRequest::MAX_N`]).
    #[serde(default = "one")]
    pub n: u32,
    /// Sampling seed, for servers that take one (stable-diffusion.cpp, LocalAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Provider-specific body fields merged in last (`quality`, `style`, ...); `null` removes
    /// a field.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Value>,
}

fn one() -> u32 {
    1
}

impl ImageRequest {
    /// The most images one request may ask for.
    pub const MAX_N: u32 = 10;

    /// One image of `prompt`, default size.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self { prompt: prompt.into(), size: None, n: 1, seed: None, extra: BTreeMap::new() }
    }

    /// Sets the size.
    #[must_use]
    pub fn with_size(mut self, size: ImageSize) -> Self {
        self.size = Some(size);
        self
    }

    /// Why the request cannot be sent, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if self.prompt.trim().is_empty() {
            return Some("the prompt is empty".to_owned());
        }
        if !(1..=Self::MAX_N).contains(&self.n) {
            return Some(format!("n must be 1 to {}, got {}", Self::MAX_N, self.n));
        }
        None
    }
}

/// One generated image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedImage {
    /// Its format, read from its bytes.
    pub format: ImageFormat,
    /// Width from its header.
    pub width: u32,
    /// Height from its header.
    pub height: u32,
    /// The bytes.
    pub data: Vec<u8>,
    /// The prompt the provider actually used, when it rewrote it (OpenAI).
    pub revised_prompt: Option<String>,
}

impl GeneratedImage {
    /// The MIME type.
    pub fn mime(&self) -> &'static str {
        self.format.mime()
    }
}

/// What an image model answered.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageResponse {
    /// The images, at least one.
    pub images: Vec<GeneratedImage>,
    /// Text the model returned beside the images (Gemini), if any.
    pub text: Option<String>,
    /// Token usage, when the provider reports it (OpenAI `gpt-image-*`, Gemini).
    pub usage: Usage,
    /// The provider that answered (after any failover).
    pub provider: String,
    /// The model that answered.
    pub model: String,
}

/// A model that makes images from text. `Arc<dyn ImageModel>` is the currency, as for chat.
#[async_trait]
pub trait ImageModel: Send + Sync + fmt::Debug {
    /// The provider name (`chain` for an [`ImageChain`]).
    fn provider(&self) -> &str;

    /// The model id (for a chain, its spec).
    fn model_id(&self) -> &str;

    /// Generates images.
    ///
    /// # Errors
    /// A classified [`crate::Error`] naming provider and model.
    async fn generate_image(&self, request: &ImageRequest) -> Result<ImageResponse>;
}

/// Checks a returned image's bytes, for wire clients: format and size from its header.
pub(crate) fn checked_image(
    http: &crate::http::Http,
    model: &str,
    data: Vec<u8>,
    revised_prompt: Option<String>,
) -> Result<GeneratedImage> {
    match crate::media::inspect(&data) {
        Ok(info) => Ok(GeneratedImage {
            format: info.format,
            width: info.width,
            height: info.height,
            data,
            revised_prompt,
        }),
        Err(e) => Err(http.error(
            crate::error::ErrorKind::Decode,
            model,
            format!("the server returned an image that is unusable: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests;
