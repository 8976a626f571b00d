//! The `chatbot` binary, offline: a piped conversation, `digest`, bad arguments.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use chatbot::fixture::ADA;

fn run(args: &[&str], stdin: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    run_in(&dir, args, stdin)
}

/// Runs the binary with its store in `dir`.
fn run_in(dir: &tempfile::TempDir, args: &[&str], stdin: &str) -> Output {
    let store = format!("sqlite://{}/chatbot.db", dir.path().display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatbot"))
        .args(args)
        .env_clear()
        .env("CHATBOT_STORE", store)
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_piped_conversation_offline() {
    let input = format!("{}\n{}\n/history\n{}\n/exit\n", ADA.turns[0], ADA.turns[1], ADA.turns[2]);
    let out = run(&["--user", "ada"], &input);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        "Welcome, Ada! Good to have someone keeping the build servers happy. How can I help?"
    );
    assert_eq!(lines[1], "Your 14 build servers can run 84 jobs in parallel.");
    assert!(lines.contains(&"you: Hi, I'm Ada. I look after the build servers."), "/history: {stdout}");
    assert_eq!(*lines.last().unwrap(), "You're Ada, and you look after the build servers.");
}

#[test]
fn the_conversation_continues_in_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(&dir, &["--user", "ada"], &format!("{}\n{}\n", ADA.turns[0], ADA.turns[1]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // A new process: the third answer needs the first turn, read back from the store.
    let out = run_in(&dir, &["--user", "ada"], &format!("{}\n", ADA.turns[2]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "You're Ada, and you look after the build servers.\n");
    assert!(dir.path().join("chatbot.db").is_file());
}

#[test]
fn digest_and_usage_errors() {
    let out = run(&["digest"], "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("completed] Good morning, team!"), "{}", text(&out.stdout));

    let out = run(&["--frobnicate"], "");
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["--help"], "");
    assert!(text(&out.stdout).contains("CHATBOT_MODEL"));

    // A user the bundled transcript has no answers for is told so, not hung.
    let out = run(&["--user", "zed"], "Tell me a joke\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the turn ended failed"), "{}", text(&out.stderr));
}
