//! Session ids: which requests belong to one agent session, so that per-session guard state
//! (loop protection, the finalize hard cap) sees the whole session and not one request.
//!
//! An explicit header wins: `x-executus-session`, then the clients' own `x-session-id`
//! (OpenCode), `session-id` (Codex), `x-claude-code-session-id` (Claude Code). Otherwise the
//! id is a fingerprint: `fp:` + the first 20 hex digits of
//! `sha256(key | model | first user message's text, first 512 characters)`.
//!
//! The fingerprint deliberately leaves out the system prompt and every tool-call id: clients
//! put timestamps, the working directory and fresh ids there, and a fingerprint over them gives
//! every request a session of its own, which silently disables every stateful guardrail.
//!
//! Sessions are scoped by key: [`SessionId::store_key`] prefixes the key's name, so two keys
//! that send the same header value (or the same first message) never share state.

use executus_llm::{Request, Role};
use http::HeaderMap;
use sha2::{Digest, Sha256};

/// The headers that name a session, in the order they are consulted.
pub const SESSION_HEADERS: [&str; 4] =
    ["x-executus-session", "x-session-id", "session-id", "x-claude-code-session-id"];

/// Longest header value taken as a session id.
const MAX_HEADER_ID: usize = 200;

/// A resolved session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionId {
    /// The id as the client sees it (`x-executus-session` in every answer).
    pub id: String,
    /// The header it came from, or `None` for a fingerprint.
    pub header: Option<&'static str>,
    /// The key's name.
    pub key: String,
}

impl SessionId {
    /// The session's key in the store: the key's name and the id.
    pub fn store_key(&self) -> String {
        format!("{}\u{1f}{}", self.key, self.id)
    }
}

/// The session of a request from key `key` asking for `model`.
pub fn resolve(headers: &HeaderMap, key: &str, model: &str, request: &Request) -> SessionId {
    for name in SESSION_HEADERS {
        let value =
            headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| {
                !v.is_empty() && v.len() <= MAX_HEADER_ID && v.bytes().all(|b| b.is_ascii_graphic())
            });
        if let Some(value) = value {
            return SessionId { id: value.to_owned(), header: Some(name), key: key.to_owned() };
        }
    }
    SessionId { id: fingerprint(key, model, request), header: None, key: key.to_owned() }
}

