//! Images in: every image of a request shaped, before it leaves, into what the target
//! accepts.
//!
//! For each target a failover [`crate::Chain`] calls, the request's images are checked
//! against the target's [`MediaLimits`] (one row per [`MediaKind`] — OpenAI, Anthropic,
//! Gemini, Ollama, OpenAI-compatible servers — overridable per provider through
//! [`crate::providers::ProviderConfig::media`]):
//!
//! 1. the real format is read from the bytes ([`inspect`]: magic numbers and headers, never
//!    the file name or the declared MIME type); a wrong MIME type is corrected;
//! 2. the declared size is checked against a decoding limit ([`DECODE_MAX_PIXELS`]) before
//!    anything is decoded, and the decoder runs under an allocation cap
//!    ([`DECODE_MAX_ALLOC`]): a decompression bomb is a bounded error, never an out-of-memory;
//! 3. an image the target takes as is (format accepted, not animated, upright, within the
//!    long side, pixel count and byte budget) is sent unchanged, byte for byte;
//! 4. otherwise (feature `media`) it is decoded (first frame of an animation), turned upright
//!    by its EXIF orientation, scaled down (aspect ratio kept) to the long side and pixel
//!    count, and re-encoded — PNG for transparency or lossless sources when it fits, else JPEG
//!    at falling quality (85 down to 35), then at smaller sizes — until it fits the per-image
//!    budget; when all images together exceed the per-request budget, each gets an equal
//!    share and is fitted again.
//!
//! Without the `media` feature nothing is decoded: an image within the target's limits is
//! sent unchanged (with a warning when it is animated or rotated by EXIF, which only a
//! conversion would fix), and one over them is refused with [`MediaError::OverLimits`].
//!
//! Refusals name the image ([`ImageRef`]: its number in the request, message and part) and the
//! reason, and happen before any network call. A fault of the image itself (not an image,
//! HEIC, truncated, a bomb) fails the call; a fault relative to one target's limits makes the
//! chain skip that target without a health penalty.
//!
//! Normalised results are kept in a [`MediaCache`] (one per chain, so per run in the core):
//! a transcript resent at every step is converted once per image per set of limits. The
//! request itself — and so the transcript and its checkpoints — keeps the original bytes;
//! only the copy sent to a target carries the converted ones.
//!
//! What it does not do: upscale, crop, strip metadata of images sent unchanged, colour
//! management (ICC profiles are not applied), or HEIC/AVIF/SVG (refused with their name).

mod cache;
#[cfg(feature = "media")]
mod codec;
mod format;
mod limits;
mod normalise;

#[cfg(test)]
mod tests;

use std::fmt;

pub use cache::{CacheStats, MediaCache};
pub use format::{ImageFormat, ImageInfo, InspectError, Sniff, UnknownFormat, inspect, sniff};
pub use limits::{LimitsError, MediaKind, MediaLimits, UnknownKind};
pub use normalise::{NormalisedImage, normalise_image, normalise_request};

/// The most pixels (width x height, as declared) an image may have to be decoded at all:
/// 64 megapixels (a 50 MP camera photo passes; a bomb declaring 60000 x 60000 does not).
pub const DECODE_MAX_PIXELS: u64 = 64_000_000;

/// The most memory a decoder may allocate for one image (512 MiB).
pub const DECODE_MAX_ALLOC: u64 = 512 << 20;

/// True when this build can convert images (the `media` feature).
pub const CAN_CONVERT: bool = cfg!(feature = "media");

/// Which image of a request an error is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// 1-based number of the image in the request, counting images only.
    pub index: usize,
    /// 1-based message number.
    pub message: usize,
    /// 1-based part number within the message.
    pub part: usize,
    /// Its size in bytes.
    pub bytes: usize,
    /// The MIME type it was declared with (at most 64 characters of it).
    pub declared: String,
}

impl ImageRef {
    /// A reference for the image at `message` / `part` (1-based), the `index`-th of its request.
    pub fn new(index: usize, message: usize, part: usize, bytes: usize, declared: &str) -> Self {
        let declared: String = declared.chars().take(64).collect();
        Self { index, message, part, bytes, declared }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "image {} (message {}, part {}; {} declared as {:?})",
            self.index,
            self.message,
            self.part,
            human_bytes(self.bytes),
            self.declared
        )
    }
}

