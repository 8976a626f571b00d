//! Errors inside bodies: classification, message, status, scrubbing.

use super::*;

#[test]
fn in_body_error_classification_table() {
    let t = ErrorKind::Transient;
    let cases: [(Value, ErrorKind); 12] = [
        (json!({ "code": 500, "message": "x", "type": "server_error" }), ErrorKind::Transient),
        (
            json!({ "code": 400, "message": "bad grammar", "type": "invalid_request_error" }),
            ErrorKind::Permanent,
        ),
        (json!({ "code": 404, "message": "x" }), ErrorKind::NotFound),
        (json!({ "code": "429", "message": "x" }), ErrorKind::Transient),
        (json!({ "code": "rate_limit_exceeded", "message": "x", "type": "requests" }), ErrorKind::Transient),
        (json!({ "code": "model_not_found", "message": "x" }), ErrorKind::NotFound),
        (json!({ "code": "invalid_api_key", "message": "x" }), ErrorKind::Permanent),
        (json!({ "message": "x", "type": "overloaded_error" }), ErrorKind::Transient),
        (
            json!({ "message": "The model `x` does not exist", "type": "invalid_request_error" }),
            ErrorKind::NotFound,
        ),
        (json!({ "message": "something odd" }), t),
        (json!("model foo not found"), ErrorKind::NotFound),
        (json!({ "code": 7, "message": "weird code" }), t),
    ];
    for (error, kind) in cases {
        let e = body_error(&http(), "m", &error, t);
        assert_eq!(e.kind, kind, "{error}");
    }
    assert_eq!(classify(None, None, "", ErrorKind::Permanent), ErrorKind::Permanent);
}

#[test]
fn in_body_error_message_status_and_scrubbing() {
    let error =
        json!({ "code": 503, "message": format!("key {SECRET} is overloaded"), "type": "unavailable_error" });
    let e = body_error(&http(), "m", &error, ErrorKind::Transient);
    assert_eq!(e.status, Some(503));
    assert!(e.message.starts_with("unavailable_error: key [redacted] is overloaded"), "{}", e.message);
    assert!(e.message.contains("(code 503)"));
    assert!(!format!("{e} {e:?}").contains(SECRET));
    // A huge message is cut.
    let e = body_error(&http(), "m", &json!({ "message": "x".repeat(100_000) }), ErrorKind::Transient);
    assert!(e.message.chars().count() <= 1001);
}
