use rmcp::model::{CallToolResult, ContentBlock};
use serde_json::json;

use super::*;

const LIMITS: Limits = Limits { max_result_bytes: 64, max_image_bytes: 8 };

fn result(v: serde_json::Value) -> CallToolResult {
    serde_json::from_value(v).unwrap()
}

#[test]
fn text_blocks_join_and_structured_content_stands_in_for_missing_text() {
    let r = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
    assert_eq!(convert(&r, LIMITS), Converted { text: "a\nb".into(), images: vec![], is_error: false });
    let r = result(json!({"content": [], "structuredContent": {"sum": 3}}));
    assert_eq!(convert(&r, LIMITS).text, r#"{"sum":3}"#);
    // With text present, the text is what the model gets (servers repeat the JSON there).
    let r = result(json!({"content": [{"type": "text", "text": "3"}], "structuredContent": {"sum": 3}}));
    assert_eq!(convert(&r, LIMITS).text, "3");
}

#[test]
fn errors_images_and_other_blocks() {
    let r = result(json!({"content": [{"type": "text", "text": "no such file"}], "isError": true}));
    let c = convert(&r, LIMITS);
    assert!(c.is_error);
    assert_eq!(c.text, "no such file");
    let png = base64::engine::general_purpose::STANDARD.encode([1u8, 2, 3, 4, 5]);
    let r = result(json!({"content": [
        {"type": "image", "data": png, "mimeType": "image/png"},
        {"type": "image", "data": png, "mimeType": "image/png"},
        {"type": "image", "data": "!!", "mimeType": "image/png"},
        {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
        {"type": "resource", "resource": {"uri": "file:///a", "text": "hello"}},
    ]}));
    let c = convert(&r, Limits { max_result_bytes: 1000, max_image_bytes: 8 });
    assert_eq!(c.images, vec![ToolImage { mime: "image/png".into(), data: vec![1, 2, 3, 4, 5] }]);
    let lines: Vec<&str> = c.text.lines().collect();
    assert!(lines[0].contains("left out") && lines[0].contains("limited to 8 bytes"), "{}", c.text);
    assert!(lines[1].contains("could not be decoded"), "{}", c.text);
    assert!(lines[2].starts_with("[audio (audio/wav"), "{}", c.text);
    assert_eq!(&lines[3..], ["[resource file:///a]", "hello"]);
}

#[test]
fn long_text_is_cut_on_a_character_boundary_with_a_note() {
    let r = CallToolResult::success(vec![ContentBlock::text("é".repeat(100))]);
    let c = convert(&r, LIMITS);
    let (kept, note) = c.text.split_once('\n').unwrap();
    assert_eq!(kept, "é".repeat(32));
    assert_eq!(note, "[result truncated: 200 bytes, showing the first 64]");
}
