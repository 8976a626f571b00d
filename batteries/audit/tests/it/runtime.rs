//! Audit rows of real runs: the core runtime over the fake provider, writing through an
//! `AuditWriter` into a `MemoryAuditStore`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use executus::llm::Usage;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::audit::now_ms;
use executus::ports::{AuditEvent, Budget, BudgetDenied, Ports, Reservation, SpendRequest};
use executus::tool::policy::{Decision, FnRule, Policy};
use executus::{Identity, RunEnd, RunRequest, RunnableAgent};
use executus_audit::{AuditQuery, AuditWriter, MemoryAuditStore, StoredAuditRecord};

use crate::common::{all_pages, runtime, tools};

fn call(id: &str, name: &str, text: &str) -> executus::llm::ToolCall {
    executus::llm::ToolCall {
        id: id.into(),
        name: name.into(),
        args: serde_json::json!({ "text": text }),
        signature: None,
    }
}

/// Refuses every model call, with recognisable numbers.
struct DenyAll;

#[async_trait]
impl Budget for DenyAll {
    async fn reserve(&self, request: &SpendRequest) -> Result<Reservation, BudgetDenied> {
        Err(BudgetDenied::Exhausted {
            scope: format!("user:{}", request.identity.user),
            spent: 1.5,
            reserved: 0.25,
            requested: 0.125,
            cap: 1.75,
            window: std::time::Duration::from_secs(86_400),
        })
    }
    async fn settle(&self, _: Reservation, _: &Usage, _: &str, _: &str) {}
}

fn kinds(rows: &[StoredAuditRecord]) -> Vec<&'static str> {
    rows.iter().map(StoredAuditRecord::kind).collect()
}

fn first_index(rows: &[StoredAuditRecord], kind: &str) -> usize {
    rows.iter().position(|r| r.kind() == kind).unwrap_or_else(|| panic!("no {kind} row in {:?}", kinds(rows)))
}

