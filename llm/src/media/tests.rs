use std::borrow::Cow;
use std::io::Cursor;

use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};

use super::codec::fit;
use super::format::exif_orientation;
use super::normalise::normalise_request_with;
use super::*;
use crate::types::{Message, Part, Request, Role};

// ---- images made here -------------------------------------------------------------------

/// A photo-like image: a gradient with deterministic noise, so JPEG cannot shrink it to nothing.
fn photo(w: u32, h: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32 ^ w.wrapping_mul(31) ^ h;
    RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x3f) as u8;
        Rgb([(x * 255 / w.max(1)) as u8 ^ n, (y * 255 / h.max(1)) as u8 ^ n, 128 ^ n])
    })
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let codec = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Webp => image::ImageFormat::WebP,
    };
    let img = match format {
        // The JPEG and GIF encoders take no alpha / want RGBA respectively.
        ImageFormat::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()),
        ImageFormat::Gif => DynamicImage::ImageRgba8(img.to_rgba8()),
        _ => img.clone(),
    };
    img.write_to(&mut out, codec).expect("encode");
    out.into_inner()
}

fn photo_as(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    encode(&DynamicImage::ImageRgb8(photo(w, h)), format)
}

/// A JPEG whose EXIF says orientation `o`.
fn jpeg_with_orientation(w: u32, h: u32, o: u16) -> Vec<u8> {
    let mut exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    exif.extend_from_slice(&o.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    encoder.set_exif_metadata(exif).expect("exif");
    let img = photo(w, h);
    encoder.write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8).expect("encode");
    out
}

fn solid(w: u32, h: u32, rgba: [u8; 4]) -> RgbaImage {
    RgbaImage::from_pixel(w, h, Rgba(rgba))
}

/// A two-frame GIF: red, then blue.
fn animated_gif(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = GifEncoder::new(&mut out);
        encoder.set_repeat(Repeat::Infinite).expect("repeat");
        let frames = [solid(w, h, [255, 0, 0, 255]), solid(w, h, [0, 0, 255, 255])].map(Frame::new);
        encoder.encode_frames(frames).expect("frames");
    }
    out
}

fn riff_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = kind.to_vec();
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out.extend_from_slice(data);
    if data.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// The VP8L chunk of a lossless WebP of `img`.
fn vp8l_chunk(img: &RgbaImage) -> Vec<u8> {
    let mut file = Vec::new();
    WebPEncoder::new_lossless(&mut file)
        .write_image(img.as_raw(), img.width(), img.height(), image::ExtendedColorType::Rgba8)
        .expect("webp");
    // RIFF header (12 bytes), then the VP8L chunk is the whole rest.
    assert_eq!(&file[12..16], b"VP8L", "a simple lossless file");
    file[12..].to_vec()
}

/// A two-frame animated WebP (red, then blue), assembled from lossless frames.
fn animated_webp(w: u32, h: u32) -> Vec<u8> {
    let le24 = |v: u32| v.to_le_bytes()[..3].to_vec();
    let mut vp8x = vec![0x02 | 0x10, 0, 0, 0];
    vp8x.extend(le24(w - 1));
    vp8x.extend(le24(h - 1));
    let mut body = b"WEBP".to_vec();
    body.extend(riff_chunk(b"VP8X", &vp8x));
    body.extend(riff_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]));
    for color in [[255, 0, 0, 255], [0, 0, 255, 255]] {
        let mut anmf = Vec::new();
        anmf.extend(le24(0));
        anmf.extend(le24(0));
        anmf.extend(le24(w - 1));
        anmf.extend(le24(h - 1));
        anmf.extend(le24(100));
        anmf.push(0);
        anmf.extend(vp8l_chunk(&solid(w, h, color)));
        body.extend(riff_chunk(b"ANMF", &anmf));
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&u32::try_from(body.len()).expect("small").to_le_bytes());
    out.extend(body);
    out
}

/// A PNG header declaring `w` x `h`, followed by a tiny IDAT that holds almost nothing.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    for (kind, data) in [(&b"IHDR"[..], ihdr.as_slice()), (b"IDAT", &[0x78, 0x9c, 0x03, 0x00][..])] {
        out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out
}

fn decode(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).expect("decodes")
}

