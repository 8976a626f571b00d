//! The state machine without I/O: replay equals the live run, loop protection, typed output,
//! misfit facts.

use executus_llm::{FinishReason, Message, Part, Role, ToolCall, ToolResult, Usage};
use serde_json::{Value, json};

use super::*;
use crate::agent::{Limits, LoopLimits};

fn started(agent: RunnableAgent) -> Fact {
    Fact::Started {
        run_id: RunId::new(),
        agent: Box::new(agent),
        identity: Identity::default(),
        parent: None,
        input: vec![Message::user("go")],
        created_ms: 1,
    }
}

fn agent() -> RunnableAgent {
    RunnableAgent::new("unit", "sys", "fake/m").with_tools(["echo"])
}

fn call(id: &str, args: Value) -> ToolCall {
    ToolCall { id: id.into(), name: "echo".into(), args, signature: None }
}

fn answer(parts: Vec<Part>, steered: u32) -> Fact {
    Fact::Model {
        message: Message { role: Role::Assistant, parts },
        usage: Usage { input_tokens: 10, output_tokens: 2, ..Usage::default() },
        finish: FinishReason::Stop,
        provider: "fake".into(),
        model: "m".into(),
        steered,
    }
}

fn calls(calls: Vec<ToolCall>, steered: u32) -> Fact {
    answer(calls.into_iter().map(Part::ToolCall).collect(), steered)
}

fn text(t: &str, steered: u32) -> Fact {
    answer(vec![Part::Text { text: t.into() }], steered)
}

fn result(id: &str, content: &str, is_error: bool) -> Fact {
    Fact::ToolResult {
        result: ToolResult { id: id.into(), name: "echo".into(), content: content.into(), is_error },
        blocked: false,
    }
}

/// Drives a run like the actor does: `next_action` before each model answer, facts applied
/// in order. Returns the live state and the log.
fn drive(start: Fact, facts: Vec<Fact>) -> (RunState, Vec<Fact>) {
    let mut st = RunState::start(&start).unwrap();
    let mut log = vec![start];
    for fact in facts {
        if matches!(fact, Fact::Model { .. }) {
            assert!(matches!(st.next_action(), Action::CallModel { .. }), "a model call is due");
        }
        st.apply(&fact).unwrap();
        log.push(fact);
    }
    (st, log)
}

#[test]
fn replaying_the_log_rebuilds_the_live_state_including_steering() {
    let (live, log) = drive(
        started(agent()),
        vec![
            calls(vec![call("c1", json!({"text": "a"}))], 0),
            // Steering while the tool runs: placed before the next answer.
            Fact::Steered { text: "also b".into() },
            result("c1", "echo: a", false),
            // The request for step 2 carried "also b"; "and c" arrived while the model
            // answered, so the model has not seen it: another step follows.
            Fact::Steered { text: "and c".into() },
            text("first answer", 1),
        ],
    );
    assert_eq!(live.phase, Phase::Model, "steering during the answer asks for another step");
    let replayed = RunState::replay(log.iter()).unwrap();
    assert_eq!(replayed, live);
    assert_eq!(
        live.messages.iter().map(|m| (m.role, m.text())).collect::<Vec<_>>(),
        [
            (Role::User, "go".to_owned()),
            (Role::Assistant, String::new()),
            (Role::Tool, String::new()),
            (Role::User, "also b".to_owned()),
            (Role::Assistant, "first answer".to_owned()),
        ]
    );
    // The next request shows the pending steering after the transcript.
    let request = live.request(Vec::new());
    assert_eq!(request.messages.last(), Some(&Message::user("and c")));
    assert_eq!(live.steering, ["and c"]);
}

#[test]
fn the_request_carries_system_steering_and_tools() {
    let mut st = RunState::start(&started(agent())).unwrap();
    st.apply(&Fact::Steered { text: "quick".into() }).unwrap();
    let spec = executus_llm::ToolSpec { name: "echo".into(), description: "e".into(), parameters: json!({}) };
    let request = st.request(vec![spec]);
    assert_eq!(request.system.as_deref(), Some("sys"));
    assert_eq!(request.messages, [Message::user("go"), Message::user("quick")]);
    assert_eq!(request.tools.len(), 1);
    assert_eq!(st.messages, [Message::user("go")], "steering joins the transcript with the answer");
}

