#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;

#[test]
fn json_len_is_the_length_of_the_compact_text() {
    for value in [
        json!(null),
        json!({}),
        json!({"type": "object", "properties": {"path": {"type": "string", "description": "a \"quoted\" path\n"}}}),
        json!(["é", "日本", "\u{1f600}", 1.5, -3, true, {"a": [1, 2, {"b": null}]}]),
        Value::String("\u{0}\u{1f}\\/".into()),
    ] {
        assert_eq!(json_len(&value), value.to_string().len(), "{value}");
    }
}

#[test]
fn run_ids_are_fresh_and_time_ordered() {
    let a = run_id();
    let b = run_id();
    assert_ne!(a, b);
    assert_eq!(a.0.get_version_num(), 7);
    let ms = |id: RunId| id.0.get_timestamp().unwrap().to_unix().0;
    assert!(ms(b) >= ms(a) && ms(a) + 60 >= now_ms() / 1000, "{a} {b}");
}
