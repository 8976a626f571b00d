//! The critic through the real core runtime, with paused tokio time.

use std::time::Duration;

use executus::llm::Role;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{CriticTrigger, Verdict};
use executus::{Limits, RunEnd};
use executus_critic::{CriticConfig, DecisionSource, Exhausted, Extension, JudgementVerdict, WatchState};
use tokio::time::Instant;

use crate::common::{JUDGE, agent, critic, judgement, runtime, slow_agent_model};

fn limits(soft: u64, hard: u64) -> Limits {
    Limits {
        max_steps: 1000,
        soft_timeout: Some(Duration::from_secs(soft)),
        timeout: Duration::from_secs(hard),
        ..Limits::default()
    }
}

fn config(max_extensions: u32) -> CriticConfig {
    CriticConfig {
        max_extensions,
        extend_by: Extension { time: Duration::from_secs(20), steps: 3 },
        ..CriticConfig::default()
    }
}

/// soft 10 s, hard 30 s, a model answering every 3 s. Review 1 at 10 s: extend by 20 s
/// (hard deadline 50 s, next review at 20 s). Review 2 at 20 s: abort.
#[tokio::test(start_paused = true)]
async fn critic_extends_then_aborts_a_slow_run() {
    let fake = FakeProvider::new("fake");
    slow_agent_model(&fake, Duration::from_secs(3));
    fake.push(JUDGE, judgement("extend", "it is still finding new results"));
    fake.push(JUDGE, judgement("abort", "it is repeating the same search"));
    let (critic, escalations) = critic(&fake, config(2));
    let rt = runtime(&fake, critic.clone());

    let started = Instant::now();
    let handle = rt.spawn(agent(limits(10, 30)), "research this").await.unwrap();
    let out = handle.outcome().await;
    let took = started.elapsed();

    let RunEnd::Stopped { reason } = &out.end else { panic!("expected Stopped, got {:?}", out.end) };
    assert!(reason.contains("aborted by critic: it is repeating the same search"), "{reason}");
    // Ended at the second review (20 s), well before the original hard deadline (30 s)
    // would have mattered and long before the extended one (50 s).
    assert!(took >= Duration::from_secs(20) && took < Duration::from_secs(21), "{took:?}");

    // The transcript is kept: the input, then model calls and tool results every 3 s.
    assert_eq!(out.messages[0].role, Role::User);
    assert!(out.steps >= 6, "{}", out.steps);
    let tool_results = out.messages.iter().filter(|m| m.role == Role::Tool).count();
    assert!(tool_results >= 6, "{tool_results}");
    assert!(format!("{:?}", out.messages.last().unwrap()).contains("echo: step"));

    // Two reviews, one judge call each; the first saw the soft deadline and the steps.
    assert_eq!(fake.calls_for(JUDGE), 2);
    let first = fake.requests_for(JUDGE)[0].messages[0].text();
    assert!(first.contains("soft time limit"), "{first}");
    assert!(first.contains("Extensions granted so far: 0 (2 left)"), "{first}");
    assert!(first.contains("echo: step"), "{first}");
    let second = fake.requests_for(JUDGE)[1].messages[0].text();
    assert!(second.contains("Extensions granted so far: 1 (1 left)"), "{second}");

    let watch = critic.watch(out.run_id).unwrap();
    assert_eq!(watch.reviews, 2);
    assert_eq!(watch.state, WatchState::Aborted);
    assert_eq!(watch.escalations, 1);
    assert_eq!(watch.last_source, Some(DecisionSource::Judge));

    // The abort was escalated once, with the evidence.
    let sent = escalations.taken();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].run_id, out.run_id);
    assert_eq!(sent[0].agent, "worker");
    assert_eq!(sent[0].verdict, "abort");
    assert_eq!(sent[0].reason, "it is repeating the same search");
    assert_eq!(sent[0].trigger, CriticTrigger::SoftDeadline);
    assert_eq!(sent[0].extensions, 1);
    // (`sent[0].elapsed` is not asserted: the core measures it with `std::time::Instant`,
    // which paused tokio time does not move.)
}

