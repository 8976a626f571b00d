//! The run loop over the fake provider.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use executus::RunEnd;
use executus::llm::Role;
use executus::llm::fake::{FakeProvider, Outcome};
use executus::ports::Ports;

use crate::common::{agent, call, runtime};

#[tokio::test]
async fn multi_step_tool_run_completes() {
    let fake = FakeProvider::new("fake");
    fake.push("m", Outcome::tool_calls([call("c1", "echo", "a")]));
    fake.push("m", Outcome::tool_calls([call("c2", "echo", "b")]));
    fake.push("m", Outcome::text("done"));
    let counter = Arc::new(AtomicUsize::new(0));
    let rt = runtime(&fake, counter.clone(), Ports::default());
    let out = rt.run(agent(), "go").await.unwrap();
    assert_eq!(out.end, RunEnd::Completed, "{out:?}");
    assert_eq!(out.output.as_deref(), Some("done"));
    assert_eq!(out.steps, 3);
    assert_eq!(counter.load(Ordering::SeqCst), 2);
    // user, assistant(call), tool, assistant(call), tool, assistant(text)
    let roles: Vec<Role> = out.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [Role::User, Role::Assistant, Role::Tool, Role::Assistant, Role::Tool, Role::Assistant]
    );
    // The model saw the tool result of the first call in its second request.
    let second = &fake.requests_for("m")[1];
    let last = second.messages.last().unwrap();
    assert_eq!(last.role, Role::Tool);
    assert!(format!("{last:?}").contains("echo: a"));
    assert_eq!(second.system.as_deref(), Some("You test."));
    assert_eq!(second.tools.len(), 4);
}
