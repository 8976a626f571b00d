//! The decision for one image ([`verdict`]) and for a whole request ([`normalise_request`]).

use std::borrow::Cow;
use std::sync::Arc;

use super::cache::MediaCache;
use super::format::{ImageFormat, ImageInfo, inspect};
use super::limits::MediaLimits;
use super::{DECODE_MAX_PIXELS, ImageRef, MediaError, human_bytes};
use crate::types::{Message, Part, Request};

/// What happens to one image for one set of limits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(feature = "media"), allow(dead_code, reason = "only conversions construct `Convert`"))]
pub(crate) enum Verdict {
    /// Sent byte for byte, labelled with its real format.
    Keep {
        /// The real format.
        format: ImageFormat,
    },
    /// Replaced by a converted copy.
    Convert {
        /// The new format.
        format: ImageFormat,
        /// The new bytes.
        data: Arc<[u8]>,
        /// The new width.
        width: u32,
        /// The new height.
        height: u32,
    },
}

impl Verdict {
    /// Bytes that will be sent for an original of `original` bytes.
    fn sent_bytes(&self, original: usize) -> usize {
        match self {
            Self::Keep { .. } => original,
            Self::Convert { data, .. } => data.len(),
        }
    }
}

/// One image as it will be sent to a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalisedImage<'a> {
    /// Its format (and so its MIME type).
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The bytes: borrowed when the original goes as is.
    pub data: Cow<'a, [u8]>,
}

impl NormalisedImage<'_> {
    /// True when the bytes differ from the original.
    pub fn converted(&self) -> bool {
        matches!(self.data, Cow::Owned(_))
    }
}

/// Shapes one image for `limits` (no cache): the original borrowed when it can go as is, a
/// converted copy otherwise.
///
/// # Errors
/// A [`MediaError`] naming the image as image 1 of message 1, part 1.
pub fn normalise_image<'a>(
    bytes: &'a [u8],
    declared: &str,
    limits: &MediaLimits,
) -> Result<NormalisedImage<'a>, MediaError> {
    let image = ImageRef::new(1, 1, 1, bytes.len(), declared);
    let info = inspect(bytes).map_err(|source| MediaError::Inspect { image: image.clone(), source })?;
    Ok(match verdict(bytes, &info, limits, limits.max_image_bytes, &image, super::CAN_CONVERT)? {
        Verdict::Keep { format } => {
            let (width, height) = (info.width, info.height);
            NormalisedImage { format, width, height, data: Cow::Borrowed(bytes) }
        }
        Verdict::Convert { format, data, width, height } => {
            NormalisedImage { format, width, height, data: Cow::Owned(data.to_vec()) }
        }
    })
}

/// Why `info` (of `len` bytes) cannot go to a target as it is; empty when it can. The first
/// list is what only a conversion can fix and a target refuses; the second what it would take
/// but a conversion would improve (animation, EXIF rotation).
fn shortfalls(
    info: &ImageInfo,
    len: usize,
    limits: &MediaLimits,
    budget: usize,
) -> (Vec<String>, Vec<String>) {
    let mut hard = Vec::new();
    let mut soft = Vec::new();
    if !limits.accepts(info.format) {
        let accepted: Vec<&str> = limits.formats.iter().map(|f| f.as_str()).collect();
        hard.push(format!("{} is not accepted (only {})", info.format, accepted.join(", ")));
    }
    let (w, h) = info.displayed();
    if info.long_side() > limits.max_long_side {
        hard.push(format!("{w} x {h} exceeds the {} px long side", limits.max_long_side));
    }
    if info.pixels() > limits.max_pixels {
        hard.push(format!("{} pixels exceed the {}-pixel limit", info.pixels(), limits.max_pixels));
    }
    if len > budget {
        hard.push(format!("{} exceed the {} per image", human_bytes(len), human_bytes(budget)));
    }
    if info.animated {
        soft.push(format!("the {} is animated (only its first frame is meaningful)", info.format));
    }
    if info.orientation != 1 {
        soft.push(format!(
            "EXIF orientation {} asks for a rotation the target may not apply",
            info.orientation
        ));
    }
    (hard, soft)
}

