//! The critic on its own: fallbacks, concurrency guard, record bound.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{Critic, CriticReview, CriticTrigger, PortError, Verdict};
use executus::{Identity, RunId};
use executus_critic::{CriticConfig, DecisionSource, Escalation, Escalator, JudgementVerdict, WatchState};

use crate::common::{JUDGE, critic, judgement};

fn review(run_id: RunId, extensions: u32) -> CriticReview {
    CriticReview {
        run_id,
        agent: "worker".into(),
        identity: Identity::new("ada", "acme"),
        trigger: CriticTrigger::SoftDeadline,
        step: 4,
        elapsed: Duration::from_secs(10),
        extensions,
        recent: vec![executus::llm::Message::user("go")],
    }
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_judgement_falls_back_and_escalates() {
    let fake = FakeProvider::new("fake");
    // Both attempts of the typed call answer prose.
    fake.fallback_for(JUDGE, Outcome::text("I think it is fine, probably"));
    let config = CriticConfig { on_judge_failure: JudgementVerdict::Escalate, ..CriticConfig::default() };
    let (critic, escalations) = critic(&fake, config);
    let run = RunId::new();
    let verdict = critic.review(review(run, 0)).await;
    let Verdict::Escalate { reason } = verdict else { panic!("{verdict:?}") };
    assert!(reason.starts_with("judge failed:"), "{reason}");
    assert_eq!(fake.calls_for(JUDGE), 2, "one corrective retry, then the fallback");
    let sent = escalations.taken();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].verdict, "escalate");
    assert_eq!(sent[0].identity, Identity::new("ada", "acme"));
    let watch = critic.watch(run).unwrap();
    assert_eq!(watch.state, WatchState::Escalated { extensions: 0 });
    assert_eq!(watch.last_source, Some(DecisionSource::Fallback));
}

#[tokio::test(start_paused = true)]
async fn a_failing_judge_falls_back_to_continue_by_default() {
    let fake = FakeProvider::new("fake");
    fake.push(JUDGE, Outcome::permanent("model is gone"));
    let (critic, escalations) = critic(&fake, CriticConfig::default());
    assert_eq!(critic.review(review(RunId::new(), 0)).await, Verdict::Continue);
    assert!(escalations.taken().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_second_review_while_one_is_in_progress_gets_continue() {
    let fake = FakeProvider::new("fake");
    fake.push(JUDGE, Outcome::hang());
    fake.push(JUDGE, judgement("abort", "stuck"));
    let (critic, _) =
        critic(&fake, CriticConfig { judge_timeout: Duration::from_secs(600), ..CriticConfig::default() });
    let run = RunId::new();

    let first = tokio::spawn({
        let critic = critic.clone();
        async move { critic.review(review(run, 0)).await }
    });
    // Let the first review reach its (hanging) judge call.
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(matches!(critic.watch(run).unwrap().state, WatchState::Reviewing { .. }));
    assert_eq!(critic.review(review(run, 0)).await, Verdict::Continue);
    assert_eq!(fake.calls_for(JUDGE), 1, "the refused review made no judge call");

    // A review dropped half-way does not leave the run stuck in Reviewing.
    first.abort();
    let _ = first.await;
    assert_eq!(critic.watch(run).unwrap().state, WatchState::Watching { extensions: 0 });
    assert_eq!(critic.review(review(run, 0)).await, Verdict::Abort { reason: "stuck".into() });
    assert_eq!(critic.watch(run).unwrap().reviews, 2);
}

#[tokio::test(start_paused = true)]
async fn records_are_bounded_oldest_first() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for(JUDGE, judgement("continue", "ok"));
    let (critic, _) = critic(&fake, CriticConfig { max_tracked_runs: 2, ..CriticConfig::default() });
    let runs = [RunId::new(), RunId::new(), RunId::new()];
    for run in runs {
        critic.review(review(run, 0)).await;
    }
    assert!(critic.watch(runs[0]).is_none());
    assert!(critic.watch(runs[1]).is_some());
    assert!(critic.watch(runs[2]).is_some());
}

/// An escalator that never returns.
struct Stuck;

#[async_trait]
impl Escalator for Stuck {
    async fn escalate(&self, _e: Escalation) -> Result<(), PortError> {
        std::future::pending().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_stuck_escalator_cannot_hold_the_verdict() {
    let fake = FakeProvider::new("fake");
    fake.push(JUDGE, judgement("abort", "stuck"));
    let (critic, _) =
        critic(&fake, CriticConfig { escalate_timeout: Duration::from_secs(2), ..CriticConfig::default() });
    let critic = critic.with_escalator(Arc::new(Stuck));
    let started = tokio::time::Instant::now();
    let run = RunId::new();
    assert_eq!(critic.review(review(run, 0)).await, Verdict::Abort { reason: "stuck".into() });
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(critic.watch(run).unwrap().escalations, 0);
}
