//! `chat`: a persona loaded from a `[personas] dir` folder answers on stdout, the
//! conversation is the model's context turn after turn, `/reset` forgets it, `/exit` ends
//! the loop, a persona must be named when there are several, and SIGINT exits 130.

use std::time::Duration;

use wiremock::{Request, ResponseTemplate};

use crate::common::*;

const PERSONA: &str = r#"+++
description = "Remembers names"
model = "mock/test-model"
+++
You remember what people tell you.
"#;

/// Answers from the conversation the model is shown.
fn remembering(req: &Request) -> ResponseTemplate {
    let messages = messages(req);
    let last = messages.last().map(|m| m["content"].to_string()).unwrap_or_default();
    let earlier =
        messages[..messages.len().saturating_sub(1)].iter().map(|m| m.to_string()).collect::<String>();
    let answer = if last.contains("my name is Ada") {
        "Nice to meet you, Ada."
    } else if last.contains("what is my name") && earlier.contains("Nice to meet you, Ada.") {
        "Your name is Ada."
    } else if last.contains("hang") {
        return ResponseTemplate::new(200)
            .set_body_json(text_answer("late"))
            .set_delay(Duration::from_secs(120));
    } else {
        "I don't know your name."
    };
    ResponseTemplate::new(200).set_body_json(text_answer(answer))
}

fn chat_workspace(server: &str) -> Workspace {
    let ws = Workspace::new(&format!("{}\n[personas]\ndir = \"personas\"\n", base_config(server)));
    std::fs::create_dir(ws.path().join("personas")).unwrap();
    std::fs::write(ws.path().join("personas/ada.md"), PERSONA).unwrap();
    ws
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_keeps_its_history_until_reset() {
    let server = openai_server(remembering).await;
    let ws = chat_workspace(&server.uri());
    let input = "my name is Ada\nwhat is my name?\n/reset\nwhat is my name?\n/exit\nmy name is Ada\n";
    let out = ws.run(&["chat", "--persona", "ada", "--identity", "ada@lab"], Some(input)).await;
    assert_exit(&out, 0);
    assert_eq!(
        text(&out.stdout),
        "Nice to meet you, Ada.\nYour name is Ada.\nI don't know your name.\n",
        "stderr: {}",
        text(&out.stderr)
    );
    let stderr = text(&out.stderr);
    assert!(stderr.contains("forgot 4 messages") && stderr.contains("ada@lab with ada"), "{stderr}");
    let requests = calls(&server).await;
    assert_eq!(requests.len(), 3, "nothing after /exit is sent");
    assert!(
        transcript(&requests[0]).contains("You remember what people tell you."),
        "the persona's prompt is used"
    );
    assert_eq!(
        messages(&requests[1]).iter().filter(|m| m["role"] == "user").count(),
        2,
        "turn 2 sees turn 1"
    );
    assert_eq!(
        messages(&requests[2]).iter().filter(|m| m["role"] == "user").count(),
        1,
        "after /reset, nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_persona_must_be_named_when_there_are_several() {
    let server = openai_server(remembering).await;
    let ws = chat_workspace(&server.uri());
    let out = ws.run(&["chat"], Some("hello\n")).await;
    assert_exit(&out, 2);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("ada") && stderr.contains("helper") && stderr.contains("--persona"), "{stderr}");

    let out = ws.run(&["chat", "--persona", "nobody"], Some("hello\n")).await;
    assert_exit(&out, 2);
    assert!(text(&out.stderr).contains("unknown agent \"nobody\""));

    // `[chat] persona` picks one.
    ws.write_config(&format!(
        "{}\n[personas]\ndir = \"personas\"\n[chat]\npersona = \"ada\"\n",
        base_config(&server.uri())
    ));
    let out = ws.run(&["chat"], Some("my name is Ada\n")).await;
    assert_exit(&out, 0);
    assert_eq!(text(&out.stdout), "Nice to meet you, Ada.\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_turn_is_reported_and_its_exit_code_kept() {
    let server = openai_server(|_| {
        ResponseTemplate::new(400).set_body_json(serde_json::json!({"error": {"message": "nope"}}))
    })
    .await;
    let ws = chat_workspace(&server.uri());
    let out = ws.run(&["chat", "--persona", "ada"], Some("hello\n")).await;
    assert_exit(&out, 1);
    assert_eq!(text(&out.stdout), "");
    assert!(text(&out.stderr).contains("the turn ended failed"), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigint_during_a_turn_exits_130() {
    let server = openai_server(remembering).await;
    let ws = chat_workspace(&server.uri());
    let mut command = ws.command(&["chat", "--persona", "ada"]);
    command.stdin(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"please hang\n").unwrap();
    wait_for_calls(&server, 1).await;
    signal(&child, "INT");
    let out = wait_exit(child, HANG).await;
    drop(stdin);
    assert_exit(&out, 130);
}
