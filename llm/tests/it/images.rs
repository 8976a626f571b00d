//! Images out against loopback servers speaking each API's exact format: OpenAI's Images API
//! (`gpt-image-*` base64, `dall-e-*`-style URLs), stable-diffusion.cpp's `sd-server` (behind
//! llama-swap) and LocalAI answers and error bodies, Gemini image output; a generation slower
//! than the timeout; and the image chain failing over on the chat chain's rules.

use std::io::Cursor;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use executus_llm::providers::ProviderConfig;
use executus_llm::providers::anthropic::Anthropic;
use executus_llm::providers::gemini::Gemini;
use executus_llm::providers::llama_swap::LlamaSwap;
use executus_llm::providers::openai::OpenAi;
use executus_llm::{
    ChainOptions, ConfigError, ErrorKind, HttpOptions, ImageFormat, ImageModel, ImageRequest, ImageSize,
    Provider, Registry,
};
use image::{DynamicImage, Rgba, RgbaImage};
use serde_json::{Value, json};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-images-test-3f9a7c1e5b";

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_pixel(w, h, Rgba([200, 40, 40, 255])));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).expect("png");
    out.into_inner()
}

fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(RgbaImage::new(w, h)).to_rgb8());
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).expect("jpeg");
    out.into_inner()
}

fn openai(server: &MockServer) -> OpenAi {
    OpenAi::new(ProviderConfig::new("oai", format!("{}/v1", server.uri())).with_key(KEY))
}

fn image_model(provider: &dyn Provider, id: &str) -> Arc<dyn ImageModel> {
    provider.image_model(id).expect("this provider generates images")
}

async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| !r.body.is_empty())
        .map(|r| serde_json::from_slice(&r.body).expect("JSON"))
        .collect()
}