/// The verdict for one inspected image under `limits`, with `budget` bytes for it; `convert`
/// says whether this build may convert (only with the `media` feature).
pub(crate) fn verdict(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &MediaLimits,
    budget: usize,
    image: &ImageRef,
    convert: bool,
) -> Result<Verdict, MediaError> {
    if info.pixels() > DECODE_MAX_PIXELS {
        return Err(MediaError::TooManyPixels {
            image: image.clone(),
            format: info.format,
            width: info.width,
            height: info.height,
            limit: DECODE_MAX_PIXELS,
        });
    }
    let (hard, soft) = shortfalls(info, bytes.len(), limits, budget);
    if hard.is_empty() && soft.is_empty() {
        return Ok(Verdict::Keep { format: info.format });
    }
    #[cfg(feature = "media")]
    if convert {
        return converted(bytes, info, limits, budget, image, &hard, &soft);
    }
    debug_assert!(!convert || super::CAN_CONVERT, "conversion asked of a build without the codecs");
    without_codecs(info, limits, image, &hard, &soft)
}

#[cfg(feature = "media")]
fn converted(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &MediaLimits,
    budget: usize,
    image: &ImageRef,
    hard: &[String],
    soft: &[String],
) -> Result<Verdict, MediaError> {
    use super::codec::{Fault, convert};
    match convert(bytes, info, limits, budget) {
        Ok(out) => {
            tracing::debug!(
                image = %image,
                kind = %limits.kind,
                why = %hard.iter().chain(soft).cloned().collect::<Vec<_>>().join("; "),
                from = format_args!("{} x {} {}", info.width, info.height, info.format),
                to = format_args!("{} x {} {} ({})", out.width, out.height, out.format, human_bytes(out.data.len())),
                "image normalised"
            );
            Ok(Verdict::Convert {
                format: out.format,
                data: Arc::from(out.data),
                width: out.width,
                height: out.height,
            })
        }
        Err(Fault::Decode(reason)) => {
            Err(MediaError::Decode { image: image.clone(), format: info.format, reason })
        }
        Err(Fault::DoesNotFit { smallest, width, height }) => Err(MediaError::DoesNotFit {
            image: image.clone(),
            kind: limits.kind,
            budget,
            smallest,
            width,
            height,
        }),
    }
}

/// Without conversion: refused when over a limit, else sent unchanged with a warning.
fn without_codecs(
    info: &ImageInfo,
    limits: &MediaLimits,
    image: &ImageRef,
    hard: &[String],
    soft: &[String],
) -> Result<Verdict, MediaError> {
    if !hard.is_empty() {
        return Err(MediaError::OverLimits {
            image: image.clone(),
            kind: limits.kind,
            reasons: hard.join("; "),
        });
    }
    tracing::warn!(
        image = %image,
        kind = %limits.kind,
        "image sent unchanged: {} (a build with the `media` feature would convert it)",
        soft.join("; ")
    );
    Ok(Verdict::Keep { format: info.format })
}

/// Where an image sits in a request.
struct Slot<'r> {
    message: usize,
    part: usize,
    mime: &'r str,
    data: &'r [u8],
    image: ImageRef,
}

/// `request` with every image shaped for `limits`, using and filling `cache`. Borrowed when
/// nothing changes (every image goes as is, under its declared MIME type); otherwise an owned
/// copy in which only the image parts differ.
///
/// # Errors
/// The first image that cannot be sent, as a [`MediaError`] naming it; or
/// [`MediaError::RequestOverBudget`] in a build that cannot convert.
pub fn normalise_request<'r>(
    request: &'r Request,
    limits: &MediaLimits,
    cache: &MediaCache,
) -> Result<Cow<'r, Request>, MediaError> {
    normalise_request_with(request, limits, cache, super::CAN_CONVERT)
}

