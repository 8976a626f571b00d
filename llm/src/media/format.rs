//! What an image is, read from its own bytes: the format from its magic number, and from its
//! header the declared size, whether it is animated and its EXIF orientation.
//!
//! Never the file name, never the declared MIME type: a PNG labelled `image/jpeg` is a PNG.
//! This is not a codec — it reads a few header fields, bounded by the input, and works
//! without the `media` feature. It does not check that the pixel data is intact: a truncated
//! image with a good header inspects fine and fails when (if) it is decoded.
//!
//! Formats this crate can pass on or convert are [`ImageFormat`]s (PNG, JPEG, GIF, WebP).
//! Common others (HEIC, AVIF, BMP, TIFF, SVG, PDF, ...) are recognised so that the refusal
//! can name them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An image format this crate can send or convert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageFormat {
    /// PNG (APNG counts as animated PNG).
    Png,
    /// JPEG (baseline or progressive).
    Jpeg,
    /// GIF (87a or 89a).
    Gif,
    /// WebP (lossy, lossless or extended).
    Webp,
}

impl ImageFormat {
    /// Every format, in documentation order.
    pub const ALL: [Self; 4] = [Self::Png, Self::Jpeg, Self::Gif, Self::Webp];

    /// The MIME type (`image/png`, ...).
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    /// The lower-case name used in configuration (`png`, `jpeg`, `gif`, `webp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpeg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// The usual file extension (`png`, `jpg`, `gif`, `webp`).
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Png => "PNG",
            Self::Jpeg => "JPEG",
            Self::Gif => "GIF",
            Self::Webp => "WebP",
        })
    }
}

/// A format name that is not one of [`ImageFormat`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image format {0:?} (expected png, jpeg, gif or webp)")]
pub struct UnknownFormat(pub String);

impl FromStr for ImageFormat {
    type Err = UnknownFormat;

    /// `png`, `jpeg` (or `jpg`), `gif`, `webp`, case-insensitive; a MIME type also works.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_prefix("image/").unwrap_or(&t);
        match t {
            "png" => Ok(Self::Png),
            "jpeg" | "jpg" => Ok(Self::Jpeg),
            "gif" => Ok(Self::Gif),
            "webp" => Ok(Self::Webp),
            _ => Err(UnknownFormat(s.to_owned())),
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// One of the formats this crate handles.
    Image(ImageFormat),
    /// A recognised format this crate cannot send or convert (`HEIC`, `AVIF`, `BMP`, ...).
    Other(&'static str),
    /// Nothing recognised.
    Unknown,
}

/// The format `bytes` start with.
pub fn sniff(bytes: &[u8]) -> Sniff {
    let b = bytes;
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Sniff::Image(ImageFormat::Png);
    }
    if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Sniff::Image(ImageFormat::Jpeg);
    }
    if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        return Sniff::Image(ImageFormat::Gif);
    }
    if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        return Sniff::Image(ImageFormat::Webp);
    }
    if b.len() >= 12 && &b[4..8] == b"ftyp" {
        return match &b[8..12] {
            b"avif" | b"avis" => Sniff::Other("AVIF"),
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => {
                Sniff::Other("HEIC/HEIF")
            }
            _ => Sniff::Other("ISO media (MP4/QuickTime)"),
        };
    }
    let other = if b.starts_with(b"BM") && b.len() >= 14 {
        "BMP"
    } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
        "TIFF"
    } else if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
        "JPEG XL"
    } else if b.starts_with(b"%PDF") {
        "PDF"
    } else if b.starts_with(b"8BPS") {
        "PSD"
    } else if b.starts_with(b"qoif") {
        "QOI"
    } else if b.starts_with(&[0, 0, 1, 0]) && b.len() >= 6 {
        "ICO"
    } else if looks_like_svg(b) {
        "SVG"
    } else {
        return Sniff::Unknown;
    };
    Sniff::Other(other)
}

fn looks_like_svg(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    let text = String::from_utf8_lossy(head).to_ascii_lowercase();
    let text = text.trim_start_matches('\u{feff}').trim_start();
    (text.starts_with("<?xml") || text.starts_with("<svg") || text.starts_with("<!doctype svg"))
        && text.contains("<svg")
}

/// What an image's header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageInfo {
    /// The real format.
    pub format: ImageFormat,
    /// Declared width in pixels, as stored (before any EXIF rotation).
    pub width: u32,
    /// Declared height in pixels, as stored.
    pub height: u32,
    /// More than one frame (animated GIF, APNG, animated WebP).
    pub animated: bool,
    /// EXIF orientation, 1 (as stored) to 8; 1 when absent or invalid.
    pub orientation: u8,
}

impl ImageInfo {
    /// Width times height.
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The longer side.
    pub fn long_side(&self) -> u32 {
        self.width.max(self.height)
    }

    /// Width and height as displayed: swapped for the orientations that rotate by 90°.
    pub fn displayed(&self) -> (u32, u32) {
        if self.orientation >= 5 { (self.height, self.width) } else { (self.width, self.height) }
    }
}