#[tokio::test]
async fn gpt_image_answers_base64_with_usage_and_gets_no_response_format() {
    let server = MockServer::start().await;
    let picture = png(64, 32);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_json(json!({"model": "gpt-image-1", "prompt": "a red fox", "n": 1, "size": "1024x1024"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_713_833_628,
            "data": [{"b64_json": STANDARD.encode(&picture)}],
            "usage": {"total_tokens": 100, "input_tokens": 50, "output_tokens": 50,
                      "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let model = image_model(&openai(&server), "gpt-image-1");
    let request = ImageRequest::new("a red fox").with_size("1024x1024".parse().expect("size"));
    let answer = model.generate_image(&request).await.expect("image");
    assert_eq!((answer.provider.as_str(), answer.model.as_str()), ("oai", "gpt-image-1"));
    assert_eq!(answer.images.len(), 1);
    let image = &answer.images[0];
    assert_eq!(
        (image.format, image.width, image.height, image.mime()),
        (ImageFormat::Png, 64, 32, "image/png")
    );
    assert_eq!(image.data, picture);
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (50, 50));
}

#[tokio::test]
async fn url_answers_are_fetched_and_the_key_goes_only_to_the_endpoints_origin() {
    let server = MockServer::start().await;
    let storage = MockServer::start().await;
    let (own, elsewhere) = (png(8, 8), jpeg(16, 16));
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1, "id": "b0a1",
            "data": [
                {"url": format!("{}/generated-images/b64.png", server.uri()), "revised_prompt": "a red fox, oil"},
                {"url": format!("{}/blob/abc.jpg?sig=xyz", storage.uri())},
                {"url": format!("data:image/png;base64,{}", STANDARD.encode(png(4, 4)))}
            ]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/generated-images/b64.png"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(own.clone(), "image/png"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/abc.jpg"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(elsewhere.clone(), "image/jpeg"))
        .mount(&storage)
        .await;
    let model = image_model(&openai(&server), "dall-e-3");
    let request = ImageRequest { n: 3, ..ImageRequest::new("a red fox") };
    let answer = model.generate_image(&request).await.expect("images");
    let sent = &bodies(&server).await[0];
    assert_eq!(
        sent,
        &json!({"model": "dall-e-3", "prompt": "a red fox", "n": 3, "response_format": "b64_json"})
    );
    let got: Vec<(ImageFormat, u32)> = answer.images.iter().map(|i| (i.format, i.width)).collect();
    assert_eq!(got, [(ImageFormat::Png, 8), (ImageFormat::Jpeg, 16), (ImageFormat::Png, 4)]);
    assert_eq!(answer.images[0].revised_prompt.as_deref(), Some("a red fox, oil"));
    let own_get = server.received_requests().await.unwrap_or_default();
    let own_get = own_get.iter().find(|r| r.method.as_str() == "GET").expect("fetched");
    assert_eq!(
        own_get.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {KEY}").as_str())
    );
    let storage_get = &storage.received_requests().await.unwrap_or_default()[0];
    assert!(storage_get.headers.get("authorization").is_none(), "no key for another origin");
}

#[tokio::test]
async fn stable_diffusion_cpp_behind_llama_swap() {
    let server = MockServer::start().await;
    let picture = png(512, 512);
    Mock::given(method("POST"))
        .and(path("/v1/images/generations"))
        .and(body_json(json!({
            "model": "sd-turbo", "prompt": "a lighthouse", "n": 1, "size": "512x512", "seed": 42,
            "response_format": "b64_json", "cfg_scale": 1.0
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "created": 1_760_000_000, "data": [{"b64_json": STANDARD.encode(&picture)}], "output_format": "png"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let swap = LlamaSwap::new(ProviderConfig::new("swap", server.uri()));
    let mut request = ImageRequest::new("a lighthouse").with_size(ImageSize::new(512, 512));
    request.seed = Some(42);
    request.extra.insert("cfg_scale".into(), json!(1.0));
    let answer = image_model(&swap, "sd-turbo").generate_image(&request).await.expect("image");
    assert_eq!((answer.images[0].width, answer.images[0].height), (512, 512));
}

/// `status` + `body` from a server, classified as `kind`, its message containing `says`.
async fn assert_error(status: u16, body: Value, kind: ErrorKind, says: &str) {
    let server = MockServer::start().await;
    let mut reply = ResponseTemplate::new(status).set_body_json(body.clone());
    if status == 429 {
        reply = reply.insert_header("retry-after", "7");
    }
    Mock::given(method("POST")).respond_with(reply).mount(&server).await;
    let error =
        image_model(&openai(&server), "sd").generate_image(&ImageRequest::new("x")).await.expect_err("error");
    assert_eq!(error.kind, kind, "{status} {body}: {error}");
    assert!(error.message.contains(says), "{status} {body}: {error}");
    assert!(!error.to_string().contains(KEY));
    if status != 200 {
        assert_eq!(error.status, Some(status));
    }
    if status == 429 {
        assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    }
}

#[tokio::test]
async fn every_servers_error_bodies_are_classified() {
    // stable-diffusion.cpp's sd-server.
    assert_error(400, json!({"error": "prompt required"}), ErrorKind::Permanent, "prompt required").await;
    assert_error(
        500,
        json!({"error": "server_error", "message": "CUDA out of memory"}),
        ErrorKind::Transient,
        "server_error: CUDA out of memory",
    )
    .await;
    // LocalAI.
    assert_error(
        500,
        json!({"error": {"code": 500, "message": "could not load model: rpc error", "type": ""}}),
        ErrorKind::Transient,
        "could not load model",
    )
    .await;
    // OpenAI.
    assert_error(
        400,
        json!({"error": {"message": "Your request was rejected as a result of our safety system.",
                         "type": "image_generation_user_error", "param": null, "code": "content_policy_violation"}}),
        ErrorKind::Permanent,
        "rejected as a result of our safety system",
    )
    .await;
    assert_error(
        429,
        json!({"error": {"message": "Rate limit reached for images per minute", "type": "requests", "code": "rate_limit_exceeded"}}),
        ErrorKind::Transient,
        "Rate limit reached",
    )
    .await;
    assert_error(
        404,
        json!({"error": {"message": "The model `dall-e-9` does not exist.", "type": "invalid_request_error"}}),
        ErrorKind::NotFound,
        "does not exist",
    )
    .await;
    // A 200 that carries an error.
    assert_error(
        200,
        json!({"error": {"message": "upstream failed", "type": "server_error"}}),
        ErrorKind::Transient,
        "upstream failed",
    )
    .await;
}

#[tokio::test]
async fn hostile_answers_are_decode_errors() {
    let cases = [
        (
            json!({"data": [{"b64_json": STANDARD.encode(b"<html>not an image</html>")}]}),
            "not a recognised image",
        ),
        (json!({"data": [{"b64_json": "%%% not base64 %%%"}]}), "not valid base64"),
        (json!({"data": []}), "empty (no image)"),
        (json!({"created": 1}), "no `data` array"),
        (json!({"data": [{"revised_prompt": "x"}]}), "neither `b64_json` nor `url`"),
        (json!({"data": [{"url": "ftp://host/a.png"}]}), "scheme \"ftp\""),
    ];
    for (body, says) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let error = image_model(&openai(&server), "m")
            .generate_image(&ImageRequest::new("x"))
            .await
            .expect_err("bad");
        assert_eq!(error.kind, ErrorKind::Decode, "{body}: {error}");
        assert!(error.message.contains(says), "{body}: {error}");
    }
    // Not JSON at all.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>"))
        .mount(&server)
        .await;
    let error =
        image_model(&openai(&server), "m").generate_image(&ImageRequest::new("x")).await.expect_err("html");
    assert_eq!(error.kind, ErrorKind::Decode, "{error}");
}

#[tokio::test]
async fn a_generation_slower_than_the_timeout_is_transient_and_the_chain_moves_on() {
    let slow = MockServer::start().await;
    let fast = MockServer::start().await;
    // The server would answer after a minute; the client gives up after 300 ms.
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"b64_json": STANDARD.encode(png(2, 2))}]}))
                .set_delay(Duration::from_secs(60)),
        )
        .mount(&slow)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"b64_json": STANDARD.encode(png(3, 3))}]})),
        )
        .mount(&fast)
        .await;
    let http = HttpOptions { headers_timeout: Duration::from_millis(300), ..HttpOptions::default() };
    let provider = |name: &str, server: &MockServer| {
        Arc::new(OpenAi::new(
            ProviderConfig::new(name, format!("{}/v1", server.uri())).with_http(http.clone()),
        ))
    };
    let started = Instant::now();
    let error = image_model(provider("slow", &slow).as_ref(), "sd")
        .generate_image(&ImageRequest::new("x"))
        .await
        .expect_err("too slow");
    assert_eq!(error.kind, ErrorKind::Transient, "{error}");
    assert!(error.message.contains("waiting for response headers"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(30), "bounded by the timeout, not the server");

    let registry = Registry::new();
    registry.add_provider(provider("slow", &slow)).expect("slow");
    registry.add_provider(provider("fast", &fast)).expect("fast");
    registry.set_options(ChainOptions { retries: 0, ..ChainOptions::default() });
    let chain = registry.image_chain("slow/sd, fast/sd").expect("chain");
    let answer = chain.generate_image(&ImageRequest::new("x")).await.expect("the fast one answers");
    assert_eq!((answer.provider.as_str(), answer.images[0].width), ("fast", 3));
    let slow_health =
        registry.health().snapshot().into_iter().find(|h| h.target == "slow/sd").expect("tracked");
    assert_eq!(slow_health.total_failures, 1, "a health failure, as for chat");
}

