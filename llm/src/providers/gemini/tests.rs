use std::collections::BTreeMap;

use serde_json::json;

use super::wire::{self, GenerateResponse, Item};
use super::*;
use crate::types::{ReasoningEffort, ResponseSchema, ToolCall, ToolChoice, ToolResult, ToolSpec};

fn call(id: &str, name: &str, args: Value, signature: Option<&str>) -> Part {
    Part::ToolCall(ToolCall { id: id.into(), name: name.into(), args, signature: signature.map(Into::into) })
}

#[test]
fn contents_roles_parts_and_merging() {
    let req = Request {
        system: Some("sys".into()),
        messages: vec![
            Message {
                role: Role::User,
                parts: vec![
                    Part::Text { text: "look".into() },
                    Part::Text { text: String::new() },
                    Part::Image { mime: "image/jpeg".into(), data: vec![0xff, 0xd8] },
                ],
            },
            Message {
                role: Role::Assistant,
                parts: vec![
                    Part::Text { text: "calling".into() },
                    call("gemini_call_00ff", "weather", json!({"city": "Oslo"}), Some("sig-1")),
                    call("server-id", "time", json!("{\"tz\":\"UTC\"}"), None),
                ],
            },
            Message::tool_results([
                ToolResult {
                    id: "gemini_call_00ff".into(),
                    name: "weather".into(),
                    content: "{\"c\":3}".into(),
                    is_error: false,
                },
                ToolResult {
                    id: "server-id".into(),
                    name: String::new(),
                    content: "no clock".into(),
                    is_error: true,
                },
            ]),
            Message::user("thanks"),
            Message { role: Role::Assistant, parts: vec![] },
        ],
        ..Request::default()
    };
    let body = wire::build_body("gemini-2.5-flash", &req);
    assert_eq!(
        body,
        json!({
            "systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "look"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9g="}},
                ]},
                {"role": "model", "parts": [
                    {"text": "calling"},
                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": "sig-1"},
                    {"functionCall": {"id": "server-id", "name": "time", "args": {"tz": "UTC"}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "weather", "response": {"output": {"c": 3}}}},
                    {"functionResponse": {"id": "server-id", "name": "time", "response": {"error": "no clock"}}},
                    {"text": "thanks"},
                ]},
            ],
        })
    );
}

#[test]
fn tools_and_tool_config() {
    let tools = vec![ToolSpec {
        name: "weather".into(),
        description: "forecast".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }];
    let cases = [
        (ToolChoice::Auto, json!({"mode": "AUTO"})),
        (ToolChoice::None, json!({"mode": "NONE"})),
        (ToolChoice::Required, json!({"mode": "ANY"})),
        (ToolChoice::Tool("weather".into()), json!({"mode": "ANY", "allowedFunctionNames": ["weather"]})),
    ];
    for (choice, want) in cases {
        let req = Request { tools: tools.clone(), tool_choice: choice, ..Request::user("x") };
        let body = wire::build_body("gemini-2.5-flash", &req);
        assert_eq!(body["toolConfig"]["functionCallingConfig"], want);
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{
                "name": "weather",
                "description": "forecast",
                "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }]}])
        );
    }
    let plain = wire::build_body("gemini-2.5-flash", &Request::user("x"));
    assert!(plain.get("tools").is_none() && plain.get("toolConfig").is_none());
    assert!(plain.get("generationConfig").is_none());
}

#[test]
fn generation_config_and_extra() {
    let schema = json!({"type": "object", "properties": {"n": {"type": "integer"}}});
    let mut extra = BTreeMap::new();
    extra.insert("generationConfig".to_owned(), json!({"topK": 5, "temperature": null}));
    extra.insert("safetySettings".to_owned(), json!([]));
    let req = Request {
        temperature: Some(0.25),
        max_tokens: Some(100),
        stop: vec!["##".into()],
        seed: Some((1 << 31) + 5),
        response_schema: Some(ResponseSchema { name: "n".into(), schema: schema.clone(), strict: false }),
        extra,
        ..Request::user("x")
    };
    let body = wire::build_body("gemini-2.5-flash", &req);
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 100,
            "stopSequences": ["##"],
            "seed": 5,
            "responseMimeType": "application/json",
            "responseJsonSchema": schema,
            "topK": 5,
        })
    );
    assert_eq!(body["safetySettings"], json!([]));
}

