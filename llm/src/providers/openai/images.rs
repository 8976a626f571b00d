//! `POST {base}/images/generations`: OpenAI's Images API and the servers that copy it
//! (llama-swap in front of stable-diffusion.cpp's `sd-server`, LocalAI).
//!
//! Body: `model`, `prompt`, `n`, `size` (`WxH`) when given, `seed` when given, and
//! `response_format: "b64_json"` — except for OpenAI's `gpt-image-*` models, which always
//! answer base64 and reject the field; [`ImageRequest::extra`] is merged last (`null`
//! removes a field, e.g. `response_format` for a server that refuses it).
//!
//! Answer: `{"data": [{"b64_json": ...} | {"url": ...}, ...], "usage"?: {...}}`. A `url` is
//! fetched with the same client and bounds (the key is sent only back to the endpoint's own
//! origin, never to a storage host); a `data:` URL is decoded. Every image is checked by its
//! bytes. Error bodies in every shape these servers use parse: OpenAI's `{"error": {message,
//! type, code}}`, LocalAI's `{"error": {code: 500, message}}`, sd-server's `{"error": "..."}`
//! and `{"error": "server_error", "message": ...}`; a `200` carrying an error is an error.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::error::body_error;
use crate::error::{ErrorKind, Result};
use crate::http::{Http, preview};
use crate::imagegen::{GeneratedImage, ImageRequest, ImageResponse, checked_image};
use crate::types::Usage;

/// The JSON body for `model`.
pub(crate) fn body(model: &str, request: &ImageRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("prompt".into(), json!(request.prompt));
    body.insert("n".into(), json!(request.n));
    if let Some(size) = request.size {
        body.insert("size".into(), json!(size.to_string()));
    }
    if let Some(seed) = request.seed {
        body.insert("seed".into(), json!(seed));
    }
    let bare = model.rsplit('/').next().unwrap_or(model);
    if !bare.starts_with("gpt-image") {
        body.insert("response_format".into(), json!("b64_json"));
    }
    for (key, value) in &request.extra {
        if value.is_null() {
            body.remove(key);
        } else {
            body.insert(key.clone(), value.clone());
        }
    }
    Value::Object(body)
}

/// Parses an answer, fetching `url` images with `fetch`.
pub(crate) async fn parse<F, Fut>(
    http: &Http,
    provider: &str,
    model: &str,
    answer: &Value,
    fetch: F,
) -> Result<ImageResponse>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Vec<u8>>>,
{
    if let Some(error) = answer.get("error").filter(|e| e.is_object() || e.is_string()) {
        let mut error = error.clone();
        // sd-server's 500 body: {"error": "server_error", "message": "..."}.
        if let (Value::String(kind), Some(message)) = (&error, answer.get("message").and_then(Value::as_str))
        {
            error = json!({"type": kind, "message": message});
        }
        return Err(body_error(http, model, &error, ErrorKind::Transient));
    }
    let Some(items) = answer.get("data").and_then(Value::as_array) else {
        return Err(http.error(
            ErrorKind::Decode,
            model,
            format!("the answer has no `data` array; it starts: {}", preview(answer.to_string().as_bytes())),
        ));
    };
    if items.is_empty() {
        return Err(http.error(ErrorKind::Decode, model, "the answer's `data` array is empty (no image)"));
    }
    let mut images: Vec<GeneratedImage> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let revised = item.get("revised_prompt").and_then(Value::as_str).map(str::to_owned);
        let bytes = if let Some(b64) = item.get("b64_json").and_then(Value::as_str) {
            decode_b64(http, model, b64, i)?
        } else if let Some(url) = item.get("url").and_then(Value::as_str) {
            match url.strip_prefix("data:").and_then(|rest| rest.split_once(";base64,")) {
                Some((_, b64)) => decode_b64(http, model, b64, i)?,
                None => fetch(url.to_owned()).await?,
            }
        } else {
            return Err(http.error(
                ErrorKind::Decode,
                model,
                format!("image {} of the answer has neither `b64_json` nor `url`", i + 1),
            ));
        };
        images.push(checked_image(http, model, bytes, revised)?);
    }
    Ok(ImageResponse {
        images,
        text: None,
        usage: usage(answer.get("usage")),
        provider: provider.to_owned(),
        model: model.to_owned(),
    })
}

fn decode_b64(http: &Http, model: &str, b64: &str, i: usize) -> Result<Vec<u8>> {
    // Some servers wrap base64 across lines.
    let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(cleaned.as_bytes()).map_err(|e| {
        http.error(
            ErrorKind::Decode,
            model,
            format!("image {} of the answer is not valid base64: {e}", i + 1),
        )
    })
}

/// `gpt-image-*` usage: `input_tokens`, `output_tokens`.
fn usage(value: Option<&Value>) -> Usage {
    let field = |name: &str| value.and_then(|u| u.get(name)).and_then(Value::as_u64).unwrap_or(0);
    Usage { input_tokens: field("input_tokens"), output_tokens: field("output_tokens"), ..Usage::default() }
}