fn request_with(images: Vec<(String, Vec<u8>)>) -> Request {
    let mut parts = vec![Part::Text { text: "what is this?".into() }];
    parts.extend(images.into_iter().map(|(mime, data)| Part::Image { mime, data }));
    Request { messages: vec![Message { role: Role::User, parts }], ..Request::default() }
}

fn images_of(request: &Request) -> Vec<(String, Vec<u8>)> {
    request
        .messages
        .iter()
        .flat_map(|m| &m.parts)
        .filter_map(|p| match p {
            Part::Image { mime, data } => Some((mime.clone(), data.clone())),
            _ => None,
        })
        .collect()
}

fn shaped(bytes: &[u8], declared: &str, limits: &MediaLimits) -> (String, Vec<u8>) {
    let request = request_with(vec![(declared.to_owned(), bytes.to_vec())]);
    let out = normalise_request(&request, limits, &MediaCache::default()).expect("normalised");
    images_of(&out).remove(0)
}

// ---- inspection --------------------------------------------------------------------------

#[test]
fn formats_come_from_the_bytes() {
    for format in ImageFormat::ALL {
        assert_eq!(sniff(&photo_as(8, 8, format)), Sniff::Image(format), "{format}");
    }
    assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Sniff::Other("HEIC/HEIF"));
    assert_eq!(sniff(b"\0\0\0\x18ftypavif\0\0\0\0"), Sniff::Other("AVIF"));
    assert_eq!(sniff(b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0"), Sniff::Other("BMP"));
    assert_eq!(sniff(b"<?xml version=\"1.0\"?><svg xmlns=\"x\"/>"), Sniff::Other("SVG"));
    assert_eq!(sniff(b"%PDF-1.7"), Sniff::Other("PDF"));
    assert_eq!(sniff(b"hello world"), Sniff::Unknown);
    assert_eq!(sniff(b""), Sniff::Unknown);

    let e = inspect(b"\0\0\0\x18ftypheic\0\0\0\0").expect_err("HEIC");
    assert_eq!(e.to_string(), "a HEIC/HEIF image, which is not supported (send PNG, JPEG, GIF or WebP)");
    let e = inspect(b"hello").expect_err("text");
    assert_eq!(e.to_string(), "not a recognised image (the data starts with 68 65 6c 6c 6f)");
}

#[test]
fn headers_give_size_orientation_and_animation() {
    for format in ImageFormat::ALL {
        let info = inspect(&photo_as(37, 21, format)).expect("inspect");
        assert_eq!(
            (info.format, info.width, info.height, info.animated),
            (format, 37, 21, false),
            "{format}"
        );
        assert_eq!(info.orientation, 1);
    }
    let rotated = inspect(&jpeg_with_orientation(40, 20, 6)).expect("inspect");
    assert_eq!((rotated.width, rotated.height, rotated.orientation), (40, 20, 6));
    assert_eq!(rotated.displayed(), (20, 40), "orientation 6 turns it on its side");

    let gif = inspect(&animated_gif(16, 12)).expect("gif");
    assert_eq!((gif.width, gif.height, gif.animated), (16, 12, true));
    let webp = inspect(&animated_webp(16, 12)).expect("webp");
    assert_eq!((webp.width, webp.height, webp.animated), (16, 12, true));

    // An APNG: an acTL chunk announcing two frames before the image data.
    let png = photo_as(9, 9, ImageFormat::Png);
    let mut apng = png[..33].to_vec();
    apng.extend_from_slice(&[0, 0, 0, 8]);
    apng.extend_from_slice(b"acTL");
    apng.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
    apng.extend_from_slice(&png[33..]);
    assert!(inspect(&apng).expect("apng").animated);
    assert!(!inspect(&png).expect("png").animated);
}

#[test]
fn malformed_headers_are_named_errors() {
    let png = photo_as(9, 9, ImageFormat::Png);
    let e = inspect(&png[..20]).expect_err("truncated IHDR");
    assert!(matches!(e, InspectError::Malformed { format: ImageFormat::Png, .. }), "{e}");
    let e = inspect(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]).expect_err("truncated JPEG");
    assert!(matches!(e, InspectError::Malformed { format: ImageFormat::Jpeg, .. }), "{e}");
    let e = inspect(b"RIFF\0\0\0\0WEBPVP9 \0\0\0\0").expect_err("bad chunk");
    assert!(e.to_string().contains("none of VP8, VP8L, VP8X"), "{e}");
    let e = inspect(&png_declaring(0, 10)).expect_err("zero width");
    assert!(e.to_string().contains("zero width"), "{e}");
    // Hostile lengths never index out of bounds.
    let mut hostile = png.clone();
    hostile[33..37].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(inspect(&hostile).is_ok());
    let mut jpeg = photo_as(9, 9, ImageFormat::Jpeg);
    jpeg.truncate(6);
    assert!(inspect(&jpeg).is_err());
}