/// [`normalise_request`], converting only when `convert` (tests run the no-codec rules in a
/// build that has the codecs).
pub(crate) fn normalise_request_with<'r>(
    request: &'r Request,
    limits: &MediaLimits,
    cache: &MediaCache,
    convert: bool,
) -> Result<Cow<'r, Request>, MediaError> {
    let mut slots: Vec<Slot<'r>> = Vec::new();
    for (m, message) in request.messages.iter().enumerate() {
        for (p, part) in message.parts.iter().enumerate() {
            if let Part::Image { mime, data } = part {
                let image = ImageRef::new(slots.len() + 1, m + 1, p + 1, data.len(), mime);
                slots.push(Slot { message: m, part: p, mime, data, image });
            }
        }
    }
    if slots.is_empty() {
        return Ok(Cow::Borrowed(request));
    }
    let mut verdicts: Vec<Verdict> = Vec::with_capacity(slots.len());
    for slot in &slots {
        verdicts.push(cache.verdict(slot.data, &slot.image, limits, limits.max_image_bytes, convert)?);
    }
    let total: usize = slots.iter().zip(&verdicts).map(|(s, v)| v.sent_bytes(s.data.len())).sum();
    if total > limits.max_request_bytes {
        if !convert {
            return Err(MediaError::RequestOverBudget {
                count: slots.len(),
                total,
                budget: limits.max_request_bytes,
                kind: limits.kind,
            });
        }
        // An equal share each; images already under it keep their verdict.
        let share = (limits.max_request_bytes / slots.len()).min(limits.max_image_bytes);
        for (slot, verdict) in slots.iter().zip(verdicts.iter_mut()) {
            if verdict.sent_bytes(slot.data.len()) > share {
                *verdict = cache.verdict(slot.data, &slot.image, limits, share, convert)?;
            }
        }
    }
    let unchanged = slots.iter().zip(&verdicts).all(|(slot, verdict)| match verdict {
        Verdict::Keep { format } => format.mime() == slot.mime,
        Verdict::Convert { .. } => false,
    });
    if unchanged {
        return Ok(Cow::Borrowed(request));
    }
    let mut replacements = slots.iter().zip(verdicts).peekable();
    let mut messages = Vec::with_capacity(request.messages.len());
    for (m, message) in request.messages.iter().enumerate() {
        let mut parts = Vec::with_capacity(message.parts.len());
        for (p, part) in message.parts.iter().enumerate() {
            let replacement = replacements.next_if(|(slot, _)| slot.message == m && slot.part == p);
            parts.push(match (replacement, part) {
                (Some((_, Verdict::Keep { format })), Part::Image { data, .. }) => {
                    Part::Image { mime: format.mime().to_owned(), data: data.clone() }
                }
                (Some((_, Verdict::Convert { format, data, .. })), _) => {
                    Part::Image { mime: format.mime().to_owned(), data: data.to_vec() }
                }
                _ => part.clone(),
            });
        }
        messages.push(Message { role: message.role, parts });
    }
    Ok(Cow::Owned(with_messages(request, messages)))
}

/// A copy of `request` with other messages (every other field listed, so that a new field of
/// [`Request`] cannot be forgotten here).
fn with_messages(request: &Request, messages: Vec<Message>) -> Request {
    let Request {
        system,
        messages: _,
        tools,
        tool_choice,
        response_schema,
        temperature,
        max_tokens,
        reasoning_effort,
        stop,
        seed,
        prompt_caching,
        extra,
    } = request;
    Request {
        system: system.clone(),
        messages,
        tools: tools.clone(),
        tool_choice: tool_choice.clone(),
        response_schema: response_schema.clone(),
        temperature: *temperature,
        max_tokens: *max_tokens,
        reasoning_effort: *reasoning_effort,
        stop: stop.clone(),
        seed: *seed,
        prompt_caching: *prompt_caching,
        extra: extra.clone(),
    }
}
