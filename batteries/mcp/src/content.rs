//! A `tools/call` result as the model sees it: text blocks joined, structured content as JSON
//! when there is no text, images as [`ToolImage`]s, everything else described in a line.
//!
//! Guarantees: the text is at most `max_result_bytes` (cut on a character boundary, with a
//! note saying how much there was); images are kept while their decoded bytes fit in
//! `max_image_bytes`, the rest are named in a note; a block that cannot be decoded becomes a
//! note, never an error of the call. `isError: true` becomes a tool error carrying the text.

use base64::Engine as _;
use executus::tool::ToolImage;
use rmcp::model::{CallToolResult, ContentBlock, ResourceContents};

/// Bounds applied to one result.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Text bytes.
    pub max_result_bytes: usize,
    /// Decoded image bytes, all images together.
    pub max_image_bytes: usize,
}

/// A converted result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Text for the model.
    pub text: String,
    /// Images for the model.
    pub images: Vec<ToolImage>,
    /// The server flagged the result as an error.
    pub is_error: bool,
}

/// Converts a result under `limits`.
pub fn convert(result: &CallToolResult, limits: Limits) -> Converted {
    let mut texts: Vec<String> = Vec::new();
    let mut images = Vec::new();
    let mut image_bytes = 0usize;
    let engine = base64::engine::general_purpose::STANDARD;
    for block in &result.content {
        match block {
            ContentBlock::Text(t) => texts.push(t.text.clone()),
            ContentBlock::Image(img) => {
                let decoded = engine.decode(img.data.as_bytes());
                match decoded {
                    Err(e) => texts.push(format!("[image ({}) could not be decoded: {e}]", img.mime_type)),
                    Ok(data) if !img.mime_type.starts_with("image/") => texts.push(format!(
                        "[content of type {:?} ({} bytes) labelled as an image was left out]",
                        img.mime_type,
                        data.len()
                    )),
                    Ok(data) if image_bytes + data.len() > limits.max_image_bytes => texts.push(format!(
                        "[image ({}, {} bytes) left out: the images of one result are limited to {} bytes]",
                        img.mime_type,
                        data.len(),
                        limits.max_image_bytes
                    )),
                    Ok(data) => {
                        image_bytes += data.len();
                        images.push(ToolImage { mime: img.mime_type.clone(), data });
                    }
                }
            }
            ContentBlock::Audio(a) => {
                texts.push(format!("[audio ({}, {} base64 characters) left out]", a.mime_type, a.data.len()))
            }
            ContentBlock::Resource(r) => match &r.resource {
                ResourceContents::TextResourceContents { uri, text, .. } => {
                    texts.push(format!("[resource {uri}]\n{text}"));
                }
                ResourceContents::BlobResourceContents { uri, mime_type, blob, .. } => texts.push(format!(
                    "[binary resource {uri} ({}, {} base64 characters) left out]",
                    mime_type.as_deref().unwrap_or("unknown type"),
                    blob.len()
                )),
                _ => texts
                    .push("[embedded resource of a kind this client does not know was left out]".to_owned()),
            },
            ContentBlock::ResourceLink(link) => {
                // Described from its JSON form: uri and name are all the model can use.
                let v = serde_json::to_value(link).unwrap_or_default();
                let field = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                texts.push(
                    format!("[resource link {} {}]", field("uri"), field("name")).trim_end().to_owned(),
                );
            }
            _ => texts.push("[content of a kind this client does not know was left out]".to_owned()),
        }
    }
    let has_text = result.content.iter().any(|b| matches!(b, ContentBlock::Text(_)));
    if !has_text && let Some(structured) = &result.structured_content {
        texts.insert(0, structured.to_string());
    }
    let text = cap(texts.join("\n"), limits.max_result_bytes);
    Converted { text, images, is_error: result.is_error.unwrap_or(false) }
}

/// `text` cut to at most `max` bytes on a character boundary, with a note when cut.
pub fn cap(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let total = text.len();
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.push_str(&format!("\n[result truncated: {total} bytes, showing the first {cut}]"));
    text
}

#[cfg(test)]
mod tests;
