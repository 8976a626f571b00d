//! A conversation: the persona from the shipped folder, the skill's `calc` call, the history
//! as context (the replayed requests must match the recorded ones, history included), the
//! audit trail per user, and the per-user budget.

use chatbot::app::CHAT_PERSONA;
use chatbot::fixture::ADA;
use executus_audit::AuditQuery;
use executus_llm::{Part, Role};

use crate::common::bundled_app;

#[tokio::test]
async fn ada_is_remembered_and_the_skill_uses_calc() {
    let (app, _) = bundled_app().await;
    let session = app.session(ADA.user, CHAT_PERSONA).await.unwrap();
    let mut answers = Vec::new();
    for turn in ADA.turns {
        let outcome = session.turn(turn).await.unwrap();
        assert!(outcome.is_completed(), "{turn}: {:?}", outcome.end);
        answers.push(outcome.output.clone().unwrap());
    }
    assert_eq!(answers[1], "Your 14 build servers can run 84 jobs in parallel.");
    // Only right with the first turn in the context (and the replay would refuse a request
    // whose history differs from the recorded one).
    assert_eq!(answers[2], "You're Ada, and you look after the build servers.");

    let history = session.history().await.unwrap();
    // 3 user messages, 3 answers, plus the calc call and its result.
    assert_eq!(history.len(), 8);
    let result = history.iter().flat_map(|m| &m.parts).find_map(|p| match p {
        Part::ToolResult(r) => Some(r),
        _ => None,
    });
    assert_eq!(result.unwrap().content, "84", "the calc tool really ran");
    assert_eq!(history.iter().filter(|m| m.role == Role::User).count(), 3);

    // The audit trail has the runs, the model calls and the tool call, for ada.
    app.audit.flush().await;
    let page = app.audit.store().query(&AuditQuery::new().user("ada")).await.unwrap();
    let kinds: Vec<&str> = page.records.iter().map(|r| r.record.event.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "run_started").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "run_ended").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "tool_call").count(), 1, "{kinds:?}");
    assert!(kinds.iter().filter(|k| **k == "model_call").count() >= 4, "{kinds:?}");

    // Spend was priced and settled against ada's cap.
    let status = app.budget.status(&executus::Identity::new("ada", "team")).await.unwrap();
    let user = status.iter().find(|s| s.scope == "user:ada").unwrap();
    assert!(user.spent.nanos() > 0 && user.limit.is_some(), "{status:?}");

    // /reset forgets.
    assert_eq!(session.reset().await.unwrap(), 8);
    assert!(session.history().await.unwrap().is_empty());
    app.close(std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn a_user_over_budget_is_denied_and_the_turn_is_not_kept() {
    let (app, _) = bundled_app().await;
    let session = app.session("mallory", CHAT_PERSONA).await.unwrap();
    let outcome = session.turn(ADA.turns[0]).await.unwrap();
    assert_eq!(outcome.status(), "budget_denied", "{:?}", outcome.end);
    assert!(session.history().await.unwrap().is_empty(), "a denied turn is not added");
    app.audit.flush().await;
    let denied =
        app.audit.store().query(&AuditQuery::new().user("mallory").kind("budget_denied")).await.unwrap();
    assert_eq!(denied.records.len(), 1);
    app.close(std::time::Duration::ZERO).await;
}

#[tokio::test]
async fn an_unknown_persona_is_refused_with_the_known_ones() {
    let (app, _) = bundled_app().await;
    let error = app.session("ada", "nobody").await.unwrap_err().to_string();
    assert!(error.contains("concierge") && error.contains("digest"), "{error}");
}