#[tokio::test]
async fn failover_blocked_tool_loop_protection_and_budget_denial_are_audited_and_queryable() {
    let before = now_ms();
    let store = Arc::new(MemoryAuditStore::new());
    let writer = Arc::new(AuditWriter::new(store.clone()));
    let ports = Ports { audit: writer.clone(), ..Ports::default() };

    let fake = FakeProvider::new("fake");
    fake.fallback_for("bad", Outcome::transient("bad is down"));
    let usage = Usage { input_tokens: 10, output_tokens: 5, ..Usage::default() };
    fake.push("good", Outcome::tool_calls([call("c1", "wipe", "all")]).with_usage(usage));
    for id in ["c2", "c3", "c4"] {
        fake.push("good", Outcome::tool_calls([call(id, "echo", "same")]).with_usage(usage));
    }
    fake.push("good", Outcome::text("done").with_usage(usage));
    fake.push("good", Outcome::text("hello bob"));

    let mut policy = Policy::new();
    policy.add_global(FnRule::new("no-wipe", |input| {
        (input.tool == "wipe").then(|| Decision::Block("wiping is not allowed".into()))
    }));
    let (echoes, wipes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let rt = runtime(&fake, tools(echoes.clone(), wipes.clone()), policy.clone(), ports.clone());
    let agent = RunnableAgent::new("auditee", "You act.", "fake/bad, fake/good").with_tools(["echo", "wipe"]);

    // Run 1: alice@acme, failover + blocked tool + loop protection.
    let alice = Identity::new("alice", "acme");
    let handle = rt.spawn_with(RunRequest::new(agent.clone(), "go").identity(alice)).await.unwrap();
    let out = handle.outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.output.as_deref(), Some("done"));
    assert_eq!(wipes.load(Ordering::SeqCst), 0, "the blocked tool never ran");
    assert_eq!(echoes.load(Ordering::SeqCst), 3);
    let run1 = out.run_id;

    // Run 2: bob@beta, a plain answer.
    let bob = Identity::new("bob", "beta");
    let simple = RunnableAgent::new("plain", "You answer.", "fake/good");
    let run2 = rt.spawn_with(RunRequest::new(simple.clone(), "hi").identity(bob)).await.unwrap();
    let run2 = run2.outcome().await.run_id;

    // Run 3: carol@acme, refused by the budget.
    let denying = runtime(&fake, tools(echoes, wipes), policy, Ports { budget: Arc::new(DenyAll), ..ports });
    let carol = Identity::new("carol", "acme");
    let h3 = denying.spawn_with(RunRequest::new(simple, "spend").identity(carol)).await.unwrap();
    let out3 = h3.outcome().await;
    assert_eq!(out3.status(), "budget_denied");
    let run3 = out3.run_id;

    writer.flush().await;
    let after = now_ms() + 1;
    let stats = writer.stats();
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.written as usize, store.len());

    // --- by run: run 1's rows, in order, with the right fields.
    let (rows, _) = all_pages(store.as_ref(), AuditQuery::new().run(run1).limit(4)).await;
    assert!(rows.iter().all(|r| r.record.run_id == Some(run1) && r.record.identity.user == "alice"));
    assert!(rows.iter().all(|r| r.record.agent.as_deref() == Some("auditee")));
    assert_eq!(rows.first().unwrap().kind(), "run_started");
    assert_eq!(rows.last().unwrap().kind(), "run_ended");
    match &rows[0].record.event {
        AuditEvent::RunStarted { model, parent, resumed } => {
            assert_eq!(model, "fake/bad, fake/good");
            assert_eq!((*parent, *resumed), (None, false));
        }
        other => panic!("{other:?}"),
    }
    match &rows.last().unwrap().record.event {
        AuditEvent::RunEnded { status, reason, steps, usage: total } => {
            assert_eq!(status, "completed");
            assert_eq!(*reason, None);
            assert_eq!(*steps, 5);
            assert_eq!(total.output_tokens, 25);
        }
        other => panic!("{other:?}"),
    }

    // Failover from bad to good, after failed attempts on bad and before the good answer.
    let failover = first_index(&rows, "failover");
    match &rows[failover].record.event {
        AuditEvent::Failover { from, to, error } => {
            assert_eq!((from.as_str(), to.as_str()), ("fake/bad", "fake/good"));
            assert!(error.contains("bad is down"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let calls: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.record.event {
            AuditEvent::ModelCall { step, provider, model, attempt, usage, error, .. } => {
                Some((*step, provider.clone(), model.clone(), *attempt, *usage, error.clone()))
            }
            _ => None,
        })
        .collect();
    let step1: Vec<_> = calls.iter().filter(|c| c.0 == 1).collect();
    assert_eq!(step1.len(), 3, "two attempts on bad, one on good: {calls:?}");
    assert_eq!((step1[0].2.as_str(), step1[0].3), ("bad", 1));
    assert_eq!((step1[1].2.as_str(), step1[1].3), ("bad", 2));
    assert!(step1[0].5.as_deref().unwrap().contains("bad is down"));
    assert_eq!(step1[0].4, Usage::default());
    assert_eq!((step1[2].1.as_str(), step1[2].2.as_str(), step1[2].3), ("fake", "good", 1));
    assert_eq!(step1[2].4, usage);
    assert_eq!(step1[2].5, None);
    assert!(rows[failover].id > rows[first_index(&rows, "model_call")].id);
    // Every step ended with a successful model call carrying its usage.
    for step in 1..=5 {
        assert!(calls.iter().any(|c| c.0 == step && c.5.is_none() && c.4 == usage), "step {step}: {calls:?}");
    }

    // The blocked tool call, with the rule that blocked it.
    let tool_rows: Vec<_> = rows
        .iter()
        .filter_map(|r| match &r.record.event {
            AuditEvent::ToolCall { tool, call_id, decision, rule, reason, is_error, step, .. } => Some((
                tool.clone(),
                call_id.clone(),
                *decision,
                rule.clone(),
                reason.clone(),
                *is_error,
                *step,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(tool_rows.len(), 4, "{tool_rows:?}");
    let blocked = &tool_rows[0];
    assert_eq!((blocked.0.as_str(), blocked.1.as_str(), blocked.2.as_str()), ("wipe", "c1", "block"));
    assert_eq!(blocked.3.as_deref(), Some("no-wipe"));
    assert_eq!(blocked.4.as_deref(), Some("wiping is not allowed"));
    assert!(blocked.5, "a blocked call is an error result");
    assert_eq!(blocked.6, 1);
    for allowed in &tool_rows[1..] {
        assert_eq!((allowed.0.as_str(), allowed.2.as_str(), allowed.5), ("echo", "allow", false));
    }

    // Loop protection fired on the third identical echo, before the finalize turn.
    let lp = first_index(&rows, "loop_protection");
    match &rows[lp].record.event {
        AuditEvent::LoopProtection { trigger, detail, action } => {
            assert_eq!((trigger.as_str(), action.as_str()), ("cycle", "finalize"));
            assert!(detail.contains("echo") && detail.contains("3 times"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    let last_echo = rows
        .iter()
        .rposition(|r| matches!(&r.record.event, AuditEvent::ToolCall { tool, .. } if tool == "echo"));
    assert!(lp > last_echo.unwrap());

    // --- by identity.
    let (alice_rows, _) = all_pages(store.as_ref(), AuditQuery::new().user("alice").limit(3)).await;
    assert_eq!(alice_rows, rows);
    let (bob_rows, _) = all_pages(store.as_ref(), AuditQuery::new().user("bob")).await;
    assert!(!bob_rows.is_empty() && bob_rows.iter().all(|r| r.record.run_id == Some(run2)));
    assert_eq!(kinds(&bob_rows), ["run_started", "model_call", "run_ended"]);
    let (acme, _) = all_pages(store.as_ref(), AuditQuery::new().tenant("acme").limit(5)).await;
    assert!(acme.iter().all(|r| r.record.run_id == Some(run1) || r.record.run_id == Some(run3)));
    assert_eq!(acme.len(), rows.len() + all_pages(store.as_ref(), AuditQuery::new().run(run3)).await.0.len());

    // --- by kind: the budget denial, with its numbers.
    let (denials, _) = all_pages(store.as_ref(), AuditQuery::new().kind("budget_denied")).await;
    assert_eq!(denials.len(), 1);
    assert_eq!(denials[0].record.run_id, Some(run3));
    assert_eq!(
        denials[0].record.event,
        AuditEvent::BudgetDenied { spent: 1.5, reserved: 0.25, limit: 1.75, scope: "user:carol".into() }
    );
    let (ends, _) = all_pages(store.as_ref(), AuditQuery::new().kind("run_ended").tenant("acme")).await;
    let statuses: Vec<_> = ends
        .iter()
        .map(|r| match &r.record.event {
            AuditEvent::RunEnded { status, .. } => *status,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(statuses, ["completed", "budget_denied"]);
    let (failovers, _) = all_pages(store.as_ref(), AuditQuery::new().kind("failover")).await;
    assert!(failovers.iter().all(|r| r.record.run_id == Some(run1)));

    // --- by time range.
    let (in_range, _) = all_pages(store.as_ref(), AuditQuery::new().between(Some(before), Some(after))).await;
    assert_eq!(in_range.len(), store.len());
    let (later, _) = all_pages(store.as_ref(), AuditQuery::new().between(Some(after), None)).await;
    assert!(later.is_empty());
    let (earlier, _) = all_pages(store.as_ref(), AuditQuery::new().between(None, Some(before))).await;
    assert!(earlier.is_empty());

    // --- paging through everything with a tiny limit visits every row exactly once.
    let (paged, pages) = all_pages(store.as_ref(), AuditQuery::new().limit(2)).await;
    assert_eq!(paged, store.all());
    assert_eq!(pages, store.len().div_ceil(2));
    assert_eq!(kinds(&store.all()).iter().filter(|k| **k == "run_started").count(), 3);

    writer.shutdown().await;
    rt.shutdown(std::time::Duration::from_secs(1)).await;
    denying.shutdown(std::time::Duration::from_secs(1)).await;
}