/// Why an image cannot be sent to a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Not an image this crate can handle, or a malformed header.
    #[error("{image}: {source}")]
    Inspect {
        /// The image.
        image: ImageRef,
        /// What the inspection found.
        source: InspectError,
    },
    /// Declared larger than [`DECODE_MAX_PIXELS`]: refused without decoding.
    #[error(
        "{image}: the {format} header declares {width} x {height} pixels, over the decoding limit of {limit} pixels (refused without decoding)"
    )]
    TooManyPixels {
        /// The image.
        image: ImageRef,
        /// Its format.
        format: ImageFormat,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit.
        limit: u64,
    },
    /// The data does not decode (truncated, corrupt, or over the decoder's allocation cap).
    #[error("{image}: the {format} data cannot be decoded: {reason}")]
    Decode {
        /// The image.
        image: ImageRef,
        /// Its format.
        format: ImageFormat,
        /// The decoder's reason.
        reason: String,
    },
    /// Even small and at low quality it does not fit the byte budget.
    #[error(
        "{image}: cannot be made to fit {} for a {kind} target (still {} at {width} x {height})",
        human_bytes(*budget), human_bytes(*smallest)
    )]
    DoesNotFit {
        /// The image.
        image: ImageRef,
        /// The target's kind.
        kind: MediaKind,
        /// The byte budget.
        budget: usize,
        /// The smallest encoding reached.
        smallest: usize,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
    },
    /// Over the target's limits, in a build that cannot convert (no `media` feature).
    #[error("{image}: {reasons} for a {kind} target, and this build cannot convert images (feature `media`)")]
    OverLimits {
        /// The image.
        image: ImageRef,
        /// The target's kind.
        kind: MediaKind,
        /// What is over, e.g. `4000 x 3000 exceeds the 2048 px long side`.
        reasons: String,
    },
    /// All images together exceed the per-request budget, in a build that cannot convert.
    #[error(
        "the request's {count} images take {} together, over the {} request budget of a {kind} target, and this build cannot convert images (feature `media`)",
        human_bytes(*total), human_bytes(*budget)
    )]
    RequestOverBudget {
        /// Number of images.
        count: usize,
        /// Their bytes together.
        total: usize,
        /// The budget.
        budget: usize,
        /// The target's kind.
        kind: MediaKind,
    },
}

impl MediaError {
    /// True when the fault is the image's own (not an image, malformed, a bomb, undecodable):
    /// no target could take it. False when it is relative to one target's limits.
    pub fn is_intrinsic(&self) -> bool {
        matches!(self, Self::Inspect { .. } | Self::TooManyPixels { .. } | Self::Decode { .. })
    }

    /// The image the error is about, if it is about one.
    pub fn image(&self) -> Option<&ImageRef> {
        match self {
            Self::Inspect { image, .. }
            | Self::TooManyPixels { image, .. }
            | Self::Decode { image, .. }
            | Self::DoesNotFit { image, .. }
            | Self::OverLimits { image, .. } => Some(image),
            Self::RequestOverBudget { .. } => None,
        }
    }

    /// The same error about another image (a cached verdict reused at another position).
    pub(crate) fn with_image(mut self, new: &ImageRef) -> Self {
        match &mut self {
            Self::Inspect { image, .. }
            | Self::TooManyPixels { image, .. }
            | Self::Decode { image, .. }
            | Self::DoesNotFit { image, .. }
            | Self::OverLimits { image, .. } => image.clone_from(new),
            Self::RequestOverBudget { .. } => {}
        }
        self
    }
}

/// `1234567` -> `1.2 MB`, `2048` -> `2.0 kB`, `12` -> `12 B`.
pub(crate) fn human_bytes(n: usize) -> String {
    #[allow(clippy::cast_precision_loss, reason = "a rounded figure for a message")]
    let x = n as f64;
    if n >= 1_000_000 {
        format!("{:.1} MB", x / 1e6)
    } else if n >= 1_000 {
        format!("{:.1} kB", x / 1e3)
    } else {
        format!("{n} B")
    }
}
