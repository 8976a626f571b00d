//! Runtime policy: approval pauses (surviving a restart), denial, rewrite, block, the
//! read-only profile; every decision audited with its rule.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{AuditEvent, CheckpointStore, MemoryCheckpointStore, Ports, StoredStatus};
use executus::tool::policy::{Decision, FnRule, Policy, RequireApprovalFor};
use executus::{RunEnd, RunEvent, Runtime, RuntimeError};
use serde_json::json;

use crate::common::{agent, all_results, build, call, config, tools, wait_for_event};
use crate::doubles::AuditLog;

fn approval_policy() -> Policy {
    let mut policy = Policy::new();
    policy.add_global(RequireApprovalFor::new(["echo"]));
    policy
}

fn runtime(
    fake: &FakeProvider,
    counter: &Arc<AtomicUsize>,
    store: &Arc<MemoryCheckpointStore>,
    audit: &Arc<AuditLog>,
) -> Runtime {
    let ports = Ports { checkpoints: store.clone(), audit: audit.clone(), ..Ports::default() };
    build(fake, tools(counter.clone()), ports, config(), Some(approval_policy()))
}

/// Runs until the run pauses on `c1`; returns the run id.
async fn pause(
    store: &Arc<MemoryCheckpointStore>,
    counter: &Arc<AtomicUsize>,
    audit: &Arc<AuditLog>,
) -> executus::RunId {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    let rt = runtime(&fake, counter, store, audit);
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut events = handle.events();
    let requested = wait_for_event(&mut events, |e| matches!(e, RunEvent::ApprovalRequested { .. })).await;
    assert!(matches!(requested, RunEvent::ApprovalRequested { call, .. } if call.id == "c1"));
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::AwaitingApproval { calls: vec!["c1".into()] });
    assert_eq!(out.status(), "awaiting_approval");
    assert_eq!(out.messages.len(), 2, "user + the assistant's call");
    assert_eq!(counter.load(Ordering::SeqCst), 0, "nothing ran");
    let stored = store.load(handle.id()).await.unwrap().expect("the paused run is kept");
    assert_eq!(stored.status, StoredStatus::AwaitingApproval);
    handle.id()
}

#[tokio::test]
async fn approval_pauses_the_run_and_a_new_runtime_continues_it() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let counter = Arc::new(AtomicUsize::new(0));
    let audit = AuditLog::new();
    let run = pause(&store, &counter, &audit).await;
    let decisions = audit.tool_calls();
    assert_eq!(
        decisions,
        [("echo".into(), "c1".into(), "require_approval".into(), Some("approval:echo".into()), false)]
    );

    // After a restart: not resumed automatically, but approvable.
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("done"));
    let audit2 = AuditLog::new();
    let rt = runtime(&fake, &counter, &store, &audit2);
    assert!(rt.resume_interrupted().await.unwrap().is_empty(), "paused runs wait for a human");
    assert!(matches!(rt.approve(run, "c9").await, Err(RuntimeError::NotAwaitingApproval { .. })));
    let handle = rt.approve(run, "c1").await.unwrap();
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(counter.load(Ordering::SeqCst), 1, "the approved call ran once");
    assert_eq!(all_results(&out.messages)[0].content, "echo: a");
    let events = audit2.events();
    assert!(events.iter().any(
        |e| matches!(e, AuditEvent::ApprovalAnswered { call_id, approved: true, .. } if call_id == "c1")
    ));
    let executed = audit2.tool_calls();
    assert_eq!(executed.len(), 1, "{executed:?}");
    assert_eq!((executed[0].2.as_str(), executed[0].4), ("allow", false));
    assert_eq!(executed[0].3.as_deref(), Some("human-approval"), "names what allowed it");
    // Answered once; the finished run is gone and a second answer is refused.
    assert_eq!(store.load(run).await.unwrap(), None);
    assert!(matches!(rt.approve(run, "c1").await, Err(RuntimeError::UnknownRun { .. })));
}

#[tokio::test]
async fn the_same_runtime_can_approve_right_after_the_pause() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::text("done"));
    let counter = Arc::new(AtomicUsize::new(0));
    let rt = runtime(&fake, &counter, &Arc::default(), &AuditLog::new());
    let paused = rt.spawn(agent(), "go").await.unwrap();
    assert_eq!(paused.outcome().await.status(), "awaiting_approval");
    let out = rt.approve(paused.id(), "c1").await.unwrap().outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(counter.load(Ordering::SeqCst), 1);
    // Cancelling the old handle now reaches nothing it should not.
    paused.cancel().await;
}

#[tokio::test]
async fn denial_tells_the_model_why_and_the_run_goes_on() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let counter = Arc::new(AtomicUsize::new(0));
    let audit = AuditLog::new();
    let run = pause(&store, &counter, &audit).await;
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("understood"));
    let rt = runtime(&fake, &counter, &store, &audit);
    let out = rt.deny(run, "c1", "too risky today").await.unwrap().outcome().await;
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(counter.load(Ordering::SeqCst), 0, "a denied call never runs");
    let seen = all_results(&fake.requests_for("m")[0].messages);
    assert_eq!(seen.len(), 1);
    assert!(seen[0].is_error);
    assert!(seen[0].content.contains("too risky today"), "{}", seen[0].content);
    assert!(audit.events().iter().any(|e| matches!(e, AuditEvent::ApprovalAnswered { approved: false, reason: Some(r), .. } if r == "too risky today")));
    assert!(
        audit.tool_calls().iter().any(|(tool, id, decision, rule, is_error)| tool == "echo"
            && id == "c1"
            && decision == "deny"
            && rule.as_deref() == Some("human-approval")
            && *is_error),
        "{:?}",
        audit.tool_calls()
    );
}

