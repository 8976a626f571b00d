use std::time::Duration;

use super::*;
use crate::config::Extension;

fn config() -> CriticConfig {
    CriticConfig {
        max_extensions: 2,
        extend_by: Extension { time: Duration::from_secs(20), steps: 3 },
        ..CriticConfig::default()
    }
}

fn review(trigger: CriticTrigger, extensions: u32) -> WatchEvent {
    WatchEvent::Review { trigger, extensions }
}

fn judged(verdict: JudgementVerdict) -> WatchEvent {
    WatchEvent::Judged(Judgement::new(verdict, format!("because {}", verdict.as_str())))
}

/// Review then judge from `state`; returns the transition that ends the review.
fn round(
    state: &WatchState,
    trigger: CriticTrigger,
    ext: u32,
    event: WatchEvent,
    c: &CriticConfig,
) -> Transition {
    let reviewing = state.on(review(trigger, ext), c).unwrap();
    assert_eq!(reviewing.decision, None);
    assert!(matches!(reviewing.state, WatchState::Reviewing { .. }), "{:?}", reviewing.state);
    reviewing.state.on(event, c).unwrap()
}

#[test]
fn watching_review_extend_extend_then_exhausted_continue() {
    let c = config();
    let s0 = WatchState::start();
    assert_eq!(s0, WatchState::Watching { extensions: 0 });

    let t1 = round(&s0, CriticTrigger::SoftDeadline, 0, judged(JudgementVerdict::Extend), &c);
    assert_eq!(t1.state, WatchState::Extended { count: 1 });
    let d1 = t1.decision.unwrap();
    assert_eq!(
        d1.verdict,
        Verdict::Extend { steps: 3, time: Duration::from_secs(20), reason: "because extend".into() }
    );
    assert_eq!((d1.escalate, d1.source), (None, DecisionSource::Judge));

    let t2 = round(&t1.state, CriticTrigger::SoftDeadline, 1, judged(JudgementVerdict::Extend), &c);
    assert_eq!(t2.state, WatchState::Extended { count: 2 });

    // Third ask: the limit (2) is reached; the default policy lets the run go on.
    let t3 = round(&t2.state, CriticTrigger::SoftDeadline, 2, judged(JudgementVerdict::Extend), &c);
    assert_eq!(t3.state, WatchState::Watching { extensions: 2 });
    let d3 = t3.decision.unwrap();
    assert_eq!(d3.verdict, Verdict::Continue);
    assert_eq!(d3.source, DecisionSource::Exhausted);
    assert_eq!(d3.escalate, None);
}

#[test]
fn exhausted_with_abort_policy_aborts_and_escalates() {
    let c = CriticConfig { max_extensions: 1, when_exhausted: Exhausted::Abort, ..config() };
    let t = round(
        &WatchState::Extended { count: 1 },
        CriticTrigger::SoftDeadline,
        1,
        judged(JudgementVerdict::Extend),
        &c,
    );
    assert_eq!(t.state, WatchState::Aborted);
    let d = t.decision.unwrap();
    let Verdict::Abort { reason } = &d.verdict else { panic!("{:?}", d.verdict) };
    assert!(reason.contains("extension limit reached (1 of 1)"), "{reason}");
    assert!(reason.contains("because extend"), "{reason}");
    assert_eq!(d.escalate.as_deref(), Some(reason.as_str()));
    assert_eq!(d.source, DecisionSource::Exhausted);
}

#[test]
fn the_cores_extension_count_is_authoritative() {
    // The critic's own record says 0 (e.g. it was evicted), the core says 2 = max.
    let c = config();
    let t = round(&WatchState::start(), CriticTrigger::SoftDeadline, 2, judged(JudgementVerdict::Extend), &c);
    assert_eq!(t.decision.unwrap().verdict, Verdict::Continue);
    // And a larger recorded count is not lowered by a smaller reported one.
    let t = round(
        &WatchState::Extended { count: 2 },
        CriticTrigger::SoftDeadline,
        0,
        judged(JudgementVerdict::Extend),
        &c,
    );
    assert_eq!(t.decision.unwrap().source, DecisionSource::Exhausted);
}

#[test]
fn abort_is_terminal_and_escalates() {
    let c = config();
    let t = round(
        &WatchState::Extended { count: 1 },
        CriticTrigger::SoftDeadline,
        1,
        judged(JudgementVerdict::Abort),
        &c,
    );
    assert_eq!(t.state, WatchState::Aborted);
    let d = t.decision.unwrap();
    assert_eq!(d.verdict, Verdict::Abort { reason: "because abort".into() });
    assert_eq!(d.escalate.as_deref(), Some("because abort"));
    assert!(t.state.is_terminal());
    assert_eq!(
        t.state.on(review(CriticTrigger::SoftDeadline, 1), &c),
        Err(TransitionError::Terminal { event: "review" })
    );

    let quiet = CriticConfig { escalate_on_abort: false, ..config() };
    let t = round(&WatchState::start(), CriticTrigger::MaxSteps, 0, judged(JudgementVerdict::Abort), &quiet);
    assert_eq!(t.decision.unwrap().escalate, None);
}