#[test]
fn identical_calls_trigger_a_finalize_turn_then_a_stop() {
    let mut a = agent();
    a.limits.loops = LoopLimits { cycle: 2, stagnation: 100, unproductive: 100, finalize_turns: 1 };
    let mut st = RunState::start(&started(a)).unwrap();
    // Key order does not matter: the canonical form is the same call.
    for (i, args) in [json!({"a": 1, "b": 2}), json!({"b": 2, "a": 1})].into_iter().enumerate() {
        let id = format!("c{i}");
        st.apply(&calls(vec![call(&id, args)], 0)).unwrap();
        st.apply(&result(&id, &format!("r{i}"), false)).unwrap();
    }
    assert_eq!(st.last_triggers.len(), 1, "{:?}", st.last_triggers);
    assert_eq!(
        (st.last_triggers[0].kind.as_str(), st.last_triggers[0].action.as_str()),
        ("cycle", "finalize")
    );
    assert_eq!(st.next_action(), Action::CallModel { tools: false });
    let request = st.request(Vec::new());
    assert!(request.messages.last().unwrap().text().contains("Loop protection"));
    // The model ignores the finalize turn: its call is answered with an error, then stop.
    st.apply(&calls(vec![call("c9", json!({"a": 1}))], 0)).unwrap();
    assert!(st.is_ended());
    assert!(matches!(&st.end, Some(RunEnd::Stopped { reason }) if reason.contains("finalize_ignored")));
    let last = st.messages.last().unwrap();
    assert!(matches!(&last.parts[0], Part::ToolResult(r) if r.is_error && r.content.contains("withheld")));
}

#[test]
fn a_success_resets_the_error_streak_and_the_limit_ends_the_run() {
    let mut a = agent();
    a.limits = Limits {
        tool_error_limit: 2,
        loops: LoopLimits { cycle: 100, stagnation: 100, unproductive: 100, finalize_turns: 2 },
        ..Limits::default()
    };
    let mut st = RunState::start(&started(a)).unwrap();
    let step = |st: &mut RunState, i: u32, ok: bool| {
        let id = format!("c{i}");
        st.apply(&calls(vec![call(&id, json!({ "i": i }))], 0)).unwrap();
        st.apply(&result(&id, &format!("r{i}"), !ok)).unwrap();
    };
    step(&mut st, 0, false);
    step(&mut st, 1, true);
    assert_eq!(st.tool_error_streak, 0);
    step(&mut st, 2, false);
    assert!(!st.is_ended());
    step(&mut st, 3, false);
    assert_eq!(st.end, Some(RunEnd::ToolErrorLimit { failures: 2 }));
}

#[test]
fn typed_output_is_parsed_retried_once_then_failed() {
    let schema =
        executus_llm::ResponseSchema { name: "v".into(), schema: json!({"type": "object"}), strict: false };
    let typed_agent = agent().with_output_schema(schema);
    let mut ok = RunState::start(&started(typed_agent.clone())).unwrap();
    ok.apply(&text("```json\n{\"x\": 1}\n```", 0)).unwrap();
    assert_eq!((ok.end.clone(), ok.typed.clone()), (Some(RunEnd::Completed), Some(json!({"x": 1}))));

    let mut bad = RunState::start(&started(typed_agent)).unwrap();
    bad.apply(&text("nope", 0)).unwrap();
    assert!(!bad.is_ended() && bad.typed_retry_used);
    assert!(bad.messages.last().unwrap().text().contains("not valid JSON"));
    bad.apply(&text("still nope", 0)).unwrap();
    assert!(matches!(&bad.end, Some(RunEnd::Failed { error }) if error.contains("not valid JSON")));
}

#[test]
fn facts_that_do_not_fit_are_refused() {
    let start = started(agent());
    let mut st = RunState::start(&start).unwrap();
    assert!(matches!(st.apply(&start), Err(ReplayError::Misfit { .. })));
    assert!(matches!(st.apply(&result("ghost", "x", false)), Err(ReplayError::Misfit { .. })));
    st.apply(&calls(vec![call("c1", json!({}))], 0)).unwrap();
    assert!(matches!(st.apply(&text("early", 0)), Err(ReplayError::Misfit { .. })), "answer while tools run");
    assert!(matches!(RunState::replay([].iter()), Err(ReplayError::NoStart)));
    assert!(matches!(
        RunState::replay([Fact::Steered { text: "x".into() }].iter()),
        Err(ReplayError::NoStart)
    ));
}

