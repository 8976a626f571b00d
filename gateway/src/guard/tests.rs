use executus::LoopLimits;
use executus::loops::{LoopAction, LoopKind};
use executus_llm::{Message, Part, Role, ToolCall, ToolResult};
use serde_json::{Value, json};

use super::*;
use crate::config::LoopSettings;

/// A conversation under construction, the way a client grows it request by request.
struct Convo {
    messages: Vec<Message>,
    next_id: u32,
}

impl Convo {
    fn new(prompt: &str) -> Self {
        Self { messages: vec![Message::user(prompt)], next_id: 0 }
    }

    /// The model called `name(args)` and the client sent back `result`.
    fn step(&mut self, name: &str, args: Value, result: &str, is_error: bool) -> &mut Self {
        self.next_id += 1;
        let id = format!("toolu_{:04}", self.next_id);
        self.messages.push(Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: id.clone(),
                name: name.into(),
                args,
                signature: None,
            })],
        });
        self.messages.push(Message::tool_results([ToolResult {
            id,
            name: name.into(),
            content: result.into(),
            is_error,
        }]));
        self
    }

    /// The model ended its turn and the user wrote again.
    fn next_task(&mut self, answer: &str, prompt: &str) -> &mut Self {
        self.messages.push(Message::assistant(answer));
        self.messages.push(Message::user(prompt));
        self
    }
}

fn settings(hard_cap: u32) -> LoopSettings {
    LoopSettings { limits: LoopLimits::default(), finalize_hard_cap: hard_cap }
}

#[test]
fn the_same_call_repeated_triggers_the_cycle() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("find the bug");
    for i in 0..2 {
        convo.step("Read", json!({"path": "a.rs"}), &format!("contents {i}"), false);
        let prepared = state.prepare(&convo.messages, &s);
        assert_eq!(prepared.plan, Plan::Pass, "step {i}");
    }
    convo.step("Read", json!({"path": "a.rs"}), "contents 3", false);
    let prepared = state.prepare(&convo.messages, &s);
    assert_eq!(prepared.triggers.len(), 1);
    assert_eq!(prepared.triggers[0].kind, LoopKind::Cycle);
    assert!(
        matches!(&prepared.plan, Plan::Finalize { reason } if reason.contains("repeated 3 times")),
        "{:?}",
        prepared.plan
    );
    assert_eq!(state.finalize_total, 1);
    // The same transcript again (a retry) observes nothing new.
    let again = state.prepare(&convo.messages, &s);
    assert_eq!(again.plan, Plan::Pass);
    assert!(!again.changed);
}

#[test]
fn distinct_but_unproductive_calls_trigger_the_unproductive_streak() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("deploy");
    let mut plans = Vec::new();
    for i in 0..4 {
        convo.step("Bash", json!({"command": format!("try-{i}")}), &format!("error {i}: not found"), true);
        plans.push(state.prepare(&convo.messages, &s));
    }
    assert!(plans[..3].iter().all(|p| p.plan == Plan::Pass));
    assert_eq!(plans[3].triggers[0].kind, LoopKind::Unproductive);
    assert!(matches!(plans[3].plan, Plan::Finalize { .. }));
}

#[test]
fn distinct_calls_that_learn_nothing_trigger_stagnation() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("look around");
    convo.step("Bash", json!({"command": "ls"}), "same", false);
    assert_eq!(state.prepare(&convo.messages, &s).plan, Plan::Pass);
    let mut last = None;
    for i in 0..4 {
        convo.step("Bash", json!({"command": format!("ls -{i}")}), "same", false);
        last = Some(state.prepare(&convo.messages, &s));
    }
    let last = last.unwrap();
    assert_eq!(last.triggers[0].kind, LoopKind::Stagnation);
    assert!(matches!(last.plan, Plan::Finalize { .. }));
}

#[test]
fn a_task_that_keeps_looping_past_its_finalize_turns_is_stopped() {
    let s = settings(100);
    let mut state = SessionState::new();
    let mut convo = Convo::new("loop");
    let mut actions = Vec::new();
    for _ in 0..12 {
        convo.step("Read", json!({"path": "same"}), "same", false);
        let prepared = state.prepare(&convo.messages, &s);
        actions.extend(prepared.triggers.iter().map(|t| t.action));
        if let Plan::Stop { reason } = prepared.plan {
            assert!(reason.contains("cycle"), "{reason}");
            // Two finalize turns allowed (the core default), the third trigger stops.
            assert_eq!(actions, [LoopAction::Finalize, LoopAction::Finalize, LoopAction::Stop]);
            return;
        }
    }
    panic!("never stopped: {actions:?}");
}

