use serde_json::json;

use super::*;

#[test]
fn schemas_go_through_the_strict_transform_unless_they_hold_a_map() {
    let input = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"path": {"type": "string"}, "head": {"type": "number", "minimum": 0}},
        "required": ["path"],
    });
    let out = for_model(&input);
    assert_eq!(out["additionalProperties"], json!(false));
    assert_eq!(out["required"], json!(["head", "path"]));
    assert_eq!(out["properties"]["head"]["type"], json!(["number", "null"]));
    assert!(out.get("$schema").is_none());
    let map = json!({"type": "object", "properties": {"env": {"type": "object", "additionalProperties": {"type": "string"}}}});
    assert_eq!(for_model(&map), map, "a map passes unchanged");
    // A schema without a type gets one: the provider APIs want an object root.
    assert_eq!(for_model(&json!({}))["type"], json!("object"));
}

#[test]
fn nulls_for_optional_properties_are_dropped_at_every_level() {
    let schema = json!({
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "head": {"type": "number"},
            "opts": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "required": ["b"]},
        },
        "required": ["path", "opts"],
    });
    let args = json!({"path": null, "head": null, "opts": {"a": null, "b": null}, "extra": 1});
    let Value::Object(args) = args else { unreachable!() };
    let out = Value::Object(server_args(args, &schema));
    assert_eq!(out, json!({"path": null, "opts": {"b": null}, "extra": 1}));
}