/// Why an image could not be inspected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The bytes are no image format this crate knows.
    #[error("not a recognised image (the data starts with {head})")]
    Unknown {
        /// The first bytes, in hex.
        head: String,
    },
    /// A recognised format that cannot be sent or converted.
    #[error("a {format} image, which is not supported (send PNG, JPEG, GIF or WebP)")]
    Unsupported {
        /// The format's name.
        format: &'static str,
    },
    /// The header is truncated or inconsistent.
    #[error("a malformed {format} image: {reason}")]
    Malformed {
        /// The format the magic number announced.
        format: ImageFormat,
        /// What is wrong.
        reason: &'static str,
    },
}

/// The image's format and header facts. Reads only headers (and, for GIF, skips over frame
/// data to count frames).
///
/// # Errors
/// [`InspectError`] when the bytes are not a supported image or their header is malformed.
pub fn inspect(bytes: &[u8]) -> Result<ImageInfo, InspectError> {
    let format = match sniff(bytes) {
        Sniff::Image(format) => format,
        Sniff::Other(format) => return Err(InspectError::Unsupported { format }),
        Sniff::Unknown => return Err(InspectError::Unknown { head: hex_head(bytes) }),
    };
    let malformed = |reason| InspectError::Malformed { format, reason };
    let info = match format {
        ImageFormat::Png => png(bytes),
        ImageFormat::Jpeg => jpeg(bytes),
        ImageFormat::Gif => gif(bytes),
        ImageFormat::Webp => webp(bytes),
    }
    .map_err(malformed)?;
    if info.width == 0 || info.height == 0 {
        return Err(malformed("it declares a zero width or height"));
    }
    Ok(info)
}

/// The first 16 bytes in hex, for an error message (`"" ` for empty input).
fn hex_head(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "nothing (0 bytes)".to_owned();
    }
    let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    let more = if bytes.len() > 16 { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// PNG: `IHDR` first; an `acTL` chunk with more than one frame before `IDAT` makes an APNG;
/// an `eXIf` chunk carries the orientation.
fn png(b: &[u8]) -> Result<ImageInfo, &'static str> {
    if b.get(12..16) != Some(b"IHDR") {
        return Err("the IHDR header chunk is missing or truncated");
    }
    let (Some(width), Some(height)) = (be32(b, 16), be32(b, 20)) else {
        return Err("the IHDR header chunk is truncated");
    };
    let mut info = ImageInfo { format: ImageFormat::Png, width, height, animated: false, orientation: 1 };
    let mut at = 8usize;
    while let (Some(len), Some(kind)) = (be32(b, at), b.get(at + 4..at + 8)) {
        let data_at = at + 8;
        let Some(end) = usize::try_from(len).ok().and_then(|l| data_at.checked_add(l)) else { break };
        match kind {
            b"IDAT" | b"IEND" => break,
            b"acTL" => info.animated = be32(b, data_at).is_some_and(|frames| frames > 1),
            b"eXIf" => {
                if let Some(data) = b.get(data_at..end) {
                    info.orientation = exif_orientation(data).unwrap_or(1);
                }
            }
            _ => {}
        }
        // Length, type, data, CRC.
        at = end.saturating_add(4);
    }
    Ok(info)
}

/// JPEG: walk the marker segments up to the first frame header (SOFn), reading the EXIF
/// orientation from an `APP1` segment on the way.
fn jpeg(b: &[u8]) -> Result<ImageInfo, &'static str> {
    let mut orientation = 1;
    let mut at = 2usize;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while b.get(at) == Some(&0xFF) && b.get(at + 1) == Some(&0xFF) {
            at += 1;
        }
        let (Some(0xFF), Some(&marker)) = (b.get(at), b.get(at + 1)) else {
            return Err("no frame header (SOF) before the data ends");
        };
        at += 2;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD9 | 0xDA => return Err("the scan starts before any frame header (SOF)"),
            _ => {}
        }
        let Some(len) = be16(b, at).map(usize::from) else {
            return Err("a segment header is truncated");
        };
        if len < 2 {
            return Err("a segment declares a length below 2");
        }
        let data = b.get(at + 2..at + len);
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                let data = data.ok_or("the frame header (SOF) is truncated")?;
                let (Some(height), Some(width)) = (be16(data, 1), be16(data, 3)) else {
                    return Err("the frame header (SOF) is truncated");
                };
                return Ok(ImageInfo {
                    format: ImageFormat::Jpeg,
                    width: u32::from(width),
                    height: u32::from(height),
                    animated: false,
                    orientation,
                });
            }
            0xE1 => {
                if let Some(exif) = data.and_then(|d| d.strip_prefix(b"Exif\0\0")) {
                    orientation = exif_orientation(exif).unwrap_or(1);
                }
            }
            _ => {}
        }
        at += len;
    }
}

