//! Decoding, orienting, scaling and re-encoding with the `image` crate (feature `media`).
//!
//! Scaling down averages each output pixel's area of the source (`thumbnail_exact`): for the
//! large reductions photos need it is as good as a filtered resize, several times faster, and
//! needs no floating-point copy of the image.
//!
//! Decoding runs under [`image::Limits`]: the width and height the header declared (checked
//! beforehand against [`super::DECODE_MAX_PIXELS`]) and [`super::DECODE_MAX_ALLOC`] bytes, so
//! a file whose data disagrees with its header cannot make the decoder allocate more.

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType as PngFilter, PngEncoder};
use image::metadata::Orientation;
use image::{DynamicImage, ImageReader, RgbImage};

use super::DECODE_MAX_ALLOC;
use super::format::{ImageFormat, ImageInfo};
use super::limits::MediaLimits;

/// JPEG qualities tried in turn until the bytes fit.
const QUALITIES: [u8; 6] = [85, 75, 65, 55, 45, 35];
/// Each further try scales the image by this much (3/4 per side).
const SHRINK: (u32, u32) = (3, 4);
/// Below this long side the image is not shrunk further.
const SMALLEST_SIDE: u32 = 32;

/// A converted image.
pub(super) struct Converted {
    pub format: ImageFormat,
    pub data: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Why a conversion failed.
pub(super) enum Fault {
    /// The decoder's reason.
    Decode(String),
    /// The smallest encoding tried, and its size.
    DoesNotFit { smallest: usize, width: u32, height: u32 },
}

fn codec_format(format: ImageFormat) -> image::ImageFormat {
    match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Webp => image::ImageFormat::WebP,
    }
}

/// Decodes the first frame under the limits.
fn decode(bytes: &[u8], info: &ImageInfo) -> Result<DynamicImage, Fault> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), codec_format(info.format));
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(info.width);
    limits.max_image_height = Some(info.height);
    limits.max_alloc = Some(DECODE_MAX_ALLOC);
    reader.limits(limits);
    reader.decode().map_err(|e| Fault::Decode(e.to_string()))
}

/// The largest size with the aspect ratio of `w` x `h` within the long side and pixel count.
pub(super) fn fit(w: u32, h: u32, max_side: u32, max_pixels: u64) -> (u32, u32) {
    let (wf, hf) = (f64::from(w), f64::from(h));
    #[allow(clippy::cast_precision_loss, reason = "pixel counts are far below 2^52")]
    let by_pixels = (max_pixels as f64 / (wf * hf)).sqrt();
    let scale = (f64::from(max_side) / wf.max(hf)).min(by_pixels).min(1.0);
    if scale >= 1.0 {
        return (w, h);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "scaled down, positive")]
    let scaled = |v: f64| ((v * scale).floor() as u32).max(1);
    let (mut nw, mut nh) = (scaled(wf), scaled(hf));
    // Rounding must never leave the result over either limit.
    while u64::from(nw) * u64::from(nh) > max_pixels || nw.max(nh) > max_side {
        if nw >= nh { nw -= 1 } else { nh -= 1 }
    }
    (nw, nh)
}

/// True if some pixel is not fully opaque.
fn has_transparency(img: &DynamicImage) -> bool {
    if !img.color().has_alpha() {
        return false;
    }
    match img {
        DynamicImage::ImageRgba8(buf) => buf.pixels().any(|p| p[3] < 255),
        DynamicImage::ImageLumaA8(buf) => buf.pixels().any(|p| p[1] < 255),
        other => other.to_rgba8().pixels().any(|p| p[3] < 255),
    }
}

/// The image on a white background, as 8-bit RGB (what JPEG takes).
fn flatten(img: &DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.to_rgb8();
    }
    let rgba = img.to_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let a = u16::from(src[3]);
        for c in 0..3 {
            // src * a + 255 * (255 - a), over 255, rounded.
            let v = (u16::from(src[c]) * a + 255 * (255 - a) + 127) / 255;
            dst[c] = u8::try_from(v).unwrap_or(u8::MAX);
        }
    }
    out
}

fn encode_jpeg(rgb: &RgbImage, quality: u8) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).encode_image(rgb).ok()?;
    Some(out)
}

fn encode_png(img: &DynamicImage, alpha: bool) -> Option<Vec<u8>> {
    let gray = matches!(
        img.color(),
        image::ColorType::L8 | image::ColorType::L16 | image::ColorType::La8 | image::ColorType::La16
    );
    let eight_bit = match (gray, alpha) {
        (true, false) => DynamicImage::ImageLuma8(img.to_luma8()),
        (true, true) => DynamicImage::ImageLumaA8(img.to_luma_alpha8()),
        (false, false) => DynamicImage::ImageRgb8(img.to_rgb8()),
        (false, true) => DynamicImage::ImageRgba8(img.to_rgba8()),
    };
    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, CompressionType::Default, PngFilter::Adaptive);
    eight_bit.write_with_encoder(encoder).ok()?;
    Some(out)
}

/// Converts `bytes` (inspected as `info`) to fit `limits` with at most `budget` bytes.
pub(super) fn convert(
    bytes: &[u8],
    info: &ImageInfo,
    limits: &MediaLimits,
    budget: usize,
) -> Result<Converted, Fault> {
    let mut img = decode(bytes, info)?;
    if let Some(orientation) = Orientation::from_exif(info.orientation) {
        img.apply_orientation(orientation);
    }
    let (w, h) = fit(img.width(), img.height(), limits.max_long_side, limits.max_pixels);
    if (w, h) != (img.width(), img.height()) {
        img = img.thumbnail_exact(w, h);
    }
    let alpha = has_transparency(&img);
    let lossless_source = matches!(info.format, ImageFormat::Png | ImageFormat::Gif);
    let png_first = limits.accepts(ImageFormat::Png) && (alpha || lossless_source);
    let jpeg = limits.accepts(ImageFormat::Jpeg);
    let mut smallest = usize::MAX;
    loop {
        if (png_first || !jpeg)
            && let Some(data) = encode_png(&img, alpha)
        {
            if data.len() <= budget {
                let (width, height) = (img.width(), img.height());
                return Ok(Converted { format: ImageFormat::Png, data, width, height });
            }
            smallest = smallest.min(data.len());
        }
        if jpeg {
            let rgb = flatten(&img);
            for quality in QUALITIES {
                let Some(data) = encode_jpeg(&rgb, quality) else { continue };
                if data.len() <= budget {
                    return Ok(Converted {
                        format: ImageFormat::Jpeg,
                        data,
                        width: img.width(),
                        height: img.height(),
                    });
                }
                smallest = smallest.min(data.len());
            }
        }
        let (w, h) = (img.width(), img.height());
        if w.max(h) <= SMALLEST_SIDE {
            return Err(Fault::DoesNotFit { smallest, width: w, height: h });
        }
        let (nw, nh) = ((w * SHRINK.0 / SHRINK.1).max(1), (h * SHRINK.0 / SHRINK.1).max(1));
        img = img.thumbnail_exact(nw, nh);
    }
}
