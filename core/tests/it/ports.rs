//! Ports: each call site, seen through test doubles that record calls; zero wiring.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use executus::llm::fake::{FakeProvider, Outcome};
use executus::llm::{Message, Usage};
use executus::ports::{AuditEvent, ChannelDelivery, CriticTrigger, Ports, SkillDef, StoredStatus, Verdict};
use executus::tool::ToolError;
use executus::{Identity, Limits, RunEnd, RunEvent, RunRequest, RunnableAgent, Runtime, RuntimeError};

use crate::common::{
    agent, build, call, config, registry, run_req, runtime, text_tool, tool_loop, tools, wait_for_event,
};
use crate::doubles::{AuditLog, Personas, ScriptedCritic, Skills};

#[tokio::test]
async fn audit_sees_run_start_model_calls_tool_decisions_and_run_end() {
    let fake = FakeProvider::new("fake");
    let usage = Usage { input_tokens: 11, output_tokens: 7, ..Usage::default() };
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a"), call("c2", "nope", "b")]).with_usage(usage));
    fake.push("m", Outcome::text("done"));
    let audit = AuditLog::new();
    let rt = runtime(&fake, Arc::default(), Ports { audit: audit.clone(), ..Ports::default() });
    let identity = Identity::new("alice", "acme");
    let out = run_req(&rt, RunRequest::new(agent(), "go").identity(identity.clone())).await;
    assert!(out.is_completed(), "{out:?}");

    let records = audit.records();
    assert!(records.iter().all(|r| r.run_id == Some(out.run_id) && r.identity == identity));
    assert!(records.iter().all(|r| r.agent.as_deref() == Some("tester")));
    let kinds = audit.kinds();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_ended"));
    assert_eq!(kinds.iter().filter(|k| **k == "model_call").count(), 2);
    let events = audit.events();
    assert!(
        matches!(&events[0], AuditEvent::RunStarted { model, resumed: false, parent: None } if model == "fake/m")
    );
    let first_call = events.iter().find(|e| matches!(e, AuditEvent::ModelCall { .. })).unwrap();
    let AuditEvent::ModelCall { step, provider, model, usage: u, error, .. } = first_call else {
        unreachable!()
    };
    assert_eq!((*step, provider.as_str(), model.as_str(), *u, error), (1, "fake", "m", usage, &None));
    let mut tool_calls = audit.tool_calls();
    tool_calls.sort();
    assert_eq!(
        tool_calls,
        [
            ("echo".into(), "c1".into(), "allow".into(), Some("default".into()), false),
            ("nope".into(), "c2".into(), "refuse".into(), Some("registry".into()), true),
        ]
    );
    let AuditEvent::RunEnded { status, reason, steps, usage: total } = events.last().unwrap() else {
        panic!("run_ended last")
    };
    assert_eq!((status.as_str(), reason, *steps, *total), ("completed", &None, 2, usage));
}

#[tokio::test]
async fn critic_extends_max_steps_and_the_run_continues() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("echo", 3));
    let critic =
        ScriptedCritic::new([Verdict::Extend { steps: 2, time: Duration::ZERO, reason: "close".into() }]);
    let audit = AuditLog::new();
    let ports = Ports { critic: critic.clone(), audit: audit.clone(), ..Ports::default() };
    let rt = runtime(&fake, Arc::default(), ports);
    let out = rt.run(agent().with_limits(Limits { max_steps: 2, ..Limits::default() }), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.steps, 4);
    let reviews = critic.reviews();
    assert_eq!(reviews.len(), 1);
    assert_eq!((reviews[0].trigger, reviews[0].step, reviews[0].extensions), (CriticTrigger::MaxSteps, 2, 0));
    assert_eq!(reviews[0].recent.len(), 5, "user + 2 x (assistant, tool)");
    assert!(audit.events().iter().any(
        |e| matches!(e, AuditEvent::Critic { trigger, verdict, reason } if trigger == "max_steps" && verdict == "extend" && reason == "close")
    ));
}

#[tokio::test]
async fn critic_abort_at_max_steps_stops_the_run_with_its_transcript() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("echo", usize::MAX));
    let critic = ScriptedCritic::new([Verdict::Abort { reason: "going nowhere".into() }]);
    let rt = runtime(&fake, Arc::default(), Ports { critic, ..Ports::default() });
    let out = rt.run(agent().with_limits(Limits { max_steps: 2, ..Limits::default() }), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Stopped { reason: "aborted by critic: going nowhere".into() });
    assert_eq!(out.status(), "stopped");
    assert_eq!(out.messages.len(), 5);
}