#[tokio::test]
async fn the_image_chain_follows_the_chat_chains_rules() {
    let broken = MockServer::start().await;
    let good = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_json(
            json!({"error": {"message": "loading model", "type": "unavailable_error", "code": 503}}),
        ))
        .mount(&broken)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"data": [{"b64_json": STANDARD.encode(png(5, 5))}]})),
        )
        .mount(&good)
        .await;
    let registry = Registry::new();
    registry
        .add_provider(Arc::new(OpenAi::new(ProviderConfig::new("a", format!("{}/v1", broken.uri())))))
        .expect("a");
    registry
        .add_provider(Arc::new(OpenAi::new(ProviderConfig::new("b", format!("{}/v1", good.uri())))))
        .expect("b");
    registry
        .add_provider(Arc::new(Anthropic::new(ProviderConfig::new("claude", good.uri()))))
        .expect("claude");
    registry.set_options(ChainOptions {
        retries: 1,
        backoff_base: Duration::from_millis(1),
        ..ChainOptions::default()
    });
    registry.set_alias("draw", "a/sd, b/sd").expect("alias");

    let chain = registry.image_chain("draw").expect("chain");
    assert_eq!(chain.targets().collect::<Vec<_>>(), ["a/sd", "b/sd"]);
    let answer = chain.generate_image(&ImageRequest::new("x")).await.expect("answered");
    assert_eq!(answer.provider, "b");
    assert_eq!(
        broken.received_requests().await.unwrap_or_default().len(),
        2,
        "one retry on a transient error"
    );

    let alone = registry.image_chain("a/sd").expect("chain");
    let error = alone.generate_image(&ImageRequest::new("x")).await.expect_err("exhausted");
    assert_eq!(error.kind, ErrorKind::Exhausted);
    assert_eq!(error.attempts.len(), 2);
    assert!(error.attempts[0].message.contains("loading model"), "{error}");

    let error = registry.image_chain("claude/opus, b/sd").expect_err("anthropic makes no images");
    assert!(
        matches!(error, ConfigError::NoImageOutput { ref provider, .. } if provider == "claude"),
        "{error}"
    );
    let error = chain.generate_image(&ImageRequest::new("   ")).await.expect_err("empty prompt");
    assert_eq!(error.kind, ErrorKind::Permanent);
    let error = chain.generate_image(&ImageRequest { n: 11, ..ImageRequest::new("x") }).await.expect_err("n");
    assert!(error.message.contains("n must be 1 to 10"), "{error}");
}

