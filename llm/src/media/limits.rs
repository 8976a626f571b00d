//! What each kind of provider accepts: [`MediaKind`] and its row of the limits table,
//! [`MediaLimits`].
//!
//! Byte budgets count the image bytes themselves (what [`crate::Part::Image`] holds). Where a
//! provider's own limit is on the base64 text of the request, the table's figure is three
//! quarters of it, a little rounded down, so that the encoded form fits.

use std::fmt;
use std::str::FromStr;

use super::format::ImageFormat;

/// A kind of target, by what it accepts as image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MediaKind {
    /// OpenAI's own API (Chat Completions at `api.openai.com`).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini.
    Gemini,
    /// Ollama's native `/api/chat`.
    Ollama,
    /// Any other OpenAI-compatible server: llama.cpp `llama-server`, llama-swap, LocalAI,
    /// vLLM. The conservative row: PNG and JPEG only, which every one of them decodes.
    OpenAiCompatible,
}

impl MediaKind {
    /// Every kind, in documentation order.
    pub const ALL: [Self; 5] =
        [Self::OpenAi, Self::Anthropic, Self::Gemini, Self::Ollama, Self::OpenAiCompatible];

    /// The configuration name (`openai`, `anthropic`, `gemini`, `ollama`, `openai-compatible`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Ollama => "ollama",
            Self::OpenAiCompatible => "openai-compatible",
        }
    }

    /// This kind's row of the limits table.
    pub fn limits(self) -> MediaLimits {
        use ImageFormat::{Gif, Jpeg, Png, Webp};
        const MB: usize = 1_000_000;
        let (formats, max_long_side, max_pixels, max_image_bytes, max_request_bytes) = match self {
            // PNG, JPEG, WebP, non-animated GIF; 50 MB of request payload; high detail works
            // on at most 2048 x 2048.
            Self::OpenAi => (vec![Png, Jpeg, Webp, Gif], 2048, 2048 * 2048, 20 * MB, 36 * MB),
            // JPEG, PNG, GIF, WebP; 5 MB per image (base64); larger than 1568 px or about
            // 1.15 megapixels is scaled down by the API anyway; 32 MB per request.
            Self::Anthropic => (vec![Jpeg, Png, Gif, Webp], 1568, 1_150_000, 3_750_000, 24 * MB),
            // PNG, JPEG, WebP (no GIF); 20 MB inline request; larger than 3072 is scaled down.
            Self::Gemini => (vec![Png, Jpeg, Webp], 3072, 3072 * 3072, 7 * MB, 14 * MB),
            // Ollama decodes PNG and JPEG for its vision models.
            Self::Ollama => (vec![Png, Jpeg], 2048, 4_194_304, 10 * MB, 30 * MB),
            // llama.cpp (stb_image) and friends: PNG and JPEG are safe everywhere.
            Self::OpenAiCompatible => (vec![Png, Jpeg], 2048, 4_194_304, 10 * MB, 30 * MB),
        };
        MediaLimits { kind: self, formats, max_long_side, max_pixels, max_image_bytes, max_request_bytes }
    }

    /// The kind an OpenAI Chat Completions base URL implies: [`MediaKind::OpenAi`] at
    /// `api.openai.com`, [`MediaKind::OpenAiCompatible`] anywhere else.
    pub fn for_openai_base(base_url: &str) -> Self {
        let host = url::Url::parse(base_url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
        if host.as_deref() == Some("api.openai.com") { Self::OpenAi } else { Self::OpenAiCompatible }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media kind name that is not one of [`MediaKind`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown media kind {0:?} (expected openai, anthropic, gemini, ollama or openai-compatible)")]
pub struct UnknownKind(pub String);

impl FromStr for MediaKind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL.into_iter().find(|k| k.as_str() == t).ok_or_else(|| UnknownKind(s.to_owned()))
    }
}

/// What one target accepts as image input. Start from [`MediaKind::limits`] and change
/// fields to override (configuration does exactly that), then [`MediaLimits::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaLimits {
    /// The table row these limits started from (for messages).
    pub kind: MediaKind,
    /// Formats the target accepts, most preferred first. Others are converted.
    pub formats: Vec<ImageFormat>,
    /// Longest side in pixels (after EXIF rotation).
    pub max_long_side: u32,
    /// Width times height.
    pub max_pixels: u64,
    /// Bytes of one image.
    pub max_image_bytes: usize,
    /// Bytes of all images of one request together.
    pub max_request_bytes: usize,
}

/// Limits that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// Neither PNG nor JPEG is accepted, so nothing could be re-encoded.
    #[error("formats must include png or jpeg (images are re-encoded to one of them)")]
    NoEncodableFormat,
    /// A size limit is below what any image needs.
    #[error("{field} must be at least {min}, got {value}")]
    TooSmall {
        /// The field.
        field: &'static str,
        /// The smallest workable value.
        min: u64,
        /// The value given.
        value: u64,
    },
}

impl MediaLimits {
    /// Checks that the limits can be met by re-encoding.
    ///
    /// # Errors
    /// [`LimitsError`] naming the field.
    pub fn validate(&self) -> Result<(), LimitsError> {
        if !self.formats.iter().any(|f| matches!(f, ImageFormat::Png | ImageFormat::Jpeg)) {
            return Err(LimitsError::NoEncodableFormat);
        }
        let checks: [(&'static str, u64, u64); 4] = [
            ("max_long_side", 16, u64::from(self.max_long_side)),
            ("max_pixels", 256, self.max_pixels),
            ("max_image_bytes", 4096, self.max_image_bytes as u64),
            ("max_request_bytes", 4096, self.max_request_bytes as u64),
        ];
        for (field, min, value) in checks {
            if value < min {
                return Err(LimitsError::TooSmall { field, min, value });
            }
        }
        Ok(())
    }

    /// True if the target takes `format` as is.
    pub fn accepts(&self, format: ImageFormat) -> bool {
        self.formats.contains(&format)
    }
}