/// `fp:` + 20 hex digits of `sha256(key | model | first user text[..512 chars])`.
pub fn fingerprint(key: &str, model: &str, request: &Request) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update(b"|");
    hasher.update(model.as_bytes());
    hasher.update(b"|");
    hash_first_user_text(&mut hasher, request);
    let digest = hasher.finalize();
    let mut out = String::with_capacity(23);
    out.push_str("fp:");
    for byte in &digest[..10] {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

/// Feeds `hasher` the text of the first user message (its text parts joined by newlines), first
/// 512 characters — without building that text (this runs on every request).
fn hash_first_user_text(hasher: &mut Sha256, request: &Request) {
    let Some(first) = request.messages.iter().find(|m| m.role == Role::User) else {
        return;
    };
    let mut left = FINGERPRINT_CHARS;
    // Whether the joined text so far is non-empty (a newline goes only after such text).
    let mut any = false;
    for part in &first.parts {
        let executus_llm::Part::Text { text } = part else { continue };
        if left == 0 {
            break;
        }
        if any {
            hasher.update(b"\n");
            left -= 1;
        }
        let (end, taken) = prefix_chars(text, left);
        hasher.update(&text.as_bytes()[..end]);
        left -= taken;
        any |= !text.is_empty();
    }
}

/// Characters of the first user message that name a fingerprinted session.
const FINGERPRINT_CHARS: usize = 512;

/// The byte length of `text`'s first `max` characters, and how many characters that is.
fn prefix_chars(text: &str, max: usize) -> (usize, usize) {
    match text.char_indices().nth(max) {
        Some((end, _)) => (end, max),
        None => (text.len(), text.chars().count()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use executus_llm::{Message, Part, ToolCall, ToolResult};
    use serde_json::json;

    use super::*;

    fn conversation(system: &str, call_id: &str, turns: usize) -> Request {
        let mut messages = vec![Message::user("fix the failing test in src/lib.rs")];
        for i in 0..turns {
            let id = format!("{call_id}-{i}");
            messages.push(Message {
                role: Role::Assistant,
                parts: vec![Part::ToolCall(ToolCall {
                    id: id.clone(),
                    name: "Read".into(),
                    args: json!({"i": i}),
                    signature: None,
                })],
            });
            messages.push(Message::tool_results([ToolResult {
                id,
                name: "Read".into(),
                content: "x".into(),
                is_error: false,
            }]));
        }
        Request { system: Some(system.into()), messages, ..Request::default() }
    }

    /// The fingerprint as first shipped (the joined text built, then cut): sessions stored
    /// under it must keep their ids across an upgrade.
    fn fingerprint_as_shipped(key: &str, model: &str, request: &Request) -> String {
        let mut text = String::new();
        if let Some(first) = request.messages.iter().find(|m| m.role == Role::User) {
            for part in &first.parts {
                if let Part::Text { text: t } = part {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(t);
                }
            }
        }
        let text: String = text.chars().take(512).collect();
        let digest = Sha256::digest(format!("{key}|{model}|{text}").as_bytes());
        let hex: String = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        format!("fp:{hex}")
    }

    #[test]
    fn fingerprints_match_the_shipped_ones() {
        let text = |t: &str| Part::Text { text: t.to_owned() };
        let image = Part::Image { mime: "image/png".into(), data: vec![1, 2, 3] };
        let cases: Vec<Vec<Part>> = vec![
            vec![],
            vec![text("")],
            vec![text("hello")],
            vec![text(""), text("after an empty part")],
            vec![text("a"), image.clone(), text("b"), text(""), text("c")],
            vec![text(&"x".repeat(511)), text("yz")],
            vec![text(&"x".repeat(512)), text("yz")],
            vec![text(&"é".repeat(700))],
            vec![text(&"日本".repeat(300)), text("tail")],
            vec![image, text(&"ü".repeat(510)), text("ab")],
        ];
        for parts in cases {
            let request = Request {
                messages: vec![
                    Message { role: Role::Assistant, parts: vec![text("not the user")] },
                    Message { role: Role::User, parts: parts.clone() },
                    Message::user("a later message"),
                ],
                ..Request::default()
            };
            assert_eq!(
                fingerprint("alice", "fast", &request),
                fingerprint_as_shipped("alice", "fast", &request),
                "{parts:?}"
            );
        }
        let none = Request { messages: vec![], ..Request::default() };
        assert_eq!(fingerprint("k", "m", &none), fingerprint_as_shipped("k", "m", &none));
    }

    #[test]
    fn tool_call_ids_and_system_timestamps_do_not_change_the_session() {
        let a =
            resolve(&HeaderMap::new(), "alice", "fast", &conversation("Now: 10:00:01, cwd /a", "toolu_a", 1));
        let b =
            resolve(&HeaderMap::new(), "alice", "fast", &conversation("Now: 10:00:07, cwd /b", "toolu_b", 1));
        assert_eq!(a, b);
        assert!(a.id.starts_with("fp:") && a.id.len() == 23, "{}", a.id);
        assert_eq!(a.header, None);
    }

    #[test]
    fn three_requests_of_one_conversation_share_a_session() {
        let ids: Vec<String> = (0..3)
            .map(|turns| resolve(&HeaderMap::new(), "alice", "fast", &conversation("s", "c", turns)).id)
            .collect();
        assert_eq!(ids[0], ids[1]);
        assert_eq!(ids[1], ids[2]);
    }

    #[test]
    fn key_model_and_first_message_separate_sessions() {
        let base = conversation("s", "c", 0);
        let a = resolve(&HeaderMap::new(), "alice", "fast", &base);
        assert_ne!(a.id, resolve(&HeaderMap::new(), "bob", "fast", &base).id);
        assert_ne!(a.id, resolve(&HeaderMap::new(), "alice", "slow", &base).id);
        let other = Request::user("something else");
        assert_ne!(a.id, resolve(&HeaderMap::new(), "alice", "fast", &other).id);
        // Only the first 512 characters count.
        let long_a = Request::user(format!("{}A", "x".repeat(512)));
        let long_b = Request::user(format!("{}B", "x".repeat(512)));
        assert_eq!(
            resolve(&HeaderMap::new(), "k", "m", &long_a).id,
            resolve(&HeaderMap::new(), "k", "m", &long_b).id
        );
    }

    #[test]
    fn headers_win_in_order_and_are_scoped_by_key() {
        let mut headers = HeaderMap::new();
        headers.insert("x-claude-code-session-id", "cc-1".parse().unwrap());
        let cc = resolve(&headers, "alice", "m", &Request::user("hi"));
        assert_eq!((cc.id.as_str(), cc.header), ("cc-1", Some("x-claude-code-session-id")));
        headers.insert("session-id", "codex-1".parse().unwrap());
        assert_eq!(resolve(&headers, "alice", "m", &Request::user("hi")).id, "codex-1");
        headers.insert("x-executus-session", "mine".parse().unwrap());
        let mine = resolve(&headers, "alice", "m", &Request::user("hi"));
        assert_eq!(mine.id, "mine");
        let bob = resolve(&headers, "bob", "m", &Request::user("hi"));
        assert_eq!(mine.id, bob.id);
        assert_ne!(mine.store_key(), bob.store_key(), "two keys never share a session");
        headers.insert("x-executus-session", " ".parse().unwrap());
        assert_eq!(
            resolve(&headers, "alice", "m", &Request::user("hi")).id,
            "codex-1",
            "a blank header is skipped"
        );
    }
}
