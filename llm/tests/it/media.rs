//! Images in, end to end: a request with images goes through a registry chain to a loopback
//! server speaking each provider kind's wire format, and the test reads the image back off
//! the wire — every format to every kind (base64 data URL for OpenAI and compatible servers,
//! a `source` block for Anthropic, `inlineData` for Gemini, `images` for Ollama), oversize
//! photos scaled into each kind's limits, and refusals that never reach the network.

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use executus_llm::media::{MediaKind, MediaLimits, inspect};
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::gemini::Gemini;
use executus_llm::providers::ollama::Ollama;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{
    ChainOptions, ErrorKind, ImageFormat, Message, Model, Part, Provider, Registry, Request, Role,
};
use image::{DynamicImage, Rgb, RgbImage};
use serde_json::{Value, json};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The kinds, each with the provider that speaks it on loopback.
const KINDS: [MediaKind; 5] = [
    MediaKind::OpenAi,
    MediaKind::Anthropic,
    MediaKind::Gemini,
    MediaKind::Ollama,
    MediaKind::OpenAiCompatible,
];

/// A photo-like picture (gradient and noise) in `format`.
fn picture(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
    let mut state = 0x9e37_79b9_u32;
    let img = RgbImage::from_fn(w, h, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state & 0x1f) as u8;
        Rgb([(x * 255 / w) as u8 ^ n, (y * 255 / h) as u8 ^ n, 90 ^ n])
    });
    let img = match format {
        ImageFormat::Gif => DynamicImage::ImageRgba8(DynamicImage::ImageRgb8(img).to_rgba8()),
        _ => DynamicImage::ImageRgb8(img),
    };
    let codec = match format {
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Webp => image::ImageFormat::WebP,
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, codec).expect("encode");
    out.into_inner()
}

/// The canned answer of `kind`'s chat endpoint.
fn answer(kind: MediaKind) -> Value {
    match kind {
        MediaKind::Anthropic => json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "text", "text": "a picture"}],
            "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 2}
        }),
        MediaKind::Gemini => json!({
            "candidates": [{"content": {"role": "model", "parts": [{"text": "a picture"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2}
        }),
        MediaKind::Ollama => json!({
            "model": "llava", "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": "a picture"},
            "done": true, "done_reason": "stop", "prompt_eval_count": 5, "eval_count": 2
        }),
        _ => json!({
            "id": "c1", "object": "chat.completion", "model": "vision",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a picture"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        }),
    }
}

/// A provider of `kind` at `server`, named `p`.
fn provider(kind: MediaKind, server: &MockServer) -> Arc<dyn Provider> {
    let uri = server.uri();
    match kind {
        // On loopback the URL says "compatible server": the OpenAI row comes from config.
        MediaKind::OpenAi => Arc::new(OpenAi::new(
            ProviderConfig::new("p", format!("{uri}/v1"))
                .with_key("sk-test")
                .with_media(MediaKind::OpenAi.limits()),
        )),
        MediaKind::OpenAiCompatible => Arc::new(OpenAi::new(ProviderConfig::new("p", format!("{uri}/v1")))),
        MediaKind::Anthropic => {
            Arc::new(Anthropic::new(ProviderConfig::new("p", uri).with_key("sk-ant-test")))
        }
        MediaKind::Gemini => {
            Arc::new(Gemini::new(ProviderConfig::new("p", format!("{uri}/v1beta")).with_key("k")))
        }
        _ => Arc::new(Ollama::new(ProviderConfig::new("p", uri))),
    }
}

async fn server_for(kind: MediaKind) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer(kind)))
        .mount(&server)
        .await;
    server
}

fn registry(provider: Arc<dyn Provider>) -> Registry {
    let registry = Registry::new();
    registry.add_provider(provider).expect("provider");
    registry.set_options(ChainOptions { retries: 0, ..ChainOptions::default() });
    registry
}

fn with_image(mime: &str, data: Vec<u8>) -> Request {
    Request {
        messages: vec![Message {
            role: Role::User,
            parts: vec![Part::Text { text: "what is this?".into() }, Part::Image { mime: mime.into(), data }],
        }],
        ..Request::default()
    }
}

