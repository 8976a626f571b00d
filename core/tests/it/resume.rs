//! Resume: a run interrupted mid-tool (runtime dropped, store kept) continues in a new
//! runtime from its checkpoint; completed calls never run twice.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use executus::llm::Message;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::{AuditEvent, CheckpointStore, MemoryCheckpointStore, Ports};
use executus::tool::{Tool, ToolError, ToolRegistry, typed};
use executus::{RunEnd, RunnableAgent, Runtime};
use tokio::sync::Notify;

use crate::common::{DropFlag, EchoArgs, all_results, build, call, config};
use crate::doubles::AuditLog;

/// Counts executions per argument; while `hang` is set, a call with text `c` never finishes.
#[derive(Default)]
struct Gate {
    hang: AtomicBool,
    counts: Mutex<BTreeMap<String, usize>>,
    started: Notify,
    dropped: Arc<AtomicBool>,
}

impl Gate {
    fn count(&self, text: &str) -> usize {
        self.counts.lock().unwrap().get(text).copied().unwrap_or(0)
    }
}

fn gated_tool(name: &'static str, idempotent: bool, gate: Arc<Gate>) -> Arc<dyn Tool> {
    let tool = typed(name, "counts and may hang", move |_ctx, a: EchoArgs| {
        let gate = gate.clone();
        async move {
            *gate.counts.lock().unwrap().entry(a.text.clone()).or_default() += 1;
            if a.text == "c" && gate.hang.load(Ordering::SeqCst) {
                let _flag = DropFlag(gate.dropped.clone());
                gate.started.notify_one();
                std::future::pending::<()>().await;
            }
            Ok::<_, ToolError>(format!("{name}: {}", a.text))
        }
    });
    if idempotent { tool.idempotent().arc() } else { tool.arc() }
}

fn script(fake: &FakeProvider, tool: &str) {
    fake.push("m", Outcome::tool_calls([call("c1", tool, "a")]));
    fake.push("m", Outcome::tool_calls([call("c2", tool, "b")]));
    fake.push("m", Outcome::tool_calls([call("c3", tool, "c")]));
    fake.push("m", Outcome::text("done"));
}

fn runtime_over(
    fake: &FakeProvider,
    tool: Arc<dyn Tool>,
    store: &Arc<MemoryCheckpointStore>,
    audit: Arc<AuditLog>,
) -> Runtime {
    let ports = Ports { checkpoints: store.clone(), audit, ..Ports::default() };
    build(fake, ToolRegistry::new().with(tool), ports, config(), None)
}

/// Runs the script until the third call hangs, drops that runtime, resumes in a new one.
/// Returns the resumed outcome's messages, the second fake and the gate.
async fn interrupt_and_resume(
    tool: &'static str,
    idempotent: bool,
) -> (Vec<Message>, FakeProvider, Arc<Gate>, Arc<AuditLog>) {
    let agent = RunnableAgent::new("resumer", "You resume.", "fake/m").with_tools([tool]);
    let store = Arc::new(MemoryCheckpointStore::new());
    let gate = Arc::new(Gate::default());
    gate.hang.store(true, Ordering::SeqCst);

    let first = FakeProvider::new("fake");
    script(&first, tool);
    let rt = runtime_over(&first, gated_tool(tool, idempotent, gate.clone()), &store, AuditLog::new());
    let handle = rt.spawn(agent, "go").await.unwrap();
    let run_id = handle.id();
    gate.started.notified().await;
    assert_eq!((gate.count("a"), gate.count("b"), gate.count("c")), (1, 1, 1));
    // The process "dies": every handle on the runtime goes away.
    drop(handle);
    drop(rt);
    for _ in 0..1000 {
        if gate.dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(gate.dropped.load(Ordering::SeqCst), "dropping the runtime stops its in-flight tool calls");
    gate.hang.store(false, Ordering::SeqCst);

    // A new process over the same store.
    let second = FakeProvider::new("fake");
    second.push("m", Outcome::text("done"));
    let audit = AuditLog::new();
    let rt = runtime_over(&second, gated_tool(tool, idempotent, gate.clone()), &store, audit.clone());
    let handles = rt.resume_interrupted().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].id(), run_id);
    let out = handles[0].outcome().await;
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.steps, 4);
    assert!(rt.resume_interrupted().await.unwrap().is_empty(), "nothing left to resume");
    assert!(store.list_interrupted().await.unwrap().is_empty());
    (out.messages.clone(), second, gate, audit)
}