#[test]
fn escalate_and_continue_let_the_run_go_on() {
    let c = config();
    let t = round(
        &WatchState::Extended { count: 1 },
        CriticTrigger::SoftDeadline,
        1,
        judged(JudgementVerdict::Escalate),
        &c,
    );
    assert_eq!(t.state, WatchState::Escalated { extensions: 1 });
    let d = t.decision.unwrap();
    assert_eq!(d.verdict, Verdict::Escalate { reason: "because escalate".into() });
    assert_eq!(d.escalate.as_deref(), Some("because escalate"));

    // From Escalated, a later review is allowed.
    let t = round(&t.state, CriticTrigger::SoftDeadline, 1, judged(JudgementVerdict::Continue), &c);
    assert_eq!(t.state, WatchState::Watching { extensions: 1 });
    assert_eq!(
        t.decision.unwrap(),
        Decision { verdict: Verdict::Continue, escalate: None, source: DecisionSource::Judge }
    );
}

#[test]
fn a_failed_judge_uses_the_fallback_under_the_same_limits() {
    let failed = || WatchEvent::JudgeFailed { error: "timed out".into() };
    // Default fallback: continue.
    let t = round(&WatchState::start(), CriticTrigger::SoftDeadline, 0, failed(), &config());
    let d = t.decision.unwrap();
    assert_eq!((d.verdict, d.source), (Verdict::Continue, DecisionSource::Fallback));

    // Fallback extend: granted while extensions are left, refused after.
    let c = CriticConfig { on_judge_failure: JudgementVerdict::Extend, ..config() };
    let t = round(&WatchState::start(), CriticTrigger::SoftDeadline, 0, failed(), &c);
    let d = t.decision.unwrap();
    assert!(matches!(&d.verdict, Verdict::Extend { reason, .. } if reason == "judge failed: timed out"));
    assert_eq!(d.source, DecisionSource::Fallback);
    let t = round(&WatchState::Extended { count: 2 }, CriticTrigger::SoftDeadline, 2, failed(), &c);
    assert_eq!(t.decision.unwrap().source, DecisionSource::Exhausted);

    // Fallback abort escalates like any abort.
    let c = CriticConfig { on_judge_failure: JudgementVerdict::Abort, ..config() };
    let t = round(&WatchState::start(), CriticTrigger::SoftDeadline, 0, failed(), &c);
    assert_eq!(t.state, WatchState::Aborted);
    assert_eq!(t.decision.unwrap().escalate.as_deref(), Some("judge failed: timed out"));
}

#[test]
fn an_extension_that_adds_nothing_for_its_trigger_counts_as_exhausted() {
    let steps_only = CriticConfig { extend_by: Extension { time: Duration::ZERO, steps: 4 }, ..config() };
    let t = round(
        &WatchState::start(),
        CriticTrigger::SoftDeadline,
        0,
        judged(JudgementVerdict::Extend),
        &steps_only,
    );
    let d = t.decision.unwrap();
    assert_eq!((d.verdict, d.source), (Verdict::Continue, DecisionSource::Exhausted));
    let t = round(
        &WatchState::start(),
        CriticTrigger::MaxSteps,
        0,
        judged(JudgementVerdict::Extend),
        &steps_only,
    );
    assert!(matches!(t.decision.unwrap().verdict, Verdict::Extend { steps: 4, .. }));
    assert_eq!(t.state, WatchState::Extended { count: 1 });
}

#[test]
fn events_out_of_order_are_errors_not_panics() {
    let c = config();
    let s = WatchState::start();
    assert_eq!(
        s.on(judged(JudgementVerdict::Abort), &c),
        Err(TransitionError::NotReviewing { state: "watching", event: "judged" })
    );
    let reviewing = s.on(review(CriticTrigger::SoftDeadline, 0), &c).unwrap().state;
    assert_eq!(reviewing.on(review(CriticTrigger::MaxSteps, 0), &c), Err(TransitionError::AlreadyReviewing));
    assert_eq!(
        WatchState::Extended { count: 1 }.on(WatchEvent::JudgeFailed { error: "x".into() }, &c),
        Err(TransitionError::NotReviewing { state: "extended", event: "judge_failed" })
    );
}

#[test]
fn config_validation_names_the_key() {
    assert_eq!(CriticConfig::default().validate(), Ok(()));
    let bad = CriticConfig { extend_by: Extension { time: Duration::ZERO, steps: 0 }, ..config() };
    let err = bad.validate().unwrap_err();
    assert!(err.to_string().contains("extend_by"), "{err}");
    // No extensions allowed: an empty extension is fine.
    let none = CriticConfig { max_extensions: 0, ..bad };
    assert_eq!(none.validate(), Ok(()));
    let err = CriticConfig { judge_timeout: Duration::ZERO, ..config() }.validate().unwrap_err();
    assert!(err.to_string().contains("judge_timeout"), "{err}");
}

#[test]
fn config_deserialises_with_human_durations() {
    let c: CriticConfig = serde_json::from_value(serde_json::json!({
        "max_extensions": 3,
        "extend_by": {"time": "2m", "steps": 0},
        "when_exhausted": "abort",
        "on_judge_failure": "escalate",
        "judge_timeout": 5
    }))
    .unwrap();
    assert_eq!(c.max_extensions, 3);
    assert_eq!(c.extend_by, Extension { time: Duration::from_secs(120), steps: 0 });
    assert_eq!(c.when_exhausted, Exhausted::Abort);
    assert_eq!(c.on_judge_failure, JudgementVerdict::Escalate);
    assert_eq!(c.judge_timeout, Duration::from_secs(5));
    assert_eq!(c.escalate_timeout, CriticConfig::default().escalate_timeout);
}