#[tokio::test]
async fn critic_continue_at_max_steps_ends_partial() {
    let fake = FakeProvider::new("fake");
    fake.fallback_for("m", tool_loop("echo", usize::MAX));
    let critic = ScriptedCritic::new([]);
    let rt = runtime(&fake, Arc::default(), Ports { critic: critic.clone(), ..Ports::default() });
    let out = rt.run(agent().with_limits(Limits { max_steps: 2, ..Limits::default() }), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::MaxSteps { steps: 2 });
    assert_eq!(critic.reviews().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn critic_extends_the_deadline_at_the_soft_timeout() {
    let fake = FakeProvider::new("fake");
    // The answer takes 40 s; the hard timeout is 20 s, so only an extension lets it finish.
    fake.push("m", Outcome::text("slow but done").after(Duration::from_secs(40)));
    let critic = ScriptedCritic::new([Verdict::Extend {
        steps: 0,
        time: Duration::from_secs(30),
        reason: "worth waiting".into(),
    }]);
    let rt = runtime(&fake, Arc::default(), Ports { critic: critic.clone(), ..Ports::default() });
    let limits = Limits {
        timeout: Duration::from_secs(20),
        soft_timeout: Some(Duration::from_secs(10)),
        ..Limits::default()
    };
    let started = tokio::time::Instant::now();
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(40));
    let reviews = critic.reviews();
    assert!(!reviews.is_empty());
    assert_eq!(reviews[0].trigger, CriticTrigger::SoftDeadline);
    assert_eq!(reviews[0].elapsed, Duration::from_secs(10));
    // Reviewed again once half the extension was used (at 25 s).
    assert_eq!(reviews.get(1).map(|r| (r.elapsed, r.extensions)), Some((Duration::from_secs(25), 1)));
}

#[tokio::test(start_paused = true)]
async fn without_an_extension_the_hard_timeout_ends_the_run() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("too late").after(Duration::from_secs(40)));
    let critic = ScriptedCritic::new([Verdict::Escalate { reason: "slow".into() }]);
    let rt = runtime(&fake, Arc::default(), Ports { critic: critic.clone(), ..Ports::default() });
    let limits = Limits {
        timeout: Duration::from_secs(20),
        soft_timeout: Some(Duration::from_secs(10)),
        ..Limits::default()
    };
    let started = tokio::time::Instant::now();
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::TimedOut { after: Duration::from_secs(20) });
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    assert_eq!(critic.reviews().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_slow_critic_review_does_not_stall_the_run() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]).after(Duration::from_secs(2)));
    fake.push("m", Outcome::text("done"));
    // Reviewing at 1 s takes 5 s; the model answers (at 2 s) while the review is out.
    let critic = ScriptedCritic::slow([], Duration::from_secs(5));
    let rt = runtime(&fake, Arc::default(), Ports { critic: critic.clone(), ..Ports::default() });
    let limits = Limits { soft_timeout: Some(Duration::from_secs(1)), ..Limits::default() };
    let started = tokio::time::Instant::now();
    let out = rt.run(agent().with_limits(limits), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert!(started.elapsed() <= Duration::from_secs(6), "took {:?}", started.elapsed());
    assert_eq!(critic.reviews().len(), 1);
}

#[tokio::test]
async fn delivered_runs_reach_the_delivery_port() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("report ready"));
    fake.push("m", Outcome::text("not delivered"));
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let rt =
        runtime(&fake, Arc::default(), Ports { delivery: Arc::new(ChannelDelivery(tx)), ..Ports::default() });
    let identity = Identity::new("bob", "acme");
    let out = run_req(&rt, RunRequest::new(agent(), "go").identity(identity.clone()).deliver()).await;
    let item = rx.recv().await.unwrap();
    assert_eq!(item.run_id, out.run_id);
    assert_eq!((item.agent.as_str(), item.status.as_str()), ("tester", "completed"));
    assert_eq!(item.output.as_deref(), Some("report ready"));
    assert_eq!(item.identity, identity);
    // Runs not marked for delivery are not delivered.
    rt.run(agent(), "quiet").await.unwrap();
    assert!(rx.try_recv().is_err());
}