#[tokio::test]
async fn an_interrupted_run_resumes_and_ends_like_an_uninterrupted_one() {
    let (messages, second, gate, audit) = interrupt_and_resume("step", true).await;
    // Completed calls ran exactly once; the idempotent in-flight call was re-run.
    assert_eq!((gate.count("a"), gate.count("b"), gate.count("c")), (1, 1, 2));
    // The new runtime's model was asked once, for the final step, with the whole history.
    assert_eq!(second.calls_for("m"), 1);
    assert_eq!(second.requests_for("m")[0].messages.len(), 7);
    assert!(audit.events().iter().any(|e| matches!(e, AuditEvent::RunStarted { resumed: true, .. })));

    // The same script, never interrupted.
    let fake = FakeProvider::new("fake");
    script(&fake, "step");
    let clean_gate = Arc::new(Gate::default());
    let rt = runtime_over(&fake, gated_tool("step", true, clean_gate), &Arc::default(), AuditLog::new());
    let agent = RunnableAgent::new("resumer", "You resume.", "fake/m").with_tools(["step"]);
    let clean = rt.run(agent, "go").await.unwrap();
    assert_eq!(messages, clean.messages);
}

#[tokio::test]
async fn a_non_idempotent_call_in_flight_becomes_an_interrupted_error() {
    let (messages, second, gate, _) = interrupt_and_resume("charge", false).await;
    assert_eq!((gate.count("a"), gate.count("b"), gate.count("c")), (1, 1, 1), "never re-run");
    let results = all_results(&messages);
    assert_eq!(results.len(), 3);
    assert_eq!((results[0].content.as_str(), results[1].content.as_str()), ("charge: a", "charge: b"));
    assert!(results[2].is_error);
    assert!(results[2].content.contains("interrupted"), "{}", results[2].content);
    assert_eq!(results[2].id, "c3");
    // The model was told.
    let seen = all_results(&second.requests_for("m")[0].messages);
    assert_eq!(seen.last(), results.last());
}

/// The memory store, with claims refused while `held` — as when another process sharing a
/// durable store drives the run.
struct HeldElsewhere {
    inner: Arc<MemoryCheckpointStore>,
    held: AtomicBool,
}

#[async_trait::async_trait]
impl CheckpointStore for HeldElsewhere {
    async fn append(&self, batch: &[executus::ports::RunAppend]) -> Result<(), executus::ports::PortError> {
        self.inner.append(batch).await
    }
    async fn load(
        &self,
        run: executus::RunId,
    ) -> Result<Option<executus::ports::StoredRun>, executus::ports::PortError> {
        self.inner.load(run).await
    }
    async fn finish(
        &self,
        run: executus::RunId,
        status: executus::ports::StoredStatus,
    ) -> Result<(), executus::ports::PortError> {
        self.inner.finish(run, status).await
    }
    async fn list_interrupted(
        &self,
    ) -> Result<Vec<(executus::ports::RunMeta, executus::ports::StoredStatus)>, executus::ports::PortError>
    {
        self.inner.list_interrupted().await
    }
    async fn claim(
        &self,
        _run: executus::RunId,
    ) -> Result<Option<executus::ports::RunClaim>, executus::ports::PortError> {
        Ok((!self.held.load(Ordering::SeqCst)).then(executus::ports::RunClaim::local))
    }
}

#[tokio::test]
async fn a_run_claimed_elsewhere_is_neither_resumed_nor_started() {
    let agent = RunnableAgent::new("resumer", "You resume.", "fake/m").with_tools(["step"]);
    let store = Arc::new(MemoryCheckpointStore::new());
    let gate = Arc::new(Gate::default());
    gate.hang.store(true, Ordering::SeqCst);
    let first = FakeProvider::new("fake");
    script(&first, "step");
    let rt = runtime_over(&first, gated_tool("step", true, gate.clone()), &store, AuditLog::new());
    let handle = rt.spawn(agent.clone(), "go").await.unwrap();
    let run = handle.id();
    gate.started.notified().await;
    drop((handle, rt));
    gate.hang.store(false, Ordering::SeqCst);

    let held = Arc::new(HeldElsewhere { inner: store.clone(), held: AtomicBool::new(true) });
    let second = FakeProvider::new("fake");
    second.push("m", Outcome::text("done"));
    let ports = Ports { checkpoints: held.clone(), ..Ports::default() };
    let rt = build(
        &second,
        ToolRegistry::new().with(gated_tool("step", true, gate.clone())),
        ports,
        config(),
        None,
    );
    assert!(rt.resume_interrupted().await.unwrap().is_empty(), "skipped: another process drives it");
    let err = rt.resume(run).await.expect_err("refused");
    assert!(matches!(err, executus::RuntimeError::ActiveElsewhere { run: r } if r == run), "{err}");
    assert!(matches!(rt.spawn(agent, "go").await, Err(executus::RuntimeError::ActiveElsewhere { .. })));
    assert_eq!(second.calls_for("m"), 0, "nothing ran");
    assert_eq!(gate.count("c"), 1);
    // Released (that process ended): it resumes here.
    held.held.store(false, Ordering::SeqCst);
    let handles = rt.resume_interrupted().await.unwrap();
    assert_eq!(handles.len(), 1);
    assert_eq!(handles[0].outcome().await.end, RunEnd::Completed);
}