#[test]
fn parse_typed_strips_fences() {
    assert_eq!(parse_typed("```json\n[1]\n```").unwrap(), json!([1]));
    assert_eq!(parse_typed("```\n{\"a\":1}```").unwrap(), json!({"a": 1}));
    assert_eq!(parse_typed("  true ").unwrap(), json!(true));
    assert!(parse_typed("```json\nnot json\n```").is_err());
}

#[test]
fn model_facts_round_trip_with_compact_usage() {
    let fact = calls(vec![call("c1", json!({"t": 1}))], 2);
    let bytes = serde_json::to_string(&fact).unwrap();
    assert!(!bytes.contains("cache_read_tokens"), "zero counters are not written: {bytes}");
    assert_eq!(serde_json::from_str::<Fact>(&bytes).unwrap(), fact);
    // The full form (older logs) still reads, and a missing `steered` means 0.
    let full = r#"{"fact":"model","message":{"role":"assistant","parts":[]},"usage":{"input_tokens":3,"output_tokens":1,"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0},"finish":"stop","provider":"p","model":"m"}"#;
    let Fact::Model { usage, steered, .. } = serde_json::from_str::<Fact>(full).unwrap() else { panic!() };
    assert_eq!((usage.input_tokens, usage.output_tokens, steered), (3, 1, 0));
}

#[test]
fn tool_images_follow_the_results_and_replay_to_the_same_state() {
    let image = Part::Image { mime: "image/png".into(), data: vec![1, 2, 3] };
    let (live, log) = drive(
        started(agent()),
        vec![
            calls(vec![call("c1", json!({"text": "a"})), call("c2", json!({"text": "b"}))], 0),
            Fact::ToolImages { call_id: "c2".into(), images: vec![image.clone()] },
            result("c2", "echo: b", false),
            result("c1", "echo: a", false),
        ],
    );
    let n = live.messages.len();
    assert_eq!(live.messages[n - 2].role, Role::Tool);
    assert_eq!(
        live.messages[n - 1],
        Message {
            role: Role::User,
            parts: vec![Part::Text { text: "[images returned by tool echo (call c2)]".into() }, image],
        }
    );
    // The log round-trips through JSON (the checkpoint's form) and replays to the same state.
    let json = serde_json::to_string(&log).unwrap();
    let back: Vec<Fact> = serde_json::from_str(&json).unwrap();
    assert_eq!(RunState::replay(&back).unwrap(), live);
    // Images for a call that has finished do not fit.
    let mut st = live.clone();
    let misfit = st.apply(&Fact::ToolImages { call_id: "c1".into(), images: Vec::new() });
    assert!(matches!(misfit, Err(ReplayError::Misfit { .. })), "{misfit:?}");
}

#[test]
fn step_calls_are_read_from_the_answer_and_a_rewrite_changes_only_what_runs() {
    let mut st = RunState::start_owned(started(agent())).unwrap();
    st.apply(&calls(vec![call("c1", json!({"p": "a"})), call("c2", json!({"p": "b"}))], 0)).unwrap();
    let ids: Vec<&str> = st.step_calls().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["c1", "c2"]);
    st.apply(&Fact::Rewritten { call_id: "c2".into(), args: json!({"p": "wt/b"}) }).unwrap();
    match st.next_action() {
        Action::CallTools(run) => {
            assert_eq!(
                run.iter().map(|c| (c.id.as_str(), c.args.clone())).collect::<Vec<_>>(),
                [("c1", json!({"p": "a"})), ("c2", json!({"p": "wt/b"}))]
            );
        }
        other => panic!("expected tool calls, got {other:?}"),
    }
    // The transcript keeps what the model asked for.
    assert_eq!(st.step_calls().nth(1).map(|c| c.args.clone()), Some(json!({"p": "b"})));
    st.apply(&result("c1", "ok", false)).unwrap();
    assert_eq!(st.unfinished_calls().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["c2"]);
    assert!(st.apply(&result("c1", "again", false)).is_err(), "a finished call takes no second result");
    st.apply(&result("c2", "ok", false)).unwrap();
    assert_eq!(st.step_calls().count(), 0, "the step is complete");
    assert!(matches!(st.next_action(), Action::CallModel { tools: true }));
}

#[test]
fn start_owned_equals_start() {
    let fact = started(agent());
    assert_eq!(RunState::start_owned(fact.clone()).unwrap(), RunState::start(&fact).unwrap());
    assert_eq!(RunState::start_owned(Fact::Steered { text: "x".into() }), Err(ReplayError::NoStart));
}