/// Extensions run out: the judge always says extend, one extension is allowed, the
/// default `when_exhausted = continue` lets the run go on, and the (extended) hard
/// deadline ends it `TimedOut` with its transcript.
#[tokio::test(start_paused = true)]
async fn extensions_run_out_and_the_hard_deadline_ends_the_run() {
    let fake = FakeProvider::new("fake");
    slow_agent_model(&fake, Duration::from_secs(3));
    fake.fallback_for(JUDGE, judgement("extend", "almost there"));
    let (critic, escalations) = critic(&fake, config(1));
    let rt = runtime(&fake, critic.clone());

    let started = Instant::now();
    let out = rt.run(agent(limits(10, 30)), "research this").await.unwrap();
    let took = started.elapsed();

    let RunEnd::TimedOut { after } = out.end else { panic!("expected TimedOut, got {:?}", out.end) };
    // The original hard deadline was 30 s; one 20 s extension moved it to 50 s.
    assert!(after >= Duration::from_secs(50) && after < Duration::from_secs(51), "{after:?}");
    // The run really outlived 30 s. It ends at 50 s when the core measures run time with
    // tokio's clock; today the core's `started` is a `std::time::Instant`, which paused time
    // does not move, so the extension is counted from the review (10 s + 50 s = 60 s).
    assert!(took >= Duration::from_secs(50) && took <= Duration::from_secs(60), "{took:?}");
    assert_eq!(out.status(), "partial");
    assert!(out.messages.iter().filter(|m| m.role == Role::Tool).count() >= 15);

    // Review at 10 s (extended) and at 20 s (refused: exhausted); no review after a
    // continue, so the hard deadline decides.
    assert_eq!(fake.calls_for(JUDGE), 2);
    let watch = critic.watch(out.run_id).unwrap();
    assert_eq!(watch.reviews, 2);
    assert_eq!(watch.state, WatchState::Watching { extensions: 1 });
    assert_eq!(watch.last_verdict, Some(Verdict::Continue));
    assert_eq!(watch.last_source, Some(DecisionSource::Exhausted));
    assert!(escalations.taken().is_empty());
}

/// `when_exhausted = abort`: the refused extension ends the run `Stopped` and escalates.
#[tokio::test(start_paused = true)]
async fn exhausted_extensions_can_abort_instead() {
    let fake = FakeProvider::new("fake");
    slow_agent_model(&fake, Duration::from_secs(3));
    fake.fallback_for(JUDGE, judgement("extend", "almost there"));
    let (critic, escalations) = critic(&fake, CriticConfig { when_exhausted: Exhausted::Abort, ..config(1) });
    let rt = runtime(&fake, critic.clone());

    let started = Instant::now();
    let out = rt.run(agent(limits(10, 30)), "research this").await.unwrap();
    let RunEnd::Stopped { reason } = &out.end else { panic!("expected Stopped, got {:?}", out.end) };
    assert!(reason.contains("extension limit reached (1 of 1)"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(21));
    assert_eq!(escalations.taken().len(), 1);
}

/// At the step cap the critic adds `extend_by.steps`; when the judge then says continue,
/// the run ends `MaxSteps` with the extended count.
#[tokio::test(start_paused = true)]
async fn max_steps_extension_adds_steps_then_the_cap_ends_the_run() {
    let fake = FakeProvider::new("fake");
    slow_agent_model(&fake, Duration::from_millis(10));
    fake.push(JUDGE, judgement("extend", "nearly done"));
    fake.push(JUDGE, judgement("continue", "fine, but no more"));
    let (critic, _) = critic(&fake, config(2));
    let rt = runtime(&fake, critic.clone());

    let limits = Limits { max_steps: 2, ..Limits::default() };
    let out = rt.run(agent(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::MaxSteps { steps: 5 }, "{:?}", out.end);
    assert_eq!(fake.calls_for(JUDGE), 2);
    let first = fake.requests_for(JUDGE)[0].messages[0].text();
    assert!(first.contains("used all of its allowed steps"), "{first}");
    let watch = critic.watch(out.run_id).unwrap();
    assert_eq!(watch.reviews, 2);
    assert_eq!(watch.state, WatchState::Watching { extensions: 1 });
}

/// A judge that never answers is cut off by `judge_timeout`; the fallback (here: abort)
/// decides, so the run ends 5 s after its soft deadline instead of hanging.
#[tokio::test(start_paused = true)]
async fn a_hanging_judge_is_bounded_and_the_fallback_decides() {
    let fake = FakeProvider::new("fake");
    slow_agent_model(&fake, Duration::from_secs(3));
    fake.push(JUDGE, Outcome::hang());
    let config = CriticConfig {
        judge_timeout: Duration::from_secs(5),
        on_judge_failure: JudgementVerdict::Abort,
        ..config(2)
    };
    let (critic, escalations) = critic(&fake, config);
    let rt = runtime(&fake, critic.clone());

    let started = Instant::now();
    let out = rt.run(agent(limits(10, 30)), "go").await.unwrap();
    let took = started.elapsed();
    let RunEnd::Stopped { reason } = &out.end else { panic!("expected Stopped, got {:?}", out.end) };
    assert!(reason.contains("judge failed: no answer within 5s"), "{reason}");
    assert!(took >= Duration::from_secs(15) && took < Duration::from_secs(16), "{took:?}");
    let watch = critic.watch(out.run_id).unwrap();
    assert_eq!(watch.last_source, Some(DecisionSource::Fallback));
    assert_eq!(escalations.taken().len(), 1);
}