/// GIF: the logical screen size, then the frames counted by walking the blocks (each frame's
/// extent widens the size, since a decoder allocates for it).
fn gif(b: &[u8]) -> Result<ImageInfo, &'static str> {
    let (Some(sw), Some(sh), Some(&packed)) = (le16(b, 6), le16(b, 8), b.get(10)) else {
        return Err("the logical screen descriptor is truncated");
    };
    let (mut width, mut height) = (u32::from(sw), u32::from(sh));
    let mut at = 13usize;
    if packed & 0x80 != 0 {
        at += 3 << ((packed & 7) + 1);
    }
    let mut frames = 0u32;
    // Skips data sub-blocks (length byte, data, ..., zero); `None` if they run past the end.
    let skip_blocks = |mut at: usize| -> Option<usize> {
        loop {
            let len = usize::from(*b.get(at)?);
            at += 1;
            if len == 0 {
                return Some(at);
            }
            at += len;
        }
    };
    while frames < 2 {
        match b.get(at) {
            Some(0x2C) => {
                let (Some(left), Some(top), Some(w), Some(h), Some(&flags)) =
                    (le16(b, at + 1), le16(b, at + 3), le16(b, at + 5), le16(b, at + 7), b.get(at + 9))
                else {
                    break;
                };
                frames += 1;
                width = width.max(u32::from(left) + u32::from(w));
                height = height.max(u32::from(top) + u32::from(h));
                at += 10;
                if flags & 0x80 != 0 {
                    at += 3 << ((flags & 7) + 1);
                }
                // LZW minimum code size, then the image data sub-blocks.
                match skip_blocks(at + 1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            Some(0x21) => match skip_blocks(at + 2) {
                Some(next) => at = next,
                None => break,
            },
            _ => break,
        }
    }
    if frames == 0 && b.len() <= 13 {
        return Err("no image data after the header");
    }
    Ok(ImageInfo { format: ImageFormat::Gif, width, height, animated: frames > 1, orientation: 1 })
}

/// WebP: the first chunk says lossy (`VP8 `), lossless (`VP8L`) or extended (`VP8X`, which
/// carries the canvas size, the animation flag and possibly an `EXIF` chunk later).
fn webp(b: &[u8]) -> Result<ImageInfo, &'static str> {
    let truncated = "the first chunk is truncated";
    let chunk = b.get(12..16).ok_or(truncated)?;
    let mut info =
        ImageInfo { format: ImageFormat::Webp, width: 0, height: 0, animated: false, orientation: 1 };
    match chunk {
        b"VP8 " => {
            if b.get(23..26) != Some(&[0x9D, 0x01, 0x2A]) {
                return Err("the lossy (VP8) frame has no start code");
            }
            info.width = u32::from(le16(b, 26).ok_or(truncated)? & 0x3FFF);
            info.height = u32::from(le16(b, 28).ok_or(truncated)? & 0x3FFF);
        }
        b"VP8L" => {
            if b.get(20) != Some(&0x2F) {
                return Err("the lossless (VP8L) stream has no signature");
            }
            let bits = le32(b, 21).ok_or(truncated)?;
            info.width = (bits & 0x3FFF) + 1;
            info.height = ((bits >> 14) & 0x3FFF) + 1;
        }
        b"VP8X" => {
            let flags = *b.get(20).ok_or(truncated)?;
            info.animated = flags & 0x02 != 0;
            info.width = le24(b, 24).ok_or(truncated)? + 1;
            info.height = le24(b, 27).ok_or(truncated)? + 1;
            if flags & 0x08 != 0 {
                info.orientation = webp_exif(b).and_then(exif_orientation).unwrap_or(1);
            }
        }
        _ => return Err("the first chunk is none of VP8, VP8L, VP8X"),
    }
    Ok(info)
}

/// The payload of a WebP file's `EXIF` chunk, if any.
fn webp_exif(b: &[u8]) -> Option<&[u8]> {
    let mut at = 12usize;
    while let (Some(kind), Some(len)) = (b.get(at..at + 4), le32(b, at + 4)) {
        let data_at = at + 8;
        let end = data_at.checked_add(usize::try_from(len).ok()?)?;
        if kind == b"EXIF" {
            let data = b.get(data_at..end)?;
            // Some writers keep JPEG's "Exif\0\0" prefix.
            return Some(data.strip_prefix(b"Exif\0\0").unwrap_or(data));
        }
        // Chunks are padded to an even length.
        at = end + (end & 1);
    }
    None
}

/// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF payload, if valid (1-8).
pub(crate) fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let big = match tiff.get(..4)? {
        b"MM\0*" => true,
        b"II*\0" => false,
        _ => return None,
    };
    let u16_at = |at: usize| if big { be16(tiff, at) } else { le16(tiff, at) };
    let u32_at = |at: usize| if big { be32(tiff, at) } else { le32(tiff, at) };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    for i in 0..count.min(512) {
        let entry = ifd + 2 + i * 12;
        if u16_at(entry)? == 0x0112 {
            // Type SHORT (3), count 1: the value sits in the first two bytes of the field.
            let value = u16_at(entry + 8)?;
            return u8::try_from(value).ok().filter(|v| (1..=8).contains(v));
        }
    }
    None
}