#[test]
fn thinking_config_table() {
    use ReasoningEffort::*;
    let table = [
        ("gemini-2.5-pro", Minimal, Some(json!({"thinkingBudget": 512, "includeThoughts": true}))),
        ("gemini-2.5-flash", Low, Some(json!({"thinkingBudget": 2048, "includeThoughts": true}))),
        (
            "models/gemini-2.5-flash-lite",
            Medium,
            Some(json!({"thinkingBudget": 8192, "includeThoughts": true})),
        ),
        ("gemini-2.5-pro", High, Some(json!({"thinkingBudget": 24576, "includeThoughts": true}))),
        ("gemini-2.0-flash", High, None),
        ("gemini-1.5-pro", High, None),
        ("gemini-3-pro-preview", High, Some(json!({"thinkingLevel": "high", "includeThoughts": true}))),
        (
            "gemini-3-flash-preview",
            Minimal,
            Some(json!({"thinkingLevel": "minimal", "includeThoughts": true})),
        ),
    ];
    for (model, effort, want) in table {
        assert_eq!(wire::thinking_config(model, effort), want, "{model} {effort:?}");
    }
    let req = Request { reasoning_effort: Some(High), ..Request::user("x") };
    assert_eq!(
        wire::build_body("gemini-3-pro-preview", &req)["generationConfig"]["thinkingConfig"]["thinkingLevel"],
        "high"
    );
}

#[test]
fn model_path_table() {
    assert_eq!(model_path("gemini-2.5-flash").as_deref(), Some("models/gemini-2.5-flash"));
    assert_eq!(model_path("models/gemini-2.5-flash").as_deref(), Some("models/gemini-2.5-flash"));
    assert_eq!(model_path("tunedModels/my-tune").as_deref(), Some("tunedModels/my-tune"));
    for bad in ["", "a?b", "a#b", "a b", "a:generateContent", "../x", "models//x", "a/./b"] {
        assert_eq!(model_path(bad), None, "{bad:?}");
    }
}

#[test]
fn response_items_usage_and_finish() {
    let mut resp: GenerateResponse = serde_json::from_value(json!({
        "candidates": [{
            "content": {"role": "model", "parts": [
                {"text": "thinking...", "thought": true},
                {"text": "Hello"},
                {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "S1"},
                {"functionCall": {"name": "g"}},
                {"text": ""},
            ]},
            "finishReason": "STOP",
            "safetyRatings": [],
        }],
        "usageMetadata": {
            "promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 7,
            "cachedContentTokenCount": 4, "totalTokenCount": 22
        },
        "modelVersion": "gemini-2.5-flash-001",
    }))
    .expect("decode");
    let usage = resp.usage_metadata.as_ref().map(wire::UsageMetadata::usage).expect("usage");
    assert_eq!(
        usage,
        Usage {
            input_tokens: 10,
            output_tokens: 12,
            cache_read_tokens: 4,
            cache_write_tokens: 0,
            reasoning_tokens: 7
        }
    );
    assert_eq!(resp.model_version(), Some("gemini-2.5-flash-001"));
    let items = resp.take_candidate().expect("candidate").take_items();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0], Item::Thought("thinking...".into()));
    assert_eq!(items[1], Item::Text("Hello".into()));
    let (Item::Call(f), Item::Call(g)) = (&items[2], &items[3]) else { panic!("calls: {items:?}") };
    assert_eq!((f.name.as_str(), &f.args, f.signature.as_deref()), ("f", &json!({"a": 1}), Some("S1")));
    assert_eq!((g.name.as_str(), &g.args, g.signature.as_deref()), ("g", &json!({}), None));
    assert!(f.id.starts_with(wire::SYNTH_PREFIX) && g.id.starts_with(wire::SYNTH_PREFIX));
    assert_ne!(f.id, g.id);
}

