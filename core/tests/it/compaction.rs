//! Context compaction through a real run: the model is sent a compacted request (summary +
//! recent turns, tool pairs intact), while the run's transcript stays whole.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use executus::agent::{Limits, LoopLimits};
use executus::config::CompactionSettings;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Part, Request};
use executus::ports::{AuditEvent, Ports};
use executus::{RunEnd, RuntimeConfig};

use crate::common::{agent, all_results, build, call, tools};
use crate::doubles::AuditLog;

fn pairs_intact(request: &Request) -> bool {
    let calls: Vec<&str> =
        request.messages.iter().flat_map(|m| m.tool_calls().map(|c| c.id.as_str())).collect();
    request.messages.iter().flat_map(|m| m.parts.iter()).all(|p| match p {
        Part::ToolResult(r) => calls.contains(&r.id.as_str()),
        _ => true,
    })
}

#[tokio::test]
async fn long_runs_send_compacted_requests_and_keep_the_whole_transcript() {
    let fake = FakeProvider::new("fake");
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let padding = "lorem ipsum dolor sit amet ".repeat(20);
    fake.fallback_for(
        "m",
        Outcome::dynamic(move |_req| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if n < 12 {
                Outcome::tool_calls([call(&format!("c{n}"), "echo", &format!("step {n} {padding}"))])
            } else {
                Outcome::text("all done")
            }
        }),
    );
    fake.fallback_for("sum", Outcome::text("SUMMARY-TEXT: twelve echo steps so far"));
    let audit = AuditLog::new();
    let ports = Ports { audit: audit.clone(), ..Ports::default() };
    let config = RuntimeConfig {
        streaming: false,
        compaction: CompactionSettings {
            threshold: 0.5,
            default_context_tokens: 2_000,
            keep_recent: 4,
            summary_model: Some("fake/sum".into()),
            ..CompactionSettings::default()
        },
        ..RuntimeConfig::default()
    };
    let rt = build(&fake, tools(Arc::new(AtomicUsize::new(0))), ports, config, None);
    let limits = Limits {
        max_steps: 20,
        loops: LoopLimits { cycle: 50, stagnation: 50, unproductive: 50, finalize_turns: 2 },
        ..Limits::default()
    };
    let out = rt.run(agent().with_limits(limits), "echo a lot").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{:?}", out.end);

    // The transcript is whole: every one of the 12 results, in order.
    let results = all_results(&out.messages);
    assert_eq!(results.len(), 12);
    for (i, r) in results.iter().enumerate() {
        assert!(r.content.starts_with(&format!("echo: step {i} ")), "{}", r.content);
    }

    // What the model was sent: compacted once the transcript grew past the budget.
    let sent = fake.requests_for("m");
    let compacted: Vec<&Request> =
        sent.iter().filter(|r| r.messages.iter().any(|m| m.text().contains("SUMMARY-TEXT"))).collect();
    assert!(!compacted.is_empty(), "no compacted request was sent");
    for r in &compacted {
        assert_eq!(r.messages[0].text(), "echo a lot", "the task is kept first");
        assert!(pairs_intact(r), "a tool result lost its call: {r:?}");
        assert!(r.messages.len() < out.messages.len());
    }
    assert!(fake.calls_for("sum") >= 1);
    assert!(
        audit.events().iter().any(|e| matches!(e, AuditEvent::Compaction { replaced, .. } if *replaced > 0))
    );
}

#[tokio::test]
async fn a_failing_summary_model_leaves_the_run_uncompacted_and_alive() {
    let fake = FakeProvider::new("fake");
    let counter = Arc::new(AtomicUsize::new(0));
    let c = counter.clone();
    let padding = "x".repeat(600);
    fake.fallback_for(
        "m",
        Outcome::dynamic(move |_req| {
            let n = c.fetch_add(1, Ordering::SeqCst);
            if n < 6 {
                Outcome::tool_calls([call(&format!("c{n}"), "echo", &format!("{n} {padding}"))])
            } else {
                Outcome::text("ok")
            }
        }),
    );
    fake.fallback_for("sum", Outcome::permanent("summary model down"));
    let config = RuntimeConfig {
        streaming: false,
        compaction: CompactionSettings {
            threshold: 0.5,
            default_context_tokens: 1_000,
            keep_recent: 2,
            summary_model: Some("fake/sum".into()),
            ..CompactionSettings::default()
        },
        ..RuntimeConfig::default()
    };
    let rt = build(&fake, tools(Arc::new(AtomicUsize::new(0))), Ports::default(), config, None);
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    let last = fake.requests_for("m").last().cloned().unwrap();
    assert_eq!(all_results(&last.messages).len(), 6, "sent uncompacted");
    assert!(fake.calls_for("sum") >= 1);
}

/// An image attached twice is sent once, at every step: the request grown from step to step
/// keeps the first copy and the reference to it, and the transcript keeps both images.
#[tokio::test]
async fn a_repeated_attachment_is_sent_once_at_every_step() {
    use executus::llm::{Message, Role};
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "look")]));
    fake.push("m", Outcome::text("the same picture twice"));
    let rt = build(&fake, tools(Arc::default()), Ports::default(), RuntimeConfig::default(), None);
    let image = || Part::Image { mime: "image/png".into(), data: vec![7u8; 2048] };
    let input = vec![
        Message { role: Role::User, parts: vec![Part::Text { text: "first".into() }, image()] },
        Message { role: Role::User, parts: vec![Part::Text { text: "again".into() }, image()] },
    ];
    let out = rt.run(agent(), input).await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    let images = |messages: &[executus::llm::Message]| {
        messages.iter().flat_map(|m| &m.parts).filter(|p| matches!(p, Part::Image { .. })).count()
    };
    let sent = fake.requests_for("m");
    assert_eq!(sent.len(), 2);
    for request in &sent {
        assert_eq!(images(&request.messages), 1, "one copy per request");
        assert!(request.messages[1].text().contains("the same image as attached earlier"));
    }
    assert_eq!(images(&out.messages), 2, "the transcript keeps both");
}
