use std::sync::Arc;

use executus_llm::fake::{FakeProvider, Outcome};
use executus_llm::{Message, Part, Request, Role, ToolCall, ToolResult};

use super::*;

fn long(n: usize) -> String {
    "word ".repeat(n)
}

fn transcript() -> Vec<Message> {
    let mut m = vec![Message::user("the task")];
    for i in 0..10 {
        m.push(Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: format!("c{i}"),
                name: "echo".into(),
                args: serde_json::json!({"text": long(50)}),
                signature: None,
            })],
        });
        m.push(Message::tool_results([ToolResult {
            id: format!("c{i}"),
            name: "echo".into(),
            content: long(200),
            is_error: false,
        }]));
    }
    m
}

fn settings() -> CompactionSettings {
    CompactionSettings { threshold: 0.5, default_context_tokens: 2000, keep_recent: 3, ..Default::default() }
}

#[test]
fn boundary_never_splits_a_call_from_its_result() {
    let m = transcript();
    let cut = boundary(&m, 3).expect("a cut");
    assert_ne!(m[cut].role, Role::Tool, "cut at {cut} lands on a tool result");
    assert!(cut >= 1 && cut <= m.len() - 3);
    for keep in 0..8 {
        if let Some(cut) = boundary(&m, keep)
            && cut < m.len()
        {
            assert_ne!(m[cut].role, Role::Tool, "keep {keep}: cut {cut}");
        }
    }
    assert_eq!(boundary(&m[..4], 3), None);
}

#[tokio::test]
async fn over_budget_requests_are_summarised_once_and_the_original_is_untouched() {
    let fake = FakeProvider::new("fake");
    fake.push("sum", Outcome::text("SUMMARY OF EARLIER WORK"));
    let meta = MetaLlm::from_model(fake.model("sum"));
    let cache = CompactionCache::default();
    let request = Request { messages: transcript(), ..Request::default() };
    let original = request.clone();
    let (sent, event) = compact(request.clone(), &settings(), 2000, || Some(meta.clone()), &cache).await;
    assert_eq!(request, original, "the canonical request is not modified");
    assert!(matches!(event, Some(AuditEvent::Compaction { .. })), "{event:?}");
    assert_eq!(sent.messages[0], original.messages[0], "the task is kept verbatim");
    assert!(sent.messages[1].text().contains("SUMMARY OF EARLIER WORK"));
    assert!(sent.messages.len() < original.messages.len());
    assert_eq!(sent.messages.last(), original.messages.last());
    // Pairs intact: every tool result in the sent request answers a call present in it.
    let calls: Vec<String> =
        sent.messages.iter().flat_map(|m| m.tool_calls().map(|c| c.id.clone())).collect();
    for m in &sent.messages {
        for p in &m.parts {
            if let Part::ToolResult(r) = p {
                assert!(calls.contains(&r.id), "orphan result {}", r.id);
            }
        }
    }
    // The summary call saw the old turns.
    let asked = fake.requests_for("sum");
    assert_eq!(asked.len(), 1);
    assert!(asked[0].messages[0].text().contains("result of echo"));
    // A grown transcript reuses the cached summary while it fits.
    let mut grown = original.clone();
    grown.messages.push(Message::user("one more"));
    let (sent2, event2) = compact(grown, &settings(), 2000, || Some(meta.clone()), &cache).await;
    assert!(event2.is_none());
    assert!(sent2.messages[1].text().contains("SUMMARY OF EARLIER WORK"));
    assert_eq!(fake.requests_for("sum").len(), 1, "no second summary call");
}

#[tokio::test]
async fn a_failed_summary_sends_the_request_uncompacted() {
    let fake = FakeProvider::new("fake");
    fake.push("sum", Outcome::permanent("summary model is down"));
    let meta = MetaLlm::from_model(Arc::clone(&fake.model("sum")));
    let request = Request { messages: transcript(), ..Request::default() };
    let (sent, event) =
        compact(request.clone(), &settings(), 2000, || Some(meta.clone()), &CompactionCache::default()).await;
    assert_eq!(sent, request);
    assert!(event.is_none());
}

#[tokio::test]
async fn small_requests_are_left_alone() {
    let request = Request::user("hi");
    let (sent, event) =
        compact(request.clone(), &settings(), 2000, || None, &CompactionCache::default()).await;
    assert_eq!(sent, request);
    assert!(event.is_none());
}

#[test]
fn repeated_images_are_sent_once() {
    let img = Part::Image { mime: "image/png".into(), data: vec![1, 2, 3, 4] };
    let other = Part::Image { mime: "image/png".into(), data: vec![9, 9] };
    let mut request = Request {
        messages: vec![
            Message { role: Role::User, parts: vec![img.clone(), Part::Text { text: "look".into() }] },
            Message::assistant("ok"),
            Message { role: Role::User, parts: vec![img.clone(), other.clone()] },
        ],
        ..Request::default()
    };
    assert_eq!(dedup_attachments(&mut request), 1);
    assert_eq!(request.messages[0].parts[0], img);
    assert!(matches!(&request.messages[2].parts[0], Part::Text { text } if text.contains("same image")));
    assert_eq!(request.messages[2].parts[1], other);
}
