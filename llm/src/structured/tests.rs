use serde::Deserialize;
use serde_json::json;

use super::*;

#[test]
fn strip_code_fences_handles_fence_forms() {
    assert_eq!(strip_code_fences("```json\n{\"a\":1}\n```"), "{\"a\":1}");
    assert_eq!(strip_code_fences("```JSON\r\n[1, 2]\r\n```\n"), "[1, 2]");
    assert_eq!(strip_code_fences("```\n{\"a\":1}\n```"), "{\"a\":1}");
    assert_eq!(strip_code_fences("```json {\"a\":1}```"), "{\"a\":1}");
    assert_eq!(strip_code_fences("```{\"a\":1}```"), "{\"a\":1}");
    // A truncated reply without its closing fence still loses the opening one.
    assert_eq!(strip_code_fences("```json\n{\"a\":1}"), "{\"a\":1}");
    assert_eq!(strip_code_fences("  {\"a\":1}  "), "{\"a\":1}");
    // Prose is not guessed away.
    assert_eq!(strip_code_fences("Here you go: {\"a\":1}"), "Here you go: {\"a\":1}");
    assert_eq!(strip_code_fences("{\"a\":1} hope that helps"), "{\"a\":1} hope that helps");
    assert_eq!(strip_code_fences("```"), "");
    assert_eq!(strip_code_fences(""), "");
}

#[test]
fn sanitize_name_keeps_the_allowed_alphabet_and_length() {
    assert_eq!(sanitize_name("Report"), "Report");
    assert_eq!(sanitize_name("Array_of_Option<Foo>"), "Array_of_Option_Foo_");
    assert_eq!(sanitize_name("a.b c-d"), "a_b_c-d");
    assert_eq!(sanitize_name(""), "response");
    assert_eq!(sanitize_name("é"), "_");
    assert_eq!(sanitize_name(&"x".repeat(100)).len(), 64);
}

#[test]
fn non_required_properties_become_nullable_in_every_form() {
    let schema = json!({
        "type": "object",
        "properties": {
            "plain": { "type": "string" },
            "multi": { "type": ["integer", "string"] },
            "choice": { "type": "string", "enum": ["a", "b"] },
            "bare_enum": { "enum": ["x", "y"] },
            "referenced": { "$ref": "#/$defs/Inner" },
            "either": { "anyOf": [{ "type": "string" }, { "type": "integer" }] },
            "already": { "type": ["string", "null"] },
            "must": { "type": "boolean" }
        },
        "required": ["must"],
        "$defs": { "Inner": { "type": "object", "properties": { "v": { "type": "integer" } } } }
    });
    let out = strict_schema(schema);
    let p = &out["properties"];
    assert_eq!(p["plain"], json!({ "type": ["string", "null"] }));
    assert_eq!(p["multi"], json!({ "type": ["integer", "string", "null"] }));
    assert_eq!(p["choice"], json!({ "type": ["string", "null"], "enum": ["a", "b", null] }));
    assert_eq!(p["bare_enum"], json!({ "enum": ["x", "y", null] }));
    assert_eq!(p["referenced"], json!({ "anyOf": [{ "$ref": "#/$defs/Inner" }, { "type": "null" }] }));
    assert_eq!(
        p["either"],
        json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }, { "type": "null" }] })
    );
    assert_eq!(p["already"], json!({ "type": ["string", "null"] }));
    assert_eq!(p["must"], json!({ "type": "boolean" }));
    assert_eq!(
        out["required"],
        json!(["already", "bare_enum", "choice", "either", "multi", "must", "plain", "referenced"])
    );
    assert_eq!(
        out["$defs"]["Inner"],
        json!({
            "type": "object",
            "properties": { "v": { "type": ["integer", "null"] } },
            "required": ["v"],
            "additionalProperties": false
        })
    );
}