#[test]
fn finalize_then_new_tasks_then_hard_cap_then_natural_end() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("task 0");
    let mut finalized = 0;
    for task in 0..7 {
        // Each task loops until the guard asks for a finalize turn.
        let plan = loop {
            convo.step("Read", json!({"path": "same"}), "same", false);
            let prepared = state.prepare(&convo.messages, &s);
            if prepared.plan != Plan::Pass {
                break prepared.plan;
            }
        };
        if task < 6 {
            assert!(matches!(plan, Plan::Finalize { .. }), "task {task}: {plan:?}");
            finalized += 1;
            assert_eq!(state.finalize_total, finalized, "the hard-cap count is never reset");
        } else {
            assert!(
                matches!(&plan, Plan::Stop { reason } if reason.contains("hard cap (6)")),
                "task {task}: {plan:?}"
            );
        }
        convo.next_task("done", &format!("task {}", task + 1));
    }
    assert_eq!(state.finalize_total, 6);
    assert!(!state.may_continue(&s), "past the hard cap, completion gates no longer continue a turn");
}

#[test]
fn continuations_count_towards_the_hard_cap() {
    let s = settings(2);
    let mut state = SessionState::new();
    assert!(state.may_continue(&s));
    state.count_continuation();
    state.count_continuation();
    assert!(!state.may_continue(&s));
}

#[test]
fn reminder_text_next_to_tool_results_is_not_a_new_task() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("work");
    for i in 0..3 {
        convo.step("Read", json!({"path": "same"}), "same", false);
        // Claude Code attaches reminders to its tool results as text in the same message.
        convo.messages.push(Message::user(format!("<system-reminder>{i}</system-reminder>")));
        let prepared = state.prepare(&convo.messages, &s);
        if i == 2 {
            assert!(matches!(prepared.plan, Plan::Finalize { .. }), "{:?}", prepared.plan);
        } else {
            assert_eq!(prepared.plan, Plan::Pass);
        }
    }
}

#[test]
fn state_survives_a_restart_through_serde() {
    let s = settings(6);
    let mut state = SessionState::new();
    let mut convo = Convo::new("persist");
    for _ in 0..2 {
        convo.step("Read", json!({"path": "x"}), "x", false);
        state.prepare(&convo.messages, &s);
    }
    let stored = serde_json::to_string(&state).unwrap();
    let mut restored: SessionState = serde_json::from_str(&stored).unwrap();
    assert_eq!(restored, state);
    convo.step("Read", json!({"path": "x"}), "x", false);
    assert!(
        matches!(restored.prepare(&convo.messages, &s).plan, Plan::Finalize { .. }),
        "the third call after the restart"
    );
}

#[test]
fn turns_whose_calls_were_all_blocked_are_unproductive() {
    let s = settings(6);
    let mut state = SessionState::new();
    state.prepare(&Convo::new("push it").messages, &s);
    let mut fired = None;
    for i in 0..4 {
        let call = ToolCall {
            id: format!("b{i}"),
            name: "Bash".into(),
            args: json!({"command": format!("git push {i}")}),
            signature: None,
        };
        fired = state.observe_blocked(&[(call, "blocked: no pushing".into())], &s);
    }
    let fired = fired.unwrap();
    assert_eq!(fired.kind, LoopKind::Unproductive);
    // The finalize turn it asks for is planned with the next request of the task.
    assert!(matches!(state.prepare(&Convo::new("push it").messages, &s).plan, Plan::Finalize { .. }));
}

#[test]
fn a_model_ignoring_finalize_is_a_trigger_of_its_own() {
    let s = settings(6);
    let mut state = SessionState::new();
    let trigger = state.finalize_ignored(&s);
    assert_eq!(trigger.kind, LoopKind::FinalizeIgnored);
    assert_eq!(state.guard.finalize_pending(), None);
}