#[test]
fn exif_orientation_in_both_byte_orders() {
    let be = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x08\0\0";
    let le = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x03\0\0\0";
    assert_eq!(exif_orientation(be), Some(8));
    assert_eq!(exif_orientation(le), Some(3));
    assert_eq!(exif_orientation(b"II*\0\xff\xff\xff\x7f"), None, "an IFD offset past the end");
    assert_eq!(exif_orientation(b"XX"), None);
}

#[test]
fn fit_keeps_the_aspect_ratio_within_both_limits() {
    for (w, h) in [(4000, 3000), (3000, 4000), (12000, 10), (10, 12000), (1568, 1568), (5000, 5000)] {
        let (nw, nh) = fit(w, h, 1568, 1_150_000);
        assert!(nw.max(nh) <= 1568 && u64::from(nw) * u64::from(nh) <= 1_150_000, "{w}x{h} -> {nw}x{nh}");
        let (a, b) = (f64::from(w) / f64::from(h), f64::from(nw) / f64::from(nh));
        assert!((a / b - 1.0).abs() < 0.02 || nw.min(nh) < 20, "{w}x{h} -> {nw}x{nh}");
    }
    assert_eq!(fit(800, 600, 1568, 1_150_000), (800, 600), "never upscaled");
}

// ---- normalisation -----------------------------------------------------------------------

#[test]
fn an_image_within_limits_is_sent_as_is_without_a_copy() {
    let request = request_with(vec![("image/png".into(), photo_as(64, 48, ImageFormat::Png))]);
    for kind in MediaKind::ALL {
        let out = normalise_request(&request, &kind.limits(), &MediaCache::default()).expect("ok");
        assert!(matches!(out, Cow::Borrowed(r) if std::ptr::eq(r, &request)), "{kind}");
    }
}

#[test]
fn a_lying_mime_type_is_corrected_and_the_bytes_kept() {
    let png = photo_as(64, 48, ImageFormat::Png);
    let (mime, data) = shaped(&png, "image/jpeg", &MediaKind::OpenAi.limits());
    assert_eq!(mime, "image/png");
    assert_eq!(data, png, "same bytes");
    let webp = photo_as(64, 48, ImageFormat::Webp);
    let (mime, data) = shaped(&webp, "image/png", &MediaKind::Anthropic.limits());
    assert_eq!((mime.as_str(), data == webp), ("image/webp", true));
}

#[test]
fn oversize_images_are_scaled_into_every_kinds_limits() {
    // Just over the 2048 px long side of three kinds and the 1568 of Anthropic.
    let picture = DynamicImage::ImageRgb8(photo(2100, 1400));
    for format in ImageFormat::ALL {
        let original = encode(&picture, format);
        for kind in MediaKind::ALL {
            let limits = kind.limits();
            let (mime, data) = shaped(&original, format.mime(), &limits);
            let info = inspect(&data).expect("the result is an image");
            assert_eq!(mime, info.format.mime(), "{format} -> {kind}: labelled as what it is");
            assert!(limits.accepts(info.format), "{format} -> {kind}: {}", info.format);
            assert!(info.long_side() <= limits.max_long_side, "{format} -> {kind}: {info:?}");
            assert!(info.pixels() <= limits.max_pixels, "{format} -> {kind}: {info:?}");
            assert!(data.len() <= limits.max_image_bytes, "{format} -> {kind}: {} bytes", data.len());
            let ratio = f64::from(info.width) / f64::from(info.height);
            assert!((ratio - 1.5).abs() < 0.01, "{format} -> {kind}: aspect {ratio}");
            let decoded = decode(&data);
            assert_eq!((decoded.width(), decoded.height()), (info.width, info.height));
        }
    }
}