#[test]
fn finish_reason_table() {
    use FinishReason as F;
    let table = [
        (Some("STOP"), false, F::Stop),
        (None, false, F::Stop),
        (Some("MAX_TOKENS"), false, F::Length),
        (Some("SAFETY"), false, F::ContentFilter),
        (Some("RECITATION"), false, F::ContentFilter),
        (Some("PROHIBITED_CONTENT"), false, F::ContentFilter),
        (Some("MALFORMED_FUNCTION_CALL"), false, F::Other("MALFORMED_FUNCTION_CALL".into())),
        (Some("OTHER"), false, F::Other("OTHER".into())),
        (Some("STOP"), true, F::ToolCalls),
    ];
    for (reason, calls, want) in table {
        assert_eq!(wire::finish_reason(reason, calls), want, "{reason:?}");
    }
}

#[test]
fn blocked_prompt_detection() {
    let blocked: GenerateResponse = serde_json::from_value(json!({
        "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}
    }))
    .expect("decode");
    assert_eq!(blocked.blocked().as_deref(), Some("prompt blocked (SAFETY)"));
    let ok: GenerateResponse = serde_json::from_value(json!({
        "candidates": [{"content": {"parts": [{"text": "x"}]}}],
        "promptFeedback": {"blockReason": "SAFETY"}
    }))
    .expect("decode");
    assert_eq!(ok.blocked(), None);
}

#[test]
fn base_url_validation() {
    assert_eq!(Gemini::new(ProviderConfig::new("g", "")).base_url(), Some(DEFAULT_BASE));
    assert_eq!(
        Gemini::new(ProviderConfig::new("g", "http://127.0.0.1:9/v1beta/")).base_url(),
        Some("http://127.0.0.1:9/v1beta")
    );
    assert_eq!(Gemini::new(ProviderConfig::new("g", "not a url")).base_url(), None);
    assert_eq!(Gemini::new(ProviderConfig::new("g", "ftp://x")).base_url(), None);
}

#[test]
fn anthropic_thinking_carriers_are_not_sent_as_thought_signatures() {
    // A conversation that switched from Claude to Gemini: the Claude call carries its signed
    // thinking blocks in `signature`; Gemini must not see them, but keeps its own signatures.
    let carrier = r#"anthropic-thinking:v1:[{"type":"thinking","thinking":"t","signature":"EqQB"}]"#;
    let req = Request {
        messages: vec![
            Message::user("go"),
            Message {
                role: Role::Assistant,
                parts: vec![
                    call("toolu_01", "weather", json!({"city": "Oslo"}), Some(carrier)),
                    call("gemini_call_01", "time", json!({}), Some("CiQB0e2K")),
                ],
            },
        ],
        ..Request::default()
    };
    let body = wire::build_body("gemini-2.5-flash", &req);
    let parts = &body["contents"][1]["parts"];
    assert_eq!(
        parts[0],
        json!({"functionCall": {"id": "toolu_01", "name": "weather", "args": {"city": "Oslo"}}})
    );
    assert_eq!(parts[1]["thoughtSignature"], json!("CiQB0e2K"));
    assert!(!body.to_string().contains("anthropic-thinking"), "{body}");
}

#[test]
fn image_sizes_become_the_closest_supported_aspect_ratio() {
    use crate::imagegen::ImageSize;
    let ratio = |w, h| super::image::aspect_ratio(ImageSize::new(w, h));
    assert_eq!(ratio(1024, 1024), "1:1");
    assert_eq!(ratio(1920, 1080), "16:9");
    assert_eq!(ratio(1080, 1920), "9:16");
    assert_eq!(ratio(1536, 1024), "3:2");
    assert_eq!(ratio(2560, 1080), "21:9");
    assert_eq!(ratio(10_000, 10), "21:9", "the widest it has");
    assert_eq!(ratio(1000, 800), "5:4");
}
