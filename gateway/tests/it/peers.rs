//! Finding the real peers: the pinned SDKs (scripts/peer-gateway.sh) and the llama.cpp
//! server (scripts/peer-llama.sh, `EXECUTUS_TEST_LLAMA_URL`). Under `CI=true` a missing peer
//! fails the test; otherwise the test says loudly that it did not run (on stderr and on the
//! terminal, which the test harness does not capture) and returns.

use std::io::Write as _;
use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn missing(test: &str, what: &str) {
    let message = format!("NOTICE gateway::{test}: {what} — this suite did NOT run");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{message} (CI=true: every peer must be present)");
    }
    eprintln!("{message}");
    if let Ok(mut tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{message}");
    }
}

/// The Python of the SDK venv, if installed.
pub fn python(test: &str) -> Option<PathBuf> {
    let python = root().join("target/peers/gateway/venv/bin/python");
    if python.exists() {
        Some(python)
    } else {
        missing(test, "the openai/anthropic SDK venv is missing (run scripts/peer-gateway.sh)");
        None
    }
}

/// The llama.cpp server's base URL, if one is running.
pub fn llama(test: &str) -> Option<String> {
    match std::env::var("EXECUTUS_TEST_LLAMA_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().trim_end_matches('/').to_owned()),
        _ => {
            missing(test, "EXECUTUS_TEST_LLAMA_URL is not set (start one with scripts/peer-llama.sh)");
            None
        }
    }
}
