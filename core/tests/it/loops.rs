//! Loop protection against scripted runaway models: each ends within its caps, with a
//! status, a reason and the transcript.

use std::sync::Arc;

use executus::llm::Role;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{AuditEvent, Ports};
use executus::tool::ToolError;
use executus::{Limits, LoopLimits, RunEnd, RunEvent};

use crate::common::{
    agent, all_results, answered, build, call, config, events_until_end, runtime, text_tool, tool_loop, tools,
};
use crate::doubles::AuditLog;

const INSTRUCTION: &str = "Loop protection";

#[tokio::test]
async fn the_same_call_forever_gets_a_finalize_turn_then_stops() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", Outcome::tool_calls([call("same", "echo", "again")]));
    let audit = AuditLog::new();
    let rt = runtime(&fake, Arc::default(), Ports { audit: audit.clone(), ..Ports::default() });
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut rx = handle.events();
    let events = events_until_end(&mut rx).await;
    let out = handle.outcome().await;
    let RunEnd::Stopped { reason } = &out.end else { panic!("expected a stop: {out:?}") };
    assert!(reason.starts_with("loop protection"), "{reason}");
    assert_eq!(out.status(), "stopped");
    // 3 identical calls trigger; then 2 finalize turns (the model ignores both); stop.
    let requests = fake.requests_for("m");
    assert_eq!(requests.len(), 5, "ends within the caps");
    assert_eq!(out.steps, 5);
    for (i, r) in requests.iter().enumerate() {
        let finalize = i >= 3;
        assert_eq!(r.tools.is_empty(), finalize, "request {i}: tools withheld only in finalize turns");
        let instructed =
            r.messages.last().is_some_and(|m| m.role == Role::User && m.text().contains(INSTRUCTION));
        assert_eq!(instructed, finalize, "request {i}");
    }
    assert!(requests[3].messages.last().unwrap().text().contains("repeated 3 times"));
    // The transcript is kept: 3 real results, then the 2 refused finalize-turn calls.
    let results = all_results(&out.messages);
    assert_eq!(results.len(), 5);
    assert!(results[..3].iter().all(|r| r.content == "echo: again"));
    assert!(results[3..].iter().all(|r| r.is_error && r.content.contains("withheld")));
    let triggers: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::LoopProtection { trigger, action, .. } => {
                Some((trigger.to_string(), action.to_string()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(triggers.first(), Some(&("cycle".to_owned(), "finalize".to_owned())));
    assert_eq!(triggers.last().map(|t| t.1.as_str()), Some("stop"));
    assert!(
        audit
            .events()
            .iter()
            .any(|e| matches!(e, AuditEvent::LoopProtection { trigger, .. } if trigger.as_str() == "cycle"))
    );
}

#[tokio::test]
async fn a_finalize_turn_answered_with_text_completes_the_run() {
    let fake = FakeProvider::new("fake");
    for _ in 0..3 {
        fake.push("m", Outcome::tool_calls([call("same", "echo", "again")]));
    }
    fake.push("m", Outcome::text("here is what I have"));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(out.output.as_deref(), Some("here is what I have"));
    assert!(fake.requests_for("m")[3].tools.is_empty());
}

#[tokio::test]
async fn distinct_calls_that_learn_nothing_trigger_stagnation() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("same_answer", usize::MAX));
    let tools = tools(Arc::default())
        .with(text_tool("same_answer", |_| async { Ok::<_, ToolError>("no results".to_owned()) }));
    let rt = build(&fake, tools, Ports::default(), config(), None);
    let handle = rt.spawn(agent().with_tools(["same_answer"]), "go").await.unwrap();
    let mut rx = handle.events();
    let events = events_until_end(&mut rx).await;
    let out = handle.outcome().await;
    let RunEnd::Stopped { reason } = &out.end else { panic!("expected a stop: {out:?}") };
    assert!(reason.contains("loop protection"), "{reason}");
    // The first result is new; 4 more steps with nothing new trigger stagnation at step 5.
    let first = events.iter().find_map(|e| match e {
        RunEvent::LoopProtection { trigger, action, .. } => Some((trigger.as_str(), action.as_str())),
        _ => None,
    });
    assert_eq!(first, Some(("stagnation", "finalize")));
    let requests = fake.requests_for("m");
    let finalize_at = requests.iter().position(|r| r.tools.is_empty()).unwrap();
    assert_eq!(finalize_at, 5, "stagnation after the 5th step");
    assert!(out.steps as usize <= finalize_at + 2, "stops within the finalize cap: {}", out.steps);
    assert!(all_results(&out.messages).len() >= 5);
}

#[tokio::test]
async fn a_tool_that_always_fails_ends_in_an_unproductive_stop_or_the_error_limit() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("fail", usize::MAX));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut rx = handle.events();
    let events = events_until_end(&mut rx).await;
    let out = handle.outcome().await;
    assert_eq!(out.status(), "stopped", "{out:?}");
    assert!(matches!(&out.end, RunEnd::ToolErrorLimit { .. } | RunEnd::Stopped { .. }), "{out:?}");
    assert!(out.end.reason().is_some());
    // Four failing steps trigger the unproductive finalize turn first.
    let first = events.iter().find_map(|e| match e {
        RunEvent::LoopProtection { trigger, .. } => Some(trigger.as_str()),
        _ => None,
    });
    assert_eq!(first, Some("unproductive"));
    assert!(out.steps <= 6, "ends within caps: {} steps", out.steps);
    assert!(all_results(&out.messages).iter().all(|r| r.is_error));
}

#[tokio::test]
async fn loop_limits_are_configuration() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for(
        "m",
        Outcome::dynamic(|req| {
            // The same call, but distinct ids: only the canonical (name, args) matters.
            Outcome::tool_calls([call(&format!("id{}", answered(req)), "echo", "again")])
        }),
    );
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let limits = Limits {
        loops: LoopLimits { cycle: 2, finalize_turns: 0, ..LoopLimits::default() },
        ..Limits::default()
    };
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    let RunEnd::Stopped { reason } = &out.end else { panic!("expected a stop: {out:?}") };
    assert!(reason.contains("cycle") && reason.contains("repeated 2 times"), "{reason}");
    assert_eq!(out.steps, 2, "no finalize turn allowed");
}