fn gemini(server: &MockServer) -> Gemini {
    Gemini::new(ProviderConfig::new("gem", format!("{}/v1beta", server.uri())).with_key(KEY))
}

#[tokio::test]
async fn gemini_image_output() {
    let server = MockServer::start().await;
    let picture = png(40, 22);
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash-image:generateContent"))
        .and(header("x-goog-api-key", KEY))
        .and(body_json(json!({
            "contents": [{"role": "user", "parts": [{"text": "a tram at dusk"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": {"aspectRatio": "16:9"}}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{
                "content": {"role": "model", "parts": [
                    {"text": "Here is a tram."},
                    {"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(&picture)}}
                ]},
                "finishReason": "STOP"
            }],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 1290, "totalTokenCount": 1299},
            "modelVersion": "gemini-2.5-flash-image"
        })))
        .expect(2)
        .mount(&server)
        .await;
    let model = image_model(&gemini(&server), "gemini-2.5-flash-image");
    let request =
        ImageRequest { n: 2, ..ImageRequest::new("a tram at dusk").with_size(ImageSize::new(1920, 1080)) };
    let answer = model.generate_image(&request).await.expect("images");
    assert_eq!(answer.images.len(), 2, "one call per image");
    assert_eq!(
        (answer.images[0].format, answer.images[0].width, answer.images[0].height),
        (ImageFormat::Png, 40, 22)
    );
    assert_eq!(answer.text.as_deref(), Some("Here is a tram.Here is a tram."));
    assert_eq!((answer.usage.input_tokens, answer.usage.output_tokens), (18, 2580));
    assert!(
        !serde_json::to_string(&bodies(&server).await).expect("json").contains(KEY),
        "the key is a header only"
    );
}

#[tokio::test]
async fn gemini_refusals_are_classified() {
    let cases = [
        (
            json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}),
            ErrorKind::Permanent,
            "prompt blocked (PROHIBITED_CONTENT)",
        ),
        (
            json!({"candidates": [{"content": {"parts": []}, "finishReason": "IMAGE_SAFETY"}]}),
            ErrorKind::Permanent,
            "generation stopped (IMAGE_SAFETY)",
        ),
        (
            json!({"candidates": [{"content": {"parts": [{"text": "I can only write."}]}, "finishReason": "STOP"}]}),
            ErrorKind::Unsupported,
            "only text: I can only write.",
        ),
        (
            json!({"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "image/png", "data": STANDARD.encode(b"nope")}}]}}]}),
            ErrorKind::Decode,
            "unusable",
        ),
    ];
    for (body, kind, says) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_json(body.clone()))
            .mount(&server)
            .await;
        let error = image_model(&gemini(&server), "gemini-2.5-flash-image")
            .generate_image(&ImageRequest::new("x"))
            .await
            .expect_err("refused");
        assert_eq!(error.kind, kind, "{body}: {error}");
        assert!(error.message.contains(says), "{body}: {error}");
    }
}