/// The image of the first request `server` received, as (declared MIME type or `None` where
/// the wire carries none, bytes), read from `kind`'s wire shape — which the test checks.
async fn image_on_the_wire(kind: MediaKind, server: &MockServer) -> (Option<String>, Vec<u8>) {
    let requests = server.received_requests().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&requests.first().expect("one request").body).expect("JSON");
    let decode = |b64: &str| STANDARD.decode(b64).expect("base64");
    match kind {
        MediaKind::Anthropic => {
            let block = &body["messages"][0]["content"][1];
            assert_eq!(block["type"], "image", "{block}");
            assert_eq!(block["source"]["type"], "base64");
            let mime = block["source"]["media_type"].as_str().expect("media_type").to_owned();
            (Some(mime), decode(block["source"]["data"].as_str().expect("data")))
        }
        MediaKind::Gemini => {
            let inline = &body["contents"][0]["parts"][1]["inlineData"];
            let mime = inline["mimeType"].as_str().expect("mimeType").to_owned();
            (Some(mime), decode(inline["data"].as_str().expect("data")))
        }
        MediaKind::Ollama => {
            let message = &body["messages"][0];
            assert_eq!(message["content"], "what is this?");
            let images = message["images"].as_array().expect("images");
            assert_eq!(images.len(), 1);
            (None, decode(images[0].as_str().expect("base64 string")))
        }
        _ => {
            let part = &body["messages"][0]["content"][1];
            assert_eq!(part["type"], "image_url", "{part}");
            let url = part["image_url"]["url"].as_str().expect("url");
            let (head, b64) = url.split_once(";base64,").expect("a base64 data URL");
            let mime = head.strip_prefix("data:").expect("data: URL").to_owned();
            (Some(mime), decode(b64))
        }
    }
}

#[tokio::test]
async fn every_format_reaches_every_kind_in_its_wire_shape() {
    for kind in KINDS {
        let limits = kind.limits();
        for format in ImageFormat::ALL {
            let original = picture(64, 48, format);
            let server = server_for(kind).await;
            let chain = registry(provider(kind, &server)).parse("p/vision").expect("chain");
            // Declared as something it is not: the real format wins.
            let response = chain.generate(with_image("image/bmp", original.clone())).await.expect("answered");
            assert_eq!(response.text(), "a picture");
            let (mime, data) = image_on_the_wire(kind, &server).await;
            let info = inspect(&data).expect("an image on the wire");
            assert!(limits.accepts(info.format), "{format} -> {kind}: sent {}", info.format);
            if let Some(mime) = mime {
                assert_eq!(mime, info.format.mime(), "{format} -> {kind}: labelled as what it is");
            }
            if limits.accepts(format) {
                assert_eq!(data, original, "{format} -> {kind}: accepted, so sent byte for byte");
            } else {
                assert_eq!((info.width, info.height), (64, 48), "{format} -> {kind}: converted, same size");
            }
        }
    }
}

#[tokio::test]
async fn an_oversize_photo_arrives_within_each_kinds_limits() {
    let original = picture(3300, 2200, ImageFormat::Jpeg);
    for kind in KINDS {
        let limits = kind.limits();
        let server = server_for(kind).await;
        let chain = registry(provider(kind, &server)).parse("p/vision").expect("chain");
        chain.generate(with_image("image/jpeg", original.clone())).await.expect("answered");
        let (_, data) = image_on_the_wire(kind, &server).await;
        let info = inspect(&data).expect("image");
        assert!(info.long_side() <= limits.max_long_side, "{kind}: {info:?}");
        assert!(info.pixels() <= limits.max_pixels, "{kind}: {info:?}");
        assert!(data.len() <= limits.max_image_bytes, "{kind}: {} bytes", data.len());
        assert!((f64::from(info.width) / f64::from(info.height) - 1.5).abs() < 0.01, "{kind}: aspect kept");
        assert!(image::load_from_memory(&data).is_ok(), "{kind}: decodes");
    }
}

#[tokio::test]
async fn a_hostile_image_is_refused_before_any_network_call() {
    // A PNG header declaring 100000 x 100000 pixels: a decompression bomb.
    let mut bomb = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&100_000u32.to_be_bytes());
    bomb.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("bomb", bomb, "over the decoding limit"),
        ("text", b"definitely not an image".to_vec(), "not a recognised image"),
        ("heic", b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(), "a HEIC/HEIF image"),
    ];
    for (name, data, says) in cases {
        let server = server_for(MediaKind::Anthropic).await;
        let chain = registry(provider(MediaKind::Anthropic, &server)).parse("p/vision").expect("chain");
        let error = chain.generate(with_image("image/png", data)).await.expect_err(name);
        assert_eq!(error.kind, ErrorKind::Permanent, "{name}: {error}");
        assert!(error.message.contains(says), "{name}: {error}");
        assert!(error.message.starts_with("image 1 (message 1, part 2;"), "{name}: names the image: {error}");
        assert!(server.received_requests().await.unwrap_or_default().is_empty(), "{name}: nothing was sent");
    }
}

