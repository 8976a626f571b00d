//! Replays the committed corpus (`corpus/<target>/*`) through each target's check on a stable
//! toolchain, without libFuzzer: a regression found by fuzzing stays caught by `cargo test`.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    for file in &files {
        let data = std::fs::read(file).expect("a readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: {} fails its check", file.display());
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn sse_corpus() {
    replay("sse", executus_fuzz::sse::check);
}

#[test]
fn ndjson_corpus() {
    replay("ndjson", executus_fuzz::ndjson::check);
}

#[test]
fn dsn_corpus() {
    replay("dsn", executus_fuzz::dsn::check);
}

#[test]
fn chain_corpus() {
    replay("chain", executus_fuzz::chain::check);
}

#[test]
fn tool_args_corpus() {
    replay("tool_args", executus_fuzz::tool_args::check);
}

#[test]
fn config_corpus() {
    replay("config", executus_fuzz::config::check);
}
