//! The critic: Grace's sum takes more steps than the concierge's cap of 4. At the cap the
//! critic asks the judge (a replayed structured call), which extends the run; the bot
//! finishes in step 5. Runs under paused tokio time, so the review the judge reads says
//! "0s elapsed" exactly as recorded.

use chatbot::app::CHAT_PERSONA;
use chatbot::fixture::GRACE;
use executus::ports::AuditEvent;
use executus_audit::AuditQuery;

use crate::common::bundled_app;

#[tokio::test(start_paused = true)]
async fn the_critic_extends_a_run_at_its_step_cap() {
    let (app, _) = bundled_app().await;
    let session = app.session(GRACE.user, CHAT_PERSONA).await.unwrap();
    let outcome = session.turn(GRACE.turns[0]).await.unwrap();
    assert!(outcome.is_completed(), "{:?}", outcome.end);
    assert_eq!(outcome.steps, 5, "one step past the persona's cap of 4");
    assert_eq!(outcome.output.as_deref(), Some("The four files come to 1800 MB, which is about 1.76 GB."));

    app.audit.flush().await;
    let page = app.audit.store().query(&AuditQuery::new().user("grace").kind("critic")).await.unwrap();
    assert_eq!(page.records.len(), 1, "the critic was asked once");
    let AuditEvent::Critic { trigger, verdict, reason } = &page.records[0].record.event else {
        panic!("not a critic record: {:?}", page.records[0].record.event);
    };
    assert_eq!((trigger.as_str(), verdict.as_str()), ("max_steps", "extend"));
    assert_eq!(reason, chatbot::fixture::judgement()["reason"].as_str().unwrap());
    app.close(std::time::Duration::ZERO).await;
}