#[test]
fn formats_a_kind_does_not_take_are_converted() {
    let webp = photo_as(64, 48, ImageFormat::Webp);
    let (mime, _) = shaped(&webp, "image/webp", &MediaKind::OpenAiCompatible.limits());
    assert!(mime == "image/png" || mime == "image/jpeg", "{mime}");
    let gif = encode(&DynamicImage::ImageRgba8(solid(30, 20, [10, 200, 30, 255])), ImageFormat::Gif);
    let (mime, data) = shaped(&gif, "image/gif", &MediaKind::Gemini.limits());
    assert_eq!(mime, "image/png", "a lossless source stays lossless");
    assert_eq!(decode(&data).to_rgba8().get_pixel(5, 5), &Rgba([10, 200, 30, 255]));
}

#[test]
fn an_animation_becomes_its_first_frame() {
    for (name, bytes) in [("gif", animated_gif(24, 16)), ("webp", animated_webp(24, 16))] {
        for kind in [MediaKind::Anthropic, MediaKind::OpenAi, MediaKind::Gemini] {
            let (mime, data) = shaped(&bytes, "image/gif", &kind.limits());
            let info = inspect(&data).expect("image");
            assert!(!info.animated, "{name} -> {kind}");
            assert_eq!(mime, info.format.mime());
            let pixel = decode(&data).to_rgba8().get_pixel(12, 8).0;
            assert!(
                pixel[0] > 200 && pixel[2] < 50,
                "{name} -> {kind}: the first (red) frame, got {pixel:?}"
            );
        }
    }
}

#[test]
fn exif_orientation_is_applied() {
    let jpeg = jpeg_with_orientation(40, 20, 6);
    let (mime, data) = shaped(&jpeg, "image/jpeg", &MediaKind::Anthropic.limits());
    assert_eq!(mime, "image/jpeg");
    let info = inspect(&data).expect("image");
    assert_eq!((info.width, info.height, info.orientation), (20, 40, 1), "upright, no EXIF rotation left");
}

#[test]
fn transparency_stays_in_a_png() {
    let mut img = solid(3000, 200, [0, 0, 0, 0]);
    for x in 0..3000 {
        img.put_pixel(x, 100, Rgba([255, 0, 0, 255]));
    }
    let png = encode(&DynamicImage::ImageRgba8(img), ImageFormat::Png);
    let (mime, data) = shaped(&png, "image/png", &MediaKind::OpenAiCompatible.limits());
    assert_eq!(mime, "image/png");
    let out = decode(&data).to_rgba8();
    assert_eq!(out.width(), 2048);
    assert_eq!(out.get_pixel(0, 0)[3], 0, "still transparent");
}

#[test]
fn a_byte_budget_lowers_quality_then_size() {
    let original = photo_as(1500, 1000, ImageFormat::Png);
    let limits = MediaLimits { max_image_bytes: 60_000, ..MediaKind::OpenAi.limits() };
    let (mime, data) = shaped(&original, "image/png", &limits);
    assert_eq!(mime, "image/jpeg", "a noisy PNG that does not fit becomes a JPEG");
    assert!(data.len() <= 60_000, "{} bytes", data.len());
    let info = inspect(&data).expect("image");
    assert!((f64::from(info.width) / f64::from(info.height) - 1.5).abs() < 0.01);
}

#[test]
fn the_request_budget_is_shared_between_images() {
    let images: Vec<(String, Vec<u8>)> =
        (0..3).map(|i| ("image/jpeg".to_owned(), photo_as(900 + i, 900, ImageFormat::Jpeg))).collect();
    let each = images[0].1.len();
    let limits = MediaLimits { max_request_bytes: each * 3 / 2, ..MediaKind::Anthropic.limits() };
    let request = request_with(images);
    let out = normalise_request(&request, &limits, &MediaCache::default()).expect("fits");
    let sizes: Vec<usize> = images_of(&out).iter().map(|(_, d)| d.len()).collect();
    assert!(
        sizes.iter().sum::<usize>() <= limits.max_request_bytes,
        "{sizes:?} over {}",
        limits.max_request_bytes
    );
    assert!(sizes.iter().all(|s| *s <= limits.max_request_bytes / 3), "{sizes:?}");
}