#[tokio::test]
async fn a_target_whose_budget_cannot_be_met_is_skipped_without_penalty() {
    let tiny = server_for(MediaKind::OpenAiCompatible).await;
    let roomy = server_for(MediaKind::Anthropic).await;
    let registry = Registry::new();
    // Even 32 pixels wide, a JPEG takes more than 200 bytes.
    let impossible = MediaLimits { max_image_bytes: 200, ..MediaKind::OpenAiCompatible.limits() };
    registry
        .add_provider(Arc::new(OpenAi::new(
            ProviderConfig::new("tiny", format!("{}/v1", tiny.uri())).with_media(impossible),
        )))
        .expect("tiny");
    registry
        .add_provider(Arc::new(Anthropic::new(ProviderConfig::new("roomy", roomy.uri()))))
        .expect("roomy");
    let chain = registry.chain("tiny/vision, roomy/claude").expect("chain");
    let response = chain
        .generate(with_image("image/jpeg", picture(300, 200, ImageFormat::Jpeg)))
        .await
        .expect("answered");
    assert_eq!(response.provider, "roomy");
    assert!(
        tiny.received_requests().await.unwrap_or_default().is_empty(),
        "the tiny target was never called"
    );
    let health = registry.health().snapshot();
    assert!(health.iter().all(|h| h.total_failures == 0), "no health penalty: {health:?}");

    // Alone, the skip is reported in the exhaustion error with the reason.
    let alone = registry.chain("tiny/vision").expect("chain");
    let error = alone
        .generate(with_image("image/jpeg", picture(300, 200, ImageFormat::Jpeg)))
        .await
        .expect_err("none");
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert!(
        error.skipped[0].starts_with("tiny/vision (image refused: image 1 (message 1, part 2;"),
        "{error}"
    );
    assert!(error.skipped[0].contains("cannot be made to fit 200 B"), "{error}");
}

#[tokio::test]
async fn a_transcript_resent_at_every_step_is_converted_once() {
    let server = server_for(MediaKind::Anthropic).await;
    let chain = registry(provider(MediaKind::Anthropic, &server)).chain("p/claude").expect("chain");
    let mut request = with_image("image/png", picture(2000, 1500, ImageFormat::Png));
    for step in 0..4 {
        chain.generate(request.clone()).await.expect("answered");
        request.messages.push(Message::assistant(format!("step {step}")));
        request.messages.push(Message::user("and now?"));
    }
    let stats = chain.media_cache().stats();
    assert_eq!((stats.misses, stats.hits), (1, 3), "{stats:?}");
    // Every step sent the same converted bytes.
    let bodies: Vec<Value> = server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect();
    let sent: Vec<&Value> =
        bodies.iter().map(|b| &b["messages"][0]["content"][1]["source"]["data"]).collect();
    assert_eq!(sent.len(), 4);
    assert!(sent.iter().all(|d| *d == sent[0]));
    // The request itself still holds the original (the caller's transcript is untouched).
    assert_eq!(
        inspect(match &request.messages[0].parts[1] {
            Part::Image { data, .. } => data,
            _ => unreachable!("built above"),
        })
        .map(|i| (i.width, i.height)),
        Ok((2000, 1500))
    );
}

#[tokio::test]
async fn a_text_only_target_is_still_skipped_before_any_image_work() {
    let server = server_for(MediaKind::Anthropic).await;
    let registry = registry(provider(MediaKind::Anthropic, &server));
    let text_only = executus_llm::Capabilities { vision: Some(false), ..executus_llm::Capabilities::UNKNOWN };
    registry.set_capabilities("p/text", text_only).expect("caps");
    let chain = registry.chain("p/text, p/claude").expect("chain");
    // An image that would be refused outright: the text-only target is skipped for vision
    // first, then the next target refuses the image itself.
    let error = chain.generate(with_image("image/png", b"junk".to_vec())).await.expect_err("junk");
    assert_eq!(error.kind, ErrorKind::Permanent);
    assert_eq!(error.provider, "p");
    assert_eq!(error.model, "claude");
    let response =
        chain.generate(with_image("image/png", picture(32, 32, ImageFormat::Png))).await.expect("ok");
    assert_eq!(response.text(), "a picture");
}
