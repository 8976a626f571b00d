//! Server-sent-event framing: `event: NAME` (optional), one `data:` line of JSON, a blank line.
//! JSON never contains a raw newline (serde escapes them), so one `data:` line always suffices.

use serde::Serialize;

/// Appends one event to `out`.
pub(super) fn frame(out: &mut Vec<u8>, event: Option<&str>, data: &impl Serialize) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(event.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    // Serialising our own structs of strings and numbers into a Vec cannot fail; should it
    // ever, the event carries `null` rather than a broken line.
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"\n\n");
}

/// Appends a raw `data: TEXT` event (Chat Completions' `[DONE]`).
pub(super) fn raw(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\n\n");
}