#[test]
fn a_decompression_bomb_is_refused_before_decoding() {
    let bomb = png_declaring(60_000, 60_000);
    let request = request_with(vec![("image/png".into(), bomb)]);
    let e =
        normalise_request(&request, &MediaKind::OpenAi.limits(), &MediaCache::default()).expect_err("bomb");
    assert!(matches!(e, MediaError::TooManyPixels { width: 60_000, height: 60_000, .. }), "{e}");
    assert!(e.is_intrinsic());
    assert!(e.to_string().starts_with("image 1 (message 1, part 2;"), "{e}");

    // Within the decoding limit but with almost no data: a decode error, never a panic.
    let hollow = png_declaring(7_000, 7_000);
    let e = normalise_image(&hollow, "image/png", &MediaKind::Anthropic.limits()).expect_err("hollow");
    assert!(matches!(e, MediaError::Decode { format: ImageFormat::Png, .. }), "{e}");

    // A JPEG header claiming 65000 x 65000.
    let mut jpeg = photo_as(16, 16, ImageFormat::Jpeg);
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline SOF");
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xFD, 0xE8, 0xFD, 0xE8]);
    let e = normalise_image(&jpeg, "image/jpeg", &MediaKind::Gemini.limits()).expect_err("jpeg bomb");
    assert!(matches!(e, MediaError::TooManyPixels { width: 65_000, height: 65_000, .. }), "{e}");
}

#[test]
fn a_truncated_image_is_a_bounded_outcome() {
    let png = photo_as(3000, 2000, ImageFormat::Png);
    let e = normalise_image(&png[..png.len() / 2], "image/png", &MediaKind::Anthropic.limits())
        .expect_err("truncated PNG");
    assert!(matches!(e, MediaError::Decode { .. }), "{e}");
    // The JPEG decoder is lenient: half a JPEG may decode (grey bottom) or fail; either way
    // the result is bounded and within limits.
    let jpeg = photo_as(3000, 2000, ImageFormat::Jpeg);
    match normalise_image(&jpeg[..jpeg.len() / 2], "image/jpeg", &MediaKind::Anthropic.limits()) {
        Ok(out) => assert!(out.width.max(out.height) <= 1568),
        Err(e) => assert!(matches!(e, MediaError::Decode { .. }), "{e}"),
    }
}

#[test]
fn errors_name_the_image_by_position() {
    let request = Request {
        messages: vec![
            Message::user("first"),
            Message {
                role: Role::User,
                parts: vec![
                    Part::Image { mime: "image/png".into(), data: photo_as(8, 8, ImageFormat::Png) },
                    Part::Text { text: "and".into() },
                    Part::Image { mime: "image/png".into(), data: b"GIF89a".to_vec() },
                ],
            },
        ],
        ..Request::default()
    };
    let e =
        normalise_request(&request, &MediaKind::OpenAi.limits(), &MediaCache::default()).expect_err("bad");
    assert_eq!(e.image().map(|i| (i.index, i.message, i.part)), Some((2, 2, 3)));
    assert!(e.to_string().starts_with("image 2 (message 2, part 3; 6 B declared as \"image/png\"): "), "{e}");
}

