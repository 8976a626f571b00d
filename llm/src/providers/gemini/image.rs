//! Gemini image output: `POST {base}/models/{model}:generateContent` with
//! `generationConfig.responseModalities = ["TEXT", "IMAGE"]` (the image models, e.g.
//! `gemini-2.5-flash-image`).
//!
//! - The prompt is one user turn; a size becomes `generationConfig.imageConfig.aspectRatio`,
//!   the supported ratio closest to width / height (Gemini picks the pixels); a seed is
//!   `generationConfig.seed`; [`ImageRequest::extra`] merges into the body last.
//! - Images come back as `inlineData {mimeType, data}` parts of the first candidate; text parts
//!   are kept as [`ImageResponse::text`]. One call yields one image: `n > 1` makes `n` calls.
//! - A blocked prompt (`promptFeedback.blockReason`) or a candidate stopped for safety
//!   without an image is a permanent error naming the reason; an answer with text only is
//!   [`ErrorKind::Unsupported`] (the model may not be an image model: a chain moves on).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use super::wire::merge_extra;
use crate::error::{ErrorKind, Result};
use crate::http::{Http, preview};
use crate::imagegen::{GeneratedImage, ImageRequest, ImageSize, checked_image};
use crate::types::Usage;

/// Aspect ratios Gemini's image models accept.
const RATIOS: [(u32, u32); 10] =
    [(1, 1), (2, 3), (3, 2), (3, 4), (4, 3), (4, 5), (5, 4), (9, 16), (16, 9), (21, 9)];

/// The supported ratio closest to `size` (compared on a log scale, so 2:1 and 1:2 are as far
/// from 1:1).
pub(crate) fn aspect_ratio(size: ImageSize) -> String {
    let wanted = (f64::from(size.width) / f64::from(size.height)).ln();
    let distance = |(w, h): (u32, u32)| ((f64::from(w) / f64::from(h)).ln() - wanted).abs();
    let (w, h) = RATIOS.into_iter().min_by(|a, b| distance(*a).total_cmp(&distance(*b))).unwrap_or((1, 1));
    format!("{w}:{h}")
}

/// The body of one call.
pub(crate) fn body(request: &ImageRequest) -> Value {
    let mut generation = Map::new();
    generation.insert("responseModalities".into(), json!(["TEXT", "IMAGE"]));
    if let Some(size) = request.size {
        generation.insert("imageConfig".into(), json!({ "aspectRatio": aspect_ratio(size) }));
    }
    if let Some(seed) = request.seed {
        generation.insert("seed".into(), json!(seed % (1 << 31)));
    }
    let mut body = json!({
        "contents": [{ "role": "user", "parts": [{ "text": request.prompt }] }],
        "generationConfig": generation,
    });
    merge_extra(&mut body, &request.extra);
    body
}

/// One call's images, text and usage.
pub(crate) struct Answer {
    pub images: Vec<GeneratedImage>,
    pub text: String,
    pub usage: Usage,
    pub model: Option<String>,
}

/// Parses one `generateContent` answer.
pub(crate) fn parse(http: &Http, model: &str, answer: &Value) -> Result<Answer> {
    let feedback = answer.get("promptFeedback");
    let candidate = answer.get("candidates").and_then(Value::as_array).and_then(|c| c.first());
    let Some(candidate) = candidate else {
        if let Some(reason) = feedback.and_then(|f| f.get("blockReason")).and_then(Value::as_str) {
            return Err(http.error(ErrorKind::Permanent, model, format!("prompt blocked ({reason})")));
        }
        return Err(http.error(
            ErrorKind::Decode,
            model,
            format!("the answer has no candidates; it starts: {}", preview(answer.to_string().as_bytes())),
        ));
    };
    let parts = candidate.pointer("/content/parts").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut images = Vec::new();
    let mut text = String::new();
    for part in &parts {
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(inline) = part.get("inlineData").or_else(|| part.get("inline_data")) {
            let data = inline.get("data").and_then(Value::as_str).unwrap_or_default();
            let bytes = STANDARD.decode(data.as_bytes()).map_err(|e| {
                http.error(ErrorKind::Decode, model, format!("an inlineData part is not valid base64: {e}"))
            })?;
            images.push(checked_image(http, model, bytes, None)?);
        } else if let Some(t) = part.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
    }
    if images.is_empty() {
        let finish = candidate.get("finishReason").and_then(Value::as_str).unwrap_or("");
        if matches!(
            finish,
            "SAFETY" | "IMAGE_SAFETY" | "PROHIBITED_CONTENT" | "BLOCKLIST" | "SPII" | "RECITATION"
        ) {
            return Err(http.error(
                ErrorKind::Permanent,
                model,
                format!("no image: generation stopped ({finish})"),
            ));
        }
        let said = if text.is_empty() {
            "nothing".to_owned()
        } else {
            format!("only text: {}", preview(text.as_bytes()))
        };
        return Err(http.error(
            ErrorKind::Unsupported,
            model,
            format!("the model answered with {said} (is it an image model?)"),
        ));
    }
    let usage = answer
        .get("usageMetadata")
        .and_then(|u| serde_json::from_value::<super::wire::UsageMetadata>(u.clone()).ok())
        .map(|u| u.usage())
        .unwrap_or_default();
    let answered =
        answer.get("modelVersion").and_then(Value::as_str).filter(|m| !m.is_empty()).map(str::to_owned);
    Ok(Answer { images, text, usage, model: answered })
}