fn skill(name: &str, instructions: &str, tools: &[&str]) -> SkillDef {
    SkillDef {
        name: name.into(),
        version: 1,
        instructions: instructions.into(),
        tools: tools.iter().map(|t| (*t).to_owned()).collect(),
    }
}

#[tokio::test]
async fn personas_and_skills_shape_the_agent() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "lookup", "q")]));
    fake.push("m", Outcome::text("found it"));
    let helper = RunnableAgent::new("helper", "You help.", "fake/m")
        .with_tools(["echo"])
        .with_skills(["search", "style"]);
    let personas = Personas(BTreeMap::from([("helper".to_owned(), helper)]));
    let skills = Skills {
        skills: BTreeMap::from([
            ("search".to_owned(), skill("search", "Search with lookup.", &["lookup", "echo"])),
            ("style".to_owned(), skill("style", "Be brief.", &[])),
        ]),
        ..Skills::default()
    };
    let skills = Arc::new(skills);
    let ports = Ports { personas: Arc::new(personas), skills: skills.clone(), ..Ports::default() };
    let tools = tools(Arc::default())
        .with(text_tool("lookup", |q| async move { Ok::<_, ToolError>(format!("result for {q}")) }));
    let rt = build(&fake, tools, ports, config(), None);

    let agent = rt.agent("helper").await.unwrap();
    assert_eq!(agent.skills, ["search", "style"]);
    let out = rt.run(agent, "find").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    let request = &fake.requests_for("m")[0];
    assert_eq!(
        request.system.as_deref(),
        Some("You help.\n\n## Skill: search\n\nSearch with lookup.\n\n## Skill: style\n\nBe brief.")
    );
    let offered: Vec<&str> = request.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(offered, ["echo", "lookup"], "skill tools join the allowlist once");
    assert_eq!(crate::common::all_results(&out.messages)[0].content, "result for q");
    assert_eq!(*skills.asked.lock().unwrap(), ["search", "style"]);

    match rt.agent("nobody").await {
        Err(RuntimeError::UnknownAgent { name, known }) => {
            assert_eq!(name, "nobody");
            assert!(known.contains("helper"), "{known}");
        }
        other => panic!("expected unknown agent, got {other:?}"),
    }
    let broken = RunnableAgent::new("broken", "", "fake/m").with_skills(["missing"]);
    match rt.spawn(broken, "go").await {
        Err(RuntimeError::UnknownSkill { agent, skill }) => {
            assert_eq!((agent.as_str(), skill.as_str()), ("broken", "missing"))
        }
        other => panic!("expected unknown skill, got {other:?}"),
    }
}

#[tokio::test]
async fn the_default_checkpoint_store_holds_a_run_until_it_ends() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "slow", "a")]));
    let rt = runtime(&fake, Arc::default(), Ports::default());
    let handle = rt.spawn(agent(), "go").await.unwrap();
    let mut events = handle.events();
    wait_for_event(&mut events, |e| matches!(e, RunEvent::ToolStarted { .. })).await;
    let store = rt.ports().checkpoints.clone();
    let listed = store.list_interrupted().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].0.run_id, listed[0].1), (handle.id(), StoredStatus::Running));
    let stored = store.load(handle.id()).await.unwrap().unwrap();
    assert!(stored.entries.len() >= 2, "start and the model answer are saved before the tool runs");
    handle.cancel().await;
    handle.outcome().await;
    // The log is deleted before the outcome is published.
    assert_eq!(store.load(handle.id()).await.unwrap(), None);
    assert!(store.list_interrupted().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_runtime_with_only_a_registry_runs_an_agent() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::text("hello"));
    let rt = Runtime::builder().registry(registry(&fake)).build();
    let out = rt.run(RunnableAgent::new("bare", "", "fake/m"), "hi").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed);
    assert_eq!(out.messages, [Message::user("hi"), Message::assistant("hello")]);
    // The default memory store is in use and empty again.
    assert!(rt.ports().checkpoints.list_interrupted().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_bare_runtime_with_an_unknown_model_fails_the_run_clearly() {
    let rt = Runtime::builder().build();
    let agent = RunnableAgent::new("lost", "", "nowhere/model-x");
    let out = rt.run(agent, "hi").await.unwrap();
    let RunEnd::Failed { error } = &out.end else { panic!("expected failure: {out:?}") };
    assert!(error.contains("nowhere/model-x"), "the error names the spec: {error}");
    assert_eq!(out.messages, [Message::user("hi")]);
    assert_eq!(out.steps, 0);
}