#[test]
fn without_codecs_images_within_limits_pass_and_others_are_refused() {
    let cache = MediaCache::default();
    let limits = MediaKind::Anthropic.limits();
    // Animated but within limits: sent unchanged (with a warning).
    let gif = animated_gif(24, 16);
    let request = request_with(vec![("image/gif".into(), gif)]);
    let out = normalise_request_with(&request, &limits, &cache, false).expect("passes");
    assert!(matches!(out, Cow::Borrowed(_)));
    // A wrong label is still corrected.
    let request = request_with(vec![("image/jpeg".into(), photo_as(30, 30, ImageFormat::Png))]);
    let out = normalise_request_with(&request, &limits, &cache, false).expect("passes");
    assert_eq!(images_of(&out)[0].0, "image/png");
    // Too large: refused, relative to this target only.
    let big = request_with(vec![("image/jpeg".into(), photo_as(2000, 1000, ImageFormat::Jpeg))]);
    let e = normalise_request_with(&big, &limits, &cache, false).expect_err("too large");
    assert!(matches!(e, MediaError::OverLimits { kind: MediaKind::Anthropic, .. }), "{e}");
    assert!(!e.is_intrinsic());
    assert!(e.to_string().contains("2000 x 1000 exceeds the 1568 px long side"), "{e}");
    // A format the target refuses.
    let webp = request_with(vec![("image/webp".into(), photo_as(30, 30, ImageFormat::Webp))]);
    let e = normalise_request_with(&webp, &MediaKind::Ollama.limits(), &cache, false).expect_err("webp");
    assert!(e.to_string().contains("WebP is not accepted (only png, jpeg)"), "{e}");
    // Together over the request budget.
    let two = request_with(vec![
        ("image/jpeg".into(), photo_as(300, 300, ImageFormat::Jpeg)),
        ("image/jpeg".into(), photo_as(301, 300, ImageFormat::Jpeg)),
    ]);
    let tight = MediaLimits { max_request_bytes: images_of(&two)[0].1.len() + 10, ..limits };
    let e = normalise_request_with(&two, &tight, &cache, false).expect_err("over budget");
    assert!(matches!(e, MediaError::RequestOverBudget { count: 2, .. }), "{e}");
}

#[test]
fn the_cache_converts_each_image_once() {
    let cache = MediaCache::default();
    let request = request_with(vec![("image/jpeg".into(), photo_as(2400, 1600, ImageFormat::Jpeg))]);
    let limits = MediaKind::Anthropic.limits();
    let first = normalise_request(&request, &limits, &cache).expect("first").into_owned();
    let again = normalise_request(&request, &limits, &cache).expect("again").into_owned();
    assert_eq!(first, again);
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits, stats.entries), (1, 1, 1));
    assert_eq!(stats.bytes, images_of(&first)[0].1.len());
    // Other limits are another entry; errors are cached too and re-labelled per position.
    normalise_request(&request, &MediaKind::Gemini.limits(), &cache).expect("gemini");
    let bad = request_with(vec![("image/png".into(), b"nope".to_vec())]);
    for _ in 0..2 {
        normalise_request(&bad, &limits, &cache).expect_err("bad");
    }
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.hits), (3, 2));
}

#[test]
fn the_cache_forgets_the_oldest_past_its_capacity() {
    let cache = MediaCache::with_capacity(150_000);
    let limits = MediaLimits { max_image_bytes: 100_000, ..MediaKind::Anthropic.limits() };
    for i in 0..3 {
        let request = request_with(vec![("image/png".into(), photo_as(700 + i, 500, ImageFormat::Png))]);
        normalise_request(&request, &limits, &cache).expect("fits");
        assert!(cache.stats().bytes <= 150_000, "{:?}", cache.stats());
    }
    assert!(cache.stats().entries < 3, "{:?}", cache.stats());
}

#[test]
fn limits_parse_and_validate() {
    assert_eq!("OpenAI-Compatible".parse::<MediaKind>(), Ok(MediaKind::OpenAiCompatible));
    assert!("dall-e".parse::<MediaKind>().is_err());
    assert_eq!("JPG".parse::<ImageFormat>(), Ok(ImageFormat::Jpeg));
    assert_eq!("image/webp".parse::<ImageFormat>(), Ok(ImageFormat::Webp));
    for kind in MediaKind::ALL {
        assert_eq!(kind.limits().validate(), Ok(()), "{kind}");
    }
    let gif_only = MediaLimits { formats: vec![ImageFormat::Gif], ..MediaKind::OpenAi.limits() };
    assert_eq!(gif_only.validate(), Err(LimitsError::NoEncodableFormat));
    let tiny = MediaLimits { max_long_side: 4, ..MediaKind::OpenAi.limits() };
    assert!(tiny.validate().is_err());
    assert_eq!(MediaKind::for_openai_base("https://api.openai.com/v1"), MediaKind::OpenAi);
    assert_eq!(MediaKind::for_openai_base("http://127.0.0.1:8080/v1"), MediaKind::OpenAiCompatible);
}
