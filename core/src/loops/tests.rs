use executus_llm::{ToolCall, ToolResult};
use serde_json::{Value, json};

use super::*;

fn call(name: &str, args: Value) -> ToolCall {
    ToolCall { id: "c".into(), name: name.into(), args, signature: None }
}

fn result(name: &str, content: &str, is_error: bool) -> ToolResult {
    ToolResult { id: "c".into(), name: name.into(), content: content.into(), is_error }
}

/// Observes one step of a single call.
fn step(guard: &mut LoopGuard, limits: &LoopLimits, c: &ToolCall, r: &ToolResult) -> Option<LoopTrigger> {
    guard.observe([ObservedCall { call: c, result: r, failed: r.is_error }], limits)
}

fn limits(cycle: u32, stagnation: u32, unproductive: u32, finalize_turns: u32) -> LoopLimits {
    LoopLimits { cycle, stagnation, unproductive, finalize_turns }
}

#[test]
fn the_same_call_with_reordered_keys_is_a_cycle() {
    let l = limits(2, 100, 100, 1);
    let mut g = LoopGuard::new();
    assert_eq!(step(&mut g, &l, &call("ls", json!({"a": 1, "b": 2})), &result("ls", "x", false)), None);
    let t = step(&mut g, &l, &call("ls", json!({"b": 2, "a": 1})), &result("ls", "y", false)).unwrap();
    assert_eq!((t.kind, t.action), (LoopKind::Cycle, LoopAction::Finalize));
    assert!(t.detail.contains("repeated 2 times"), "{}", t.detail);
    assert_eq!(g.finalize_pending(), Some(t.detail.as_str()));
    assert_eq!(g.take_finalize().as_deref(), Some(t.detail.as_str()));
    assert_eq!(g.finalize_pending(), None);
}

#[test]
fn distinct_calls_with_nothing_new_are_stagnation() {
    let l = limits(100, 3, 100, 2);
    let mut g = LoopGuard::new();
    // The first result is new information; the next three repeat it.
    assert_eq!(step(&mut g, &l, &call("read", json!({"p": 0})), &result("read", "same", false)), None);
    assert_eq!(step(&mut g, &l, &call("read", json!({"p": 1})), &result("read", "same", false)), None);
    assert_eq!(step(&mut g, &l, &call("read", json!({"p": 2})), &result("read", "same", false)), None);
    let t = step(&mut g, &l, &call("read", json!({"p": 3})), &result("read", "same", false)).unwrap();
    assert_eq!((t.kind, t.action), (LoopKind::Stagnation, LoopAction::Finalize));
    assert_eq!(t.detail, "3 consecutive steps added no new tool results");
}

#[test]
fn distinct_failing_calls_are_an_unproductive_streak_and_a_success_resets_it() {
    let l = limits(100, 100, 2, 2);
    let mut g = LoopGuard::new();
    assert_eq!(step(&mut g, &l, &call("x", json!(1)), &result("x", "e1", true)), None);
    assert_eq!(step(&mut g, &l, &call("x", json!(2)), &result("x", "ok", false)), None);
    assert_eq!(step(&mut g, &l, &call("x", json!(3)), &result("x", "e3", true)), None);
    let t = step(&mut g, &l, &call("x", json!(4)), &result("x", "e4", true)).unwrap();
    assert_eq!((t.kind, t.action), (LoopKind::Unproductive, LoopAction::Finalize));
}

#[test]
fn triggers_past_the_finalize_turns_stop_and_leave_no_finalize_pending() {
    let l = limits(1, 100, 100, 1);
    let mut g = LoopGuard::new();
    let first = step(&mut g, &l, &call("a", json!(1)), &result("a", "1", false)).unwrap();
    assert_eq!(first.action, LoopAction::Finalize);
    g.take_finalize();
    let ignored = g.finalize_ignored(&l);
    assert_eq!((ignored.kind, ignored.action), (LoopKind::FinalizeIgnored, LoopAction::Stop));
    assert_eq!(g.finalize_pending(), None);
    assert_eq!(g.triggers(), 2);
}

#[test]
fn a_step_without_calls_changes_nothing() {
    let l = limits(1, 1, 1, 1);
    let mut g = LoopGuard::new();
    assert_eq!(g.observe([], &l), None);
    assert_eq!(g, LoopGuard::new());
}

#[test]
fn a_guard_restored_from_json_continues_where_it_was() {
    let l = limits(3, 100, 100, 2);
    let mut g = LoopGuard::new();
    let c = call("same", json!({"q": "x"}));
    step(&mut g, &l, &c, &result("same", "1", false));
    step(&mut g, &l, &c, &result("same", "2", false));
    let mut restored: LoopGuard = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(restored, g);
    let t = step(&mut restored, &l, &c, &result("same", "3", false)).unwrap();
    assert_eq!(t.kind, LoopKind::Cycle);
}

#[test]
fn vocabularies_serialise_as_their_audit_names() {
    assert_eq!(serde_json::to_value(LoopKind::FinalizeIgnored).unwrap(), json!("finalize_ignored"));
    assert_eq!(serde_json::to_value(LoopAction::Stop).unwrap(), json!("stop"));
    assert_eq!(LoopKind::Cycle.to_string(), "cycle");
}

#[test]
fn fingerprints_are_stable_across_builds() {
    // A changed hash would make replayed logs reach a different loop state.
    // FNV-1a 64 of "a\0b", computed independently.
    assert_eq!(fingerprint("a", "b"), 0xe5d2_9919_0426_66b2);
}