#[test]
fn keyword_rewrites() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "T",
        "type": "object",
        "properties": {
            "one": { "oneOf": [{ "type": "string" }, { "type": "integer", "format": "int64" }] },
            "both": { "oneOf": [{ "type": "string" }], "anyOf": [{ "type": "string" }] },
            "merged": { "allOf": [{ "type": "string", "format": "email" }], "description": "d" },
            "constant": { "const": "fixed", "type": "string" },
            "when": { "type": "string", "format": "date-time", "default": "now", "examples": ["x"] },
            "link": { "type": "string", "format": "uri", "minLength": 3, "pattern": "^h" },
            "external": { "$ref": "other.json#/X", "description": "gone" },
            "list": { "type": "array", "items": { "type": "object", "properties": {} }, "uniqueItems": true, "minItems": 1 },
            "map": { "type": "object", "additionalProperties": { "type": "integer" } }
        },
        "required": ["one", "both", "merged", "constant", "when", "link", "external", "list", "map"]
    });
    let out = strict_schema(schema);
    assert!(out.get("$schema").is_none());
    assert!(out.get("title").is_none());
    let p = &out["properties"];
    assert_eq!(p["one"], json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }] }));
    assert_eq!(
        p["both"],
        json!({ "anyOf": [{ "type": "string" }], "allOf": [{ "anyOf": [{ "type": "string" }] }] })
    );
    assert_eq!(p["merged"], json!({ "type": "string", "format": "email", "description": "d" }));
    assert_eq!(p["constant"], json!({ "type": "string", "enum": ["fixed"] }));
    assert_eq!(p["when"], json!({ "type": "string", "format": "date-time" }));
    assert_eq!(p["link"], json!({ "type": "string", "pattern": "^h" }));
    assert_eq!(p["external"], json!({ "$ref": "other.json#/X" }));
    assert_eq!(
        p["list"],
        json!({
            "type": "array",
            "items": { "type": "object", "properties": {}, "required": [], "additionalProperties": false }
        })
    );
    assert_eq!(p["map"], json!({ "type": "object", "additionalProperties": false }));
}

#[test]
fn a_self_referencing_ref_with_siblings_does_not_recurse_forever() {
    let schema = json!({
        "$ref": "#/$defs/Node",
        "description": "root",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": { "next": { "$ref": "#/$defs/Node", "description": "again" } },
                "required": ["next"]
            }
        }
    });
    let out = strict_schema(schema);
    // Inlined once at the root; the inner self-reference stays a plain `$ref`.
    assert_eq!(out["type"], "object");
    assert_eq!(out["description"], "root");
    assert_eq!(out["additionalProperties"], false);
    assert_eq!(out["properties"]["next"], json!({ "$ref": "#/$defs/Node" }));
    assert_eq!(out["$defs"]["Node"]["properties"]["next"], json!({ "$ref": "#/$defs/Node" }));
    assert_eq!(out["$defs"]["Node"]["additionalProperties"], false);
}

#[derive(Debug, PartialEq, Deserialize)]
struct WithDefault {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    nick: Option<String>,
}

#[test]
fn decode_accepts_null_for_defaulted_fields() {
    let v: WithDefault = decode(r#"{"name":"a","tags":null,"nick":null}"#).unwrap();
    assert_eq!(v, WithDefault { name: "a".into(), tags: vec![], nick: None });
    let v: WithDefault = decode("```json\n{\"name\":\"a\",\"tags\":[\"t\"],\"nick\":\"n\"}\n```").unwrap();
    assert_eq!(v.tags, vec!["t".to_owned()]);
    assert!(decode::<WithDefault>(r#"{"name":null}"#).is_err());
    assert!(decode::<WithDefault>("not json").is_err());
}

#[test]
fn head_cuts_on_char_boundaries() {
    assert_eq!(head("short", 200), "short");
    assert_eq!(head("ééééé", 3), "ééé...");
    assert_eq!(head(&"a".repeat(300), 200).len(), 203);
}