#[tokio::test]
async fn a_paused_run_can_be_discarded_and_is_never_resumed() {
    let store = Arc::new(MemoryCheckpointStore::new());
    let counter = Arc::new(AtomicUsize::new(0));
    let audit = AuditLog::new();
    let run = pause(&store, &counter, &audit).await;
    let fake = FakeProvider::new("fake");
    let rt = runtime(&fake, &counter, &store, &audit);
    rt.discard(run).await.unwrap();
    assert!(store.load(run).await.unwrap().is_none(), "the log is gone");
    assert!(store.list_interrupted().await.unwrap().is_empty());
    assert!(matches!(rt.approve(run, "c1").await, Err(RuntimeError::UnknownRun { .. })));
    assert!(matches!(rt.discard(run).await, Err(RuntimeError::UnknownRun { .. })));
    assert!(audit.events().iter().any(
        |e| matches!(e, AuditEvent::RunEnded { status, reason: Some(r), .. } if status == "cancelled" && r == "discarded")
    ));
    assert_eq!(counter.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rewrite_rule_changes_the_arguments_the_tool_sees() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "my password is hunter2")]));
    fake.push("m", Outcome::text("done"));
    let mut policy = Policy::new();
    policy.add_global(FnRule::new("redact", |input| {
        (input.tool == "echo" && input.args["text"].as_str().is_some_and(|t| t.contains("password")))
            .then(|| Decision::Rewrite(json!({ "text": "[redacted]" })))
    }));
    let audit = AuditLog::new();
    let ports = Ports { audit: audit.clone(), ..Ports::default() };
    let rt = build(&fake, tools(Arc::default()), ports, config(), Some(policy));
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(all_results(&out.messages)[0].content, "echo: [redacted]");
    let decisions = audit.tool_calls();
    assert!(
        decisions.iter().any(|(tool, id, decision, rule, _)| (
            tool.as_str(),
            id.as_str(),
            decision.as_str(),
            rule.as_deref()
        ) == ("echo", "c1", "rewrite", Some("redact"))),
        "{decisions:?}"
    );
}

#[tokio::test]
async fn a_block_rule_gives_an_error_result_naming_the_rule() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "rm -rf /")]));
    fake.push("m", Outcome::text("ok, I will not"));
    let mut policy = Policy::new();
    policy.add_global(FnRule::new("no-rm", |input| {
        input.args["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("rm "))
            .then(|| Decision::Block("destructive".into()))
    }));
    let counter = Arc::new(AtomicUsize::new(0));
    let audit = AuditLog::new();
    let ports = Ports { audit: audit.clone(), ..Ports::default() };
    let rt = build(&fake, tools(counter.clone()), ports, config(), Some(policy));
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(counter.load(Ordering::SeqCst), 0);
    let r = &all_results(&out.messages)[0];
    assert!(r.is_error);
    assert!(r.content.contains("no-rm") && r.content.contains("destructive"), "{}", r.content);
    assert_eq!(
        audit.tool_calls(),
        [("echo".into(), "c1".into(), "block".into(), Some("no-rm".into()), true)]
    );
}

#[tokio::test]
async fn the_read_only_profile_blocks_tools_that_change_things() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "look"), call("c2", "fail", "touch")]));
    fake.push("m", Outcome::text("done"));
    let audit = AuditLog::new();
    let ports = Ports { audit: audit.clone(), ..Ports::default() };
    let rt = build(&fake, tools(Arc::default()), ports, config(), None);
    let mut agent = agent();
    agent.policy_profile = Some("read-only".into());
    let out = rt.run(agent, "go").await.unwrap();
    let results = all_results(&out.messages);
    assert_eq!((results[0].is_error, results[0].content.as_str()), (false, "echo: look"));
    assert!(results[1].is_error && results[1].content.contains("read-only"), "{:?}", results[1]);
    let mut decisions = audit.tool_calls();
    decisions.sort();
    assert_eq!(
        decisions,
        [
            ("echo".into(), "c1".into(), "allow".into(), Some("read-only".into()), false),
            ("fail".into(), "c2".into(), "block".into(), Some("read-only".into()), true),
        ]
    );
}

#[tokio::test]
async fn an_unknown_profile_fails_closed() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "x")]));
    fake.push("m", Outcome::text("done"));
    let counter = Arc::new(AtomicUsize::new(0));
    let rt = build(&fake, tools(counter.clone()), Ports::default(), config(), None);
    let mut agent = agent();
    agent.policy_profile = Some("typo-profile".into());
    let out = rt.run(agent, "go").await.unwrap();
    let r = &all_results(&out.messages)[0];
    assert!(r.is_error && r.content.contains("typo-profile"), "{r:?}");
    assert_eq!(counter.load(Ordering::SeqCst), 0);
}
