//! What must survive the process, through the SQLite store at `[store] url`: a run killed
//! with SIGKILL mid-run is finished by `resume` in a new process; a run paused for approval
//! is continued by `approve` / `deny` from another process; a chat remembers the previous
//! process's turns; a `schedule` shut down with a run in flight leaves it for `resume`.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::ResponseTemplate;

use crate::common::*;

/// `resume --list --json`, parsed.
async fn interrupted(ws: &Workspace) -> Vec<Value> {
    let out = ws.run(&["resume", "--list", "--json"], None).await;
    assert_exit(&out, 0);
    text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Polls the store file until an interrupted run's log holds a tool result (up to 120 s: a hang guard).
async fn wait_for_checkpointed_tool_result(ws: &Workspace) {
    use executus::ports::CheckpointStore as _;
    let url = format!("sqlite://{}/executus.db", ws.path().display());
    let started = std::time::Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no tool result was checkpointed in 120 s (hang)"
        );
        if let Ok(store) = executus_store::Store::open(&url).await {
            let checkpoints = store.checkpoints();
            for (meta, _) in checkpoints.list_interrupted().await.unwrap_or_default() {
                let Ok(Some(run)) = checkpoints.load(meta.run_id).await else { continue };
                let facts = run.entries.iter().filter_map(|e| executus::checkpoint::decode(&e.payload).ok());
                if facts.into_iter().any(|f| matches!(f, executus::run::Fact::ToolResult { .. })) {
                    store.close().await;
                    return;
                }
            }
            store.close().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_finishes_a_run_left_interrupted_by_a_killed_process() {
    // First life: step 1 asks for calc, step 2 never answers.
    let first = openai_server(|req| {
        if has_tool_result(req) {
            ResponseTemplate::new(200).set_body_json(text_answer("never")).set_delay(Duration::from_secs(120))
        } else {
            ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ))
        }
    })
    .await;
    let ws = Workspace::new(&base_config(&first.uri()));
    let mut child =
        ws.command(&["run", "--agent", "helper", "--input", "What is 6 x 7?", "--json"]).spawn().unwrap();
    // The second request carries calc's result: step 1 is done. Kill once its result is in
    // the store (read from the SQLite file by this test process, as a second process would).
    wait_for_calls(&first, 2).await;
    wait_for_checkpointed_tool_result(&ws).await;
    child.kill().unwrap(); // SIGKILL: no handler, no shutdown, no final save.
    let killed = child.wait().unwrap();
    assert_eq!(killed.code(), None, "killed by a signal");

    let runs = interrupted(&ws).await;
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["status"], "running");
    assert_eq!(runs[0]["agent"], "helper");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_owned();

    // Second life, against a model that answers.
    let second = openai_server(|req| {
        let seen = transcript(req);
        let answer = if seen.contains("42") { "6 x 7 = 42 (resumed)" } else { "the tool result is missing" };
        ResponseTemplate::new(200).set_body_json(text_answer(answer))
    })
    .await;
    ws.write_config(&base_config(&second.uri()));
    let out = ws.run(&["resume", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_run_json_shape(&doc);
    assert_eq!(doc["run_id"], run_id.as_str());
    assert_eq!(doc["status"], "completed");
    assert_eq!(doc["output"], "6 x 7 = 42 (resumed)");
    assert_eq!(doc["steps"], 2);
    let calls = calls(&second).await;
    assert_eq!(calls.len(), 1, "step 1 (and its tool call) was not done again");
    assert_eq!(
        messages(&calls[0]).iter().filter(|m| m["role"] == "tool").count(),
        1,
        "one tool result, not two"
    );
    assert!(interrupted(&ws).await.is_empty(), "a finished run leaves the list");
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_and_deny_continue_a_paused_run_from_another_process() {
    let server = openai_server(|req| {
        let tool_result = messages(req).into_iter().find(|m| m["role"] == "tool");
        let Some(result) = tool_result else {
            return ResponseTemplate::new(200).set_body_json(tool_answer(
                "call_1",
                "calc",
                &json!({"expression": "6*7"}),
            ));
        };
        let answer = if result.to_string().contains("not now") {
            "Understood, I won't calculate."
        } else {
            "It is 42."
        };
        ResponseTemplate::new(200).set_body_json(text_answer(answer))
    })
    .await;
    let ws =
        Workspace::new(&format!("{}\n[policy]\nrequire_approval = [\"calc\"]\n", base_config(&server.uri())));

    let paused = |out: &std::process::Output| -> String {
        assert_exit(out, 0);
        let doc = json_stdout(out);
        assert_run_json_shape(&doc);
        assert_eq!(doc["status"], "awaiting_approval");
        assert_eq!(
            doc["pending_approvals"],
            json!([{ "call_id": "call_1", "tool": "calc", "args": {"expression": "6*7"} }])
        );
        doc["run_id"].as_str().unwrap().to_owned()
    };
    let out = ws.run(&["run", "--agent", "helper", "--input", "What is 6 x 7?", "--json"], None).await;
    let run = paused(&out);
    let listed = interrupted(&ws).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0]["run_id"].as_str().unwrap(), listed[0]["status"].as_str().unwrap()),
        (run.as_str(), "awaiting_approval")
    );
    // `resume` leaves runs waiting for a human alone.
    let out = ws.run(&["resume"], None).await;
    assert_exit(&out, 0);

    let out = ws.run(&["approve", &run, "call_1", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!((doc["status"].as_str(), doc["output"].as_str()), (Some("completed"), Some("It is 42.")));
    assert!(transcript(&calls(&server).await[1]).contains("42"), "the approved call really ran");

    let out = ws.run(&["run", "--agent", "helper", "--input", "What is 6 x 7?", "--json"], None).await;
    let run = paused(&out);
    let out = ws.run(&["deny", &run, "call_1", "--reason", "not now", "--json"], None).await;
    assert_exit(&out, 0);
    let doc = json_stdout(&out);
    assert_eq!(doc["output"], "Understood, I won't calculate.");
    assert!(interrupted(&ws).await.is_empty());

    // Answering twice, or a run that does not exist, is a usage error.
    let out = ws.run(&["approve", &run, "call_1"], None).await;
    assert_exit(&out, 2);
    let out = ws.run(&["deny", "0190f2a4-0000-7000-8000-000000000000", "call_1"], None).await;
    assert_exit(&out, 2);
    let out = ws.run(&["approve", "not-a-run", "call_1"], None).await;
    assert_exit(&out, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn chat_history_survives_the_process() {
    let server = openai_server(|req| {
        let seen = transcript(req);
        let last = messages(req).last().map(|m| m.to_string()).unwrap_or_default();
        let answer = if last.contains("my name is Ada") {
            "Nice to meet you, Ada."
        } else if seen.contains("Nice to meet you, Ada.") {
            "Your name is Ada."
        } else {
            "I don't know your name."
        };
        ResponseTemplate::new(200).set_body_json(text_answer(answer))
    })
    .await;
    let ws = Workspace::new(&base_config(&server.uri()));
    let chat = ["chat", "--persona", "helper", "--identity", "ada@lab"];
    let out = ws.run(&chat, Some("my name is Ada\n")).await;
    assert_exit(&out, 0);
    let out = ws.run(&chat, Some("what is my name?\n")).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Your name is Ada.\n", "the second process remembers the first");
    // Another user has their own conversation.
    let out =
        ws.run(&["chat", "--persona", "helper", "--identity", "bob@lab"], Some("what is my name?\n")).await;
    assert_eq!(text(&out.stdout), "I don't know your name.\n");
    let out = ws.run(&chat, Some("/reset\n")).await;
    assert_exit(&out, 0);
    let out = ws.run(&chat, Some("what is my name?\n")).await;
    assert_eq!(text(&out.stdout), "I don't know your name.\n", "/reset is durable too");
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_shutdown_leaves_the_in_flight_run_for_resume() {
    let slow = openai_server(|_| {
        ResponseTemplate::new(200).set_body_json(text_answer("late")).set_delay(Duration::from_secs(120))
    })
    .await;
    let job = "\n[schedule.jobs.ticker]\ncron = \"* * * * * *\"\nagent = \"helper\"\ninput = \"report\"\n";
    let ws = Workspace::new(&format!("{}{job}", base_config(&slow.uri())));
    let child = ws.command(&["schedule"]).spawn().unwrap();
    wait_for_calls(&slow, 1).await;
    signal(&child, "TERM");
    let out = wait_exit(child, HANG).await;
    assert_exit(&out, 0);
    let runs = interrupted(&ws).await;
    assert_eq!(runs.len(), 1, "the in-flight run was checkpointed: {runs:?}");

    let fast = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("report done"))).await;
    ws.write_config(&format!("{}{job}", base_config(&fast.uri())));
    let out = ws.run(&["resume", "--json"], None).await;
    assert_exit(&out, 0);
    assert_eq!(json_stdout(&out)["output"], "report done");
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_rows_and_budget_spend_survive_the_process() {
    use executus_audit::{AuditQuery, AuditStore as _};
    let server = openai_server(|_| ResponseTemplate::new(200).set_body_json(text_answer("fine"))).await;
    // One call reserves (1 input + 10 output tokens) x $1000/M = $0.011 and settles the real
    // 17 tokens = $0.017. Under a $0.02 cap the second process can run only if it does NOT
    // see the first process's spend.
    let config = format!(
        r#"{}
[audit]
enabled = true
[budget]
unknown_model = "deny"
[budget.caps]
users = {{ ada = 0.02 }}
[budget.prices]
"mock/*" = {{ input = 1000.0, output = 1000.0 }}
[agents.spender]
system = "S."
model = "mock/test-model"
max_tokens = 10
"#,
        base_config(&server.uri())
    );
    let ws = Workspace::new(&config);
    let args = ["run", "--agent", "spender", "--input", "hi", "--identity", "ada@lab", "--json"];
    let out = ws.run(&args, None).await;
    assert_exit(&out, 0);
    let first = json_stdout(&out)["run_id"].as_str().unwrap().to_owned();
    let out = ws.run(&args, None).await;
    assert_exit(&out, 3);
    assert_eq!(json_stdout(&out)["status"], "budget_denied", "the second process saw the first one's spend");
    assert_eq!(calls(&server).await.len(), 1);

    let url = format!("sqlite://{}/executus.db", ws.path().display());
    let store = executus_store::Store::open(&url).await.unwrap();
    let page = store.audit().query(&AuditQuery::new().kind("run_started").limit(10)).await.unwrap();
    assert_eq!(page.records.len(), 2, "both processes' runs are in the audit trail");
    assert!(page.records.iter().any(|r| r.record.run_id.map(|id| id.to_string()) == Some(first.clone())));
    let denied = store.audit().query(&AuditQuery::new().kind("budget_denied").limit(10)).await.unwrap();
    assert_eq!(denied.records.len(), 1);
    store.close().await;
}
